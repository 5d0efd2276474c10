"""Students started from the teacher (modeling/teacher_init.py): projected embeddings and layer copies, vs NumPy."""

import re

import numpy as np
import pytest
import tensorflow as tf

from modeling import build_encoder
from modeling.config import config_from_dict
from modeling.errors import UserError
from modeling.losses import IntermediateDistillation
from modeling.teacher_init import init_embeddings_from_teacher, init_from_teacher, principal_directions
from tests import tiny


def _config(**overrides):
  return config_from_dict(dict(tiny.TINY, **overrides), "test")


def _rank_k_projector(table, k):
  """The orthogonal projector onto the top-k eigenvectors of the rows' covariance (eigh, not SVD)."""
  centered = table.astype(np.float64) - table.mean(axis=0)
  values, vectors = np.linalg.eigh(centered.T @ centered)
  top = vectors[:, np.argsort(values)[::-1][:k]]
  return top @ top.T


def _tables(encoder):
  return [getattr(encoder, n).weights[0].numpy()
          for n in ("_embedding_layer", "_position_embedding_layer", "_type_embedding_layer")]


@pytest.fixture()
def low_rank_teacher():
  """A 16-wide teacher whose token table is rank 8 plus a little noise, with a non-trivial embedding LayerNorm."""
  tf.random.set_seed(0)
  teacher = build_encoder(_config())
  rng = np.random.default_rng(0)
  word = rng.normal(size=(120, 8)) @ rng.normal(size=(8, 16)) + 0.01 * rng.normal(size=(120, 16))
  teacher._embedding_layer.weights[0].assign(word.astype(np.float32))
  teacher._embedding_norm_layer.gamma.assign(rng.uniform(0.5, 1.5, 16).astype(np.float32))
  teacher._embedding_norm_layer.beta.assign(rng.normal(0, 0.3, 16).astype(np.float32))
  return teacher


def test_principal_directions_span_the_top_eigenvectors():
  table = np.random.default_rng(1).normal(size=(200, 12)) * np.linspace(3, 0.1, 12)
  directions = principal_directions(table, 5)
  assert directions.shape == (12, 5)
  np.testing.assert_allclose(directions.T @ directions, np.eye(5), atol=1e-10)
  np.testing.assert_allclose(directions @ directions.T, _rank_k_projector(table, 5), atol=1e-8)


def test_tables_and_projection_match_numpy(low_rank_teacher):
  student = build_encoder(_config(hidden_size=8, intermediate_size=16, num_hidden_layers=2))
  distillation = IntermediateDistillation(8, 16, [2, 4])
  message = init_embeddings_from_teacher(student, low_rank_teacher, distillation)
  assert "top 8 of 16 principal directions" in message and "W_h" in message
  t_word, t_position, t_type = _tables(low_rank_teacher)
  gamma = low_rank_teacher._embedding_norm_layer.gamma.numpy()
  kernel = distillation.projections[0].kernel.numpy()
  projector = _rank_k_projector(t_word, 8)
  # Mapping the student's tables back through W_h (without its LayerNorm scale) gives the rank-8 projection.
  for student_table, teacher_table in zip(_tables(student), (t_word, t_position, t_type)):
    np.testing.assert_allclose(student_table @ (kernel / gamma), teacher_table @ projector, atol=1e-4)
  np.testing.assert_allclose(distillation.projections[0].bias.numpy(),
                             low_rank_teacher._embedding_norm_layer.beta.numpy())


def test_embedding_loss_starts_lower_than_from_random(low_rank_teacher):
  features = {"input_word_ids": tf.constant(np.random.default_rng(2).integers(1, 120, (4, 10)), tf.int32),
              "input_mask": tf.ones([4, 10], tf.int32), "input_type_ids": tf.zeros([4, 10], tf.int32)}
  teacher_outputs = low_rank_teacher(features, training=False)
  losses = {}
  for start in ("random", "teacher"):
    tf.random.set_seed(3)
    student = build_encoder(_config(hidden_size=8, intermediate_size=16, num_hidden_layers=2))
    distillation = IntermediateDistillation(8, 16, [2, 4])
    if start == "teacher":
      init_embeddings_from_teacher(student, low_rank_teacher, distillation)
    losses[start] = float(distillation(student(features, training=False), teacher_outputs,
                                       features["input_mask"])["embedding"])
  assert losses["teacher"] < 0.5 * losses["random"], losses  # 0.25x measured here, 0.24x on MiniLM -> TinyBERT4


def test_equal_width_copies_the_tables(low_rank_teacher):
  student = build_encoder(_config(num_hidden_layers=2))
  init_embeddings_from_teacher(student, low_rank_teacher)
  for student_table, teacher_table in zip(_tables(student), _tables(low_rank_teacher)):
    np.testing.assert_allclose(student_table, teacher_table, atol=1e-6)


