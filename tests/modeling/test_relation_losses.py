"""MiniLM v1 and v2 terms against a NumPy implementation of the papers' formulas, with padding masks, and the checks
on `--intermediate_loss`, `--relation_heads` and `--minilm_teacher_layer`."""

import numpy as np
import pytest
import tensorflow as tf

from modeling import relation_losses
from modeling.config import config_from_dict
from modeling.encoders import build_encoder
from modeling.errors import UserError
from modeling.losses import IntermediateDistillation
from modeling.relation_losses import MiniLMDistillation, parse_intermediate_loss

BATCH, SEQ = 3, 7
BASE = {"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 24, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 32, "type_vocab_size": 2,
        "initializer_range": 0.2}


def _mask():
  mask = np.ones((BATCH, SEQ), np.int32)
  mask[1, 4:] = 0
  mask[2, 2:] = 0
  return mask


def _kl_rows_mean(teacher_scores, student_scores, mask):
  """KL(p_T‖p_S) per (batch, head, query) row, padded keys out of the softmax, averaged over real query rows."""
  keys = mask[:, None, None, :].astype(bool)

  def log_softmax(z):
    z = np.where(keys, np.asarray(z, np.float64), -np.inf)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))

  log_t, log_s = log_softmax(teacher_scores), log_softmax(student_scores)
  with np.errstate(invalid="ignore"):  # -inf - -inf at padded keys, which np.where drops.
    rows = np.where(keys, np.exp(log_t) * (log_t - log_s), 0).sum(-1)  # [batch, heads, query]
  real = np.broadcast_to(mask[:, None, :].astype(bool), rows.shape)
  return rows[real].mean()


def _relations(x, relation_heads=None):
  """softmax logits X·Xᵀ/√d; with R, the heads are concatenated first ([b, s, h*d]) and cut into R slices."""
  x = np.asarray(x, np.float64)
  if relation_heads:
    concatenated = np.concatenate([x[:, h] for h in range(x.shape[1])], axis=-1)  # [batch, seq, heads*dim]
    x = np.stack(np.split(concatenated, relation_heads, axis=-1), axis=1)
  return x @ np.swapaxes(x, -1, -2) / np.sqrt(x.shape[-1])


def _qkv(rng, layers, heads, head_dim):
  return [tuple(rng.normal(scale=2, size=(BATCH, heads, SEQ, head_dim)).astype(np.float32) for _ in range(3))
          for _ in range(layers)]


def _outputs(rng, layers, heads, head_dim):
  qkv = _qkv(rng, layers, heads, head_dim)
  logits = [np.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(head_dim) for q, k, _ in qkv]
  return {"attention_qkv": qkv, "attention_logits": logits}


def _to_tf(outputs):
  return tf.nest.map_structure(tf.constant, outputs)


@pytest.mark.parametrize("student_heads, student_dim, teacher_heads, teacher_dim, relation_heads", [
    (2, 4, 3, 4, 2),    # different head counts and widths: 8 and 12
    (3, 4, 2, 6, 4),    # same width 12, different head counts
    (4, 6, 4, 8, 8),    # R above the head count: 24 and 32
    (2, 8, 2, 8, 1),    # one relation head over the whole width
])
@pytest.mark.parametrize("teacher_layer", [1, 3])
def test_minilmv2_terms_match_numpy(student_heads, student_dim, teacher_heads, teacher_dim, relation_heads,
                                    teacher_layer):
  rng = np.random.default_rng(student_heads * 10 + teacher_dim)
  student, teacher = _outputs(rng, 2, student_heads, student_dim), _outputs(rng, 3, teacher_heads, teacher_dim)
  mask = _mask()
  weights = {"query_relation": 1.0, "key_relation": 0.5, "value_relation": 2.0}
  got = MiniLMDistillation("minilmv2", teacher_layer, relation_heads, weights)(
      _to_tf(student), _to_tf(teacher), tf.constant(mask))
  expected = {}
  for index, name in enumerate(("query_relation", "key_relation", "value_relation")):
    expected[name] = _kl_rows_mean(_relations(teacher["attention_qkv"][teacher_layer - 1][index], relation_heads),
                                   _relations(student["attention_qkv"][-1][index], relation_heads), mask)
  expected["total"] = sum(weights[name] * expected[name] for name in weights)
  assert sorted(got) == sorted(expected)
  for name, value in expected.items():
    assert value > 1e-3
    np.testing.assert_allclose(got[name].numpy(), value, rtol=1e-4, err_msg=name)


