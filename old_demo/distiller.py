"""The classic distillation loop: the `Distiller` training model, its input pipeline and `distill`.

`distill` trains any tf_keras student against the gold labels and a frozen tf_keras teacher with
`losses.hinton_loss`; `fit_supervised` trains a model on the labels alone (a teacher, or the "student alone"
baseline) with the same loss's hard term, and `evaluate_accuracy` scores either.
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from modeling.errors import UserError
from old_demo.losses import OUTPUT_KINDS, TASK_TYPES, accuracy, hinton_loss, metric_name, supervised_loss, to_logits

_Data = tf.data.Dataset | tuple[Any, Any]
_Optimizer = str | tf_keras.optimizers.Optimizer


class Distiller(tf_keras.Model):
  """Trains `student` against the labels and a frozen `teacher` with `hinton_loss`.

  Batches are `(x, y)`, or `(x, {"labels": y, "teacher_logits": z_T, "labeled": w})` where the teacher outputs
  were cached (`teacher_logits`) or some examples have no gold label (`labeled`: 1 or 0 per example, see
  `hinton_loss`'s `label_weights`); either key may be absent. Only the student's variables receive gradients; the
  teacher always runs in inference mode. Logged metrics: `loss`, `student_loss`, `distillation_loss` and `accuracy`
  (`mae` for regression; both count labelled examples only).

  Args:
    student: the model being trained.
    teacher: the frozen model it learns from.
    loss_fn: `(labels, student_logits, teacher_logits) -> dict` as returned by `hinton_loss`; batches with a
      `labeled` key also pass `label_weights=`.
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
    """`(inputs, labels, teacher_logits, label_weights or None)` of a batch."""
    inputs, targets = data
    if not isinstance(targets, dict):
      return inputs, targets, self.teacher_logits(inputs), None
    teacher_logits = targets["teacher_logits"] if "teacher_logits" in targets else self.teacher_logits(inputs)
    return inputs, targets["labels"], teacher_logits, targets.get("labeled")

  def _loss_terms(self, labels, student_logits, teacher_logits, label_weights):
    if label_weights is None:
      return self.loss_fn(labels, student_logits, teacher_logits)
    return self.loss_fn(labels, student_logits, teacher_logits, label_weights=label_weights)

  def _record(self, labels, student_logits, losses, label_weights=None):
    batch_size = tf.cast(tf.shape(student_logits)[0], tf.float32)  # Weighting by it makes epoch means exact.
    for name, value in losses.items():
      self._trackers[name].update_state(value, sample_weight=batch_size)
    # Accuracy counts the labelled examples only.
    labeled = batch_size if label_weights is None else tf.reduce_sum(tf.cast(label_weights, tf.float32))
    self._trackers[metric_name(self.task_type)].update_state(
        accuracy(labels, student_logits, self.task_type, label_weights), sample_weight=labeled)
    return {name: tracker.result() for name, tracker in self._trackers.items()}

  def train_step(self, data):
    inputs, labels, teacher_logits, label_weights = self._unpack(data)
    with tf.GradientTape() as tape:
      student_logits = self(inputs, training=True)
      losses = self._loss_terms(labels, student_logits, teacher_logits, label_weights)
      objective = losses["loss"]
      if self.student.losses:  # Regularisers the student declares.
        objective += tf.add_n(self.student.losses)
    variables = self.student.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(objective, variables), variables))
    return self._record(labels, student_logits, losses, label_weights)

  def test_step(self, data):
    inputs, labels, teacher_logits, label_weights = self._unpack(data)
    student_logits = self(inputs, training=False)
    losses = self._loss_terms(labels, student_logits, teacher_logits, label_weights)
    return self._record(labels, student_logits, losses, label_weights)


