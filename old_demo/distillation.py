r"""Classic knowledge distillation (Hinton et al., 2015, https://arxiv.org/abs/1503.02531) for any tf_keras models.

The student learns from the gold labels and from the teacher's softened outputs:

  loss = a * CE(y, softmax(z_S)) + b * T^2 * CE(softmax(z_T / T), softmax(z_S / T))

The T^2 factor (switchable) keeps the soft term's gradients on the scale of the hard term's as T grows. Binary and
multi-label tasks use sigmoids in place of the softmaxes (BCE on the labels plus BCE of sigmoid(z_S / T) against
sigmoid(z_T / T)); regression uses a * MSE(y, z_S) + b * MSE(z_T, z_S), where a temperature means nothing.

Python:

  student, history = distill(teacher, student, (x_train, y_train), (x_valid, y_valid), temp=4.0, a=0.5, b=0.5)

Command line (from the repository root):

  python3 old_demo/distillation.py --teacher cnn --student mlp --task mnist --weights_dir /tmp/kd \
    --train_teacher --temp 4 --a 0.5 --b 0.5 --epochs 10 --seed 1
"""

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf
import tf_keras

from modeling.errors import UserError, run_script

TASK_TYPES = ("multiclass", "binary", "multilabel", "regression")
OUTPUT_KINDS = ("logits", "probs")

_Data = tf.data.Dataset | tuple[Any, Any]
_Optimizer = str | tf_keras.optimizers.Optimizer


# ---------------------------------------------------------------------------------------------------------------------
# Losses and metrics.


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
                task_type: str = "multiclass") -> dict[str, tf.Tensor]:
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
  student_loss = tf.reduce_mean(hard)
  distillation_loss = tf.reduce_mean(soft)
  soft_weight = b * temp**2 if scale_by_temp_squared and task_type != "regression" else b
  # tf.constant in the logits' dtype: tf.cast of a Python float would round it to float32 first.
  total = tf.constant(a, dtype) * student_loss + tf.constant(soft_weight, dtype) * distillation_loss
  return {"loss": total, "student_loss": student_loss, "distillation_loss": distillation_loss}


def supervised_loss(labels: tf.Tensor, logits: tf.Tensor, task_type: str = "multiclass") -> tf.Tensor:
  """The hard-label term of `hinton_loss` alone: what a model trained without a teacher minimises."""
  return hinton_loss(labels, logits, logits, a=1.0, b=0.0, task_type=task_type)["student_loss"]


def accuracy(labels: tf.Tensor, logits: tf.Tensor, task_type: str = "multiclass") -> tf.Tensor:
  """Batch accuracy (argmax for multiclass, logit > 0 per output for sigmoids); mean absolute error for regression."""
  if task_type == "multiclass":
    if _is_sparse(labels, logits):
      target = tf.reshape(tf.cast(labels, tf.int64), tf.shape(logits, out_type=tf.int64)[:-1])
    else:
      target = tf.argmax(labels, axis=-1)
    return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, axis=-1), target), tf.float32))
  labels = _labels_like_logits(labels, logits)
  if task_type == "regression":
    return tf.reduce_mean(tf.abs(labels - logits))
  return tf.reduce_mean(tf.cast(tf.equal(logits > 0, labels > 0.5), tf.float32))


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


# ---------------------------------------------------------------------------------------------------------------------
# The training model.