@pytest.mark.parametrize("heads, student_dim, teacher_dim", [(2, 4, 6), (3, 8, 8)])
def test_minilm_v1_terms_match_numpy(heads, student_dim, teacher_dim):
  rng = np.random.default_rng(heads + student_dim)
  student, teacher = _outputs(rng, 3, heads, student_dim), _outputs(rng, 2, heads, teacher_dim)
  mask = _mask()
  got = MiniLMDistillation("minilm", 2)(_to_tf(student), _to_tf(teacher), tf.constant(mask))
  attention = _kl_rows_mean(teacher["attention_logits"][1], student["attention_logits"][-1], mask)
  value = _kl_rows_mean(_relations(teacher["attention_qkv"][1][2]), _relations(student["attention_qkv"][-1][2]),
                        mask)
  np.testing.assert_allclose(got["attention"].numpy(), attention, rtol=1e-4)
  np.testing.assert_allclose(got["value_relation"].numpy(), value, rtol=1e-4)
  np.testing.assert_allclose(got["total"].numpy(), attention + value, rtol=1e-4)


def test_padding_is_ignored_on_both_sides():
  """Changing what sits at padded positions changes neither side's relations over the real tokens."""
  rng = np.random.default_rng(0)
  student, teacher = _outputs(rng, 1, 2, 4), _outputs(rng, 1, 4, 4)
  mask = _mask()
  loss = MiniLMDistillation("minilmv2", 1, 4)
  before = loss(_to_tf(student), _to_tf(teacher), tf.constant(mask))
  padded = mask[:, None, :, None] == 0
  for outputs in (student, teacher):
    outputs["attention_qkv"] = [tuple(np.where(padded, 100.0, x).astype(np.float32) for x in layer)
                                for layer in outputs["attention_qkv"]]
  after = loss(_to_tf(student), _to_tf(teacher), tf.constant(mask))
  for name in before:
    np.testing.assert_allclose(after[name].numpy(), before[name].numpy(), rtol=1e-5)
  unmasked = loss(_to_tf(student), _to_tf(teacher), tf.ones_like(mask))
  assert abs(float(unmasked["total"]) - float(before["total"])) > 1e-2


def test_split_relation_heads_concatenates_then_splits():
  x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)  # 3 heads of 4: width 12
  got = relation_losses.split_relation_heads(tf.constant(x), 2).numpy()
  assert got.shape == (2, 2, 5, 6)
  np.testing.assert_array_equal(got[:, 0], np.concatenate([x[:, 0], x[:, 1, :, :2]], -1))
  np.testing.assert_array_equal(got[:, 1], np.concatenate([x[:, 1, :, 2:], x[:, 2]], -1))


def _config(**overrides):
  return config_from_dict(dict(BASE, **overrides), source=f"{overrides}")


