"""old_demo_controls: which data each arm trains on, the KD setting it reads, and its summary."""

import dataclasses
import json

import numpy as np
import pytest

from experiments import old_demo_controls as controls
from experiments import old_demo_table as table


@pytest.fixture
def fake(monkeypatch, tmp_path):
  """Tiny mnist-like data and a recorder in place of training."""
  data = table.datasets.TaskData("mnist", "image", "multiclass", [str(i) for i in range(10)],
                                 (np.zeros((4, 3, 3, 1), np.float32), np.arange(4, dtype=np.int32)),
                                 (np.ones((2, 3, 3, 1), np.float32), np.arange(2, dtype=np.int32)),
                                 (np.ones((2, 3, 3, 1), np.float32), np.arange(2, dtype=np.int32)))
  transfer = np.full((8, 3, 3, 1), 2.0, np.float32)
  monkeypatch.setattr(table, "prepare_data", lambda task, experiment: (
      data, transfer, np.tile(data.train[1], 2)))
  monkeypatch.setattr(table, "teacher_outputs", lambda task, data, experiment, cache_dir, transfer: {
      "train_logits": np.zeros((4, 10)), "valid_logits": np.zeros((2, 10)), "transfer_logits": np.zeros((8, 10))})
  calls = []

  def train_student(data, name, config, experiment, seed, teacher=None, kd=None, transfer=None, train=None):
    calls.append({"seed": seed, "kd": kd, "teacher": teacher, "train": train, "transfer": transfer})
    accuracy = 0.9 + 0.01 * seed + (0.05 if kd else 0.0)
    return {"student": name, "seed": seed, "kd": None if kd is None else list(kd), "valid_accuracy": accuracy,
            "test_accuracy": accuracy, "seconds": 1.0}

  monkeypatch.setattr(table, "train_student", train_student)
  monkeypatch.setitem(table.EXPERIMENTS, "mnist", dataclasses.replace(table.EXPERIMENTS["mnist"], transfer_copies=2))
  controls.FLAGS(["prog", f"--output_dir={tmp_path}", f"--cache_dir={tmp_path / 'cache'}"])
  return calls, tmp_path


def test_alone_arm_trains_on_train_plus_the_labelled_transfer_set(fake):
  calls, _ = fake
  result = controls.run_task("mnist", None, 2)
  assert [call["kd"] for call in calls] == [None, None]
  x, y = calls[0]["train"]
  assert x.shape == (12, 3, 3, 1) and (x[4:] == 2.0).all()
  np.testing.assert_array_equal(y, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3])
  assert calls[0]["transfer"] is None  # no unlabelled transfer set: every row carries its label
  assert result["sizes"] == {"train": 4, "transfer": 8}
  assert result["summary"]["mlp"]["alone"]["mean"] == pytest.approx(0.905)
  assert "kd" not in result["summary"]["mlp"]


def test_kd_arm_reads_the_tables_selection_and_the_recorded_teacher(fake):
  calls, out = fake
  with pytest.raises(table.UserError, match="--with_kd reads the KD settings of mnist"):
    controls.run_task("mnist", None, 1, with_kd=True)
  (out / "old_demo_table.json").write_text(json.dumps({"results": {"mnist": {"selections": {"mlp": [4.0, .5, .5]}}}}))
  calls.clear()
  result = controls.run_task("mnist", ["mlp"], 2, with_kd=True)
  assert [call["kd"] for call in calls] == [None, None, (4.0, .5, .5), (4.0, .5, .5)]
  assert isinstance(calls[2]["teacher"], table.RecordedTeacher)
  assert calls[2]["train"][0].shape == (12, 3, 3, 1)
  assert result["summary"]["mlp"]["kd"]["mean"] == pytest.approx(0.955)
  with pytest.raises(table.UserError, match="none of"):
    controls.run_task("mnist", ["bilstm"], 1)
