"""The one TFRecord schema of this project, its `meta.json` sidecar, and the input pipelines that read them.

Every record holds the int64 features `input_word_ids`, `input_mask` and `input_type_ids`, each exactly
`max_seq_length` long (the names tf-models uses), and task records add `label_ids` (int64, or float for
regression). Each data folder has a `meta.json` that training scripts check against their flags before they
build a model.
"""

import glob
import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Any, Self

import numpy as np
import tensorflow as tf

from modeling import files
from modeling.errors import UserError

SCHEMA_VERSION = 1
META_FILE = "meta.json"
FEATURES = ("input_word_ids", "input_mask", "input_type_ids")
LABEL = "label_ids"
# Special-token schemes (`modeling.tokenization.SpecialTokens`): BERT's [CLS] A [SEP] B [SEP] and RoBERTa's
# <s> A </s></s> B </s>. Data written before meta.json recorded the scheme was always BERT's.
BERT_SPECIALS = "bert"
ROBERTA_SPECIALS = "roberta"
SPECIAL_TOKEN_SCHEMES = (BERT_SPECIALS, ROBERTA_SPECIALS)
_ROBERTA_STYLE_FAMILIES = ("roberta", "mpnet")
_SCHEME_TOKENS = {BERT_SPECIALS: "[CLS] A [SEP] B [SEP]", ROBERTA_SPECIALS: "<s> A </s></s> B </s>"}


