r"""Prepares TFRecords for general (pretraining) distillation from plain text.

Input is the BERT pretraining text format: one sentence per line, a blank line between documents. Each document
is cut into chunks of consecutive sentences that fill `max_seq_length - 3` tokens (or, with probability
`short_seq_prob`, a random shorter target). A chunk becomes one example in BERT's two-segment layout
`[CLS] A [SEP] B [SEP]`, where A is the chunk's first k sentences for a random k and B the rest; a chunk of one
sentence (every single-sentence document, for one) gives `[CLS] A [SEP]`. With RoBERTa's special tokens (a BPE
vocab.json, or MPNet's WordPiece vocab) the layout is `<s> A </s></s> B </s>` and chunks fill `max_seq_length - 4`. When a chunk is too long, the longer
segment is cut from its end. There is no masking and no next-sentence pair sampling: representation
distillation (TinyBERT's general distillation) feeds the teacher and the student the same unmasked text.

Outputs, all written atomically (a failed run leaves no file that looks finished):
  * TFRecords with the int64 features `input_word_ids`, `input_mask`, `input_type_ids` (`modeling.records`);
  * `meta.json` in the folder of the first output file: tokenizer, vocab sha256, counts and the record files.

Usage:
  python3 prepare_dataset/create_distilled_pretraining_data.py \
    --input_file /data/wiki-*.txt,/data/news.txt --output_file /data/general/train.tfrecord \
    --vocab_file /models/bert/vocab.txt --max_seq_length 128 --num_output_shards 4 --num_workers 2
"""

import dataclasses
import glob
import multiprocessing
import os
import random
import time

import numpy as np
from absl import flags, logging

from modeling import files, progress, records, tokenization
from modeling.errors import UserError, run_script

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """Defines the flags; called only when run as a script, so that tests can import this module next to others."""
  fv = {"flag_values": flag_values}
  flags.DEFINE_string("input_file", None, "Input text (one sentence per line, blank line between documents); several "
                      "comma-separated files or globs.", **fv)
  flags.DEFINE_string("output_file", None, "Output TFRecord file(s), comma-separated; or one path with "
                      "--num_output_shards. meta.json goes into the folder of the first file.", **fv)
  flags.DEFINE_string("vocab_file", None, "Vocab the student and teacher were trained with: a WordPiece vocab.txt, "
                      "or a byte-level BPE vocab.json (RoBERTa) with --merges_file.", **fv)
  flags.DEFINE_string("merges_file", None, "merges.txt of a BPE vocab.json in --vocab_file; default: merges.txt "
                      "beside it.", **fv)
  flags.DEFINE_enum("special_tokens", None, list(records.SPECIAL_TOKEN_SCHEMES), "Special-token layout: bert "
                    "([CLS] A [SEP] B [SEP]) or roberta (<s> A </s></s> B </s>, RoBERTa and MPNet); default: detected "
                    "from the vocab (roberta for a BPE vocab.json or a WordPiece vocab starting <s> <pad> </s> <unk>).",
                    **fv)
  flags.DEFINE_integer("max_seq_length", 128, "Length of every example, special tokens included.", **fv)
  flags.DEFINE_bool("do_lower_case", None, "Lower-case and strip accents; default: inferred from the vocab (True "
                    "when it has no upper-case entries).", **fv)
  flags.DEFINE_string("spm_model_file", None, "SentencePiece .model to use instead of --vocab_file (ALBERT).", **fv)
  flags.DEFINE_integer("dupe_factor", 1, "How many times to cut each document into examples, with different random "
                       "segment splits and lengths each time.", **fv)
  flags.DEFINE_float("short_seq_prob", 0.1, "Probability of a shorter random target length for a chunk.", **fv)
  flags.DEFINE_integer("random_seed", 12345, "Seed for splits, target lengths and shuffling; the output is a "
                       "function of the input and the flags.", **fv)
  flags.DEFINE_integer("num_output_shards", 1, "With a single --output_file, write this many shards named "
                       "NAME-00000-of-0000N.tfrecord (for NAME.tfrecord) or NAME-00000-of-0000N.", **fv)
  flags.DEFINE_integer("num_workers", 1, "Processes that tokenize input chunks in parallel (each loads TensorFlow; "
                       "worth it from about 4 cores on, since one process already tokenizes on two threads).", **fv)


@dataclasses.dataclass(frozen=True)
class Settings:
  """The validated flags."""
  input_files: list
  output_files: list
  output_dir: str
  vocab_file: str | None
  spm_model_file: str | None
  merges_file: str | None
  special_tokens: str | None
  do_lower_case: bool | None
  max_seq_length: int
  dupe_factor: int
  short_seq_prob: float
  random_seed: int
  num_workers: int