class Distiller(tf_keras.Model):
  """Trains `student` against the labels and a frozen `teacher` with `hinton_loss`.

  Batches are `(x, y)`, or `(x, {"labels": y, "teacher_logits": z_T})` when the teacher outputs were cached. Only
  the student's variables receive gradients; the teacher always runs in inference mode. Logged metrics: `loss`,
  `student_loss`, `distillation_loss` and `accuracy` (`mae` for regression).

  Args:
    student: the model being trained.
    teacher: the frozen model it learns from.
    loss_fn: `(labels, student_logits, teacher_logits) -> dict` as returned by `hinton_loss`.
    task_type: one of `TASK_TYPES`, for the accuracy metric.
    student_outputs: "logits" or "probs", what `student` returns.
    teacher_outputs: "logits" or "probs", what `teacher` returns.
  """

  def __init__(self, student: tf_keras.Model, teacher: tf_keras.Model, loss_fn: Callable[..., dict[str, tf.Tensor]],
               task_type: str = "multiclass", student_outputs: str = "logits", teacher_outputs: str = "logits",
               **kwargs):
    super().__init__(**kwargs)
    self.student = student
    self.teacher = teacher
    self.loss_fn = loss_fn
    self.task_type = task_type
    self.student_outputs = student_outputs
    self.teacher_outputs = teacher_outputs
    self._trackers = {name: tf_keras.metrics.Mean(name=name)
                      for name in ("loss", "student_loss", "distillation_loss", metric_name(task_type))}

  @property
  def metrics(self):
    return list(self._trackers.values())

  def call(self, inputs, training=False):
    return to_logits(self.student(inputs, training=training), self.student_outputs, self.task_type)

  def teacher_logits(self, inputs) -> tf.Tensor:
    return to_logits(self.teacher(inputs, training=False), self.teacher_outputs, self.task_type)

  def _unpack(self, data):
    inputs, labels = data
    if isinstance(labels, dict):  # Cached: {"labels": y, "teacher_logits": z_T}.
      return inputs, labels["labels"], labels["teacher_logits"]
    return inputs, labels, self.teacher_logits(inputs)

  def _record(self, labels, student_logits, losses):
    batch_size = tf.cast(tf.shape(student_logits)[0], tf.float32)  # Weighting by it makes epoch means exact.
    for name, value in losses.items():
      self._trackers[name].update_state(value, sample_weight=batch_size)
    self._trackers[metric_name(self.task_type)].update_state(accuracy(labels, student_logits, self.task_type),
                                                             sample_weight=batch_size)
    return {name: tracker.result() for name, tracker in self._trackers.items()}

  def train_step(self, data):
    inputs, labels, teacher_logits = self._unpack(data)
    with tf.GradientTape() as tape:
      student_logits = self(inputs, training=True)
      losses = self.loss_fn(labels, student_logits, teacher_logits)
      objective = losses["loss"]
      if self.student.losses:  # Regularisers the student declares.
        objective += tf.add_n(self.student.losses)
    variables = self.student.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(objective, variables), variables))
    return self._record(labels, student_logits, losses)

  def test_step(self, data):
    inputs, labels, teacher_logits = self._unpack(data)
    student_logits = self(inputs, training=False)
    return self._record(labels, student_logits, self.loss_fn(labels, student_logits, teacher_logits))


class _LogitsFromProbs(tf_keras.Model):
  """Wraps a student that outputs probabilities so that the returned model outputs logits."""

  def __init__(self, student: tf_keras.Model, task_type: str, **kwargs):
    super().__init__(**kwargs)
    self.student = student
    self.task_type = task_type

  def call(self, inputs, training=False):
    return to_logits(self.student(inputs, training=training), "probs", self.task_type)


# ---------------------------------------------------------------------------------------------------------------------
# Data.


def as_dataset(data: _Data, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
               what: str = "train_data") -> tf.data.Dataset:
  """Returns batched `(x, y)` data as a dataset: a `tf.data.Dataset` is used as given, NumPy `(x, y)` is batched.

  NumPy data is shuffled (when `shuffle`) with `seed` and reshuffled each epoch; the order depends only on the seed
  and the number of examples, which is what lets cached and uncached runs see the same batches.
  """
  if isinstance(data, tf.data.Dataset):
    return data
  if not isinstance(data, (tuple, list)) or len(data) != 2:
    raise UserError(f"{what} must be a tf.data.Dataset of (x, y) batches or a tuple (x, y) of arrays, "
                    f"got {type(data).__name__}")
  inputs, labels = data
  num_inputs = {len(leaf) for leaf in tf.nest.flatten(inputs)}
  if num_inputs != {len(labels)}:
    raise UserError(f"{what}: x has {sorted(num_inputs)} rows but y has {len(labels)}")
  dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
  if shuffle:
    dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
  return dataset.batch(batch_size)