class _LogitsFromProbs(tf_keras.Model):
  """Wraps a student that outputs probabilities so that the returned model outputs logits."""

  def __init__(self, student: tf_keras.Model, task_type: str, **kwargs):
    super().__init__(**kwargs)
    self.student = student
    self.task_type = task_type

  def call(self, inputs, training=False):
    return to_logits(self.student(inputs, training=training), "probs", self.task_type)


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
  num_labels = {len(leaf) for leaf in tf.nest.flatten(labels)}
  if len(num_labels) != 1 or num_inputs != num_labels:
    raise UserError(f"{what}: x has {sorted(num_inputs)} rows but y has {', '.join(map(str, sorted(num_labels)))}")
  dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
  if shuffle:
    dataset = dataset.shuffle(num_labels.pop(), seed=seed, reshuffle_each_iteration=True)
  return dataset.batch(batch_size)


def cache_teacher_outputs(data: _Data, teacher_logits: Callable[[Any], tf.Tensor], batch_size: int, *,
                          shuffle: bool = False, seed: int | None = None,
                          what: str = "train_data") -> tf.data.Dataset:
  """Runs the teacher once over `data` and returns batched `(x, {"labels": y, "teacher_logits": z_T})` in memory.

  Labels given as a dict (`{"labels": y, "labeled": w}`, see `with_transfer_set`) keep their keys.

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
  labels = concat(labels)
  targets = {**labels, "teacher_logits": concat(outputs)} if isinstance(labels, dict) else {
      "labels": labels, "teacher_logits": concat(outputs)}
  cached = tf.data.Dataset.from_tensor_slices((concat(inputs), targets))
  if shuffle:
    cached = cached.shuffle(len(targets["teacher_logits"]), seed=seed, reshuffle_each_iteration=True)
  return cached.batch(batch_size if not isinstance(data, tf.data.Dataset) else first_batch)


def with_transfer_set(train_data: _Data, transfer_inputs) -> tuple[Any, dict[str, np.ndarray]]:
  """Labelled NumPy `(x, y)` plus unlabelled inputs, as `(x_all, {"labels": y_all, "labeled": w})`.

  The transfer inputs (an array, or a dict of arrays like `x`) come after the labelled ones; their label rows are
  zeros and their `labeled` weight is 0, so they train on the teacher term only.
  """
  if isinstance(train_data, tf.data.Dataset) or not isinstance(train_data, (tuple, list)) or len(train_data) != 2:
    raise UserError("transfer_data needs train_data as a tuple (x, y) of NumPy arrays, not a tf.data.Dataset")
  inputs, labels = train_data
  labels = np.asarray(labels)
  try:
    tf.nest.assert_same_structure(inputs, transfer_inputs)
  except (ValueError, TypeError) as e:
    raise UserError(f"transfer_data must be structured like train_data's x: {e}") from None
  transfer_rows = {len(leaf) for leaf in tf.nest.flatten(transfer_inputs)}
  if len(transfer_rows) != 1 or transfer_rows == {0}:
    raise UserError(f"transfer_data must hold at least one example, with as many rows in every input; got rows "
                    f"{sorted(transfer_rows)}")
  for leaf, transfer_leaf in zip(tf.nest.flatten(inputs), tf.nest.flatten(transfer_inputs)):
    if np.shape(leaf)[1:] != np.shape(transfer_leaf)[1:]:
      raise UserError(f"transfer_data rows are shaped {np.shape(transfer_leaf)[1:]}, train_data's x rows "
                      f"{np.shape(leaf)[1:]}")
  count = transfer_rows.pop()
  joined = tf.nest.map_structure(lambda x, t: np.concatenate([np.asarray(x), np.asarray(t, dtype=np.asarray(x).dtype)]),
                                 inputs, transfer_inputs)
  weights = np.concatenate([np.ones(len(labels), np.float32), np.zeros(count, np.float32)])
  placeholder = np.zeros((count,) + labels.shape[1:], labels.dtype)
  return joined, {"labels": np.concatenate([labels, placeholder]), "labeled": weights}


def _first_inputs(dataset: tf.data.Dataset):
  for element in dataset.take(1):
    return element[0]
  raise UserError("train_data is empty")


def check_arguments(temp, a, b, epochs, batch_size, task_type, teacher_outputs, student_outputs):
  """Raises `UserError` naming the first of `distill`'s arguments that is out of range."""
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
            shuffle: bool = True, seed: int | None = None, callbacks=None, verbose: int | str = "auto",
            transfer_data=None) -> tuple[tf_keras.Model, tf_keras.callbacks.History]:
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
    transfer_data: optional inputs without labels (an array, or a dict of arrays shaped like `train_data`'s x):
      a transfer set. They are shuffled in with the labelled examples and learnt from the teacher term only (their
      hard term is 0, and the training accuracy counts the labelled examples only). Needs NumPy `train_data` and
      b > 0. Validation and test data stay labelled.

  Returns:
    `(student, history)`: the trained student, outputting logits (the student itself unless `student_outputs` is
    "probs"), and the Keras `History` whose `history` dict holds per epoch `loss`, `student_loss`,
    `distillation_loss` and `accuracy` (`mae` for regression), with `val_` versions when `valid_data` is given.

  Raises:
    UserError: a bad argument (temp <= 0, a negative weight, ...) or teacher/student outputs of different shapes.
  """
  check_arguments(temp, a, b, epochs, batch_size, task_type, teacher_outputs, student_outputs)
  if transfer_data is not None:
    if b == 0:
      raise UserError("transfer_data is learnt from the teacher term only, but b is 0")
    train_data = with_transfer_set(train_data, transfer_data)
  if seed is not None:
    tf_keras.utils.set_random_seed(seed)

  def loss_fn(labels, student_logits, teacher_logits, label_weights=None):
    return hinton_loss(labels, student_logits, teacher_logits, temp=temp, a=a, b=b,
                       scale_by_temp_squared=scale_by_temp_squared, task_type=task_type,
                       label_weights=label_weights)

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
    distiller.compile(optimizer=_optimizer(optimizer, learning_rate))
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


def _optimizer(optimizer: _Optimizer, learning_rate: float) -> tf_keras.optimizers.Optimizer:
  """`optimizer` itself, or the tf_keras optimizer of that name with `learning_rate`."""
  if isinstance(optimizer, str):
    return tf_keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
  return optimizer


def fit_supervised(model: tf_keras.Model, train_data: _Data, valid_data: _Data | None = None, *,
                   task_type: str = "multiclass", epochs: int = 10, batch_size: int = 32,
                   optimizer: _Optimizer = "adam", learning_rate: float = 1e-3, seed: int | None = None,
                   callbacks=None, verbose: int | str = "auto") -> tf_keras.callbacks.History:
  """Trains a logits model on the labels alone (a teacher, or the "student alone" baseline), with Adam by default.

  The arguments mean what they mean for `distill` (e.g. `optimizer` can be the warmup-and-decay AdamW of
  `modeling.training.make_optimizer` for fine-tuning a pretrained encoder); the metric is logged as `accuracy`
  (`mae` for regression).
  """
  if seed is not None:
    tf_keras.utils.set_random_seed(seed)
  name = metric_name(task_type)

  def metric(labels, logits):
    return accuracy(labels, logits, task_type)

  metric.__name__ = name
  model.compile(optimizer=_optimizer(optimizer, learning_rate),
                loss=lambda labels, logits: supervised_loss(labels, logits, task_type), metrics=[metric])
  train = as_dataset(train_data, batch_size, shuffle=True, seed=seed)
  valid = None if valid_data is None else as_dataset(valid_data, batch_size, what="valid_data")
  return model.fit(train.prefetch(tf.data.AUTOTUNE), validation_data=valid, epochs=epochs, callbacks=callbacks,
                   verbose=verbose)


def evaluate_accuracy(model: tf_keras.Model, data: _Data, task_type: str = "multiclass",
                      batch_size: int = 256) -> float:
  """Accuracy (MAE for regression) of a logits model over all of `data`, weighting every example equally."""
  logits, labels = [], []
  for batch_inputs, batch_labels in as_dataset(data, batch_size, what="evaluation data"):
    logits.append(model(batch_inputs, training=False))
    labels.append(batch_labels)
  return float(accuracy(tf.concat(labels, 0), tf.concat(logits, 0), task_type))