@pytest.mark.parametrize("overrides, message", [
    ({"vocab_size": 99}, "same vocab_size: student 99, teacher 120"),
    ({"hidden_size": 32, "intermediate_size": 32}, "wider than the teacher's (16)"),
    ({"model_type": "mobilebert", "hidden_size": 16, "embedding_size": 8, "intra_bottleneck_size": 8},
     "only BERT-family encoders"),
])
def test_refusals(low_rank_teacher, overrides, message):
  student = build_encoder(_config(num_hidden_layers=2, **overrides))
  with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
    init_embeddings_from_teacher(student, low_rank_teacher)


# ---------------------------------------------------------------------------------------------------------------
# init_from_teacher: DistilBERT's layer copy at equal widths.


def _random_encoder(seed, **overrides):
  tf.random.set_seed(seed)
  encoder = build_encoder(_config(**overrides))
  rng = np.random.default_rng(seed)
  for variable in encoder.weights:  # far from the initializer's values, so a missed copy shows
    variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32) + (1.0 if "gamma" in variable.name else 0))
  return encoder


def _encoder_inputs():
  rng = np.random.default_rng(3)
  mask = np.array([[1] * 9 + [0] * 3, [1] * 12], np.int32)
  return {"input_word_ids": tf.constant(rng.integers(1, 120, (2, 12)) * mask, tf.int32),
          "input_mask": tf.constant(mask), "input_type_ids": tf.constant(np.zeros((2, 12), np.int32))}


def _layer_norm(x, gamma, beta, eps=1e-12):
  return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * gamma + beta


def _numpy_block(block, x, mask):
  """One post-LN BERT block in NumPy from the Keras block's variables (tf-models' EinsumDense layouts)."""
  from scipy.special import erf
  v = {re.sub(r"^.*?layer_\d+/", "", w.name.split(":")[0]): w.numpy().astype(np.float64) for w in block.weights}
  q = np.einsum("bsh,hnd->bnsd", x, v["self_attention/query/kernel"]) + v["self_attention/query/bias"][:, None]
  k = np.einsum("bsh,hnd->bnsd", x, v["self_attention/key/kernel"]) + v["self_attention/key/bias"][:, None]
  values = np.einsum("bsh,hnd->bnsd", x, v["self_attention/value/kernel"]) + v["self_attention/value/bias"][:, None]
  logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]) + (1 - mask[:, None, None, :]) * -1e4
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  attended = np.einsum("bnsd,ndh->bsh", probs @ values, v["self_attention/attention_output/kernel"])
  x = _layer_norm(x + attended + v["self_attention/attention_output/bias"], v["self_attention_layer_norm/gamma"],
                  v["self_attention_layer_norm/beta"])
  inner = x @ v["intermediate/kernel"] + v["intermediate/bias"]
  inner = 0.5 * inner * (1 + erf(inner / np.sqrt(2)))
  return _layer_norm(x + inner @ v["output/kernel"] + v["output/bias"], v["output_layer_norm/gamma"],
                     v["output_layer_norm/beta"])


def test_equal_widths_copy_layer_g_of_m_into_layer_m():
  teacher = _random_encoder(0)
  student = _random_encoder(1, num_hidden_layers=2, max_position_embeddings=32)
  message = init_from_teacher(student, teacher, [2, 4])
  assert "teacher layers [2, 4] copied into student layers 1..2" in message
  inputs = _encoder_inputs()
  t_out, s_out = teacher(inputs), student(inputs)
  mask = inputs["input_mask"].numpy().astype(np.float64)
  np.testing.assert_allclose(s_out["hidden_states"][0], t_out["hidden_states"][0], atol=1e-6)
  # Student layer 1 is teacher layer 2: the NumPy block built from the student's layer 1 variables maps the
  # teacher's layer-1 output onto its layer-2 output; on the student's own embeddings it gives the student's layer 1.
  np.testing.assert_allclose(_numpy_block(student._transformer_layers[0], t_out["hidden_states"][1].numpy(), mask),
                             t_out["hidden_states"][2], atol=1e-4)
  np.testing.assert_allclose(_numpy_block(student._transformer_layers[0], s_out["hidden_states"][0].numpy(), mask),
                             s_out["hidden_states"][1], atol=1e-4)
  for s_variable, t_variable in zip(student._transformer_layers[1].weights, teacher._transformer_layers[3].weights):
    np.testing.assert_array_equal(s_variable.numpy(), t_variable.numpy())
  np.testing.assert_array_equal(_tables(student)[1], _tables(teacher)[1][:32])
  np.testing.assert_allclose(s_out["pooled_output"],
                             np.tanh(s_out["hidden_states"][2].numpy()[:, 0] @ teacher._pooler_layer.kernel.numpy()
                                     + teacher._pooler_layer.bias.numpy()), atol=1e-5)