def cache_teacher_outputs(data: _Data, teacher_logits: Callable[[Any], tf.Tensor], batch_size: int, *,
                          shuffle: bool = False, seed: int | None = None,
                          what: str = "train_data") -> tf.data.Dataset:
  """Runs the teacher once over `data` and returns batched `(x, {"labels": y, "teacher_logits": z_T})` in memory.

  NumPy data is shuffled exactly as `as_dataset` would shuffle it. A `tf.data.Dataset` is read once, so every epoch
  replays that first pass in its order and batch size: only cache data that is not augmented on the fly.
  """
  if isinstance(data, tf.data.Dataset):
    ordered, shuffle = data, False
  else:
    ordered = as_dataset(data, batch_size, shuffle=False, what=what)
  inputs, labels, outputs, first_batch = [], [], [], None
  for batch_inputs, batch_labels in ordered:
    inputs.append(batch_inputs)
    labels.append(batch_labels)
    outputs.append(teacher_logits(batch_inputs))
    first_batch = first_batch or len(batch_labels)
  if first_batch is None:
    raise UserError(f"{what} is empty")
  concat = lambda parts: tf.nest.map_structure(lambda *leaves: tf.concat(leaves, axis=0), *parts)
  # Teacher outputs ride along with the labels so that Keras does not take a third element for sample weights.
  cached = tf.data.Dataset.from_tensor_slices(
      (concat(inputs), {"labels": concat(labels), "teacher_logits": concat(outputs)}))
  if shuffle:
    cached = cached.shuffle(sum(len(part) for part in labels), seed=seed, reshuffle_each_iteration=True)
  return cached.batch(batch_size if not isinstance(data, tf.data.Dataset) else first_batch)


def _first_inputs(dataset: tf.data.Dataset):
  for element in dataset.take(1):
    return element[0]
  raise UserError("train_data is empty")


# ---------------------------------------------------------------------------------------------------------------------
# The API.


