"""Each TinyBERT loss term against an independent NumPy implementation of the formulas in the README."""

import numpy as np
import pytest
import tensorflow as tf

from modeling import losses
from modeling.errors import UserError

BATCH, SEQ, HEADS = 2, 6, 3


def _mse(a, b):
  return np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)


def _masked_log_softmax(z, key_mask):
  z = np.where(key_mask, z, -1e9)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _numpy_terms(student, teacher, layer_map, mask, kernel, bias, kind):
  project = (lambda h: h @ kernel + bias) if kernel is not None else (lambda h: h)
  key_mask = mask[:, None, None, :].astype(bool)
  embedding = _mse(project(student["hidden_states"][0]), teacher["hidden_states"][0])
  hidden = sum(_mse(project(student["hidden_states"][m]), teacher["hidden_states"][g])
               for m, g in enumerate(layer_map, 1))
  attention = 0.0
  for m, g in enumerate(layer_map, 1):
    s, t = student["attention_logits"][m - 1], teacher["attention_logits"][g - 1]
    if kind == "logits_mse":
      attention += _mse(np.where(key_mask, s, 0), np.where(key_mask, t, 0))
    elif kind == "probs_mse":
      attention += _mse(np.exp(_masked_log_softmax(s, key_mask)) * key_mask,
                        np.exp(_masked_log_softmax(t, key_mask)) * key_mask)
    else:
      log_s, log_t = _masked_log_softmax(s, key_mask), _masked_log_softmax(t, key_mask)
      rows = np.sum(np.exp(log_t) * (log_t - log_s) * key_mask, -1)  # [batch, heads, query]
      query = np.broadcast_to(mask[:, None, :], rows.shape)
      attention += np.sum(rows * query) / np.sum(query)
  return {"embedding": embedding, "hidden": hidden, "attention": attention, "total": embedding + hidden + attention}


def _outputs(rng, layers, width):
  return {"hidden_states": [rng.normal(size=(BATCH, SEQ, width)).astype(np.float32) for _ in range(layers + 1)],
              "attention_logits": [rng.normal(scale=3, size=(BATCH, HEADS, SEQ, SEQ)).astype(np.float32)
                                for _ in range(layers)]}


@pytest.mark.parametrize("teacher_layers, student_layers, spec, expected_map", [
    (12, 4, "uniform", [3, 6, 9, 12]),
    (6, 3, None, [2, 4, 6]),
    (12, 6, "", [2, 4, 6, 8, 10, 12]),
    (6, 4, "2,3,5,6", [2, 3, 5, 6]),
])
@pytest.mark.parametrize("student_width, teacher_width", [(8, 8), (8, 12)])
@pytest.mark.parametrize("kind", losses.ATTENTION_LOSSES)
@pytest.mark.parametrize("masked", [False, True])
def test_terms_match_numpy(teacher_layers, student_layers, spec, expected_map, student_width, teacher_width, kind,
                           masked):
  layer_map = losses.parse_layer_map(spec, teacher_layers, student_layers)
  assert layer_map == expected_map
  rng = np.random.default_rng(teacher_layers * 100 + student_layers)
  student, teacher = _outputs(rng, student_layers, student_width), _outputs(rng, teacher_layers, teacher_width)
  mask = np.ones((BATCH, SEQ), np.int32)
  if masked:
    mask[0, 4:] = 0
    mask[1, 2:] = 0
  module = losses.IntermediateDistillation(student_width, teacher_width, layer_map, attention_loss=kind)
  kernel = bias = None
  if student_width != teacher_width:
    assert len(module.projections) == 1
    kernel = rng.normal(size=(student_width, teacher_width)).astype(np.float32)
    bias = rng.normal(size=(teacher_width,)).astype(np.float32)
    module.projections[0].set_weights([kernel, bias])
  else:
    assert not module.projections  # Identity when the widths match.
  got = module(tf.nest.map_structure(tf.constant, student), tf.nest.map_structure(tf.constant, teacher),
               tf.constant(mask))
  expected = _numpy_terms(student, teacher, layer_map, mask, kernel, bias, kind)
  for term, value in expected.items():
    np.testing.assert_allclose(float(got[term]), value, rtol=1e-6, atol=1e-6, err_msg=term)


