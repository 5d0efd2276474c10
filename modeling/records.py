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

import tensorflow as tf

from modeling import files
from modeling.errors import UserError

SCHEMA_VERSION = 1
META_FILE = "meta.json"
FEATURES = ("input_word_ids", "input_mask", "input_type_ids")
LABEL = "label_ids"


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


def check_meta(meta: dict[str, Any], data_dir: str, *, max_seq_length: int | None = None,
               vocab_size: int | None = None) -> None:
  """Refuses data that does not fit the run: another `max_seq_length`, or token ids outside the vocab."""
  where = os.path.join(data_dir, META_FILE)
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
