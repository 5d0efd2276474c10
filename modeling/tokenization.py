"""Tokenizers for every data script: WordPiece (BERT, TinyBERT, MobileBERT, MPNet), SentencePiece (ALBERT) and
byte-level BPE (RoBERTa).

`build_tokenizer` returns a `Tokenizer` that tokenizes in batches, packs ids into the model's layout (BERT's
`[CLS] A [SEP] B [SEP]` or RoBERTa's `<s> A </s></s> B </s>`, see `SpecialTokens`), and, for WordPiece and
SentencePiece, builds an in-graph Keras preprocessor (raw strings in, the model's input dict out) for SavedModel
export. The Python path (`tokenize_to_ids` + `pack`) and the in-graph path use the same tokenizer layer, so they
give the same ids. Byte-level BPE runs in Hugging Face `tokenizers` (Rust): TensorFlow Text has no byte-level BPE
op (its tokenizers are WordPiece, SentencePiece, whitespace/Unicode-script splitters and split-merge models, and
RE2 lacks the lookahead of GPT-2's pre-tokenization regex), so a RoBERTa export takes token ids.

WordPiece normalization mirrors the reference BERT tokenizer (`official.nlp.tools.tokenization.FullTokenizer`):
delete U+0000, U+FFFD and control/format/unassigned characters (Unicode category C*), map the other whitespace
(tab, newlines, category Zs) to a space, then, when lower-casing, `lower()`, NFD and strip combining marks (Mn).
TensorFlow Text's own `lower_case_nfd_strip_accents` normalizer applies NFKC case folding instead and keeps U+FFFD
inside words, which is why `FastBertTokenizer` alone disagrees with `FullTokenizer` on ~1 token in 7,000 of news
text (a word holding U+FFFD becomes `[UNK]`; full-width punctuation such as `，` becomes `,`). With the step
above the two agree on every token of 3 MB of news text (tests/modeling/test_tokenization.py measures it).
"""

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text as text
import tf_keras
from official.nlp.modeling.layers import text_layers

from modeling import records
from modeling.errors import UserError

WORDPIECE = "wordpiece"
SENTENCEPIECE = "sentencepiece"
BYTE_LEVEL_BPE = "byte_level_bpe"
BERT_SPECIALS = records.BERT_SPECIALS
ROBERTA_SPECIALS = records.ROBERTA_SPECIALS
# The tokens of each role, per (tokenizer kind, special-token scheme); the first present candidate wins. MPNet's
# WordPiece vocab has both `<unk>` (id 3) and `[UNK]`; its Hugging Face tokenizer emits `[UNK]`.
_SPECIAL_NAMES = {
    (WORDPIECE, BERT_SPECIALS): {"cls": ("[CLS]",), "sep": ("[SEP]",), "pad": ("[PAD]",), "unk": ("[UNK]",),
                                 "mask": ("[MASK]",)},
    (WORDPIECE, ROBERTA_SPECIALS): {"cls": ("<s>",), "sep": ("</s>",), "pad": ("<pad>",),
                                    "unk": ("[UNK]", "<unk>"), "mask": ("<mask>",)},
    (SENTENCEPIECE, BERT_SPECIALS): {"cls": ("[CLS]",), "sep": ("[SEP]",), "pad": ("<pad>",), "unk": ("<unk>",),
                                     "mask": ("[MASK]",)},
    (SENTENCEPIECE, ROBERTA_SPECIALS): {"cls": ("<s>",), "sep": ("</s>",), "pad": ("<pad>",), "unk": ("<unk>",),
                                        "mask": ("<mask>",)},
    (BYTE_LEVEL_BPE, BERT_SPECIALS): {"cls": ("[CLS]",), "sep": ("[SEP]",), "pad": ("[PAD]",), "unk": ("[UNK]",),
                                      "mask": ("[MASK]",)},
    (BYTE_LEVEL_BPE, ROBERTA_SPECIALS): {"cls": ("<s>",), "sep": ("</s>",), "pad": ("<pad>",), "unk": ("<unk>",),
                                         "mask": ("<mask>",)},
}
# A WordPiece vocab that starts like this is MPNet's (bert-base-uncased with RoBERTa's specials in front).
_ROBERTA_STYLE_WORDPIECE_HEAD = ["<s>", "<pad>", "</s>", "<unk>"]
# tf-models' FullTokenizer gives up on words longer than 400 characters (-> [UNK]); FastWordpiece counts bytes,
# which is the same for the ASCII words that reach that length. MPNet's vocab comes with a Hugging Face tokenizer,
# which gives up at 100 characters.
_MAX_BYTES_PER_WORD = {BERT_SPECIALS: 400, ROBERTA_SPECIALS: 100}
# Every Unicode space separator except the plain space (replacing " " by " " would only cost time).
_OTHER_WHITESPACE = r"[\t\n\r\x{A0}\x{1680}\x{2000}-\x{200A}\x{202F}\x{205F}\x{3000}]"
_TOKENIZE_BATCH = 16384

