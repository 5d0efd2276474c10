"""The Hinton loss and its gradient against an independent NumPy implementation."""

import numpy as np
import pytest
import tensorflow as tf

from old_demo import losses


def _np_softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _np_sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def _np_hinton(labels, zs, zt, temp, a, b, squared):
  """Loss and d loss / d zs for one-hot softmax classification, written from the paper's formulas."""
  n = len(zs)
  onehot = np.eye(zs.shape[1])[labels]
  ps, pt, ps_t = _np_softmax(zs), _np_softmax(zt / temp), _np_softmax(zs / temp)
  hard = -np.sum(onehot * np.log(ps)) / n
  soft = -np.sum(pt * np.log(ps_t)) / n
  weight = b * temp**2 if squared else b
  grad = a * (ps - onehot) / n + weight * (ps_t - pt) / (temp * n)
  return a * hard + weight * soft, hard, soft, grad


def _np_sigmoid_hinton(labels, zs, zt, temp, a, b):
  def bce(target, logits):
    p = _np_sigmoid(logits)
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))

  m = zs.size
  qt = _np_sigmoid(zt / temp)
  hard, soft = bce(labels, zs).mean(), bce(qt, zs / temp).mean()
  grad = a * (_np_sigmoid(zs) - labels) / m + b * temp**2 * (_np_sigmoid(zs / temp) - qt) / (temp * m)
  return a * hard + b * temp**2 * soft, grad


def _tf_loss_and_grad(labels, zs, zt, **kwargs):
  student = tf.constant(zs)
  with tf.GradientTape() as tape:
    tape.watch(student)
    terms = losses.hinton_loss(tf.constant(labels), student, tf.constant(zt), **kwargs)
  return {k: v.numpy() for k, v in terms.items()}, tape.gradient(terms["loss"], student).numpy()


@pytest.mark.parametrize("temp,a,b", [(1.0, 0.5, 0.5), (2.0, 0.1, 0.9), (5.0, 1.0, 0.0), (0.5, 0.0, 1.0),
                                      (10.0, 0.3, 2.0)])