_MIN_SEQ_LENGTH = 8
_SENTENCES_PER_CHUNK = 20_000  # Sentences per tokenizer call (and per worker task); progress moves by one.
_EXAMPLES_PER_WRITE = 10_000  # Examples serialized per call; progress moves by one.


def expand_input_files(spec: str) -> list[str]:
  """Comma-separated files or globs to a list of files, in the given order; a pattern matching nothing is an error."""
  found = []
  for pattern in [p.strip() for p in spec.split(",") if p.strip()]:
    matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    matches = [m for m in matches if os.path.isfile(m)]
    if not matches:
      raise UserError(f"--input_file: no such file: {pattern}")
    found += matches
  if not found:
    raise UserError("--input_file is required")
  return found


def output_paths(spec: str, num_shards: int) -> list[str]:
  """The output record files: the comma-separated list, or one path expanded to `num_shards` shard names."""
  paths = [p.strip() for p in spec.split(",") if p.strip()]
  if not paths:
    raise UserError("--output_file is required")
  if num_shards < 1:
    raise UserError(f"--num_output_shards must be at least 1, got {num_shards}")
  if num_shards > 1:
    if len(paths) > 1:
      raise UserError("--num_output_shards needs a single --output_file, got a list")
    root, ext = os.path.splitext(paths[0]) if paths[0].endswith(".tfrecord") else (paths[0], "")
    paths = [f"{root}-{i:05d}-of-{num_shards:05d}{ext}" for i in range(num_shards)]
  folders = {os.path.dirname(os.path.abspath(p)) for p in paths}
  if len(folders) > 1:
    raise UserError("--output_file: all output files must be in one folder (meta.json describes them together)")
  if len(set(paths)) < len(paths):
    raise UserError("--output_file names a file twice")
  return paths


def read_documents(paths: list[str]) -> list[list[str]]:
  """Documents (lists of non-blank lines) of the BERT text format; a blank line or a new file ends a document."""
  documents = []
  for path in paths:
    current = []
    try:
      with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
          line = line.strip()
          if line:
            current.append(line)
          elif current:
            documents.append(current)
            current = []
    except OSError as e:
      raise UserError(f"--input_file: cannot read {path}: {e.strerror or e}") from None
    if current:
      documents.append(current)
  return documents


_worker_tokenizer = None


def _init_worker(build_args):
  global _worker_tokenizer
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  _worker_tokenizer = tokenization.build_tokenizer(**build_args)


def _tokenize_in_worker(sentences):
  return _worker_tokenizer.tokenize_to_arrays(sentences)


def tokenize_documents(tokenizer: tokenization.Tokenizer, documents: list[list[str]], num_workers: int = 1):
  """Tokenizes every sentence, reporting progress (`modeling.progress`).

  Returns:
    `(ids, sentence_lengths)`: the int32 ids of all sentences in order, and the number of ids of each sentence.
  """
  sentences = [sentence for document in documents for sentence in document]
  chunks = [sentences[i:i + _SENTENCES_PER_CHUNK] for i in range(0, len(sentences), _SENTENCES_PER_CHUNK)]
  ids, lengths = [], []
  pool = None
  if num_workers > 1 and len(chunks) > 1:
    pool = multiprocessing.get_context("spawn").Pool(num_workers, _init_worker, (tokenizer.build_args,))
    tokenized = pool.imap(_tokenize_in_worker, chunks)
  else:
    tokenized = (tokenizer.tokenize_to_arrays(chunk) for chunk in chunks)
  try:
    for chunk_ids, chunk_lengths in progress.progress(tokenized, "tokenizing", total=len(sentences),
                                                      unit="sentences", sizes=lambda result: len(result[1])):
      ids.append(chunk_ids)
      lengths.append(chunk_lengths)
  finally:
    if pool is not None:
      pool.terminate()
  if not ids:
    return np.zeros([0], np.int32), np.zeros([0], np.int64)
  return np.concatenate(ids), np.concatenate(lengths)