Packed = tuple[list[int], list[int], list[int]]


def normalize_for_wordpiece(texts: tf.Tensor, lower_case: bool) -> tf.Tensor:
  """In-graph text cleanup matching the reference BERT `BasicTokenizer` (see the module docstring).

  Args:
    texts: A string tensor of any shape.
    lower_case: Whether to lower-case, NFD-decompose and strip accents.

  Returns:
    A string tensor of the same shape.
  """
  # RE2 has no class subtraction: turn tab/newlines into spaces first, then drop every other C* character.
  texts = tf.strings.regex_replace(texts, _OTHER_WHITESPACE, " ")
  texts = tf.strings.regex_replace(texts, r"[\x{FFFD}\pC]", "")
  if lower_case:
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = text.normalize_utf8(texts, "NFD")
    texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
  return texts


class WordpieceTokenizer(tf_keras.layers.Layer):
  """Keras layer: raw strings `[batch]` to WordPiece ids, a `RaggedTensor` `[batch, (tokens)]` of int32.

  BERT's basic tokenization (whitespace and punctuation splitting, CJK characters as words) and the WordPiece
  lookup run in one `text.FastBertTokenizer` op ("Fast WordPiece Tokenization", https://arxiv.org/abs/2012.15524),
  after `normalize_for_wordpiece`.

  Args:
    vocab: The WordPiece tokens, in id order.
    lower_case: Whether the vocab is uncased (lower-case, strip accents).
    unknown_token: The token that words outside the vocab become.
    max_bytes_per_word: Longer words become `unknown_token`.
    **kwargs: Standard arguments to `Layer()`.
  """

  def __init__(self, *, vocab: Sequence[str], lower_case: bool, unknown_token: str = "[UNK]",
               max_bytes_per_word: int = _MAX_BYTES_PER_WORD[BERT_SPECIALS], **kwargs):
    super().__init__(**kwargs)
    self._lower_case = lower_case
    self._fast_bert_tokenizer = text.FastBertTokenizer(
        vocab=list(vocab), token_out_type=tf.int32, unknown_token=unknown_token,
        max_bytes_per_word=max_bytes_per_word, lower_case_nfd_strip_accents=False)

  def call(self, inputs: tf.Tensor) -> tf.RaggedTensor:
    tokens = self._fast_bert_tokenizer.tokenize(normalize_for_wordpiece(inputs, self._lower_case))
    # FastBertTokenizer returns [batch, (tokens)] already; keep the batch dimension static-friendly.
    return tf.RaggedTensor.from_row_splits(tokens.flat_values, tf.reshape(tokens.row_splits, [-1]))

  def get_config(self):
    # The vocab lives in the op's model buffer, not in a file path that could travel with the config.
    raise NotImplementedError("WordpieceTokenizer is rebuilt with build_tokenizer(), not from a config")


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
  """The special-token scheme of a model family and the ids of its special tokens.

  `bert` (BERT, TinyBERT, MobileBERT, ALBERT): `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]`, B with type id 1.
  `roberta` (RoBERTa, MPNet): `<s> A </s>` and `<s> A </s></s> B </s>`, every type id 0.

  Attributes:
    scheme: "bert" or "roberta".
    cls_id, sep_id, pad_id, unk_id: Ids of the sequence start, segment end, padding and unknown tokens.
    mask_id: Id of the mask token, or None when the vocab has none.
  """
  scheme: str
  cls_id: int
  sep_id: int
  pad_id: int
  unk_id: int
  mask_id: int | None = None

  @property
  def pair_separators(self) -> int:
    """How many separators stand between the two segments of a pair (1 for BERT, 2 for RoBERTa)."""
    return 2 if self.scheme == ROBERTA_SPECIALS else 1

  @property
  def second_type_id(self) -> int:
    """`input_type_ids` value of the second segment."""
    return 0 if self.scheme == ROBERTA_SPECIALS else 1

  def num_special(self, pair: bool) -> int:
    """Number of special tokens in a packed single text or pair."""
    return 2 + self.pair_separators if pair else 2

  def to_meta(self) -> dict[str, int | str | None]:
    """The `special_tokens` field of a data folder's meta.json."""
    return dataclasses.asdict(self)


