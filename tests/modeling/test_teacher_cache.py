"""The teacher-output cache replays exactly what the live teacher computes, and stops calling it after pass 1."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from modeling import teacher_cache
from modeling.config import ModelConfig
from modeling.errors import UserError
from modeling.models import build_task_model
from tests.tiny import TINY

LAYER_MAP = [2, 4]
SEQ = 8


def _teacher(seed=0):
  tf.random.set_seed(seed)
  return build_task_model(ModelConfig(**TINY), num_labels=3)


def _dataset(num_examples=10, batch=4):
  rng = np.random.default_rng(0)
  lengths = rng.integers(3, SEQ + 1, num_examples)
  mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int32)
  features = {"input_word_ids": (rng.integers(1, TINY["vocab_size"], (num_examples, SEQ)) * mask).astype(np.int32),
              "input_mask": mask, "input_type_ids": np.zeros((num_examples, SEQ), np.int32)}
  labels = rng.integers(0, 3, num_examples).astype(np.int32)
  return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch)


def _live(teacher, dataset):
  return [(features, teacher(features, training=False)) for features, _ in dataset]


def _assert_matches_live(cached, live):
  batches = list(cached)
  assert len(batches) == len(live)
  for (features, _, outputs), (live_features, live_outputs) in zip(batches, live):
    np.testing.assert_array_equal(features["input_word_ids"], live_features["input_word_ids"])
    np.testing.assert_allclose(outputs["logits"], live_outputs["logits"], rtol=1e-5, atol=1e-6)
    assert len(outputs["hidden_states"]) == len(LAYER_MAP) + 1
    for cached_hidden, g in zip(outputs["hidden_states"], [0] + LAYER_MAP):
      np.testing.assert_allclose(cached_hidden, live_outputs["hidden_states"][g], rtol=1e-5, atol=1e-6)
    assert len(outputs["attention_logits"]) == len(LAYER_MAP)
    key_mask = features["input_mask"].numpy()[:, None, None, :]  # Only the real keys are stored; the rest are 0.
    for cached_attention, g in zip(outputs["attention_logits"], LAYER_MAP):
      np.testing.assert_allclose(cached_attention, live_outputs["attention_logits"][g - 1] * key_mask, rtol=1e-5,
                                 atol=1e-6)


@pytest.mark.parametrize("storage", ["memory", "folder"])
def test_cached_outputs_equal_live_teacher_and_survive_a_changed_teacher(tmp_path, storage):
  teacher = _teacher()
  dataset = _dataset()
  live = _live(teacher, dataset)
  cached = teacher_cache.cache_teacher_outputs(teacher, dataset, LAYER_MAP, ("logits", "hidden", "attention"),
                                               storage="memory" if storage == "memory" else str(tmp_path),
                                               dtype=tf.float32)
  _assert_matches_live(cached, live)  # First pass: computed by the teacher.
  # Wreck the teacher: the second pass must still give the first pass's outputs, so it reads the cache.
  for variable in teacher.variables:
    variable.assign(tf.zeros_like(variable))
  _assert_matches_live(cached, live)
  if storage == "folder":
    assert glob.glob(os.path.join(tmp_path, "teacher_outputs-*.index"))


def test_folder_cache_is_keyed_by_teacher_weights(tmp_path):
  dataset = _dataset()
  first = _teacher(seed=0)
  list(teacher_cache.cache_teacher_outputs(first, dataset, storage=str(tmp_path)))
  other = _teacher(seed=1)
  cached = teacher_cache.cache_teacher_outputs(other, dataset, storage=str(tmp_path))
  for (_, _, outputs), (_, live_outputs) in zip(cached, _live(other, dataset)):
    np.testing.assert_allclose(outputs["logits"], live_outputs["logits"], rtol=1e-5, atol=1e-6)
  assert len(glob.glob(os.path.join(tmp_path, "teacher_outputs-*.index"))) == 2


def test_fingerprint_covers_the_heads_pooling():
  """The same weights read through a mean-pooled head give other logits, so another file name; a first-token
  teacher's name is what it was before pooling existed (the weights and parts alone)."""
  first = _teacher(seed=0)
  mean = build_task_model(ModelConfig(**TINY, pooling="mean"), num_labels=3)
  mean.set_weights(first.get_weights())
  assert teacher_cache.teacher_fingerprint(mean, "x") != teacher_cache.teacher_fingerprint(first, "x")
  encoder_only = teacher_cache.teacher_fingerprint(first, "x")
  first.pooling = "first_token"
  assert teacher_cache.teacher_fingerprint(first, "x") == encoder_only
  del first.pooling  # Any module without the attribute (an encoder) is fingerprinted the same way.
  assert teacher_cache.teacher_fingerprint(first, "x") == encoder_only


