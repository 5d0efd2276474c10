"""A cache of a frozen teacher's outputs for multi-epoch task distillation.

In task distillation the teacher is frozen and the task data is not augmented, so the teacher gives the same
outputs for an example in every epoch. `cache_teacher_outputs` computes them once, during the first pass over the
data, and later passes read them back instead of running the teacher. It is built on `tf.data.Dataset.cache`:
in memory, or in files under a folder. A pass that stops early discards what it cached (tf.data's own rule), so
a cache is either complete or absent, never truncated.

What can be cached, per example:
  logits            [num_labels]                          a few bytes
  hidden            hidden_states at 0, g(1), ..., g(M)    (M + 1) · seq · hidden values
  attention         attention_logits at g(1), ..., g(M)    M · heads · seq² values, the big one

The cached `hidden_states` and `attention_logits` hold only the mapped layers, in student order, so a loss over
them takes the layer map `cached_layer_map(layer_map)` = 1..M in place of `layer_map`.
"""

import hashlib
import os
from collections.abc import Callable, Sequence

import tensorflow as tf

from modeling import files
from modeling.errors import UserError

CACHEABLE = ("logits", "hidden", "attention")
_CACHE_FORMAT = 2  # Part of the file fingerprint: version 1 stacked the layers, and its files do not fit.
TeacherOutputs = dict[str, object]


def cached_layer_map(layer_map: Sequence[int]) -> list:
  """The layer map to use with cached outputs: student layer m reads cached entry m."""
  return list(range(1, len(layer_map) + 1))


def select_teacher_outputs(outputs: TeacherOutputs, layer_map: Sequence[int] | None,
                           what: Sequence[str], dtype: tf.DType = tf.float32) -> TeacherOutputs:
  """The parts of a teacher's output dict that `what` names, mapped layers only, cast to `dtype`.

  The layers come as tuples, which tf.data keeps as one tensor per layer with the batch first (it would stack a
  list into one tensor with the layers first), so cached batches can be split into examples.
  """
  selected = {}
  if "logits" in what:
    selected["logits"] = tf.cast(outputs["logits"], tf.float32)  # Small, and the prediction loss wants precision.
  if "hidden" in what:
    hidden = outputs["hidden_states"]
    selected["hidden_states"] = tuple(tf.cast(hidden[g], dtype) for g in [0] + list(layer_map))
  if "attention" in what:
    attention = outputs["attention_logits"]
    selected["attention_logits"] = tuple(tf.cast(attention[g - 1], dtype) for g in layer_map)
  return selected


def teacher_fingerprint(teacher: tf.Module, *parts: object) -> str:
  """A short sha256 of the teacher's variable values and of `parts`, so a stale cache file is never reused."""
  digest = hashlib.sha256()
  for variable in sorted(teacher.variables, key=lambda v: v.name):
    digest.update(variable.name.encode())
    digest.update(variable.numpy().tobytes())
  for part in parts:
    digest.update(repr(part).encode())
  return digest.hexdigest()[:16]


def estimate_cache_bytes(num_examples: int, seq_length: int, *, num_labels: int = 0, hidden_size: int = 0,
                         num_heads: int = 0, num_mapped_layers: int = 0, what: Sequence[str] = ("logits",),
                         dtype: tf.DType = tf.float32) -> int:
  """How many bytes the cached teacher outputs of `num_examples` take (the features themselves not included)."""
  per_example = 4 * num_labels if "logits" in what else 0
  if "hidden" in what:
    per_example += (num_mapped_layers + 1) * seq_length * hidden_size * dtype.size
  if "attention" in what:
    per_example += num_mapped_layers * num_heads * seq_length * seq_length * dtype.size
  return num_examples * per_example


def cache_teacher_outputs(teacher: Callable, dataset: tf.data.Dataset, layer_map: Sequence[int] | None = None,
                          what: Sequence[str] = ("logits",), storage: str = "memory",
                          dtype: tf.DType = tf.float32, cache_key: str = "") -> tf.data.Dataset:
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
    dtype: storage dtype of hidden states and attention logits (`tf.bfloat16` halves the memory); logits stay
      float32.
    cache_key: anything else that identifies the data, e.g. its file's sha256, for folder storage.

  Returns:
    A dataset of `(features, labels, teacher_outputs)` in the order of `dataset`, where `teacher_outputs` holds
    `logits`, `hidden_states` ([H_T^0, H_T^g(1), ..., H_T^g(M)]) and `attention_logits` ([A_T^g(1), ...]) as
    selected by `what`; use `cached_layer_map(layer_map)` for the layer map of a loss over them.

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

  def add_teacher_outputs(features, labels):
    outputs = teacher(features, training=False)
    return features, labels, select_teacher_outputs(outputs, layer_map, what, dtype)

  with_outputs = dataset.map(add_teacher_outputs, num_parallel_calls=1, deterministic=True)
  if storage == "memory":
    return with_outputs.cache()
  files.ensure_writable_dir(storage, "teacher cache folder")
  fingerprint = teacher_fingerprint(teacher, _CACHE_FORMAT, what, layer_map, dtype.name, cache_key)
  return with_outputs.cache(os.path.join(storage, f"teacher_outputs-{fingerprint}"))