class Preprocessor(tf_keras.layers.Layer):
  """Keras layer: raw strings to the encoder inputs `input_word_ids`, `input_mask`, `input_type_ids` (int32).

  Call it on a string tensor `[batch]` (one segment) or a list of two (sentence pairs). Truncation is
  tf-models' round-robin trimmer, which keeps the same tokens as BERT's longest-first truncation. The layout is
  the `SpecialTokens` scheme's: BERT's through tf-models' `BertPackInputs`, RoBERTa's (`<s> A </s></s> B </s>`,
  type ids 0) by the same TensorFlow Text ops with the second segment's extra `</s>` put in front of it.

  Args:
    tokenizer_layer: A layer mapping strings `[batch]` to a `RaggedTensor` of ids `[batch, (tokens)]`.
    max_seq_length: Length of every output row.
    special_tokens: The scheme and ids of the special tokens.
    **kwargs: Standard arguments to `Layer()`.
  """

  def __init__(self, *, tokenizer_layer: tf_keras.layers.Layer, max_seq_length: int, special_tokens: SpecialTokens,
               **kwargs):
    super().__init__(**kwargs)
    self.tokenizer_layer = tokenizer_layer
    self.max_seq_length = max_seq_length
    self.special_tokens = special_tokens
    self.pack_inputs = text_layers.BertPackInputs(
        max_seq_length, start_of_sequence_id=special_tokens.cls_id, end_of_segment_id=special_tokens.sep_id,
        padding_id=special_tokens.pad_id, truncator="round_robin")

  def call(self, inputs) -> dict[str, tf.Tensor]:
    segments = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if not 1 <= len(segments) <= 2:
      raise ValueError(f"Preprocessor takes one or two string tensors, got {len(segments)}")
    segments = [self.tokenizer_layer(segment) for segment in segments]
    if self.special_tokens.scheme == BERT_SPECIALS:
      return self.pack_inputs(segments)
    return self._pack_roberta(segments)

  def _pack_roberta(self, segments: list[tf.RaggedTensor]) -> dict[str, tf.Tensor]:
    special = self.special_tokens
    budget = self.max_seq_length - special.num_special(len(segments) == 2)
    segments = text.RoundRobinTrimmer(budget).trim(segments)
    if len(segments) == 2:
      extra_sep = tf.fill([segments[1].nrows(), 1], tf.constant(special.sep_id, segments[1].dtype))
      segments[1] = tf.concat([tf.RaggedTensor.from_tensor(extra_sep), segments[1]], axis=1)
    combined, _ = text.combine_segments(segments, start_of_sequence_id=special.cls_id,
                                        end_of_segment_id=special.sep_id)
    word_ids, mask = text.pad_model_inputs(combined, self.max_seq_length, pad_value=special.pad_id)
    shape = tf.stack([segments[0].nrows(out_type=tf.int32), self.max_seq_length])
    word_ids, mask = tf.reshape(tf.cast(word_ids, tf.int32), shape), tf.reshape(tf.cast(mask, tf.int32), shape)
    return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": tf.zeros_like(word_ids)}

  def get_config(self):
    raise NotImplementedError("Preprocessor is rebuilt with Tokenizer.keras_preprocessor(), not from a config")


