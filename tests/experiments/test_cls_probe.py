"""The [CLS] probe (experiments/cls_probe.py) against NumPy, on a tiny model."""

import numpy as np
import tensorflow as tf

from experiments import cls_probe
from modeling import load_config
from modeling.models import build_task_model
from tests import tiny


def _batches(ids):
  ids = tf.constant(ids, tf.int32)
  features = {"input_word_ids": ids, "input_mask": tf.ones_like(ids), "input_type_ids": tf.zeros_like(ids)}
  return [(features, tf.zeros([ids.shape[0]], tf.int64))]


def test_identical_inputs_have_cosine_one_and_no_logit_spread(tmp_path):
  model = build_task_model(load_config(tiny.write_config(tmp_path / "c.json", hidden_dropout_prob=0.0)), 2)
  result = cls_probe.cls_similarity(model, _batches([[2, 7, 8, 3]] * 4))
  assert np.isclose(result["cls_cosine"], 1.0, atol=1e-5) and np.isclose(result["pooled_cosine"], 1.0, atol=1e-5)
  assert result["logits_std"] < 1e-6


def test_cosine_matches_numpy(tmp_path):
  model = build_task_model(load_config(tiny.write_config(tmp_path / "c.json")), 2)
  batches = _batches([[2, 7, 8, 3], [2, 50, 90, 3], [2, 11, 3, 0]])
  cls = model(batches[0][0], training=False)["hidden_states"][-1][:, 0].numpy()
  unit = cls / np.linalg.norm(cls, axis=1, keepdims=True)
  expected = np.mean([unit[i] @ unit[j] for i in range(3) for j in range(3) if i != j])
  assert np.isclose(cls_probe.cls_similarity(model, batches)["cls_cosine"], expected, atol=1e-5)