def _check_arguments(temp, a, b, epochs, batch_size, task_type, teacher_outputs, student_outputs):
  if not temp > 0:
    raise UserError(f"temp must be > 0, got {temp}")
  if a < 0 or b < 0:
    raise UserError(f"loss weights must be >= 0, got a={a}, b={b}")
  if a == 0 and b == 0:
    raise UserError("a and b are both 0: nothing would be learned")
  if epochs < 1 or batch_size < 1:
    raise UserError(f"epochs and batch_size must be >= 1, got epochs={epochs}, batch_size={batch_size}")
  if task_type not in TASK_TYPES:
    raise UserError(f"task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
  for name, kind in (("teacher_outputs", teacher_outputs), ("student_outputs", student_outputs)):
    if kind not in OUTPUT_KINDS:
      raise UserError(f"{name} must be 'logits' or 'probs', got {kind!r}")
    if kind == "probs" and task_type == "regression":
      raise UserError(f"{name}='probs' makes no sense for regression")


def check_output_shapes(teacher_logits: tf.Tensor, student_logits: tf.Tensor) -> None:
  """Raises `UserError` unless the teacher and the student produce outputs of the same shape."""
  if teacher_logits.shape[1:] != student_logits.shape[1:]:
    raise UserError(f"teacher and student output shapes differ: teacher {tuple(teacher_logits.shape)}, "
                    f"student {tuple(student_logits.shape)}; both must output one value per class/target")


def distill(teacher: tf_keras.Model, student: tf_keras.Model, train_data: _Data, valid_data: _Data | None = None,
            test_data: _Data | None = None, *, temp: float = 1.0, a: float = 0.5, b: float = 0.5,
            scale_by_temp_squared: bool = True, task_type: str = "multiclass", teacher_outputs: str = "logits",
            student_outputs: str = "logits", epochs: int = 10, batch_size: int = 32,
            optimizer: _Optimizer = "adam", learning_rate: float = 1e-3, cache_teacher: bool = False,
            shuffle: bool = True, seed: int | None = None, callbacks=None,
            verbose: int | str = "auto") -> tuple[tf_keras.Model, tf_keras.callbacks.History]:
  """Trains `student` to match the gold labels and the softened outputs of a frozen `teacher`.

  Args:
    teacher: any tf_keras model over the same inputs as the student. It is never trained: its weights are left
      exactly as they were.
    student: the tf_keras model to train (in place).
    train_data: a `tf.data.Dataset` of `(x, y)` batches, or a tuple `(x, y)` of NumPy arrays (x may be a dict).
    valid_data: optional validation data in the same form; its metrics are logged with a `val_` prefix.
    test_data: optional test data; its metrics are stored in `history.test_results`.
    temp: the temperature T > 0 that softens both models' outputs in the teacher term.
    a: weight >= 0 of the hard-label term.
    b: weight >= 0 of the teacher term.
    scale_by_temp_squared: multiply the teacher term by T^2, as Hinton et al. recommend.
    task_type: "multiclass" (softmax), "binary" or "multilabel" (sigmoid), or "regression" (MSE).
    teacher_outputs: "logits", or "probs" when the teacher ends in a softmax/sigmoid.
    student_outputs: the same for the student; the returned model outputs logits either way.
    epochs: passes over `train_data`.
    batch_size: batch size for NumPy data (a dataset keeps its own batching).
    optimizer: a tf_keras optimizer or its name; a name is built with `learning_rate`.
    learning_rate: learning rate for an optimizer given by name.
    cache_teacher: compute the teacher outputs once, before training, instead of at every step. Only valid when
      the data are not augmented on the fly; the results are the same as without the cache.
    shuffle: shuffle NumPy training data every epoch (with `seed`).
    seed: seeds Python, NumPy and TensorFlow (dropout, shuffling) for a repeatable CPU run.
    callbacks: tf_keras callbacks passed to `fit`.
    verbose: `fit` verbosity.

  Returns:
    `(student, history)`: the trained student, outputting logits (the student itself unless `student_outputs` is
    "probs"), and the Keras `History` whose `history` dict holds per epoch `loss`, `student_loss`,
    `distillation_loss` and `accuracy` (`mae` for regression), with `val_` versions when `valid_data` is given.

  Raises:
    UserError: a bad argument (temp <= 0, a negative weight, ...) or teacher/student outputs of different shapes.
  """
  _check_arguments(temp, a, b, epochs, batch_size, task_type, teacher_outputs, student_outputs)
  if seed is not None:
    tf_keras.utils.set_random_seed(seed)

  def loss_fn(labels, student_logits, teacher_logits):
    return hinton_loss(labels, student_logits, teacher_logits, temp=temp, a=a, b=b,
                       scale_by_temp_squared=scale_by_temp_squared, task_type=task_type)

  distiller = Distiller(student, teacher, loss_fn, task_type, student_outputs, teacher_outputs)
  sample_inputs = _first_inputs(as_dataset(train_data, batch_size))
  check_output_shapes(distiller.teacher_logits(sample_inputs), distiller(sample_inputs))

  teacher_was_trainable = teacher.trainable
  teacher.trainable = False
  try:
    if cache_teacher:
      teacher_fn = tf.function(distiller.teacher_logits, reduce_retracing=True)
      start = time.perf_counter()
      train = cache_teacher_outputs(train_data, teacher_fn, batch_size, shuffle=shuffle, seed=seed)
      valid = None if valid_data is None else cache_teacher_outputs(valid_data, teacher_fn, batch_size,
                                                                    what="valid_data")
      tf.get_logger().info("cached teacher outputs in %.1f s", time.perf_counter() - start)
    else:
      train = as_dataset(train_data, batch_size, shuffle=shuffle, seed=seed)
      valid = None if valid_data is None else as_dataset(valid_data, batch_size, what="valid_data")
    if isinstance(optimizer, str):
      optimizer = tf_keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
    distiller.compile(optimizer=optimizer)
    history = distiller.fit(train.prefetch(tf.data.AUTOTUNE), validation_data=valid, epochs=epochs,
                            callbacks=callbacks, verbose=verbose)
    history.test_results = None
    if test_data is not None:
      history.test_results = distiller.evaluate(as_dataset(test_data, batch_size, what="test_data"),
                                                return_dict=True, verbose=0)
  finally:
    teacher.trainable = teacher_was_trainable
  trained = student if student_outputs == "logits" else _LogitsFromProbs(student, task_type)
  return trained, history


def fit_supervised(model: tf_keras.Model, train_data: _Data, valid_data: _Data | None = None, *,
                   task_type: str = "multiclass", epochs: int = 10, batch_size: int = 32,
                   learning_rate: float = 1e-3, seed: int | None = None,
                   verbose: int | str = "auto") -> tf_keras.callbacks.History:
  """Trains a logits model on the labels alone (a teacher, or the "student alone" baseline) with Adam."""
  if seed is not None:
    tf_keras.utils.set_random_seed(seed)
  name = metric_name(task_type)

  def metric(labels, logits):
    return accuracy(labels, logits, task_type)

  metric.__name__ = name
  model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                loss=lambda labels, logits: supervised_loss(labels, logits, task_type), metrics=[metric])
  train = as_dataset(train_data, batch_size, shuffle=True, seed=seed)
  valid = None if valid_data is None else as_dataset(valid_data, batch_size, what="valid_data")
  return model.fit(train.prefetch(tf.data.AUTOTUNE), validation_data=valid, epochs=epochs, verbose=verbose)


