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
