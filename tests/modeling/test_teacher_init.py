"""Student embeddings from the teacher's principal directions (modeling/teacher_init.py), against NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from modeling import build_encoder
from modeling.config import config_from_dict
from modeling.errors import UserError
from modeling.losses import IntermediateDistillation
from modeling.teacher_init import init_embeddings_from_teacher, principal_directions
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
