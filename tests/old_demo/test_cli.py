"""The command-line scripts `old_demo/run_model.py` and `old_demo/distillation.py`, run as a user runs them.

The refusals call `distillation.run` in this process; `run_script` turning a refusal into one line and exit status 1
is tested in tests/modeling/test_errors.py.
"""

import os
import subprocess
import sys
import types

import pytest

from modeling.errors import UserError
from old_demo import distillation

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(name, *args):
  return subprocess.run([sys.executable, os.path.join("old_demo", name), *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600, check=False, env={**os.environ, "PYTHONPATH": ROOT})


def test_command_line_trains_teacher_then_distils_and_writes_results(tmp_path):
  weights = str(tmp_path / "kd")
  trained = _script("run_model.py", "--arch", "cnn", "--task", "digits", "--weights_dir", weights, "--epochs", "3",
                    "--config", '{"filters": [8]}')
  assert trained.returncode == 0, trained.stderr[-2000:]
  assert "teacher (cnn on digits) test accuracy" in trained.stdout
  result = _script("distillation.py", "--teacher", "cnn", "--student", "mlp", "--task", "digits", "--weights_dir",
                   weights, "--teacher_config", '{"filters": [8]}', "--student_config", '{"hidden_units": [32]}',
                   "--temp", "2", "--a", "0.3", "--b", "0.7", "--epochs", "3", "--seed", "1")
  assert result.returncode == 0, result.stderr[-2000:]
  with open(os.path.join(weights, "results.md")) as f:
    table = f.read()
  assert table == result.stdout
  assert "| teacher (cnn) |" in table and "| student alone (mlp) |" in table
  assert "| student distilled (mlp, T=2, a=0.3, b=0.7) |" in table
  assert os.path.isfile(os.path.join(weights, "student.h5"))


def _flag_values(tmp_path, **overrides):
  """The flags `run` reads, with the command line's defaults."""
  return types.SimpleNamespace(**{
      "teacher": "cnn", "student": "mlp", "task": "digits", "teacher_config": None, "student_config": None,
      "temp": 1.0, "a": 0.5, "b": 0.5, "epochs": 1, "batch_size": 32, "weights_dir": str(tmp_path),
      "train_teacher": False, **overrides})


def test_bad_flags_are_refused_with_one_line_before_anything_is_written(tmp_path):
  out = tmp_path / "weights"
  with pytest.raises(UserError) as refused:
    distillation.run(_flag_values(out, temp=0.0))
  assert str(refused.value) == "temp must be > 0, got 0.0"
  assert not os.path.exists(out)


def test_missing_teacher_weights_are_reported_before_any_training(tmp_path):
  with pytest.raises(UserError, match=r"--weights_dir: .*teacher.h5 not found; train one with old_demo/run_model.py"):
    distillation.run(_flag_values(tmp_path))