@pytest.mark.parametrize("squared", [True, False])
def test_softmax_loss_and_gradient_match_numpy(temp, a, b, squared):
  rng = np.random.default_rng(7)
  zs, zt = rng.normal(0, 3, (6, 5)), rng.normal(0, 3, (6, 5))
  labels = rng.integers(0, 5, 6)
  expected, hard, soft, expected_grad = _np_hinton(labels, zs, zt, temp, a, b, squared)
  for given_labels in (labels, np.eye(5)[labels]):  # Class indices and one-hot give the same loss.
    terms, grad = _tf_loss_and_grad(given_labels, zs, zt, temp=temp, a=a, b=b, scale_by_temp_squared=squared)
    np.testing.assert_allclose(terms["loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(terms["student_loss"], hard, rtol=1e-6)
    np.testing.assert_allclose(terms["distillation_loss"], soft, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("temp", [1.0, 3.0])
def test_multilabel_sigmoid_loss_and_gradient_match_numpy(temp):
  rng = np.random.default_rng(3)
  zs, zt = rng.normal(0, 2, (4, 3)), rng.normal(0, 2, (4, 3))
  labels = rng.integers(0, 2, (4, 3)).astype(np.float64)
  expected, expected_grad = _np_sigmoid_hinton(labels, zs, zt, temp, 0.4, 0.6)
  terms, grad = _tf_loss_and_grad(labels, zs, zt, temp=temp, a=0.4, b=0.6, task_type="multilabel")
  np.testing.assert_allclose(terms["loss"], expected, rtol=1e-6)
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-12)


def test_binary_accepts_flat_labels_for_one_output_unit():
  zs, zt = np.array([[1.5], [-0.5], [0.2]]), np.array([[2.0], [-1.0], [0.0]])
  labels = np.array([1.0, 0.0, 0.0])
  expected, _ = _np_sigmoid_hinton(labels[:, None], zs, zt, 2.0, 0.5, 0.5)
  terms, _ = _tf_loss_and_grad(labels, zs, zt, temp=2.0, task_type="binary")
  np.testing.assert_allclose(terms["loss"], expected, rtol=1e-6)
  acc = losses.accuracy(tf.constant(labels), tf.constant(zs), "binary")
  np.testing.assert_allclose(acc.numpy(), 2 / 3, rtol=1e-6)


def test_regression_is_mse_to_labels_plus_mse_to_teacher_without_temperature():
  zs, zt, y = np.array([[1.0], [2.0]]), np.array([[1.5], [1.0]]), np.array([0.0, 2.0])
  terms, grad = _tf_loss_and_grad(y, zs, zt, temp=7.0, a=0.3, b=0.7, task_type="regression")
  hard, soft = ((zs[:, 0] - y) ** 2).mean(), ((zs - zt) ** 2).mean()
  np.testing.assert_allclose(terms["loss"], 0.3 * hard + 0.7 * soft, rtol=1e-6)
  np.testing.assert_allclose(grad[:, 0], (0.3 * 2 * (zs[:, 0] - y) + 0.7 * 2 * (zs - zt)[:, 0]) / 2, rtol=1e-6)


def test_probabilities_are_turned_into_equivalent_logits():
  logits = np.array([[0.3, -1.2, 2.0]], dtype=np.float32)
  probs = tf.nn.softmax(logits)
  recovered = losses.to_logits(probs, "probs", "multiclass")
  np.testing.assert_allclose(tf.nn.softmax(recovered).numpy(), probs.numpy(), rtol=1e-5)
  sigmoid_logits = losses.to_logits(tf.sigmoid(logits), "probs", "multilabel")
  np.testing.assert_allclose(sigmoid_logits.numpy(), logits, rtol=1e-4)


def test_label_weights_drop_the_hard_term_of_unlabelled_examples():
  rng = np.random.default_rng(3)
  zs, zt = rng.normal(0, 2, (6, 4)), rng.normal(0, 2, (6, 4))
  labels = rng.integers(0, 4, 6)
  weights = np.array([1, 0, 1, 1, 0, 0], np.float64)
  terms, grad = _tf_loss_and_grad(labels, zs, zt, temp=3.0, a=0.4, b=0.6, label_weights=weights)
  # Per example: a * w * hard + b * T^2 * soft, averaged over all six rows (NumPy, from the formulas).
  ps, pt, ps_t = _np_softmax(zs), _np_softmax(zt / 3.0), _np_softmax(zs / 3.0)
  onehot = np.eye(4)[labels]
  hard = -np.sum(onehot * np.log(ps), -1) * weights
  soft = -np.sum(pt * np.log(ps_t), -1)
  np.testing.assert_allclose(terms["student_loss"], hard.mean(), rtol=1e-6)
  np.testing.assert_allclose(terms["distillation_loss"], soft.mean(), rtol=1e-6)
  np.testing.assert_allclose(terms["loss"], 0.4 * hard.mean() + 0.6 * 9.0 * soft.mean(), rtol=1e-6)
  expected_grad = (0.4 * weights[:, None] * (ps - onehot) + 0.6 * 9.0 * (ps_t - pt) / 3.0) / 6
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-12)
  # All weights 1 is the unweighted loss.
  ones, _ = _tf_loss_and_grad(labels, zs, zt, temp=3.0, a=0.4, b=0.6, label_weights=np.ones(6))
  plain, _ = _tf_loss_and_grad(labels, zs, zt, temp=3.0, a=0.4, b=0.6)
  np.testing.assert_allclose(ones["loss"], plain["loss"], rtol=1e-12)


def test_weighted_accuracy_counts_the_weighted_examples_only():
  logits = tf.constant([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
  labels = tf.constant([0, 0, 1, 1])
  assert float(losses.accuracy(labels, logits)) == 0.5
  assert float(losses.accuracy(labels, logits, weights=tf.constant([1.0, 0.0, 0.0, 1.0]))) == 1.0
  assert float(losses.accuracy(labels, logits, weights=tf.constant([0.0, 1.0, 1.0, 0.0]))) == 0.0
  assert float(losses.accuracy(labels, logits, weights=tf.zeros(4))) == 0.0
  binary = losses.accuracy(tf.constant([[1.0, 0.0], [1.0, 1.0]]), tf.constant([[1.0, 1.0], [1.0, 1.0]]), "multilabel",
                           weights=tf.constant([1.0, 0.0]))
  assert float(binary) == 0.5