def test_student_with_other_heads_and_width_learns_from_encoder_outputs():
  """End to end on real encoders: 4 heads of 4 (16 wide) learns from 2 heads of 12 (24 wide), 3 layers."""
  student_config = _config(num_attention_heads=4)
  teacher_config = _config(hidden_size=24, num_hidden_layers=3)
  spec = parse_intermediate_loss("minilmv2", student_config, teacher_config, relation_heads=4, teacher_layer=2)
  assert spec.needs_qkv and spec.terms == ("query_relation", "key_relation", "value_relation")
  tf.random.set_seed(3)
  student = build_encoder(student_config, expose_qkv=spec.needs_qkv)
  teacher = build_encoder(teacher_config, expose_qkv=spec.needs_qkv)
  loss = spec.build(student_config, teacher_config)
  rng = np.random.default_rng(1)
  mask = _mask()
  inputs = {"input_word_ids": tf.constant(rng.integers(1, 50, (BATCH, SEQ)), tf.int32),
            "input_mask": tf.constant(mask), "input_type_ids": tf.zeros((BATCH, SEQ), tf.int32)}
  teacher_outputs = teacher(inputs, training=False)
  with tf.GradientTape() as tape:
    student_outputs = student(inputs, training=True)
    terms = loss(student_outputs, teacher_outputs, inputs["input_mask"])
  s_q, _, _ = (x.numpy() for x in student_outputs["attention_qkv"][-1])
  t_q, _, _ = (x.numpy() for x in teacher_outputs["attention_qkv"][1])
  np.testing.assert_allclose(terms["query_relation"].numpy(),
                             _kl_rows_mean(_relations(t_q, 4), _relations(s_q, 4), mask), rtol=1e-4)
  gradients = tape.gradient(terms["total"], student.trainable_variables)
  reached = {v.name for v, g in zip(student.trainable_variables, gradients) if g is not None}
  assert any("transformer/layer_1/self_attention/query" in name for name in reached), sorted(reached)
  assert not any("pooler" in name for name in reached)
  for variable, gradient in zip(student.trainable_variables, gradients):  # One small gradient step helps.
    if gradient is not None:
      variable.assign_sub(0.05 * tf.convert_to_tensor(gradient))
  after = loss(student(inputs, training=True), teacher_outputs, inputs["input_mask"])["total"]
  assert float(after) < float(terms["total"])


def test_tinybert_choice_builds_the_layer_mapped_losses():
  student, teacher = _config(hidden_size=8), _config(num_hidden_layers=4)
  spec = parse_intermediate_loss("tinybert", student, teacher, layer_map="uniform", loss_weights="hidden=2")
  assert not spec.needs_qkv and spec.layer_map == [2, 4] and spec.loss_weights["hidden"] == 2
  layer = spec.build(student, teacher)
  assert isinstance(layer, IntermediateDistillation) and len(layer.projections) == 1


def test_defaults_are_the_teachers_last_layer_and_head_count():
  spec = parse_intermediate_loss("minilmv2", _config(num_attention_heads=4), _config(num_hidden_layers=6))
  assert (spec.teacher_layer, spec.relation_heads) == (6, 2)
  assert parse_intermediate_loss("minilm", _config(), _config(num_hidden_layers=3)).teacher_layer == 3


@pytest.mark.parametrize("kind, student, teacher, options, message", [
    ("minilmv3", {}, {}, {}, "--intermediate_loss='minilmv3'; choose one of tinybert, minilm, minilmv2"),
    ("tinybert", {"num_attention_heads": 4}, {}, {},
     "--intermediate_loss=tinybert compares attention heads one to one, but the student has 4 heads"),
    ("minilm", {"num_attention_heads": 4}, {}, {}, "--intermediate_loss=minilmv2 works with any head count"),
    ("minilmv2", {"hidden_size": 12, "num_attention_heads": 3}, {}, {"relation_heads": 8},
     "--relation_heads=8 does not divide the student's attention width 12"),
    ("minilmv2", {}, {"hidden_size": 20}, {"relation_heads": 8},
     "--relation_heads=8 does not divide the teacher's attention width 20"),
    ("minilmv2", {}, {}, {"relation_heads": -2}, "--relation_heads=-2 must be positive"),
    ("minilmv2", {}, {}, {"teacher_layer": 3}, "--minilm_teacher_layer=3 is out of range: the teacher"),
    ("minilm", {}, {}, {"teacher_layer": -1}, "--minilm_teacher_layer=-1 is out of range"),
    ("minilmv2", {}, {}, {"loss_weights": "hidden=1"},
     "--loss_weights: unknown term 'hidden'; terms: query_relation, key_relation, value_relation"),
])
def test_refusals_name_the_flag(kind, student, teacher, options, message):
  with pytest.raises(UserError) as error:
    parse_intermediate_loss(kind, _config(**student), _config(**teacher), **options)
  assert message in str(error.value)
  assert "\n" not in str(error.value)