def test_masking_changes_the_attention_term():
  rng = np.random.default_rng(1)
  student, teacher = _outputs(rng, 2, 8), _outputs(rng, 2, 8)
  module = losses.IntermediateDistillation(8, 8, [1, 2])
  args = (tf.nest.map_structure(tf.constant, student), tf.nest.map_structure(tf.constant, teacher))
  full = float(module(*args, tf.ones((BATCH, SEQ), tf.int32))["attention"])
  half = float(module(*args, tf.constant([[1] * 3 + [0] * 3] * BATCH))["attention"])
  assert half < full


def test_per_layer_projection_uses_one_matrix_per_layer():
  rng = np.random.default_rng(2)
  student, teacher = _outputs(rng, 2, 4), _outputs(rng, 4, 6)
  module = losses.IntermediateDistillation(4, 6, [2, 4], projection="per_layer")
  assert len(module.projections) == 3
  kernels = [rng.normal(size=(4, 6)).astype(np.float32) for _ in range(3)]
  for dense, kernel in zip(module.projections, kernels):
    dense.set_weights([kernel, np.zeros(6, np.float32)])
  got = module(tf.nest.map_structure(tf.constant, student), tf.nest.map_structure(tf.constant, teacher),
               tf.ones((BATCH, SEQ), tf.int32))
  hidden = _mse(student["hidden_states"][1] @ kernels[1], teacher["hidden_states"][2]) + _mse(
      student["hidden_states"][2] @ kernels[2], teacher["hidden_states"][4])
  np.testing.assert_allclose(float(got["hidden"]), hidden, rtol=1e-6)
  np.testing.assert_allclose(float(got["embedding"]),
                             _mse(student["hidden_states"][0] @ kernels[0], teacher["hidden_states"][0]), rtol=1e-6)


def test_loss_weights_scale_the_total():
  rng = np.random.default_rng(3)
  student, teacher = _outputs(rng, 1, 8), _outputs(rng, 2, 8)
  weights = losses.parse_loss_weights("embedding=0,attention=2.5")
  got = losses.IntermediateDistillation(8, 8, [2], loss_weights=weights)(
      tf.nest.map_structure(tf.constant, student), tf.nest.map_structure(tf.constant, teacher),
      tf.ones((BATCH, SEQ), tf.int32))
  np.testing.assert_allclose(float(got["total"]), float(got["hidden"]) + 2.5 * float(got["attention"]), rtol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_prediction_loss_matches_numpy(temperature):
  rng = np.random.default_rng(4)
  z_s, z_t = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
  p_t = np.exp(z_t / temperature) / np.exp(z_t / temperature).sum(-1, keepdims=True)
  log_p_s = z_s / temperature - np.log(np.exp(z_s / temperature).sum(-1, keepdims=True))
  expected = np.mean(-np.sum(p_t * log_p_s, -1))
  np.testing.assert_allclose(float(losses.prediction_loss(z_s, z_t, temperature)), expected, rtol=1e-6)
  np.testing.assert_allclose(float(losses.prediction_loss(z_s[:, :1], z_t[:, :1], regression=True)),
                             _mse(z_s[:, :1], z_t[:, :1]), rtol=1e-6)


@pytest.mark.parametrize("spec, n, m, message", [
    (None, 6, 4, "needs the teacher's 6 layers to be a multiple of the student's 4"),
    ("1,2", 6, 3, "has 2 entries; the student has 3 layers"),
    ("1,2,7", 6, 3, "entries must be teacher layers 1..6"),
    ("3,2,6", 6, 3, "must not decrease"),
    ("a,b", 6, 2, "expected 'uniform' or a comma-separated list"),
])
def test_layer_map_refusals(spec, n, m, message):
  with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
    losses.parse_layer_map(spec, n, m)


def test_loss_weight_refusals():
  with pytest.raises(UserError, match="unknown term 'hiden'"):
    losses.parse_loss_weights("hiden=1")
  with pytest.raises(UserError, match="is negative"):
    losses.parse_loss_weights("hidden=-1")