def plan_examples(document_lengths: list[np.ndarray], max_seq_length: int, short_seq_prob: float, dupe_factor: int,
                  rng: random.Random, pair_separators: int = 1) -> np.ndarray:
  """Cuts documents into examples, BERT style, without looking at the ids.

  Args:
    document_lengths: For each document, the token count of each of its sentences (empty sentences included,
      they contribute nothing).
    max_seq_length: Example length, special tokens included.
    short_seq_prob: Probability of a random shorter target for a document pass.
    dupe_factor: Number of passes over the documents.
    rng: The random source.
    pair_separators: Separators between the two segments (1 for BERT's layout, 2 for RoBERTa's).

  Returns:
    An int64 array `[num_examples, 4]` of `(a_start, a_length, b_start, b_length)` offsets into the flat id
    array, already truncated; `b_length == -1` marks a single-segment example.
  """
  max_num_tokens = max_seq_length - 2 - pair_separators
  plans = []
  for dupe in range(dupe_factor):
    offset = 0
    what = "cutting documents into examples" + (f" (pass {dupe + 1}/{dupe_factor})" if dupe_factor > 1 else "")
    for lengths in progress.progress(document_lengths, what, total=len(document_lengths), unit="documents"):
      lengths = [int(n) for n in lengths]
      sentence_starts = [offset]
      for n in lengths:
        sentence_starts.append(sentence_starts[-1] + n)
      offset = sentence_starts[-1]
      nonempty = [i for i, n in enumerate(lengths) if n > 0]
      target = max_num_tokens
      if rng.random() < short_seq_prob:
        target = rng.randint(2, max_num_tokens)
      chunk, chunk_tokens = [], 0
      for position, i in enumerate(nonempty):
        chunk.append(i)
        chunk_tokens += lengths[i]
        if position == len(nonempty) - 1 or chunk_tokens >= target:
          first, last = chunk[0], chunk[-1]
          if len(chunk) == 1:
            length = min(lengths[first], max_seq_length - 2)
            plans.append((sentence_starts[first], length, 0, -1))
          else:
            split = chunk[rng.randint(1, len(chunk) - 1)]
            len_a = sentence_starts[split] - sentence_starts[first]
            len_b = sentence_starts[last + 1] - sentence_starts[split]
            len_a, len_b = tokenization.truncated_lengths(len_a, len_b, max_num_tokens)
            plans.append((sentence_starts[first], len_a, sentence_starts[split], len_b))
          chunk, chunk_tokens = [], 0
          if rng.random() < short_seq_prob:
            target = rng.randint(2, max_num_tokens)
          else:
            target = max_num_tokens
  return np.asarray(plans, dtype=np.int64).reshape([-1, 4])


