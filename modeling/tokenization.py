"""Tokenizers for every data script: WordPiece (BERT, TinyBERT, MobileBERT) and SentencePiece (ALBERT).

`build_tokenizer` returns a `Tokenizer` that tokenizes in batches with TensorFlow Text ops, packs ids into the
`[CLS] A [SEP] B [SEP]` layout, and builds an in-graph Keras preprocessor (raw strings in, the model's input dict
out) for SavedModel export. The Python path (`tokenize_to_ids` + `pack`) and the in-graph path use the same
tokenizer layer, so they give the same ids.

WordPiece normalization mirrors the reference BERT tokenizer (`official.nlp.tools.tokenization.FullTokenizer`):
delete U+0000, U+FFFD and control/format/unassigned characters (Unicode category C*), map the other whitespace
(tab, newlines, category Zs) to a space, then, when lower-casing, `lower()`, NFD and strip combining marks (Mn).
TensorFlow Text's own `lower_case_nfd_strip_accents` normalizer applies NFKC case folding instead and keeps U+FFFD
inside words, which is why `FastBertTokenizer` alone disagrees with `FullTokenizer` on ~1 token in 7,000 of news
text (a word holding U+FFFD becomes `[UNK]`; full-width punctuation such as `，` becomes `,`). With the step
above the two agree on every token of 3 MB of news text (tests/modeling/test_tokenization.py measures it).
"""

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
_WORDPIECE_SPECIAL = ("[CLS]", "[SEP]", "[PAD]", "[UNK]")
_SENTENCEPIECE_SPECIAL = ("[CLS]", "[SEP]", "<pad>", "<unk>")
# tf-models' FullTokenizer gives up on words longer than 400 characters (-> [UNK]); FastWordpiece counts bytes,
# which is the same for the ASCII words that reach that length.
_MAX_BYTES_PER_WORD = 400
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
    **kwargs: Standard arguments to `Layer()`.
  """

  def __init__(self, *, vocab: Sequence[str], lower_case: bool, **kwargs):
    super().__init__(**kwargs)
    self._lower_case = lower_case
    self._fast_bert_tokenizer = text.FastBertTokenizer(
        vocab=list(vocab), token_out_type=tf.int32, unknown_token="[UNK]",
        max_bytes_per_word=_MAX_BYTES_PER_WORD, lower_case_nfd_strip_accents=False)

  def call(self, inputs: tf.Tensor) -> tf.RaggedTensor:
    tokens = self._fast_bert_tokenizer.tokenize(normalize_for_wordpiece(inputs, self._lower_case))
    # FastBertTokenizer returns [batch, (tokens)] already; keep the batch dimension static-friendly.
    return tf.RaggedTensor.from_row_splits(tokens.flat_values, tf.reshape(tokens.row_splits, [-1]))

  def get_config(self):
    # The vocab lives in the op's model buffer, not in a file path that could travel with the config.
    raise NotImplementedError("WordpieceTokenizer is rebuilt with build_tokenizer(), not from a config")


class Preprocessor(tf_keras.layers.Layer):
  """Keras layer: raw strings to the encoder inputs `input_word_ids`, `input_mask`, `input_type_ids` (int32).

  Call it on a string tensor `[batch]` (one segment) or a list of two (sentence pairs). Truncation is
  tf-models' round-robin trimmer, which keeps the same tokens as BERT's longest-first truncation.

  Args:
    tokenizer_layer: A layer mapping strings `[batch]` to a `RaggedTensor` of ids `[batch, (tokens)]`.
    max_seq_length: Length of every output row.
    cls_id: Id of `[CLS]`.
    sep_id: Id of `[SEP]`.
    pad_id: Id used after the last segment.
    **kwargs: Standard arguments to `Layer()`.
  """

  def __init__(self, *, tokenizer_layer: tf_keras.layers.Layer, max_seq_length: int, cls_id: int, sep_id: int,
               pad_id: int, **kwargs):
    super().__init__(**kwargs)
    self.tokenizer_layer = tokenizer_layer
    self.pack_inputs = text_layers.BertPackInputs(
        max_seq_length, start_of_sequence_id=cls_id, end_of_segment_id=sep_id, padding_id=pad_id,
        truncator="round_robin")

  def call(self, inputs) -> dict[str, tf.Tensor]:
    segments = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if not 1 <= len(segments) <= 2:
      raise ValueError(f"Preprocessor takes one or two string tensors, got {len(segments)}")
    return self.pack_inputs([self.tokenizer_layer(segment) for segment in segments])

  def get_config(self):
    raise NotImplementedError("Preprocessor is rebuilt with Tokenizer.keras_preprocessor(), not from a config")


class Tokenizer:
  """A WordPiece or SentencePiece tokenizer with its special ids; build it with `build_tokenizer`.

  Attributes:
    kind: "wordpiece" or "sentencepiece".
    vocab_path: The vocab.txt or .model file.
    vocab_sha256: Hex sha256 of that file's bytes (recorded in data sidecars).
    vocab_size: Number of ids.
    do_lower_case: Whether text is lower-cased before tokenization.
    cls_id, sep_id, pad_id, unk_id: Ids of the special tokens.
  """

  def __init__(self, *, kind: str, vocab_path: str, vocab_size: int, do_lower_case: bool,
               special_ids: dict[str, int], layer: tf_keras.layers.Layer):
    self.kind = kind
    self.vocab_path = vocab_path
    self.vocab_sha256 = records.sha256_file(vocab_path)
    self.vocab_size = vocab_size
    self.do_lower_case = do_lower_case
    self.cls_id = special_ids["cls"]
    self.sep_id = special_ids["sep"]
    self.pad_id = special_ids["pad"]
    self.unk_id = special_ids["unk"]
    self.tokenizer_layer = layer
    self._tokenize_fn = tf.function(
        self._tokenize_split, input_signature=[tf.TensorSpec([None], tf.string)], reduce_retracing=True)

  def __repr__(self) -> str:
    return (f"Tokenizer(kind={self.kind!r}, vocab_path={self.vocab_path!r}, vocab_size={self.vocab_size}, "
            f"do_lower_case={self.do_lower_case})")

  def _tokenize_split(self, texts: tf.Tensor):
    # Two independent halves let TensorFlow's inter-op pool tokenize them on two cores at once.
    half = tf.shape(texts)[0] // 2
    first = self.tokenizer_layer(texts[:half])
    second = self.tokenizer_layer(texts[half:])
    return (first.flat_values, first.row_lengths(),
            second.flat_values, second.row_lengths())

  def tokenize_to_arrays(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Tokenizes a batch of strings into flat arrays (the fast path for data preparation).

    Args:
      texts: Strings to tokenize, without special tokens.

    Returns:
      `(ids, lengths)`: int32 ids of all texts concatenated, and the int64 number of ids of each text.
    """
    all_ids, all_lengths = [], []
    for start in range(0, len(texts), _TOKENIZE_BATCH):
      chunk = tf.constant(list(texts[start:start + _TOKENIZE_BATCH]), dtype=tf.string)
      ids_a, lengths_a, ids_b, lengths_b = self._tokenize_fn(chunk)
      all_ids += [ids_a.numpy(), ids_b.numpy()]
      all_lengths += [lengths_a.numpy(), lengths_b.numpy()]
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
    """Packs `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` into `max_seq_length` model inputs.

    Segments that do not fit are truncated longest-first (from the end, `b` first on a tie), as in BERT.

    Args:
      ids_a: Ids of the first segment.
      ids_b: Ids of the optional second segment.
      max_seq_length: Length of the outputs; at least 3 (4 with `ids_b`).

    Returns:
      `(input_word_ids, input_mask, input_type_ids)`, lists of `max_seq_length` ints, padded with `pad_id`,
      0 and 0.
    """
    num_special = 2 if ids_b is None else 3
    budget = max_seq_length - num_special
    if budget < 1:
      raise ValueError(f"max_seq_length={max_seq_length} leaves no room for tokens")
    len_a, len_b = len(ids_a), 0 if ids_b is None else len(ids_b)
    len_a, len_b = truncated_lengths(len_a, len_b, budget)
    word_ids = [self.cls_id, *ids_a[:len_a], self.sep_id]
    type_ids = [0] * len(word_ids)
    if ids_b is not None:
      word_ids += [*ids_b[:len_b], self.sep_id]
      type_ids += [1] * (len_b + 1)
    used = len(word_ids)
    padding = max_seq_length - used
    return word_ids + [self.pad_id] * padding, [1] * used + [0] * padding, type_ids + [0] * padding

  def keras_preprocessor(self, max_seq_length: int) -> Preprocessor:
    """An in-graph Keras layer from raw strings to the encoder input dict, for serving signatures.

    Args:
      max_seq_length: Length of the outputs.

    Returns:
      A `Preprocessor` layer: call it on a string tensor `[batch]` or a list of two of them; it returns int32
      `input_word_ids`, `input_mask`, `input_type_ids` of shape `[batch, max_seq_length]`, the same as
      `tokenize_to_ids` followed by `pack`.
    """
    return Preprocessor(tokenizer_layer=self.tokenizer_layer, max_seq_length=max_seq_length, cls_id=self.cls_id,
                        sep_id=self.sep_id, pad_id=self.pad_id)


