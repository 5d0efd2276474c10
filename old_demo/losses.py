"""The Hinton et al. (2015) distillation loss and the metrics of the classic demo, for every task type.

  loss = a * CE(y, softmax(z_S)) + b * T^2 * CE(softmax(z_T / T), softmax(z_S / T))

Binary and multi-label tasks use sigmoids in place of the softmaxes; regression uses
a * MSE(y, z_S) + b * MSE(z_T, z_S), where a temperature means nothing.
"""

import tensorflow as tf

from modeling.errors import UserError

TASK_TYPES = ("multiclass", "binary", "multilabel", "regression")
OUTPUT_KINDS = ("logits", "probs")


def _labels_like_logits(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Casts labels to the logits' dtype and gives `[batch]` labels the `[batch, 1]` shape of a one-unit output."""
  labels = tf.cast(labels, logits.dtype)
  if labels.shape.rank == logits.shape.rank - 1:
    labels = tf.expand_dims(labels, -1)
  return labels


def _is_sparse(labels: tf.Tensor, logits: tf.Tensor) -> bool:
  """True for class-index labels `[batch]` (or `[batch, 1]` with several classes), False for one-hot/soft labels."""
  if labels.shape.rank == logits.shape.rank - 1:
    return True
  return labels.shape[-1] == 1 and logits.shape[-1] != 1


def hinton_loss(labels: tf.Tensor, student_logits: tf.Tensor, teacher_logits: tf.Tensor, *, temp: float = 1.0,
                a: float = 0.5, b: float = 0.5, scale_by_temp_squared: bool = True,
                task_type: str = "multiclass", label_weights: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
  """Computes the distillation loss and its two terms, each averaged over the batch.

  Args:
    labels: gold labels. For "multiclass", class indices `[batch]` or one-hot (or soft) `[batch, classes]`; for
      "binary" and "multilabel", 0/1 values shaped like the logits (`[batch]` is accepted for one output unit); for
      "regression", targets shaped like the logits.
    student_logits: `[batch, outputs]` student logits (pre-softmax/pre-sigmoid, or raw predictions for regression).
    teacher_logits: teacher logits of the same shape; no gradient flows into them.
    temp: the temperature T > 0 (unused for regression).
    a: weight of the hard-label term.
    b: weight of the teacher term.
    scale_by_temp_squared: multiply the teacher term by T^2 (not for regression).
    task_type: one of `TASK_TYPES`.
    label_weights: optional `[batch]` weights of the hard-label term per example: 0 for an example without a gold
      label (a transfer-set example, learnt from the teacher only), 1 for a labelled one. The hard term stays a mean
      over the whole batch, so each example's loss is a * w * hard + b * [T^2] * soft.

  Returns:
    A dict with `loss` (a * student_loss + b * [T^2] * distillation_loss), `student_loss` (hard-label term) and
    `distillation_loss` (teacher term, before weighting).
  """
  teacher_logits = tf.stop_gradient(tf.cast(teacher_logits, student_logits.dtype))
  dtype = student_logits.dtype
  if task_type == "multiclass":
    if _is_sparse(labels, student_logits):
      sparse = tf.reshape(tf.cast(labels, tf.int32), tf.shape(student_logits)[:-1])
      hard = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=sparse, logits=student_logits)
    else:
      hard = -tf.reduce_sum(tf.cast(labels, dtype) * tf.nn.log_softmax(student_logits), axis=-1)
    soft = -tf.reduce_sum(tf.nn.softmax(teacher_logits / temp) * tf.nn.log_softmax(student_logits / temp), axis=-1)
  elif task_type in ("binary", "multilabel"):
    hard = tf.nn.sigmoid_cross_entropy_with_logits(labels=_labels_like_logits(labels, student_logits),
                                                   logits=student_logits)
    soft = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.sigmoid(teacher_logits / temp),
                                                   logits=student_logits / temp)
  elif task_type == "regression":
    hard = tf.square(_labels_like_logits(labels, student_logits) - student_logits)
    soft = tf.square(teacher_logits - student_logits)
  else:
    raise UserError(f"task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
  if label_weights is not None:
    weights = tf.cast(label_weights, dtype)
    hard = hard * tf.reshape(weights, [-1] + [1] * (hard.shape.rank - 1))
  student_loss = tf.reduce_mean(hard)
  distillation_loss = tf.reduce_mean(soft)
  soft_weight = b * temp**2 if scale_by_temp_squared and task_type != "regression" else b
  # tf.constant in the logits' dtype: tf.cast of a Python float would round it to float32 first.
  total = tf.constant(a, dtype) * student_loss + tf.constant(soft_weight, dtype) * distillation_loss
  return {"loss": total, "student_loss": student_loss, "distillation_loss": distillation_loss}


def supervised_loss(labels: tf.Tensor, logits: tf.Tensor, task_type: str = "multiclass") -> tf.Tensor:
  """The hard-label term of `hinton_loss` alone: what a model trained without a teacher minimises."""
  return hinton_loss(labels, logits, logits, a=1.0, b=0.0, task_type=task_type)["student_loss"]


def accuracy(labels: tf.Tensor, logits: tf.Tensor, task_type: str = "multiclass",
             weights: tf.Tensor | None = None) -> tf.Tensor:
  """Batch accuracy (argmax for multiclass, logit > 0 per output for sigmoids); mean absolute error for regression.

  With `weights` (`[batch]`), the weighted mean over examples (0 when every weight is 0).
  """
  if task_type == "multiclass":
    if _is_sparse(labels, logits):
      target = tf.reshape(tf.cast(labels, tf.int64), tf.shape(logits, out_type=tf.int64)[:-1])
    else:
      target = tf.argmax(labels, axis=-1)
    per_example = tf.cast(tf.equal(tf.argmax(logits, axis=-1), target), tf.float32)
  else:
    labels = _labels_like_logits(labels, logits)
    if task_type == "regression":
      per_example = tf.abs(labels - logits)
    else:
      per_example = tf.cast(tf.equal(logits > 0, labels > 0.5), tf.float32)
    per_example = tf.reshape(per_example, [tf.shape(per_example)[0], -1])
  if weights is None:
    return tf.reduce_mean(per_example)
  if per_example.shape.rank == 2:
    per_example = tf.reduce_mean(per_example, axis=-1)
  weights = tf.cast(weights, per_example.dtype)
  return tf.math.divide_no_nan(tf.reduce_sum(per_example * weights), tf.reduce_sum(weights))


def metric_name(task_type: str) -> str:
  """The name under which `accuracy` is logged for `task_type`."""
  return "mae" if task_type == "regression" else "accuracy"


def to_logits(outputs: tf.Tensor, kind: str, task_type: str) -> tf.Tensor:
  """Turns model outputs declared as `kind` ("logits" or "probs") into logits for `task_type`."""
  if kind == "logits":
    return outputs
  epsilon = 1e-7
  probs = tf.clip_by_value(tf.cast(outputs, tf.float32), epsilon, 1.0 - epsilon)
  if task_type == "multiclass":
    return tf.math.log(probs)  # log p differs from the logits by a per-row constant, which softmax ignores.
  return tf.math.log(probs) - tf.math.log1p(-probs)