def build_features(ids: np.ndarray, plans: np.ndarray, max_seq_length: int,
                   special_tokens: tokenization.SpecialTokens) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Materializes planned examples as `[num_examples, max_seq_length]` arrays, vectorized over examples.

  The layout is `special_tokens`': `[CLS] A [SEP] B [SEP]` (B with type id 1) or `<s> A </s></s> B </s>`.

  Returns:
    `(input_word_ids, input_mask, input_type_ids)` as int64 arrays.
  """
  a_start, len_a, b_start, len_b = (plans[:, i:i + 1] for i in range(4))
  has_b = len_b >= 0
  len_b = np.maximum(len_b, 0)
  position = np.arange(max_seq_length, dtype=np.int64)[None, :]
  b_begin = len_a + 1 + special_tokens.pair_separators
  in_a = (position >= 1) & (position <= len_a)
  in_b = has_b & (position >= b_begin) & (position < b_begin + len_b)
  last_index = max(len(ids) - 1, 0)
  source = np.where(in_a, a_start + position - 1, b_start + position - b_begin)
  gathered = ids[np.clip(source, 0, last_index)] if len(ids) else np.zeros(source.shape, np.int32)
  used = len_a + 2 + np.where(has_b, len_b + special_tokens.pair_separators, 0)
  is_sep = ((position == len_a + 1) | (has_b & (position > len_a + 1) & (position < b_begin)) |
            (has_b & (position == used - 1)))
  word_ids = np.where(in_a | in_b, gathered, special_tokens.pad_id).astype(np.int64)
  word_ids[:, 0] = special_tokens.cls_id
  word_ids[is_sep] = special_tokens.sep_id
  input_mask = (position < used).astype(np.int64)
  type_ids = (has_b & (position >= len_a + 2) & (position < used)).astype(np.int64) * special_tokens.second_type_id
  return word_ids, input_mask, type_ids


def write_records(paths: list[str], features: tuple[np.ndarray, np.ndarray, np.ndarray]) -> list[int]:
  """Writes the examples in contiguous blocks over the shards; all shards become visible only if all succeed."""
  word_ids, input_mask, type_ids = features
  bounds = np.linspace(0, len(word_ids), len(paths) + 1).astype(int)
  writers = []
  try:
    for path in paths:
      writers.append(records.RecordWriter(path))
    blocks = [(writer, row, min(end, row + _EXAMPLES_PER_WRITE))
              for writer, begin, end in zip(writers, bounds[:-1], bounds[1:])
              for row in range(begin, end, _EXAMPLES_PER_WRITE)]
    for writer, row, stop in progress.progress(blocks, "writing records", total=len(word_ids),
                                               sizes=lambda block: block[2] - block[1]):
      for serialized in records.serialize_examples(word_ids[row:stop], input_mask[row:stop], type_ids[row:stop]):
        writer.write(serialized)
  except BaseException:
    for writer in writers:
      writer.close(ok=False)
    raise
  for writer in writers:
    writer.close()
  return [writer.count for writer in writers]


def _validate(f: flags.FlagValues) -> Settings:
  """Checks flags and paths before any heavy work."""
  if f.max_seq_length < _MIN_SEQ_LENGTH:
    raise UserError(f"--max_seq_length must be at least {_MIN_SEQ_LENGTH}, got {f.max_seq_length}")
  if not f.input_file:
    raise UserError("--input_file is required")
  if not f.output_file:
    raise UserError("--output_file is required")
  if f.dupe_factor < 1:
    raise UserError(f"--dupe_factor must be at least 1, got {f.dupe_factor}")
  if not 0.0 <= f.short_seq_prob <= 1.0:
    raise UserError(f"--short_seq_prob must be in [0, 1], got {f.short_seq_prob}")
  if f.num_workers < 1:
    raise UserError(f"--num_workers must be at least 1, got {f.num_workers}")
  input_files = expand_input_files(f.input_file)
  output_files = output_paths(f.output_file, f.num_output_shards)
  output_dir = files.ensure_writable_dir(os.path.dirname(os.path.abspath(output_files[0])), flag="output_file")
  return Settings(input_files=input_files, output_files=output_files, output_dir=output_dir, vocab_file=f.vocab_file,
                  spm_model_file=f.spm_model_file, merges_file=f.merges_file, special_tokens=f.special_tokens,
                  do_lower_case=f.do_lower_case, max_seq_length=f.max_seq_length,
                  dupe_factor=f.dupe_factor, short_seq_prob=f.short_seq_prob, random_seed=f.random_seed,
                  num_workers=f.num_workers)


def create_pretraining_data(input_files: list[str], output_files: list[str], output_dir: str,
                            tokenizer: tokenization.Tokenizer, *, max_seq_length: int, dupe_factor: int = 1,
                            short_seq_prob: float = 0.1, random_seed: int = 12345, num_workers: int = 1) -> dict:
  """Reads, tokenizes, packs and writes; returns the meta.json content it wrote."""
  start = time.time()
  documents = read_documents(input_files)
  num_sentences = sum(len(d) for d in documents)
  if not num_sentences:
    raise UserError(f"--input_file: no sentences in {', '.join(input_files)}")
  ids, sentence_lengths = tokenize_documents(tokenizer, documents, num_workers)
  if not int(sentence_lengths.sum()):
    raise UserError(f"--input_file: the text of {', '.join(input_files)} gives no tokens")
  document_lengths = np.split(sentence_lengths, np.cumsum([len(d) for d in documents])[:-1])
  rng = random.Random(random_seed)
  plans = plan_examples(document_lengths, max_seq_length, short_seq_prob, dupe_factor, rng,
                        tokenizer.special_tokens.pair_separators)
  order = list(range(len(plans)))
  rng.shuffle(order)
  plans = plans[order]
  features = build_features(ids, plans, max_seq_length, tokenizer.special_tokens)
  counts = write_records(output_files, features)
  num_tokens = int(sentence_lengths.sum())
  meta = {
      "kind": "pretraining",
      "max_seq_length": max_seq_length,
      **tokenizer.meta(),
      "num_examples": int(sum(counts)),
      "num_documents": len(documents),
      "num_sentences": num_sentences,
      "num_tokens": num_tokens,
      "num_tokens_in_examples": int(features[1].sum()),
      "files": [os.path.basename(p) for p in output_files],
      "examples_per_file": counts,
      "dupe_factor": dupe_factor,
      "short_seq_prob": short_seq_prob,
      "random_seed": random_seed,
      "input_files": [os.path.abspath(p) for p in input_files],
  }
  records.write_meta(output_dir, meta)
  elapsed = max(time.time() - start, 1e-9)
  logging.info("wrote %d examples from %d documents (%d tokens) to %s in %.1fs: %.0f documents/s, %.0f tokens/s",
               meta["num_examples"], len(documents), num_tokens, ", ".join(output_files), elapsed,
               len(documents) / elapsed, num_tokens / elapsed)
  return meta


def run(s: Settings) -> dict:
  """Builds the tokenizer and prepares the data; returns the meta.json content it wrote."""
  tokenizer = tokenization.build_tokenizer(s.vocab_file, s.spm_model_file, s.do_lower_case,
                                           merges_file=s.merges_file, special_tokens=s.special_tokens)
  return create_pretraining_data(s.input_files, s.output_files, s.output_dir, tokenizer,
                                 max_seq_length=s.max_seq_length, dupe_factor=s.dupe_factor,
                                 short_seq_prob=s.short_seq_prob, random_seed=s.random_seed, num_workers=s.num_workers)


def main():
  run(_validate(FLAGS))


if __name__ == "__main__":
  define_flags()
  run_script(main)