class Tokenizer:
  """A WordPiece, SentencePiece or byte-level BPE tokenizer with its special tokens; build it with `build_tokenizer`.

  Attributes:
    kind: "wordpiece", "sentencepiece" or "byte_level_bpe".
    vocab_path: The vocab.txt, .model or vocab.json file.
    vocab_sha256: Hex sha256 of that file's bytes (recorded in data sidecars).
    vocab_size: Number of ids.
    do_lower_case: Whether text is lower-cased before tokenization.
    special_tokens: The `SpecialTokens` scheme and ids.
    cls_id, sep_id, pad_id, unk_id: Ids of the special tokens (shortcuts into `special_tokens`).
    build_args: Keyword arguments of `build_tokenizer` that rebuild this tokenizer (in another process).
  """

  def __init__(self, *, kind: str, vocab_path: str, vocab_size: int, do_lower_case: bool,
               special_tokens: SpecialTokens, layer: tf_keras.layers.Layer | None, build_args: dict):
    self.kind = kind
    self.vocab_path = vocab_path
    self.vocab_sha256 = records.sha256_file(vocab_path)
    self.vocab_size = vocab_size
    self.do_lower_case = do_lower_case
    self.special_tokens = special_tokens
    self.cls_id = special_tokens.cls_id
    self.sep_id = special_tokens.sep_id
    self.pad_id = special_tokens.pad_id
    self.unk_id = special_tokens.unk_id
    self.build_args = build_args
    self.tokenizer_layer = layer
    if layer is not None:
      self._tokenize_fn = tf.function(
          self._tokenize_split, input_signature=[tf.TensorSpec([None], tf.string)], reduce_retracing=True)

  def __repr__(self) -> str:
    return (f"Tokenizer(kind={self.kind!r}, vocab_path={self.vocab_path!r}, vocab_size={self.vocab_size}, "
            f"do_lower_case={self.do_lower_case}, special_tokens={self.special_tokens.scheme!r})")

  def meta(self) -> dict:
    """The tokenizer's fields of a data folder's meta.json."""
    return {"tokenizer": self.kind, "vocab_sha256": self.vocab_sha256, "vocab_size": self.vocab_size,
            "do_lower_case": self.do_lower_case, "special_tokens": self.special_tokens.to_meta()}

  def _tokenize_split(self, texts: tf.Tensor):
    # Two independent halves let TensorFlow's inter-op pool tokenize them on two cores at once.
    half = tf.shape(texts)[0] // 2
    first = self.tokenizer_layer(texts[:half])
    second = self.tokenizer_layer(texts[half:])
    return (first.flat_values, first.row_lengths(),
            second.flat_values, second.row_lengths())

  def _tokenize_chunk(self, texts: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ids_a, lengths_a, ids_b, lengths_b = self._tokenize_fn(tf.constant(texts, dtype=tf.string))
    return [ids_a.numpy(), ids_b.numpy()], [lengths_a.numpy(), lengths_b.numpy()]

  def tokenize_to_arrays(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tokenizes a batch of strings into flat arrays (the fast path for data preparation).

    Args:
      texts: Strings to tokenize, without special tokens.

    Returns:
      `(ids, lengths)`: int32 ids of all texts concatenated, and the int64 number of ids of each text.
    """
    all_ids, all_lengths = [], []
    for start in range(0, len(texts), _TOKENIZE_BATCH):
      ids, lengths = self._tokenize_chunk(list(texts[start:start + _TOKENIZE_BATCH]))
      all_ids += ids
      all_lengths += lengths
    if not all_ids:
      return np.zeros([0], np.int32), np.zeros([0], np.int64)
    return np.concatenate(all_ids), np.concatenate(all_lengths)

  def tokenize_to_ids(self, texts: Sequence[str]) -> list[list[int]]:
    """Tokenizes a batch of strings into lists of ids, without special tokens."""
    ids, lengths = self.tokenize_to_arrays(texts)
    ends = np.cumsum(lengths)
    ids = ids.tolist()
    return [ids[end - length:end] for end, length in zip(ends.tolist(), lengths.tolist())]

  def pack(self, ids_a: Sequence[int], ids_b: Sequence[int] | None = None, max_seq_length: int = 128) -> Packed:
    """Packs one segment or a pair into `max_seq_length` model inputs, in the layout of `special_tokens`.

    BERT: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (b with type id 1); RoBERTa: `<s> a </s>` or
    `<s> a </s></s> b </s>` (type ids 0). Segments that do not fit are truncated longest-first (from the end,
    `b` first on a tie), as in BERT.

    Args:
      ids_a: Ids of the first segment.
      ids_b: Ids of the optional second segment.
      max_seq_length: Length of the outputs; at least one more than the number of special tokens.

    Returns:
      `(input_word_ids, input_mask, input_type_ids)`, lists of `max_seq_length` ints, padded with `pad_id`,
      0 and 0.
    """
    special = self.special_tokens
    budget = max_seq_length - special.num_special(ids_b is not None)
    if budget < 1:
      raise ValueError(f"max_seq_length={max_seq_length} leaves no room for tokens")
    len_a, len_b = len(ids_a), 0 if ids_b is None else len(ids_b)
    len_a, len_b = truncated_lengths(len_a, len_b, budget)
    word_ids = [self.cls_id, *ids_a[:len_a], self.sep_id]
    type_ids = [0] * len(word_ids)
    if ids_b is not None:
      word_ids += [self.sep_id] * (special.pair_separators - 1) + [*ids_b[:len_b], self.sep_id]
      type_ids += [special.second_type_id] * (len(word_ids) - len(type_ids))
    used = len(word_ids)
    padding = max_seq_length - used
    return word_ids + [self.pad_id] * padding, [1] * used + [0] * padding, type_ids + [0] * padding

  @property
  def has_keras_preprocessor(self) -> bool:
    """Whether `keras_preprocessor` can run this tokenizer inside a TensorFlow graph (raw-string signatures)."""
    return self.tokenizer_layer is not None

  def keras_preprocessor(self, max_seq_length: int) -> Preprocessor:
    """An in-graph Keras layer from raw strings to the encoder input dict, for serving signatures.

    Args:
      max_seq_length: Length of the outputs.

    Returns:
      A `Preprocessor` layer: call it on a string tensor `[batch]` or a list of two of them; it returns int32
      `input_word_ids`, `input_mask`, `input_type_ids` of shape `[batch, max_seq_length]`, the same as
      `tokenize_to_ids` followed by `pack`.

    Raises:
      UserError: For a tokenizer TensorFlow Text cannot run in a graph (`has_keras_preprocessor` is False).
    """
    if not self.has_keras_preprocessor:
      raise UserError(f"{self.kind} tokenization ({self.vocab_path}) cannot run inside a TensorFlow graph: "
                      "TensorFlow Text has no byte-level BPE op; export the model with token-id inputs")
    return Preprocessor(tokenizer_layer=self.tokenizer_layer, max_seq_length=max_seq_length,
                        special_tokens=self.special_tokens)


class ByteLevelBpeTokenizer(Tokenizer):
  """RoBERTa's byte-level BPE, run by Hugging Face `tokenizers`; build it with `build_tokenizer`.

  Text is split with GPT-2's pre-tokenization regex (no prefix space, no normalization), each piece's UTF-8 bytes
  are mapped to printable characters and merged by `merges.txt` rank, as RoBERTa does ("Language Models are
  Unsupervised Multitask Learners", Radford et al. 2019; "RoBERTa", https://arxiv.org/abs/1907.11692). Special
  tokens written in the text (`<s>`, `<mask>`) are tokenized as text, not as specials.

  Args:
    backend: A `tokenizers.Tokenizer` with the BPE model and the byte-level pre-tokenizer.
    merges_path: The merges.txt file.
    **kwargs: The arguments of `Tokenizer`, with `layer=None`.
  """

  def __init__(self, *, backend, merges_path: str, **kwargs):
    super().__init__(layer=None, **kwargs)
    self.merges_path = merges_path
    self.merges_sha256 = records.sha256_file(merges_path)
    self._backend = backend

  def meta(self) -> dict:
    return dict(super().meta(), merges_sha256=self.merges_sha256)

  def _tokenize_chunk(self, texts: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if self.do_lower_case:
      texts = [t.lower() for t in texts]
    encodings = self._backend.encode_batch_fast(texts, add_special_tokens=False)
    id_lists = [encoding.ids for encoding in encodings]
    lengths = np.fromiter(map(len, id_lists), np.int64, len(id_lists))
    ids = np.fromiter((i for ids in id_lists for i in ids), np.int32, int(lengths.sum()))
    return [ids], [lengths]


def truncated_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
  """Segment lengths after BERT's longest-first truncation to `len_a + len_b <= budget` (ties shorten b)."""
  if len_a + len_b <= budget:
    return len_a, len_b
  shorter = min(len_a, len_b)
  if shorter * 2 <= budget:  # Only the longer segment is cut.
    return (budget - len_b, len_b) if len_b == shorter else (len_a, budget - len_a)
  half_up = (budget + 1) // 2
  return half_up, budget - half_up


def _read_text(path: str, flag: str, what: str) -> str:
  with open(path, "rb") as f:
    raw = f.read()
  if not raw.strip():
    raise UserError(f"--{flag}: {path} is empty; expected {what}")
  if b"\x00" in raw[:65536]:
    raise UserError(f"--{flag}: {path} is a binary file, not {what}; for a SentencePiece .model use --spm_model_file")
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError:
    raise UserError(f"--{flag}: {path} is not UTF-8 text, not {what}") from None


def _looks_like_merges(content: str) -> bool:
  """A BPE merges.txt: a `#version` header, or only lines of two space-separated symbols."""
  lines = content.split("\n", 20)[:20]
  if lines[0].startswith("#version"):
    return True
  return all(len(line.split(" ")) == 2 for line in lines if line)


def _special_tokens(index: dict[str, int], kind: str, scheme: str, where: str, what: str, hint: str = "",
                    unk_id: int | None = None) -> SpecialTokens:
  names = _SPECIAL_NAMES[kind, scheme]
  found = {role: next((index[t] for t in candidates if t in index), None) for role, candidates in names.items()}
  if unk_id is not None:
    found["unk"] = unk_id
  missing = [names[role][0] for role in ("cls", "sep", "pad", "unk") if found[role] is None]
  if missing:
    raise UserError(f"{where} is not {what}: it has no {', '.join(missing)} entries{hint}")
  return SpecialTokens(scheme=scheme, cls_id=found["cls"], sep_id=found["sep"], pad_id=found["pad"],
                       unk_id=found["unk"], mask_id=found["mask"])


def _infer_lower_case(pieces: Sequence[str]) -> bool:
  """Uncased when no entry has an upper-case letter, ignoring special tokens like `[CLS]` or `<unk>`."""
  for piece in pieces:
    if (piece.startswith("[") and piece.endswith("]")) or (piece.startswith("<") and piece.endswith(">")):
      continue
    if piece != piece.lower():
      return False
  return True


def wordpiece_tokens(content: str) -> list[str]:
  """The tokens of a WordPiece vocab.txt's text, in id order: one per line, surrounding whitespace dropped."""
  return [line.strip() for line in content.split("\n")[:-1 if content.endswith("\n") else None]]


def _build_wordpiece(vocab_file: str, content: str, do_lower_case: bool | None, scheme: str | None, flag: str,
                     build_args: dict) -> Tokenizer:
  vocab = wordpiece_tokens(content)
  index = {}
  for i, token in enumerate(vocab):
    index.setdefault(token, i)
  if scheme is None:
    scheme = ROBERTA_SPECIALS if vocab[:4] == _ROBERTA_STYLE_WORDPIECE_HEAD else BERT_SPECIALS
  special = _special_tokens(index, WORDPIECE, scheme, f"--{flag}: {vocab_file}",
                            "a WordPiece vocab" if scheme == BERT_SPECIALS else "a RoBERTa-style WordPiece vocab")
  if do_lower_case is None:
    do_lower_case = _infer_lower_case(vocab)
  layer = WordpieceTokenizer(vocab=vocab, lower_case=do_lower_case, unknown_token=vocab[special.unk_id],
                             max_bytes_per_word=_MAX_BYTES_PER_WORD[scheme])
  return Tokenizer(kind=WORDPIECE, vocab_path=vocab_file, vocab_size=len(vocab), do_lower_case=do_lower_case,
                   special_tokens=special, layer=layer, build_args=dict(build_args, do_lower_case=do_lower_case))


def _build_sentencepiece(model_file: str, do_lower_case: bool | None, scheme: str | None, flag: str,
                         build_args: dict) -> Tokenizer:
  import sentencepiece  # pylint: disable=g-import-not-at-top

  processor = sentencepiece.SentencePieceProcessor()
  try:
    with open(model_file, "rb") as f:
      processor.LoadFromSerializedProto(f.read())
  except (RuntimeError, OSError, TypeError):  # sentencepiece reports a bad proto as a RuntimeError.
    raise UserError(f"--{flag}: {model_file} is not a SentencePiece .model file; "
                    "for a WordPiece vocab.txt use --vocab_file") from None
  pieces = [processor.IdToPiece(i) for i in range(processor.GetPieceSize())]
  index = {piece: i for i, piece in enumerate(pieces)}
  special = _special_tokens(
      index, SENTENCEPIECE, scheme or BERT_SPECIALS, f"--{flag}: SentencePiece model {model_file}",
      "usable", "; train it with pad_id, unk_id and user_defined_symbols=[CLS],[SEP],[MASK] as ALBERT does")
  if do_lower_case is None:
    do_lower_case = _infer_lower_case(pieces)
  layer = text_layers.SentencepieceTokenizer(lower_case=do_lower_case, model_file_path=model_file)
  return Tokenizer(kind=SENTENCEPIECE, vocab_path=model_file, vocab_size=len(pieces), do_lower_case=do_lower_case,
                   special_tokens=special, layer=layer, build_args=dict(build_args, do_lower_case=do_lower_case))


def _build_byte_level_bpe(vocab_file: str, content: str, merges_file: str | None, do_lower_case: bool | None,
                          scheme: str | None, flag: str, merges_flag: str, build_args: dict) -> Tokenizer:
  import tokenizers  # pylint: disable=g-import-not-at-top

  try:
    vocab = json.loads(content)
  except json.JSONDecodeError as e:
    raise UserError(f"--{flag}: {vocab_file} is not valid JSON ({e.msg} at line {e.lineno}); expected a BPE "
                    "vocab.json") from None
  if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
    raise UserError(f"--{flag}: {vocab_file} is not a BPE vocab.json (an object of token: id)")
  if merges_file is None:
    merges_file = os.path.join(os.path.dirname(vocab_file), "merges.txt")
    if not os.path.isfile(merges_file):
      raise UserError(f"--{flag}: {vocab_file} is a BPE vocab.json; give its merges.txt with --{merges_flag}")
  elif not os.path.isfile(merges_file):
    raise UserError(f"--{merges_flag}: file not found: {merges_file}")
  scheme = scheme or ROBERTA_SPECIALS
  special = _special_tokens(vocab, BYTE_LEVEL_BPE, scheme, f"--{flag}: {vocab_file}",
                            "a RoBERTa BPE vocab" if scheme == ROBERTA_SPECIALS else "a BPE vocab with BERT's specials")
  unk_token = next(token for token, i in vocab.items() if i == special.unk_id)
  try:
    model = tokenizers.models.BPE.from_file(vocab_file, merges_file, unk_token=unk_token)
  except Exception as e:  # noqa: BLE001 -- tokenizers raises a bare Exception for unreadable or inconsistent files.
    raise UserError(f"--{merges_flag}: {merges_file} does not fit {vocab_file}: {e}") from None
  backend = tokenizers.Tokenizer(model)
  backend.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  do_lower_case = bool(do_lower_case)  # Byte-level vocabs are cased.
  return ByteLevelBpeTokenizer(
      backend=backend, merges_path=merges_file, kind=BYTE_LEVEL_BPE, vocab_path=vocab_file,
      vocab_size=max(vocab.values()) + 1, do_lower_case=do_lower_case, special_tokens=special,
      build_args=dict(build_args, merges_file=merges_file, do_lower_case=do_lower_case))


def build_tokenizer(vocab_file: str | None = None, spm_model_file: str | None = None,
                    do_lower_case: bool | None = None, *, merges_file: str | None = None,
                    special_tokens: str | None = None, vocab_flag: str = "vocab_file",
                    spm_flag: str = "spm_model_file", merges_flag: str = "merges_file",
                    special_tokens_flag: str = "special_tokens") -> Tokenizer:
  """Builds the tokenizer of a vocab: WordPiece vocab.txt, SentencePiece .model, or BPE vocab.json + merges.txt.

  The kind comes from the file: a JSON object is a byte-level BPE vocab.json (RoBERTa), other text is a WordPiece
  vocab.txt. The special-token scheme is detected unless given: a WordPiece vocab starting `<s> <pad> </s> <unk>`
  (MPNet's) and a BPE vocab use RoBERTa's `<s>`/`</s>` layout; other WordPiece vocabs and SentencePiece models
  use BERT's `[CLS]`/`[SEP]`.

  Args:
    vocab_file: A WordPiece vocab.txt (one token per line) or a BPE vocab.json.
    spm_model_file: A SentencePiece model with `[CLS]`, `[SEP]`, `<pad>` and `<unk>` pieces (the ALBERT layout).
    do_lower_case: Whether to lower-case text (and, for WordPiece, strip accents). None infers it from the
      vocab: True when no entry except bracketed special tokens (`[CLS]`, `<unk>`, ...) has an upper-case
      letter, which is right for the uncased and cased BERT vocabs; False for byte-level BPE.
    merges_file: The merges.txt of a BPE vocab.json; default: `merges.txt` beside it.
    special_tokens: "bert", "roberta", or None to detect it from the vocab.
    vocab_flag: Flag name used in error messages about `vocab_file`.
    spm_flag: Flag name used in error messages about `spm_model_file`.
    merges_flag: Flag name used in error messages about `merges_file`.
    special_tokens_flag: Flag name used in error messages about `special_tokens`.

  Returns:
    A `Tokenizer`.

  Raises:
    UserError: Not exactly one vocab given, a missing file, a file that is not a vocab of its kind, a merges.txt
      without its vocab.json, or a vocab without the special tokens of the scheme.
  """
  if special_tokens is not None and special_tokens not in records.SPECIAL_TOKEN_SCHEMES:
    raise UserError(f"--{special_tokens_flag} must be one of {', '.join(records.SPECIAL_TOKEN_SCHEMES)}, "
                    f"not {special_tokens!r}")
  if merges_file and not vocab_file:
    raise UserError(f"--{merges_flag} {merges_file} needs its vocab.json: give it with --{vocab_flag}")
  if bool(vocab_file) == bool(spm_model_file):
    raise UserError(f"give exactly one of --{vocab_flag} (WordPiece) and --{spm_flag} (SentencePiece)")
  flag, path = (vocab_flag, vocab_file) if vocab_file else (spm_flag, spm_model_file)
  if not os.path.isfile(path):
    raise UserError(f"--{flag}: file not found: {path}")
  build_args = {"vocab_file": vocab_file, "spm_model_file": spm_model_file, "special_tokens": special_tokens}
  if spm_model_file:
    if merges_file:
      raise UserError(f"--{merges_flag} goes with a BPE vocab.json in --{vocab_flag}, not with --{spm_flag}")
    return _build_sentencepiece(spm_model_file, do_lower_case, special_tokens, flag, build_args)
  content = _read_text(vocab_file, flag, "a WordPiece vocab.txt (one token per line) or a BPE vocab.json")
  if content.lstrip().startswith("{"):
    return _build_byte_level_bpe(vocab_file, content, merges_file, do_lower_case, special_tokens, flag, merges_flag,
                                 build_args)
  if _looks_like_merges(content):
    raise UserError(f"--{flag}: {vocab_file} is a BPE merges.txt; give its vocab.json as --{vocab_flag} and this "
                    f"file as --{merges_flag}")
  if merges_file:
    raise UserError(f"--{merges_flag} goes with a BPE vocab.json, but --{vocab_flag} {vocab_file} is a WordPiece "
                    "vocab.txt")
  return _build_wordpiece(vocab_file, content, do_lower_case, special_tokens, flag, build_args)


def tokenizer_for_data(meta: dict, vocab_file: str, merges_file: str | None = None, *,
                       vocab_flag: str = "vocab_file") -> Tokenizer:
  """Rebuilds the tokenizer a data folder was prepared with, from its vocab and the folder's meta.json.

  The kind, lower-casing and special-token scheme come from `meta`, so an export tokenizes raw strings exactly
  as the training data was; the vocab must be the one whose sha256 `meta` records.

  Args:
    meta: The data folder's meta.json (`records.read_meta`).
    vocab_file: The vocab.txt, SentencePiece .model or BPE vocab.json.
    merges_file: A BPE vocab's merges.txt; default: merges.txt beside it.
    vocab_flag: Flag name used in error messages about `vocab_file`.

  Returns:
    A `Tokenizer`; check `has_keras_preprocessor` before asking it for an in-graph preprocessor.

  Raises:
    UserError: A vocab other than the data's, or one that is not a vocab of the data's kind.
  """
  if not os.path.isfile(vocab_file):
    raise UserError(f"--{vocab_flag}: file not found: {vocab_file}")
  if meta.get("vocab_sha256") and records.sha256_file(vocab_file) != meta["vocab_sha256"]:
    raise UserError(f"--{vocab_flag} {vocab_file} is not the vocab the data was prepared with")
  is_spm = meta.get("tokenizer") == SENTENCEPIECE
  tokenizer = build_tokenizer(None if is_spm else vocab_file, vocab_file if is_spm else None,
                              meta.get("do_lower_case"), merges_file=merges_file,
                              special_tokens=records.data_special_tokens_scheme(meta), vocab_flag=vocab_flag,
                              spm_flag=vocab_flag)
  if meta.get("merges_sha256") and getattr(tokenizer, "merges_sha256", None) != meta["merges_sha256"]:
    raise UserError(f"--{vocab_flag} {vocab_file}: its merges.txt is not the one the data was prepared with")
  return tokenizer