def evaluate_accuracy(model: tf_keras.Model, data: _Data, task_type: str = "multiclass",
                      batch_size: int = 256) -> float:
  """Accuracy (MAE for regression) of a logits model over all of `data`, weighting every example equally."""
  logits, labels = [], []
  for batch_inputs, batch_labels in as_dataset(data, batch_size, what="evaluation data"):
    logits.append(model(batch_inputs, training=False))
    labels.append(batch_labels)
  return float(accuracy(tf.concat(labels, 0), tf.concat(logits, 0), task_type))


# ---------------------------------------------------------------------------------------------------------------------
# Command line.


def _define_flags():
  from absl import flags

  flags.DEFINE_string("teacher", None, "Teacher architecture, a name in old_demo.utils.ARCHITECTURES.")
  flags.DEFINE_string("student", None, "Student architecture, a name in old_demo.utils.ARCHITECTURES.")
  flags.DEFINE_string("task", None, "Dataset, a name in old_demo.utils.DATASETS.")
  flags.DEFINE_string("weights_dir", None, "Folder of teacher.h5 (written by old_demo/run_model.py or "
                      "--train_teacher) and of the outputs: student.h5 and results.md.")
  flags.DEFINE_string("data_dir", None, "Folder of user-downloaded data (imdb, mnli, yelp); unused otherwise.")
  flags.DEFINE_string("teacher_config", None, "JSON object of keyword arguments for the teacher builder, "
                      "e.g. '{\"filters\": 64}'. Default: the builder's defaults.")
  flags.DEFINE_string("student_config", None, "JSON object of keyword arguments for the student builder.")
  flags.DEFINE_bool("train_teacher", False, "Train the teacher on the task first and save it to --weights_dir, "
                    "instead of loading --weights_dir/teacher.h5.")
  flags.DEFINE_bool("student_alone", True, "Also train a same-seed copy of the student without a teacher and "
                    "report its accuracy as the baseline.")
  flags.DEFINE_float("temp", 1.0, "Temperature T > 0 of the softened outputs.")
  flags.DEFINE_float("a", 0.5, "Weight >= 0 of the hard-label term.")
  flags.DEFINE_float("b", 0.5, "Weight >= 0 of the teacher term.")
  flags.DEFINE_bool("scale_by_temp_squared", True, "Multiply the teacher term by T^2.")
  flags.DEFINE_integer("epochs", 10, "Epochs of distillation (and of the student-alone baseline).")
  flags.DEFINE_integer("teacher_epochs", 5, "Epochs of teacher training with --train_teacher.")
  flags.DEFINE_integer("batch_size", 32, "Batch size.")
  flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
  flags.DEFINE_bool("cache_teacher", True, "Compute the teacher outputs once instead of at every step.")
  flags.DEFINE_integer("seed", 42, "Seed for a repeatable CPU run.")
  flags.mark_flags_as_required(["teacher", "student", "task", "weights_dir"])
  return flags.FLAGS


