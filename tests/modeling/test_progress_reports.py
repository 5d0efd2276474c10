"""Progress reports: slow-unit rates, the default interval, and the reports of int8 calibration, TFLite conversion and
scoring, and the teachers' logits pass."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from modeling import load_config, multi_teacher, progress, records, tflite
from modeling.models import build_task_model
from tests import tiny

SEQ = 8


@pytest.fixture
def lines(logged):
  """`lines(what)`: the messages starting with `what`."""
  return logged


def test_slow_units_show_seconds_per_unit():
  assert progress.progress_line("converting", 1, 3, 12.0, "models") == (
      "converting: 1/3 models (33%), 12.0 s/model, ETA 24s")
  assert progress.progress_line("scoring", 2, None, 5.0, "batches") == "scoring: 2 batches, 2.5 s/batch"
  assert progress.progress_line("x", 3, 4, 3.0, "examples").endswith("1 examples/s, ETA 1s")  # 1/s is not slow


def test_default_interval_and_one_last_line(monkeypatch, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 1e9)
  assert list(progress.progress(range(4), "quiet", total=4, bar=False)) == [0, 1, 2, 3]
  assert not [r for r in caplog.records if r.getMessage().startswith("quiet")]
  monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)
  assert list(progress.progress(range(4), "busy", total=4, bar=False)) == [0, 1, 2, 3]
  # One line per step, and the last one is not repeated.
  assert [r.getMessage().split(" examples")[0] for r in caplog.records if r.getMessage().startswith("busy")] == [
      "busy: 1/4", "busy: 2/4", "busy: 3/4", "busy: 4/4"]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
  root = tmp_path_factory.mktemp("progress")
  data_dir = tiny.task_data(str(root / "data"), train=12, dev=10, seq_len=SEQ)
  tf.random.set_seed(0)
  model = build_task_model(load_config(tiny.write_config(root / "tiny.json", num_hidden_layers=1)), 2)
  return {"root": root, "data_dir": data_dir, "model": model, "meta": records.read_meta(data_dir)}


def test_int8_calibration_conversion_and_scoring_report(task, lines):
  train_file = os.path.join(task["data_dir"], "train.tfrecord")
  calibration = tflite.representative_dataset([train_file], SEQ, num_examples=5)
  content = tflite.convert_tflite(task["model"], SEQ, "int8", calibration)
  # The converter draws every calibration example (once or more): each pass is reported up to 5/5.
  counts = [line.split(": ")[1].split(" ")[0] for line in lines("calibrating int8")]
  assert counts and counts[:5] == ["1/5", "2/5", "3/5", "4/5", "5/5"] and set(counts) == {f"{n}/5" for n in range(1, 6)}
  assert lines("converting to TFLite (int8), calibrating")
  converted = lines("converted to TFLite (int8) in")
  assert len(converted) == 1 and converted[0].endswith(f"{len(content) / 1e6:.1f} MB")
  path = tflite.write_tflite(str(task["root"] / "model_int8.tflite"), content)
  scores = tflite.score_tflite(path, os.path.join(task["data_dir"], "dev.tfrecord"), task["meta"], batch_size=4)
  assert [line.split(" examples")[0] for line in lines("TFLite model_int8.tflite on dev")] == [
      "TFLite model_int8.tflite on dev: 4/10", "TFLite model_int8.tflite on dev: 8/10",
      "TFLite model_int8.tflite on dev: 10/10"]
  assert 0.0 <= scores["accuracy"] <= 1.0


def test_dynamic_conversion_reports_its_time(task, lines):
  tflite.convert_tflite(task["model"], SEQ, "dynamic")
  assert lines("converting to TFLite (dynamic)") == ["converting to TFLite (dynamic)"]
  assert len(lines("converted to TFLite (dynamic) in")) == 1
  assert not lines("calibrating int8")


def test_teacher_logits_pass_reports(task, lines):
  dataset = records.make_dataset([os.path.join(task["data_dir"], "train.tfrecord")], SEQ, 5, label_dtype=tf.int64)
  table = multi_teacher.teacher_logits_table(task["model"], dataset, num_examples=12)
  assert [line.split(" examples")[0] for line in lines("teacher logits")] == [
      "teacher logits: 5/12", "teacher logits: 10/12", "teacher logits: 12/12"]
  expected = np.concatenate([task["model"](f, training=False)["logits"].numpy() for f, _ in dataset])
  np.testing.assert_allclose(table, expected, atol=1e-5)
