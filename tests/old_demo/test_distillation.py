"""distill(): a real MNIST run, the teacher cache, the sigmoid and regression paths and the error messages."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from modeling.errors import UserError
from old_demo import distillation, utils


@pytest.fixture(scope="module")
def mnist():
  return utils.load_mnist()


@pytest.fixture(scope="module")
def mnist_teacher(mnist):
  tf_keras.utils.set_random_seed(0)
  teacher = utils.build_cnn(mnist, filters=(16, 32), dense_units=64)
  distillation.fit_supervised(teacher, mnist.train, mnist.valid, epochs=4, batch_size=64, seed=0, verbose=0)
  return teacher


def _dense(inputs, outputs, activation=None, seed=0):
  tf_keras.utils.set_random_seed(seed)
  return tf_keras.Sequential([tf_keras.Input((inputs,)), tf_keras.layers.Dense(outputs, activation=activation)])


def test_cnn_teacher_distils_into_mlp_student_on_mnist(mnist, mnist_teacher):
  teacher_weights = [w.numpy().copy() for w in mnist_teacher.weights]
  teacher_accuracy = distillation.evaluate_accuracy(mnist_teacher, mnist.test)
  assert teacher_accuracy > 0.9
  tf_keras.utils.set_random_seed(1)
  student = utils.build_mlp(mnist)
  student, history = distillation.distill(mnist_teacher, student, mnist.train, mnist.valid, mnist.test, temp=4.0,
                                          a=0.5, b=0.5, epochs=5, batch_size=64, seed=1, verbose=0)
  held_out = distillation.evaluate_accuracy(student, mnist.test)
  assert held_out > 0.85  # Chance is 0.1.
  assert history.test_results["accuracy"] == pytest.approx(held_out, abs=1e-6)
  for name in ("loss", "student_loss", "distillation_loss", "accuracy", "val_loss", "val_student_loss",
               "val_distillation_loss", "val_accuracy"):
    assert len(history.history[name]) == 5, name
  assert history.history["student_loss"][-1] < history.history["student_loss"][0]
  for before, after in zip(teacher_weights, mnist_teacher.weights):
    np.testing.assert_array_equal(before, after.numpy())
  assert mnist_teacher.trainable  # Restored after training.


def test_cached_and_uncached_runs_give_the_same_history(mnist, mnist_teacher):
  train = (mnist.train[0][:1000], mnist.train[1][:1000])
  histories = []
  for cache in (False, True):
    tf_keras.utils.set_random_seed(3)
    student = utils.build_mlp(mnist, hidden_units=(32,))
    _, history = distillation.distill(mnist_teacher, student, train, mnist.valid, temp=2.0, epochs=3, batch_size=50,
                                      cache_teacher=cache, seed=3, verbose=0)
    histories.append(history.history)
  assert histories[0].keys() == histories[1].keys()
  for name in histories[0]:
    np.testing.assert_allclose(histories[1][name], histories[0][name], rtol=1e-5, err_msg=name)


def test_cache_accepts_a_batched_dataset(mnist, mnist_teacher):
  train = tf.data.Dataset.from_tensor_slices((mnist.train[0][:256], mnist.train[1][:256])).batch(64)
  tf_keras.utils.set_random_seed(0)
  student, history = distillation.distill(mnist_teacher, utils.build_mlp(mnist, hidden_units=(16,)), train,
                                          epochs=2, cache_teacher=True, verbose=0)
  assert len(history.history["distillation_loss"]) == 2
  assert student(mnist.test[0][:3]).shape == (3, 10)


def _two_class_problem(outputs, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(512, 4)).astype(np.float32)
  targets = x[:, :outputs] + 0.5 * x[:, 1:outputs + 1]
  return x, targets


def test_multilabel_sigmoid_path_learns():
  x, targets = _two_class_problem(3)
  labels = (targets > 0).astype(np.float32)
  teacher = _dense(4, 3, seed=1)
  distillation.fit_supervised(teacher, (x, labels), task_type="multilabel", epochs=10, batch_size=64,
                              learning_rate=0.05, verbose=0)
  _, history = distillation.distill(teacher, _dense(4, 3, seed=2), (x, labels), (x, labels), temp=2.0,
                                    task_type="multilabel", epochs=10, batch_size=64, learning_rate=0.05, seed=0,
                                    verbose=0)
  assert history.history["val_accuracy"][-1] > 0.9
  assert history.history["loss"][-1] < history.history["loss"][0]


def test_binary_path_with_probability_outputs():
  x, targets = _two_class_problem(1)
  labels = (targets[:, 0] > 0).astype(np.int32)
  teacher = _dense(4, 1, seed=1)
  distillation.fit_supervised(teacher, (x, labels), task_type="binary", epochs=10, batch_size=64,
                              learning_rate=0.05, verbose=0)
  teacher_probs = tf_keras.Sequential([teacher, tf_keras.layers.Activation("sigmoid")])
  student_probs = _dense(4, 1, activation="sigmoid", seed=2)
  student, history = distillation.distill(teacher_probs, student_probs, (x, labels), (x, labels), temp=2.0,
                                          task_type="binary", teacher_outputs="probs", student_outputs="probs",
                                          epochs=10, batch_size=64, learning_rate=0.05, seed=0, verbose=0)
  assert history.history["val_accuracy"][-1] > 0.9
  # The returned student outputs logits.
  np.testing.assert_allclose(tf.sigmoid(student(x[:5])).numpy(), student_probs(x[:5]).numpy(), rtol=1e-4)


def test_regression_path_pulls_student_towards_labels_and_teacher():
  x, targets = _two_class_problem(1)
  teacher = _dense(4, 1, seed=1)
  distillation.fit_supervised(teacher, (x, targets), task_type="regression", epochs=10, batch_size=64,
                              learning_rate=0.05, verbose=0)
  _, history = distillation.distill(teacher, _dense(4, 1, seed=2), (x, targets), (x, targets), a=0.5, b=0.5,
                                    task_type="regression", epochs=10, batch_size=64, learning_rate=0.05, seed=0,
                                    verbose=0)
  assert history.history["val_mae"][-1] < 0.1
  assert history.history["distillation_loss"][-1] < 0.01


@pytest.mark.parametrize("kwargs,message", [
    ({"temp": 0.0}, "temp must be > 0, got 0.0"),
    ({"temp": -1.0}, "temp must be > 0"),
    ({"a": -0.1}, "loss weights must be >= 0, got a=-0.1, b=0.5"),
    ({"b": -1.0}, "loss weights must be >= 0"),
    ({"teacher_outputs": "softmax"}, "teacher_outputs must be 'logits' or 'probs'"),
    ({"task_type": "ranking"}, "task_type must be one of multiclass, binary, multilabel, regression"),
])
def test_bad_arguments_are_refused_with_a_clear_message(kwargs, message):
  x, y = np.zeros((8, 4), np.float32), np.zeros(8, np.int32)
  with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
    distillation.distill(_dense(4, 3), _dense(4, 3), (x, y), **kwargs)


def test_teacher_and_student_output_shapes_must_match():
  x, y = np.zeros((8, 4), np.float32), np.zeros(8, np.int32)
  with pytest.raises(UserError, match=r"teacher and student output shapes differ: teacher \(8, 3\), student \(8, 5\)"):
    distillation.distill(_dense(4, 3), _dense(4, 5), (x, y))


def test_mismatched_numpy_inputs_are_refused():
  with pytest.raises(UserError, match=r"train_data: x has \[8\] rows but y has 7"):
    distillation.distill(_dense(4, 3), _dense(4, 3), (np.zeros((8, 4)), np.zeros(7)))


def test_fit_supervised_uses_the_optimizer_it_is_given():
  x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
  labels = (x[:, 0] > 0).astype(np.int32)
  frozen, trained = _dense(4, 2), _dense(4, 2)
  before = [w.numpy().copy() for w in frozen.weights]
  distillation.fit_supervised(frozen, (x, labels), epochs=2, batch_size=8, seed=0, verbose=0,
                              optimizer=tf_keras.optimizers.SGD(learning_rate=0.0))
  for old, new in zip(before, frozen.weights):  # a zero learning rate moves nothing
    np.testing.assert_array_equal(old, new.numpy())
  distillation.fit_supervised(trained, (x, labels), epochs=2, batch_size=8, seed=0, verbose=0, optimizer="sgd",
                              learning_rate=0.5)
  assert type(trained.optimizer).__name__ == "SGD" and trained.optimizer.learning_rate.numpy() == 0.5
  assert not np.allclose(before[0], trained.weights[0].numpy())


class _ConstantTeacher(tf_keras.Model):
  """Answers the same logits for every input."""

  def __init__(self, logits):
    super().__init__()
    self.logits = tf.constant([logits], tf.float32)

  def call(self, inputs, training=False):
    return tf.tile(self.logits, [tf.shape(inputs)[0], 1])


def test_transfer_set_is_learnt_from_the_teacher_only():
  rng = np.random.default_rng(0)
  labelled = (rng.normal(size=(4, 4)).astype(np.float32), np.ones(4, np.int32))
  transfer = rng.normal(size=(256, 4)).astype(np.float32)
  teacher = _ConstantTeacher([0.0, 5.0])  # class 1, as the four gold labels
  for cache in (False, True):
    student, history = distillation.distill(teacher, _dense(4, 2), labelled, temp=1.0, a=5.0, b=1.0, epochs=20,
                                            batch_size=32, learning_rate=0.05, seed=0, verbose=0,
                                            cache_teacher=cache, transfer_data=transfer)
    # Had the transfer rows' placeholder label (0) reached the hard term, a=5 would pull them to class 0.
    assert np.all(np.argmax(student(transfer).numpy(), -1) == 1), cache
    assert history.history["accuracy"][-1] == 1.0


def test_transfer_set_losses_and_accuracy_match_numpy():
  rng = np.random.default_rng(1)
  x, labels = rng.normal(size=(10, 4)).astype(np.float32), rng.integers(0, 3, 10).astype(np.int32)
  transfer = rng.normal(size=(6, 4)).astype(np.float32)
  teacher, student = _dense(4, 3, seed=1), _dense(4, 3, seed=2)
  _, history = distillation.distill(teacher, student, (x, labels), temp=2.0, a=0.3, b=0.7, epochs=1, batch_size=16,
                                    optimizer=tf_keras.optimizers.SGD(learning_rate=0.0), seed=0, verbose=0,
                                    transfer_data=transfer)
  everything = np.concatenate([x, transfer])
  zs, zt = student(everything).numpy().astype(np.float64), teacher(everything).numpy().astype(np.float64)
  softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
  hard = -np.log(softmax(zs)[np.arange(10), labels])
  soft = -np.sum(softmax(zt / 2.0) * np.log(softmax(zs / 2.0)), -1)
  np.testing.assert_allclose(history.history["student_loss"][0], hard.sum() / 16, rtol=1e-5)
  np.testing.assert_allclose(history.history["distillation_loss"][0], soft.mean(), rtol=1e-5)
  np.testing.assert_allclose(history.history["accuracy"][0], np.mean(zs[:10].argmax(-1) == labels), rtol=1e-6)


@pytest.mark.parametrize("train,transfer,kwargs,message", [
    ("dataset", np.zeros((4, 4), np.float32), {}, "transfer_data needs train_data as a tuple"),
    ("numpy", np.zeros((4, 4), np.float32), {"b": 0.0, "a": 1.0},
     "transfer_data is learnt from the teacher term only, but b is 0"),
    ("numpy", np.zeros((4, 5), np.float32), {}, r"transfer_data rows are shaped \(5,\), train_data's x rows \(4,\)"),
    ("numpy", np.zeros((0, 4), np.float32), {}, "transfer_data must hold at least one example"),
    ("numpy", {"x": np.zeros((4, 4), np.float32)}, {}, "transfer_data must be structured like train_data's x"),
])
def test_bad_transfer_sets_are_refused(train, transfer, kwargs, message):
  x, y = np.zeros((8, 4), np.float32), np.zeros(8, np.int32)
  data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4) if train == "dataset" else (x, y)
  with pytest.raises(UserError, match=message):
    distillation.distill(_dense(4, 3), _dense(4, 3), data, transfer_data=transfer, **kwargs)
