"""A cache of a frozen teacher's outputs for multi-epoch task distillation.

In task distillation the teacher is frozen, so it gives the same outputs for an example in every epoch.
`cache_teacher_outputs` computes them once, during the first pass over the data, and later passes read them back
instead of running the teacher. It is built on `tf.data.Dataset.cache`: in memory, or in files under a folder,
which later passes stream from disk. A pass that stops early discards what it cached (tf.data's own rule), so a
cache is either complete or absent, never truncated.

What can be cached, per example, and what is stored of it:
  logits     [num_labels] float32                               a few bytes
  hidden     hidden_states at 0, g(1), ..., g(M)                 (M + 1) · seq · hidden values
  attention  attention_logits at g(1), ..., g(M), only at the    M · heads · seq · length values
             example's real key positions (length = its tokens)

Only what the losses read is stored. The attention losses zero the masked key positions on both sides (or mask
them out of the softmax), so the logits there are never read: they are dropped when caching and come back as
zeros, which leaves every attention loss exactly as it was. The hidden-state loss averages over every position,
padding included, so hidden states are kept whole. Hidden states and attention logits are stored in float16 by
default (clipped to its range), at half the bytes of float32.

Measured with the real MiniLM-L6 teacher (hidden 384, 12 heads), TinyBERT4, 4 mapped layers, seq 128, 256 Rotten
Tomatoes reviews of 26 tokens on average (benchmarks/bench_teacher_cache_formats.py, results/teacher_cache_formats.json):

  format                            bytes/example   loss terms vs the live teacher (mean relative difference)
  all keys, float32 (before)           4,130,319    exact
  real keys only, float32              1,627,023    exact
  real keys only, float16 (default)      814,287    <= 1.6e-6
  real keys only, bfloat16               814,287    <= 7.3e-5

Reading a cached example back from disk took 5-18 ms against 218 ms for the teacher's forward pass and 272 ms for
the student's training step (2 cores shared with other jobs, load 9-14). So a cache saves close to half of every
stage-1 step when it fits, and recomputing the teacher is the only option when it does not: 20x-augmented Rotten
Tomatoes (207k examples) would need 168 GB. `estimate_cache_bytes(..., mean_length=...)` gives the size before
anything is written.

The cached `hidden_states` and `attention_logits` hold only the mapped layers, in student order, so a loss over
them takes the layer map `cached_layer_map(layer_map)` = 1..M in place of `layer_map`.

Folder caches are named by `cache_prefix` (a fingerprint of the teacher's weights, what is cached and the data) and
are whole once `is_complete`; stage 1 of task distillation caches the logits too, so that stage 2 reads them from
its files instead of running the teacher again (`modeling.task_distillation.train_dataset`).
"""

import hashlib
import os
from collections.abc import Callable, Sequence

import tensorflow as tf

from modeling import files
from modeling.errors import UserError

CACHEABLE = ("logits", "hidden", "attention")
_OUTPUT_NAMES = {"logits": "logits", "hidden": "hidden_states", "attention": "attention_logits"}  # Part -> output.
_FLOAT16_MAX = 65504.0
_CACHE_FORMAT = 2  # Part of the file fingerprint: version 1 stacked the layers, and its files do not fit.
TeacherOutputs = dict[str, object]


def cached_layer_map(layer_map: Sequence[int]) -> list:
  """The layer map to use with cached outputs: student layer m reads cached entry m."""
  return list(range(1, len(layer_map) + 1))


def select_teacher_outputs(outputs: TeacherOutputs, layer_map: Sequence[int] | None,
                           what: Sequence[str], dtype: tf.DType = tf.float32) -> TeacherOutputs:
  """The parts of a teacher's output dict that `what` names, mapped layers only, cast to `dtype`.

  A float16 `dtype` clips to its finite range first, so an outlier becomes its largest value rather than inf.
  The layers come as tuples, which tf.data keeps as one tensor per layer with the batch first (it would stack a
  list into one tensor with the layers first), so cached batches can be split into examples.
  """
  def cast(tensor):
    if dtype == tf.float16:
      tensor = tf.clip_by_value(tensor, -_FLOAT16_MAX, _FLOAT16_MAX)
    return tf.cast(tensor, dtype)

  selected = {}
  if "logits" in what:
    selected["logits"] = tf.cast(outputs["logits"], tf.float32)  # Small, and the prediction loss wants precision.
  if "hidden" in what:
    hidden = outputs["hidden_states"]
    selected["hidden_states"] = tuple(cast(hidden[g]) for g in [0] + list(layer_map))
  if "attention" in what:
    attention = outputs["attention_logits"]
    selected["attention_logits"] = tuple(cast(attention[g - 1]) for g in layer_map)
  return selected