def truncated_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
  """Segment lengths after BERT's longest-first truncation to `len_a + len_b <= budget` (ties shorten b)."""
  if len_a + len_b <= budget:
    return len_a, len_b
  shorter = min(len_a, len_b)
  if shorter * 2 <= budget:  # Only the longer segment is cut.
    return (budget - len_b, len_b) if len_b == shorter else (len_a, budget - len_a)
  half_up = (budget + 1) // 2
  return half_up, budget - half_up


def _read_wordpiece_vocab(path: str, flag: str) -> list[str]:
  with open(path, "rb") as f:
    raw = f.read()
  if not raw.strip():
    raise UserError(f"--{flag}: {path} is empty; expected a WordPiece vocab.txt (one token per line)")
  if b"\x00" in raw[:65536]:
    raise UserError(f"--{flag}: {path} is a binary file, not a WordPiece vocab.txt (one token per line); "
                    "for a SentencePiece .model use --spm_model_file")
  try:
    content = raw.decode("utf-8")
  except UnicodeDecodeError:
    raise UserError(f"--{flag}: {path} is not UTF-8 text, not a WordPiece vocab.txt") from None
  # Like the reference loader: one token per line, surrounding whitespace dropped.
  return [line.strip() for line in content.split("\n")[:-1 if content.endswith("\n") else None]]