def results_table(rows) -> str:
  """A Markdown table of `(model, accuracy)` rows."""
  lines = ["| model | test accuracy |", "|---|---|"]
  lines += [f"| {name} | {value:.4f} |" for name, value in rows]
  return "\n".join(lines) + "\n"


def run(flags_values) -> str:
  """Runs the command line: validates flags, trains or loads the teacher, distils, writes `results.md`."""
  from modeling import files
  from old_demo import utils

  fv = flags_values
  teacher_arch = utils.get_architecture(fv.teacher, "teacher")
  student_arch = utils.get_architecture(fv.student, "student")
  load_task = utils.get_dataset(fv.task)
  teacher_config = utils.parse_config(fv.teacher_config, "teacher_config")
  student_config = utils.parse_config(fv.student_config, "student_config")
  _check_arguments(fv.temp, fv.a, fv.b, fv.epochs, fv.batch_size, "multiclass", "logits", "logits")
  files.ensure_writable_dir(fv.weights_dir, "weights_dir")
  teacher_path = os.path.join(fv.weights_dir, "teacher.h5")
  if not fv.train_teacher and not os.path.isfile(teacher_path):
    raise UserError(f"--weights_dir: {teacher_path} not found; train one with old_demo/run_model.py --name teacher "
                    "or pass --train_teacher")

  data = load_task(fv.data_dir)
  rows = []
  tf_keras.utils.set_random_seed(fv.seed)
  teacher = utils.build_model(fv.teacher, teacher_arch, data, teacher_config)
  if fv.train_teacher:
    fit_supervised(teacher, data.train, data.valid, task_type=data.task_type, epochs=fv.teacher_epochs,
                   batch_size=fv.batch_size, learning_rate=fv.learning_rate, seed=fv.seed, verbose=2)
    utils.save_model(teacher, fv.weights_dir, "teacher", fv.teacher, teacher_config, fv.task)
  else:
    utils.load_model_weights(teacher, fv.weights_dir, "teacher", fv.teacher, teacher_config, fv.task)
  rows.append((f"teacher ({fv.teacher})", evaluate_accuracy(teacher, data.test, data.task_type)))

  if fv.student_alone:
    tf_keras.utils.set_random_seed(fv.seed)
    alone = utils.build_model(fv.student, student_arch, data, student_config)
    fit_supervised(alone, data.train, data.valid, task_type=data.task_type, epochs=fv.epochs,
                   batch_size=fv.batch_size, learning_rate=fv.learning_rate, seed=fv.seed, verbose=2)
    rows.append((f"student alone ({fv.student})", evaluate_accuracy(alone, data.test, data.task_type)))

  tf_keras.utils.set_random_seed(fv.seed)
  student = utils.build_model(fv.student, student_arch, data, student_config)
  student, _ = distill(teacher, student, data.train, data.valid, temp=fv.temp, a=fv.a, b=fv.b,
                       scale_by_temp_squared=fv.scale_by_temp_squared, task_type=data.task_type, epochs=fv.epochs,
                       batch_size=fv.batch_size, learning_rate=fv.learning_rate, cache_teacher=fv.cache_teacher,
                       seed=fv.seed, verbose=2)
  rows.append((f"student distilled ({fv.student}, T={fv.temp:g}, a={fv.a:g}, b={fv.b:g})",
               evaluate_accuracy(student, data.test, data.task_type)))
  utils.save_model(student, fv.weights_dir, "student", fv.student, student_config, fv.task)

  table = f"Task: {fv.task} (test split, {len(data.test[1])} examples)\n\n" + results_table(rows)
  with files.atomic_path(os.path.join(fv.weights_dir, "results.md")) as tmp, open(tmp, "w") as f:
    f.write(table)
  return table


def main():
  from absl import flags

  with contextlib.redirect_stdout(sys.stderr):  # Keras progress goes to stderr; stdout gets only the table.
    table = run(flags.FLAGS)
  print(table, end="")


if __name__ == "__main__":
  _define_flags()
  run_script(main)