def test_consecutive_map_reproduces_the_teachers_first_layers():
  teacher = _random_encoder(0)
  student = _random_encoder(1, num_hidden_layers=2)
  init_from_teacher(student, teacher, [1, 2])
  inputs = _encoder_inputs()
  t_out, s_out = teacher(inputs), student(inputs)
  for m in range(3):
    np.testing.assert_allclose(s_out["hidden_states"][m], t_out["hidden_states"][m], atol=1e-5)
  for m in range(2):
    np.testing.assert_allclose(s_out["attention_logits"][m], t_out["attention_logits"][m], atol=1e-4)


def test_narrower_student_gets_projected_embeddings_only(low_rank_teacher):
  tf.random.set_seed(2)
  student = build_encoder(_config(hidden_size=8, num_hidden_layers=2, intermediate_size=16))
  before = [w.numpy() for w in student._transformer_layers[0].weights]
  message = init_from_teacher(student, low_rank_teacher, [2, 4])
  assert "principal directions" in message and "layers left at their random start" in message
  np.testing.assert_allclose(_tables(student)[0] @ principal_directions(_tables(low_rank_teacher)[0], 8).T,
                             _tables(low_rank_teacher)[0] @ _rank_k_projector(_tables(low_rank_teacher)[0], 8),
                             atol=1e-4)
  for b, a in zip(before, student._transformer_layers[0].weights):
    np.testing.assert_array_equal(b, a.numpy())


@pytest.mark.parametrize("overrides,layer_map,message", [
    ({"num_attention_heads": 4}, [2, 4], ("equal widths (16) but the student's num_attention_heads is 4 and the "
                                         "teacher's 2")),
    ({"intermediate_size": 24}, [2, 4], "the student's inner_dim is 24 and the teacher's 32"),
    ({"vocab_size": 100}, [2, 4], "needs the student's vocab_size (100) to be the teacher's (120)"),
    ({"max_position_embeddings": 128}, [2, 4], "max_position_embeddings (128) to be the teacher's (64) or fewer"),
    ({"hidden_size": 32}, [2, 4], "the student (32 wide) is wider than the teacher (16)"),
    ({}, [2, 5], "layer map [2, 5] does not map the student's 2 layers onto the teacher's 4"),
    ({"model_type": "albert", "embedding_size": 8}, [2, 4], "the student is not a BERT, RoBERTa or TinyBERT"),
])
def test_init_from_teacher_refusals(overrides, layer_map, message):
  teacher = _random_encoder(0)
  tf.random.set_seed(1)
  student = build_encoder(_config(**dict({"num_hidden_layers": 2}, **overrides)))
  with pytest.raises(UserError, match=re.escape(message)):
    init_from_teacher(student, teacher, layer_map)


# ---------------------------------------------------------------------------------------------------------------
# MPNet has no token-type table: there is nothing of that kind to copy.


def _mpnet(**overrides):
  return build_encoder(config_from_dict(dict(tiny.TINY_MPNET, **overrides), "test"))


def test_mpnet_narrower_student_gets_projected_token_and_position_tables():
  tf.random.set_seed(0)
  teacher, student = _mpnet(), _mpnet(hidden_size=8, intermediate_size=16, num_hidden_layers=2)
  distillation = IntermediateDistillation(8, 16, [2, 4])
  message = init_embeddings_from_teacher(student, teacher, distillation)
  assert "top 8 of 16 principal directions" in message and "W_h" in message
  t_word = teacher._embedding_layer.weights[0].numpy()
  t_position = teacher._position_embedding_layer.weights[0].numpy()
  gamma = teacher._embedding_norm_layer.gamma.numpy()
  kernel = distillation.projections[0].kernel.numpy()
  projector = _rank_k_projector(t_word, 8)
  for student_layer, teacher_table in (("_embedding_layer", t_word), ("_position_embedding_layer", t_position)):
    np.testing.assert_allclose(getattr(student, student_layer).weights[0].numpy() @ (kernel / gamma),
                               teacher_table @ projector, atol=1e-4)


def test_mpnet_teacher_bert_student_leaves_the_students_type_table():
  tf.random.set_seed(0)
  teacher = _mpnet()
  student = build_encoder(_config(hidden_size=8, intermediate_size=16, num_hidden_layers=2))
  before = student._type_embedding_layer.weights[0].numpy()
  init_embeddings_from_teacher(student, teacher)
  np.testing.assert_array_equal(student._type_embedding_layer.weights[0].numpy(), before)
  assert not np.allclose(student._embedding_layer.weights[0].numpy()[:, 0], 0)


def test_mpnet_equal_widths_copy_layers_and_the_relative_bias():
  tf.random.set_seed(0)
  teacher, student = _mpnet(), _mpnet(num_hidden_layers=2)
  inputs = _encoder_inputs()
  teacher(inputs), student(inputs)  # builds the relative position bias
  init_from_teacher(student, teacher, [1, 2])
  t_out, s_out = teacher(inputs), student(inputs)
  for m in range(3):
    np.testing.assert_allclose(s_out["hidden_states"][m], t_out["hidden_states"][m], atol=1e-5)
  for m in range(2):
    np.testing.assert_allclose(s_out["attention_logits"][m], t_out["attention_logits"][m], atol=1e-4)