def test_logits_only_and_bfloat16_storage():
  teacher = _teacher()
  dataset = _dataset()
  cached = teacher_cache.cache_teacher_outputs(teacher, dataset, LAYER_MAP, ("logits", "hidden"),
                                               dtype=tf.bfloat16)
  (_, _, outputs), (_, live_outputs) = next(iter(cached)), _live(teacher, dataset)[0]
  assert set(outputs) == {"logits", "hidden_states"}
  assert outputs["logits"].dtype == tf.float32 and outputs["hidden_states"][0].dtype == tf.bfloat16
  np.testing.assert_allclose(tf.cast(outputs["hidden_states"][1], tf.float32), live_outputs["hidden_states"][2],
                             rtol=1e-2, atol=1e-2)
  assert teacher_cache.cached_layer_map(LAYER_MAP) == [1, 2]


def test_size_estimate():
  size = teacher_cache.estimate_cache_bytes(10, 128, num_labels=2, hidden_size=384, num_heads=12,
                                            num_mapped_layers=4, what=("logits", "hidden", "attention"),
                                            dtype=tf.float32)
  assert size == 10 * (2 * 4 + 5 * 128 * 384 * 4 + 4 * 12 * 128 * 128 * 4)
  size = teacher_cache.estimate_cache_bytes(10, 128, num_labels=2, hidden_size=384, num_heads=12,
                                            num_mapped_layers=4, what=("logits", "hidden", "attention"),
                                            mean_length=30)
  assert size == 10 * (2 * 4 + 5 * 128 * 384 * 2 + 4 * 12 * 128 * 30 * 2)


def test_attention_logits_packed_at_real_keys_only():
  rng = np.random.default_rng(1)
  lengths = np.array([3, 8, 1])
  mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int32)
  logits = rng.standard_normal([3, 2, SEQ, SEQ]).astype(np.float32)
  packed = teacher_cache.pack_attention_logits(tf.constant(logits), tf.constant(mask)).numpy()
  expected = np.concatenate([logits[b, :, :, :n].reshape(-1) for b, n in enumerate(lengths)])
  np.testing.assert_array_equal(packed, expected)
  assert packed.size == 2 * SEQ * lengths.sum()
  unpacked = teacher_cache.unpack_attention_logits(tf.constant(packed), tf.constant(mask), 2).numpy()
  np.testing.assert_array_equal(unpacked, logits * mask[:, None, None, :])
  with pytest.raises(tf.errors.InvalidArgumentError, match="input_mask must be 1 for the first tokens"):
    teacher_cache.pack_attention_logits(tf.constant(logits), tf.constant(mask[:, ::-1].copy()))


# float16 keeps 11 significant bits (rounding 4.9e-4 per value); the KL of nearly equal attention distributions
# (about 1e-5 here) magnifies that to a few 1e-3 of relative error, more or less with the thread count.
@pytest.mark.parametrize("dtype,rtol", [(tf.float32, 1e-6), (tf.float16, 5e-3), (tf.bfloat16, 1e-2)])
@pytest.mark.parametrize("attention_loss", ["logits_mse", "kl"])
def test_losses_over_cached_outputs_match_the_live_teacher(dtype, rtol, attention_loss):
  from modeling.losses import IntermediateDistillation, prediction_loss
  teacher = _teacher()
  tf.random.set_seed(5)
  student = build_task_model(ModelConfig(**dict(TINY, hidden_size=8, num_hidden_layers=2)), num_labels=3)
  loss = IntermediateDistillation(8, TINY["hidden_size"], LAYER_MAP, attention_loss)  # One loss, as in train_stage.
  dataset = _dataset()
  cached = teacher_cache.cache_teacher_outputs(teacher, dataset, LAYER_MAP, ("logits", "hidden", "attention"),
                                               dtype=dtype)
  for _ in range(2):  # the pass that fills the cache, and one that reads it
    for features, _, outputs in cached:
      student_outputs = student(features, training=False)
      expected = loss(student_outputs, teacher(features, training=False), features["input_mask"])
      got = loss(student_outputs, outputs, features["input_mask"],
                 teacher_layers=teacher_cache.cached_layer_map(LAYER_MAP))
      for term in ("embedding", "hidden", "attention"):
        np.testing.assert_allclose(got[term], expected[term], rtol=rtol)
      # Logits are cached in float32; the pass that filled the cache may have run other oneDNN kernels (1 ulp).
      np.testing.assert_allclose(prediction_loss(student_outputs["logits"], outputs["logits"]),
                                 prediction_loss(student_outputs["logits"],
                                                 teacher(features, training=False)["logits"]), rtol=1e-6)
  first, _ = next(iter(dataset))
  with pytest.raises(ValueError, match="1 teacher layers for a layer map of 2"):
    loss(student(first, training=False), teacher(first, training=False), first["input_mask"], teacher_layers=[1])


def test_refuses_unknown_parts_and_missing_layer_map():
  teacher, dataset = _teacher(), _dataset()
  with pytest.raises(UserError, match="cannot cache \\['probs'\\]"):
    teacher_cache.cache_teacher_outputs(teacher, dataset, what=("probs",))
  with pytest.raises(UserError, match="needs the layer map"):
    teacher_cache.cache_teacher_outputs(teacher, dataset, what=("attention",))
