"""Evaluator: the per-epoch dev record, the warning when a model predicts a single class on dev, and the check of
whether the last layer gives every token the same state."""

import logging
import os

import numpy as np
import tensorflow as tf

from modeling import files, load_config
from modeling.evaluation import RESULTS_FILE, Evaluator, common_vector_share
from modeling.models import build_task_model
from tests import tiny


def _evaluator_warnings(caplog) -> list[str]:
  """The warnings the Evaluator logged (not TensorFlow's own, such as its retracing notice)."""
  return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.filename == "evaluation.py"]


def _evaluator(tmp_path):
  data = tiny.task_data(tmp_path / "data", train=8, dev=24, seq_len=8)
  meta = files.read_json(os.path.join(data, "meta.json"))
  model = build_task_model(load_config(tiny.write_config(tmp_path / "config.json")), meta["num_labels"])
  split_files = {s: os.path.join(data, f) for s, f in meta["record_files"].items()}
  return model, Evaluator(model, meta, split_files, str(tmp_path / "out"), 8, 16)


def test_single_class_is_warned_and_recorded(tmp_path, caplog):
  model, evaluator = _evaluator(tmp_path)
  # A head that ignores its input and always prefers class 1.
  model.head.kernel.assign(tf.zeros_like(model.head.kernel))
  model.head.bias.assign([-3.0, 3.0])
  with caplog.at_level(logging.WARNING):
    evaluator.after_epoch("prediction", 2, 10)
  record = files.read_json(str(tmp_path / "out" / RESULTS_FILE))["epochs"][0]
  assert record["single_class"] is True and (record["stage"], record["epoch"]) == ("prediction", 2)
  warnings = _evaluator_warnings(caplog)
  assert warnings == ["[prediction] epoch 2 predicts a single class on dev: every example is '1'"]


def test_two_classes_are_not_flagged(tmp_path, caplog):
  _, evaluator = _evaluator(tmp_path)
  # Logits that follow the input: class 1 when token 5 (the tiny data's label marker) is present.
  evaluator._predict = lambda features: tf.one_hot(
      tf.cast(tf.reduce_any(features["input_word_ids"] == 5, axis=1), tf.int32), 2)
  with caplog.at_level(logging.WARNING):
    evaluator.after_epoch("finetune", 1, 5)
  results = files.read_json(str(tmp_path / "out" / RESULTS_FILE))
  record = results["epochs"][0]
  assert "single_class" not in record
  assert record["accuracy"] == 1.0 and results["best"] == record
  assert not _evaluator_warnings(caplog)
  assert np.isclose(evaluator.evaluate()["accuracy"], 1.0)


def test_common_vector_share_against_the_variance_identity():
  rng = np.random.default_rng(0)
  states = rng.normal(size=(3, 5, 4)) + np.array([2.0, -1.0, 0.0, 0.5])
  mask = np.ones((3, 5))
  mask[1, 3:] = 0
  states[1, 3:] = 1e6  # Padding must not count.
  real = states[mask.astype(bool)]
  # mean |h|^2 = |mean h|^2 + mean |h - mean h|^2, so the share is 1 - spread / energy.
  expected = 1 - np.mean(np.sum((real - real.mean(0)) ** 2, -1)) / np.mean(np.sum(real ** 2, -1))
  assert np.isclose(common_vector_share(states, mask), expected)
  assert np.isclose(common_vector_share(np.tile([[[1.0, 2.0, 3.0]]], (2, 4, 1)), np.ones((2, 4))), 1.0)
  assert np.isclose(common_vector_share(np.array([[[1.0, 0.0], [-1.0, 0.0]]]), np.ones((1, 2))), 0.0)


def test_feature_check_warns_when_every_token_has_the_same_state(tmp_path, caplog):
  _, evaluator = _evaluator(tmp_path)
  with caplog.at_level(logging.WARNING):
    share = evaluator.feature_check("intermediate")
  assert 0 <= share < 0.995 and not _evaluator_warnings(caplog)
  # A last layer that ignores its input: the same state for every token.
  evaluator.model = lambda features, training: {
      "hidden_states": [tf.ones(tf.concat([tf.shape(features["input_word_ids"]), [4]], 0)) * [1.0, 2.0, 0.0, 3.0]]}
  with caplog.at_level(logging.WARNING):
    share = evaluator.feature_check("intermediate", max_examples=10)
  assert np.isclose(share, 1.0)
  (warning,) = _evaluator_warnings(caplog)
  assert warning.startswith("[intermediate] the student's last layer gives every token nearly the same state on dev "
                            "(share of the common vector 1.00000 over 10 examples)")
  assert "--distill_stage prediction" in warning
