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