def sha256_file(path: str) -> str:
  """Hex sha256 of a file's bytes (used to tie data to the vocab it was tokenized with)."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def _int64(values: Sequence[int]) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def serialize_example(input_word_ids: Sequence[int], input_mask: Sequence[int], input_type_ids: Sequence[int],
                      label=None) -> bytes:
  """One record in the project schema, serialized. `label` is an int (classification) or float (regression)."""
  feature = {"input_word_ids": _int64(input_word_ids), "input_mask": _int64(input_mask),
             "input_type_ids": _int64(input_type_ids)}
  if label is not None:
    if isinstance(label, float):
      feature[LABEL] = tf.train.Feature(float_list=tf.train.FloatList(value=[label]))
    else:
      feature[LABEL] = _int64([int(label)])
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _varint_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Protobuf varints of a `[rows, n]` int array: the bytes of all rows concatenated, and the byte count per row."""
  flat = np.ascontiguousarray(values, dtype=np.int64).view(np.uint64).reshape(-1)
  num_groups = max(1, (int(flat.max(initial=0)).bit_length() + 6) // 7)
  if num_groups == 1:  # Masks, type ids: every value is one byte.
    return flat.astype(np.uint8), np.full(len(values), values.shape[1], np.int64)
  num_bytes = np.ones(flat.shape, np.int64)
  for group in range(1, num_groups):
    num_bytes += flat >= np.uint64(1 << (7 * group))
  starts = np.cumsum(num_bytes) - num_bytes
  out = np.empty(int(starts[-1] + num_bytes[-1]), np.uint8)
  for group in range(num_groups):
    byte = ((flat >> np.uint64(7 * group)) & np.uint64(0x7F)).astype(np.uint8)
    byte[num_bytes > group + 1] |= 0x80
    present = num_bytes > group
    out[starts[present] + group] = byte[present]
  return out, num_bytes.reshape(values.shape).sum(axis=1)


def _varint_column(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  return _varint_rows(values[:, None])


def _constant_piece(data: bytes, rows: int) -> tuple[np.ndarray, np.ndarray]:
  return np.tile(np.frombuffer(data, np.uint8), rows), np.full(rows, len(data), np.int64)


def serialize_examples(input_word_ids: np.ndarray, input_mask: np.ndarray, input_type_ids: np.ndarray) -> list[bytes]:
  """`serialize_example` for a whole batch of `[rows, max_seq_length]` arrays, without building protos.

  Writes the `tf.train.Example` wire format directly, vectorized over rows: each feature is a map entry holding
  an `Int64List` of packed varints. The records parse to the same `tf.train.Example` as `serialize_example`'s
  (the tests check it); only the order of the map entries may differ, which protobuf leaves unspecified anyway.
  Building `tf.train.Example` messages in Python was the largest cost of
  `prepare_dataset/create_distilled_pretraining_data.py` (about 90 us per example against a few here).
  """
  rows = len(input_word_ids)
  pieces = []  # (bytes of all rows concatenated, bytes per row), in the order they appear in a record.
  features_length = np.zeros(rows, np.int64)
  for name, values in zip(FEATURES, (input_word_ids, input_mask, input_type_ids)):
    key = name.encode()
    payload, payload_length = _varint_rows(values)
    list_header = [_constant_piece(b"\n", rows), _varint_column(payload_length)]
    list_length = 1 + list_header[1][1] + payload_length
    feature_header = [_constant_piece(b"\x1a", rows), _varint_column(list_length)]
    feature_length = 1 + feature_header[1][1] + list_length
    entry_body = [_constant_piece(b"\n" + bytes([len(key)]) + key + b"\x12", rows), _varint_column(feature_length)]
    entry_length = entry_body[0][1] + entry_body[1][1] + feature_length
    entry_header = [_constant_piece(b"\n", rows), _varint_column(entry_length)]
    features_length += 1 + entry_header[1][1] + entry_length
    pieces += entry_header + entry_body + feature_header + list_header + [(payload, payload_length)]
  pieces = [_constant_piece(b"\n", rows), _varint_column(features_length)] + pieces
  # Scatter every piece to its place: piece k of row r starts after row r's earlier pieces.
  lengths = np.stack([length for _, length in pieces], axis=1)
  record_length = lengths.sum(axis=1)
  record_start = np.concatenate([[0], np.cumsum(record_length)])
  piece_start = record_start[:-1, None] + np.cumsum(lengths, axis=1) - lengths
  buffer = np.empty(int(record_start[-1]), np.uint8)
  for k, (data, length) in enumerate(pieces):
    offsets_in_data = np.arange(len(data)) - np.repeat(np.cumsum(length) - length, length)
    buffer[np.repeat(piece_start[:, k], length) + offsets_in_data] = data
  blob = buffer.tobytes()
  bounds = record_start.tolist()
  return [blob[bounds[r]:bounds[r + 1]] for r in range(rows)]


class RecordWriter:
  """Writes serialized records to `path` atomically: a temporary file until `close()` renames it into place.

  Use as a context manager; if the block raises, the temporary file is removed and `path` is untouched.
  """

  def __init__(self, path: str):
    self.path = path
    self._ctx = files.atomic_path(path)
    self._tmp = self._ctx.__enter__()
    self._writer = tf.io.TFRecordWriter(self._tmp)
    self.count = 0

  def write(self, serialized: bytes) -> None:
    self._writer.write(serialized)
    self.count += 1

  def close(self, ok: bool = True) -> None:
    self._writer.close()
    if ok:
      self._ctx.__exit__(None, None, None)
    else:
      self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)

  def __enter__(self) -> Self:
    return self

  def __exit__(self, exc_type, exc, tb) -> bool:
    self.close(ok=exc_type is None)
    return False


def write_meta(data_dir: str, meta: dict[str, Any]) -> None:
  """Writes `meta.json`, adding the schema version."""
  meta = dict(meta, schema_version=SCHEMA_VERSION)
  files.write_json(os.path.join(data_dir, META_FILE), meta)


def read_meta(data_dir: str, flag: str = "data_dir") -> dict[str, Any]:
  """Reads a data folder's `meta.json`; a missing folder or sidecar is a `UserError` naming `flag`."""
  if not os.path.isdir(data_dir):
    raise UserError(f"--{flag}: folder not found: {data_dir}")
  path = os.path.join(data_dir, META_FILE)
  if not os.path.isfile(path):
    raise UserError(f"--{flag}: {path} is missing; prepare the data with prepare_dataset/ first")
  meta = files.read_json(path, what="data sidecar")
  if meta.get("schema_version") != SCHEMA_VERSION:
    raise UserError(f"--{flag}: {path} has schema_version {meta.get('schema_version')!r}, "
                    f"this toolkit reads {SCHEMA_VERSION}; prepare the data again")
  return meta


def special_tokens_scheme(model_type: str) -> str:
  """The special-token scheme a model family was trained with: "roberta" for RoBERTa and MPNet, else "bert"."""
  return ROBERTA_SPECIALS if model_type in _ROBERTA_STYLE_FAMILIES else BERT_SPECIALS


def data_special_tokens_scheme(meta: dict[str, Any]) -> str:
  """The special-token scheme a data folder was prepared with (BERT's for data older than the field)."""
  return (meta.get("special_tokens") or {}).get("scheme", BERT_SPECIALS)


def check_meta(meta: dict[str, Any], data_dir: str, *, max_seq_length: int | None = None,
               vocab_size: int | None = None, model_type: str | None = None, config_flag: str = "config_path") -> None:
  """Refuses data that does not fit the run: another `max_seq_length`, token ids outside the vocab, or special
  tokens of another family than `model_type`'s (RoBERTa-style `<s>`/`</s>` data for a BERT config, say)."""
  where = os.path.join(data_dir, META_FILE)
  if model_type is not None:
    scheme, expected = data_special_tokens_scheme(meta), special_tokens_scheme(model_type)
    if scheme != expected:
      raise UserError(f"{where}: data was prepared with {scheme} special tokens ({_SCHEME_TOKENS[scheme]}) but "
                      f"the --{config_flag} model is a {model_type}, which takes {_SCHEME_TOKENS[expected]}; "
                      f"prepare the data again with the {model_type} model's vocab")
  if max_seq_length is not None and meta.get("max_seq_length") != max_seq_length:
    raise UserError(f"--max_seq_length={max_seq_length} but {where} says the data was prepared with "
                    f"max_seq_length={meta.get('max_seq_length')}")
  if vocab_size is not None and meta.get("vocab_size") and meta["vocab_size"] > vocab_size:
    raise UserError(f"{where}: data was tokenized with a vocab of {meta['vocab_size']} entries but the model's "
                    f"vocab_size is {vocab_size}")


def record_files(data_dir: str, split: str) -> list[str]:
  """The TFRecord files of one split in a data folder: `{split}.tfrecord` or its shards `{split}-*.tfrecord`."""
  found = sorted(glob.glob(os.path.join(data_dir, f"{split}.tfrecord")) +
                 glob.glob(os.path.join(data_dir, f"{split}-*.tfrecord")))
  if not found:
    raise UserError(f"--data_dir: no {split}*.tfrecord files in {data_dir}")
  return found


def feature_spec(max_seq_length: int, label_dtype: tf.DType | None = None) -> dict[str, Any]:
  spec = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64) for name in FEATURES}
  if label_dtype is not None:
    spec[LABEL] = tf.io.FixedLenFeature([], label_dtype)
  return spec


def make_dataset(filenames: Iterable[str], max_seq_length: int, batch_size: int, *,
                 label_dtype: tf.DType | None = None, shuffle: bool = False, repeat: bool = False,
                 seed: int | None = None, drop_remainder: bool = False,
                 input_context: tf.distribute.InputContext | None = None,
                 shuffle_buffer: int = 2048) -> tf.data.Dataset:
  """Batched features (and labels, when `label_dtype` is given) read from project TFRecords.

  Features come as int32 `[batch, max_seq_length]` tensors. With `label_dtype`, elements are
  `(features, labels)`; int labels become int32 and float labels stay float32.
  """
  filenames = list(filenames)
  ds = tf.data.Dataset.from_tensor_slices(filenames)
  if input_context is not None and input_context.num_input_pipelines > 1:
    ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(filenames)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if shuffle:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  spec = feature_spec(max_seq_length, label_dtype)

  def parse(serialized):
    parsed = tf.io.parse_example(serialized, spec)
    features = {name: tf.cast(parsed[name], tf.int32) for name in FEATURES}
    if label_dtype is None:
      return features
    label = parsed[LABEL]
    return features, (tf.cast(label, tf.int32) if label.dtype == tf.int64 else label)

  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)