def _key_rows(attention_logits: tf.Tensor, input_mask: tf.Tensor) -> tf.RaggedTensor:
  """[batch · heads · seq, (length)] rows of attention logits: each (example, head, query) row cut to the example's
  real keys. BERT packing puts the real tokens first, so they are the first `length` keys."""
  shape = tf.shape(attention_logits)
  lengths = tf.reduce_sum(tf.cast(input_mask, tf.int64), axis=1)
  tf.debugging.assert_equal(tf.cast(input_mask, tf.bool), tf.sequence_mask(lengths, shape[3]),
                            message="teacher cache: input_mask must be 1 for the first tokens and 0 after them")
  rows = tf.reshape(attention_logits, [-1, shape[3]])
  row_lengths = tf.repeat(lengths, shape[1] * shape[2])
  return tf.RaggedTensor.from_tensor(rows, lengths=row_lengths)


def pack_attention_logits(attention_logits: tf.Tensor, input_mask: tf.Tensor) -> tf.Tensor:
  """The attention logits `[batch, heads, seq, seq]` at real key positions only, as one flat vector."""
  return _key_rows(attention_logits, input_mask).flat_values


def unpack_attention_logits(values: tf.Tensor, input_mask: tf.Tensor, num_heads: int) -> tf.Tensor:
  """Inverse of `pack_attention_logits`: `[batch, heads, seq, seq]` with zeros at the masked key positions."""
  batch, seq = tf.shape(input_mask)[0], tf.shape(input_mask)[1]
  lengths = tf.reduce_sum(tf.cast(input_mask, tf.int64), axis=1)
  rows = tf.RaggedTensor.from_row_lengths(values, tf.repeat(lengths, num_heads * seq))
  dense = rows.to_tensor(default_value=tf.zeros([], values.dtype), shape=[batch * num_heads * seq, seq])
  return tf.reshape(dense, [batch, num_heads, seq, seq])


def teacher_fingerprint(teacher: tf.Module, *parts: object) -> str:
  """A short sha256 of the teacher's variable values, of its head's pooling when that is not the first token, and of
  `parts`, so a stale cache file is never reused."""
  digest = hashlib.sha256()
  pooling = getattr(teacher, "pooling", "first_token")
  if pooling != "first_token":  # Left out otherwise, so the caches of first-token teachers keep their names.
    parts = (*parts, f"pooling={pooling}")
  for variable in sorted(teacher.variables, key=lambda v: v.name):
    digest.update(variable.name.encode())
    digest.update(variable.numpy().tobytes())
  for part in parts:
    digest.update(repr(part).encode())
  return digest.hexdigest()[:16]


def estimate_cache_bytes(num_examples: int, seq_length: int, *, num_labels: int = 0, hidden_size: int = 0,
                         num_heads: int = 0, num_mapped_layers: int = 0, what: Sequence[str] = ("logits",),
                         dtype: tf.DType = tf.float16, mean_length: float | None = None) -> int:
  """How many bytes the cached teacher outputs of `num_examples` take (the features themselves not included).

  Args:
    mean_length: the examples' mean number of real tokens, for the attention logits, which are stored at the real
      key positions only; None counts every position (an upper bound).
  """
  per_example = 4 * num_labels if "logits" in what else 0
  if "hidden" in what:
    per_example += (num_mapped_layers + 1) * seq_length * hidden_size * dtype.size
  if "attention" in what:
    keys = seq_length if mean_length is None else min(mean_length, seq_length)
    per_example += num_mapped_layers * num_heads * seq_length * keys * dtype.size
  return int(num_examples * per_example)