def _infer_lower_case(pieces: Sequence[str]) -> bool:
  """Uncased when no entry has an upper-case letter, ignoring special tokens like `[CLS]` or `<unk>`."""
  for piece in pieces:
    if (piece.startswith("[") and piece.endswith("]")) or (piece.startswith("<") and piece.endswith(">")):
      continue
    if piece != piece.lower():
      return False
  return True


def _build_wordpiece(vocab_file: str, do_lower_case: bool | None, flag: str) -> Tokenizer:
  vocab = _read_wordpiece_vocab(vocab_file, flag)
  index = {}
  for i, token in enumerate(vocab):
    index.setdefault(token, i)
  missing = [token for token in _WORDPIECE_SPECIAL if token not in index]
  if missing:
    raise UserError(f"--{flag}: {vocab_file} is not a WordPiece vocab: it has no {', '.join(missing)} entries")
  if do_lower_case is None:
    do_lower_case = _infer_lower_case(vocab)
  layer = WordpieceTokenizer(vocab=vocab, lower_case=do_lower_case)
  special = {"cls": index["[CLS]"], "sep": index["[SEP]"], "pad": index["[PAD]"], "unk": index["[UNK]"]}
  return Tokenizer(kind=WORDPIECE, vocab_path=vocab_file, vocab_size=len(vocab), do_lower_case=do_lower_case,
                   special_ids=special, layer=layer)


def _build_sentencepiece(model_file: str, do_lower_case: bool | None, flag: str) -> Tokenizer:
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
  missing = [token for token in _SENTENCEPIECE_SPECIAL if token not in index]
  if missing:
    raise UserError(f"--{flag}: SentencePiece model {model_file} has no {', '.join(missing)} pieces; train it "
                    "with pad_id, unk_id and user_defined_symbols=[CLS],[SEP],[MASK] as ALBERT does")
  if do_lower_case is None:
    do_lower_case = _infer_lower_case(pieces)
  layer = text_layers.SentencepieceTokenizer(lower_case=do_lower_case, model_file_path=model_file)
  special = {"cls": index["[CLS]"], "sep": index["[SEP]"], "pad": index["<pad>"], "unk": index["<unk>"]}
  return Tokenizer(kind=SENTENCEPIECE, vocab_path=model_file, vocab_size=len(pieces), do_lower_case=do_lower_case,
                   special_ids=special, layer=layer)


def build_tokenizer(vocab_file: str | None = None, spm_model_file: str | None = None,
                    do_lower_case: bool | None = None, *, vocab_flag: str = "vocab_file",
                    spm_flag: str = "spm_model_file") -> Tokenizer:
  """Builds a WordPiece tokenizer from a vocab.txt or a SentencePiece tokenizer from a .model file.

  Args:
    vocab_file: A WordPiece vocab, one token per line with `[CLS]`, `[SEP]`, `[PAD]` and `[UNK]` among them.
    spm_model_file: A SentencePiece model with `[CLS]`, `[SEP]`, `<pad>` and `<unk>` pieces (the ALBERT layout).
    do_lower_case: Whether to lower-case text (and, for WordPiece, strip accents). None infers it from the
      vocab: True when no entry except bracketed special tokens (`[CLS]`, `<unk>`, ...) has an upper-case
      letter, which is right for the uncased and cased BERT vocabs.
    vocab_flag: Flag name used in error messages about `vocab_file`.
    spm_flag: Flag name used in error messages about `spm_model_file`.

  Returns:
    A `Tokenizer`.

  Raises:
    UserError: Not exactly one file given, a missing file, or a file that is not a vocab of its kind.
  """
  if bool(vocab_file) == bool(spm_model_file):
    raise UserError(f"give exactly one of --{vocab_flag} (WordPiece) and --{spm_flag} (SentencePiece)")
  flag, path = (vocab_flag, vocab_file) if vocab_file else (spm_flag, spm_model_file)
  if not os.path.isfile(path):
    raise UserError(f"--{flag}: file not found: {path}")
  if vocab_file:
    return _build_wordpiece(vocab_file, do_lower_case, flag)
  return _build_sentencepiece(spm_model_file, do_lower_case, flag)
