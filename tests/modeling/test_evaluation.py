"""Evaluator: the per-epoch dev record, and the warning when a model predicts a single class on dev."""

import logging
import os

import numpy as np
import tensorflow as tf

from modeling import files, load_config
from modeling.evaluation import RESULTS_FILE, Evaluator
from modeling.models import build_task_model
from tests import tiny


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
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
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
  assert not [r for r in caplog.records if r.levelno == logging.WARNING]
  assert np.isclose(evaluator.evaluate()["accuracy"], 1.0)