def cache_teacher_outputs(teacher: Callable, dataset: tf.data.Dataset, layer_map: Sequence[int] | None = None,
                          what: Sequence[str] = ("logits",), storage: str = "memory",
                          dtype: tf.DType = tf.float16, cache_key: str = "",
                          keep: Sequence[str] | None = None, prefix: str | None = None) -> tf.data.Dataset:
  """Adds the teacher's outputs to every batch, computed in the first pass and read from the cache after it.

  Args:
    teacher: a frozen model mapping a feature dict to a dict with `logits`, `hidden_states` and
      `attention_logits` (a `modeling.models.TaskModel`); called with `training=False`.
    dataset: a finite, deterministic dataset of `(features, labels)` batches: no shuffling or repeat before the
      cache, since a cached pass replays the first pass exactly. Shuffle and repeat the result instead.
    layer_map: g(m) for m = 1..M; needed for `hidden` and `attention`.
    what: any of `CACHEABLE`: `logits`, `hidden`, `attention`.
    storage: `memory`, or a folder for files named by a fingerprint of the teacher's weights, `what`, the layer
      map, `dtype` and `cache_key` (a changed teacher never reads an old file).
    dtype: storage dtype of hidden states and attention logits: float16 (the default; half the bytes of float32),
      bfloat16 (the same size, coarser) or float32 (exact); logits stay float32.
    cache_key: anything else that identifies the data, e.g. its file's sha256, for folder storage.
    keep: the parts of `what` the returned batches carry (default: all); the others are dropped as they are read,
      before any unpacking (stage 2 reading only the logits of stage 1's files).
    prefix: the files' prefix in `storage` when the caller has `cache_prefix(...)` of the same arguments already
      (it hashes every teacher weight: about a second for a 110M teacher).

  Returns:
    A dataset of `(features, labels, teacher_outputs)` in the order of `dataset`, where `teacher_outputs` holds
    `logits`, `hidden_states` ([H_T^0, H_T^g(1), ..., H_T^g(M)]) and `attention_logits` ([A_T^g(1), ...], zero
    at the masked key positions) as selected by `what`; use `cached_layer_map(layer_map)` for the layer map of a
    loss over them.

  Raises:
    UserError: for an unknown `what`, a missing layer map, or a storage folder that cannot be written.
  """
  what = tuple(what)
  unknown = [w for w in what if w not in CACHEABLE]
  if unknown or not what:
    raise UserError(f"teacher cache: cannot cache {unknown or 'nothing'}; choose from {', '.join(CACHEABLE)}")
  if ("hidden" in what or "attention" in what) and not layer_map:
    raise UserError("teacher cache: caching hidden states or attention logits needs the layer map")
  layer_map = list(layer_map or [])
  kept = {_OUTPUT_NAMES[w] for w in (what if keep is None else keep)}

  num_heads = []  # The teacher's head count, known once `add_teacher_outputs` is traced (Dataset.map traces at once).

  def add_teacher_outputs(features, labels):
    outputs = teacher(features, training=False)
    selected = select_teacher_outputs(outputs, layer_map, what, dtype)
    if "attention_logits" in selected:
      num_heads.append(selected["attention_logits"][0].shape[1])
      selected["attention_logits"] = tuple(pack_attention_logits(logits, features["input_mask"])
                                           for logits in selected["attention_logits"])
    return features, labels, selected

  def unpack(features, labels, stored):
    stored = {name: value for name, value in stored.items() if name in kept}
    if "attention_logits" in stored:
      stored = dict(stored, attention_logits=tuple(unpack_attention_logits(packed, features["input_mask"], num_heads[0])
                                                   for packed in stored["attention_logits"]))
    return features, labels, stored

  with_outputs = dataset.map(add_teacher_outputs, num_parallel_calls=1, deterministic=True)
  if storage == "memory":
    return with_outputs.cache().map(unpack)
  files.ensure_writable_dir(storage, "teacher cache folder")
  if prefix is None:
    prefix = cache_prefix(teacher, storage, what, layer_map, dtype, cache_key)
  return with_outputs.cache(prefix).map(unpack)


def cache_prefix(teacher: tf.Module, storage: str, what: Sequence[str], layer_map: Sequence[int] | None = None,
                 dtype: tf.DType = tf.float16, cache_key: str = "") -> str:
  """The files' prefix of `cache_teacher_outputs(teacher, ..., layer_map, what, storage, dtype, cache_key)` in the
  folder `storage`: `teacher_outputs-<fingerprint>`."""
  fingerprint = teacher_fingerprint(teacher, _CACHE_FORMAT, tuple(what), list(layer_map or []), dtype.name,
                                    cache_key, "packed-keys")
  return os.path.join(storage, f"teacher_outputs-{fingerprint}")


def is_complete(prefix: str) -> bool:
  """Whether the folder cache at `prefix` holds a whole pass (tf.data writes its index only when a pass ends)."""
  return os.path.isfile(prefix + ".index")
