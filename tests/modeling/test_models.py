"""The task model and its checkpoint layout: save, restore, refuse what does not fit, and read the head's size."""

import numpy as np
import pytest
import tensorflow as tf

from modeling.config import config_from_dict
from modeling.errors import UserError
from modeling.models import build_task_model, head_size_in
from tests import tiny


def _config(**overrides):
  return config_from_dict(dict(tiny.TINY, **overrides), source="tiny")


def _features():
  return {"input_word_ids": tf.constant([[2, 9, 11, 3]]), "input_mask": tf.ones([1, 4], tf.int32),
          "input_type_ids": tf.zeros([1, 4], tf.int32)}


def test_checkpoint_round_trip_and_head_size(tmp_path):
  saved = build_task_model(_config(), 3)
  manager = tf.train.CheckpointManager(saved.checkpoint(), str(tmp_path / "best"), max_to_keep=1)
  prefix = manager.save(checkpoint_number=7)
  assert head_size_in(str(tmp_path)) == 3  # An output folder resolves to its best checkpoint.
  loaded = build_task_model(_config(), 3)
  assert loaded.restore(str(tmp_path), "--teacher_ckpt_path") == prefix
  np.testing.assert_allclose(loaded(_features(), training=False)["logits"],
                             saved(_features(), training=False)["logits"], atol=1e-6)


def test_encoder_only_checkpoint_has_no_head_and_is_refused(tmp_path):
  folder = tiny.save_encoder(tiny.write_config(tmp_path / "config.json"), tmp_path / "encoder")
  assert head_size_in(folder) is None
  with pytest.raises(UserError, match=r"^--teacher_ckpt_path .*ckpt-1 does not fit the model"):
    build_task_model(_config(), 2).restore(folder, "--teacher_ckpt_path")


def test_other_config_is_refused(tmp_path):
  prefix = build_task_model(_config(), 2).checkpoint().save(str(tmp_path / "ckpt"))
  with pytest.raises(UserError, match="does not fit the model"):
    build_task_model(_config(hidden_size=32), 2).restore(prefix, "the teacher")


def test_mean_pooling_reads_the_mean_of_the_real_tokens(tmp_path):
  """The head of a `pooling: mean` model is a function of the masked mean of the last layer (NumPy reference), so
  padding does not change it, and the first token is not special."""
  config = _config(pooling="mean")
  model = build_task_model(config, 3)
  features = {"input_word_ids": tf.constant([[2, 9, 11, 3, 0, 0], [2, 7, 3, 0, 0, 0]]),
              "input_mask": tf.constant([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]),
              "input_type_ids": tf.zeros([2, 6], tf.int32)}
  outputs = model(features, training=False)
  last = outputs["sequence_output"].numpy()
  mask = features["input_mask"].numpy()[:, :, None]
  expected = (last * mask).sum(1) / mask.sum(1)
  np.testing.assert_allclose(outputs["pooled_output"], expected, rtol=1e-5, atol=1e-6)
  kernel, bias = model.head.get_weights()
  np.testing.assert_allclose(outputs["logits"], expected @ kernel + bias, rtol=1e-4, atol=1e-5)
  # The same reviews without the padding columns give the same logits.
  trimmed = {"input_word_ids": features["input_word_ids"][:1, :4], "input_mask": features["input_mask"][:1, :4],
             "input_type_ids": features["input_type_ids"][:1, :4]}
  np.testing.assert_allclose(model(trimmed, training=False)["logits"], outputs["logits"][:1], atol=1e-5)
  # A first-token model with the same weights reads something else.
  first = build_task_model(_config(), 3)
  first.set_weights(model.get_weights())
  assert not np.allclose(first(features, training=False)["logits"], outputs["logits"], atol=1e-4)
  # Under bfloat16 the mean is still taken in float32.
  import tf_keras
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    mixed = build_task_model(config, 3)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  assert mixed(features, training=False)["pooled_output"].dtype == tf.float32
  # The pooler gets no gradient under mean pooling (it is left out of the update, not given zeros).
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model(features, training=True)["logits"])
  gradients = dict(zip([v.name for v in model.trainable_variables],
                       tape.gradient(loss, model.trainable_variables)))
  assert {name for name, g in gradients.items() if g is None} == {
      name for name in gradients if "pooler" in name}
