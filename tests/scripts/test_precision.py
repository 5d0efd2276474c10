"""Mixed precision in both distillation stages: bfloat16, and float16 with dynamic loss scaling.

General distillation (run_pretraining.py) and task distillation (run_finetuning.py with a teacher that
run_finetuning.py fine-tuned first) each run to the end in both dtypes on tiny models, with finite losses that go
down in every stage. float16 runs must carry a loss scale in their checkpoints; bfloat16 needs none. The runs call
each script's `main` in this process (`tiny.run_main`).
"""

import json
import math
import os
import re

import pytest
import tensorflow as tf

import run_finetuning
import run_pretraining
from tests import tiny

DTYPES = ("bfloat16", "float16")
PROGRESS = re.compile(r"\[(\w+)\] step (\d+)/\d+ \| (.*?) \| [\d.]+ examples/s")
LOSS_SCALE = "optimizer/loss_scale/current_loss_scale/.ATTRIBUTES/VARIABLE_VALUE"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """General distillation in each dtype, a float32 teacher fine-tuned on the task, then task distillation."""
  d = tmp_path_factory.mktemp("precision")
  teacher_config = tiny.write_config(d / "teacher.json", num_hidden_layers=2, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
  student_config = tiny.write_config(d / "student.json", num_hidden_layers=1, hidden_size=8, intermediate_size=16)
  general = [f"--data_dir={tiny.pretraining_data(d / 'pretraining_data')}", f"--config_path={student_config}",
             f"--teacher_config_path={teacher_config}",
             f"--teacher_ckpt_path={tiny.save_encoder(teacher_config, d / 'general_teacher')}",
             "--max_seq_length=16", "--batch_size=8", "--epochs=1", "--steps_per_epoch=12", "--steps_per_loop=4",
             "--warmup_steps=2", "--learning_rate=3e-3", "--seed=5"]
  task = ["--task_name=tiny", f"--data_dir={tiny.task_data(d / 'task_data', train=256, dev=32)}",
          "--max_seq_length=16", "--batch_size=16", "--steps_per_loop=16", "--learning_rate=1e-2", "--seed=5",
          "--export_dir=-"]
  outs = {f"general_{dtype}": str(d / f"general_{dtype}") for dtype in DTYPES}
  outs.update({f"task_{dtype}": str(d / f"task_{dtype}") for dtype in DTYPES}, teacher=str(d / "task_teacher"))
  logs = {}
  for dtype in DTYPES:
    logs[f"general_{dtype}"] = tiny.run_main(run_pretraining, *general, f"--output_dir={outs[f'general_{dtype}']}",
                                             f"--dtype={dtype}")
  logs["teacher"] = tiny.run_main(run_finetuning, *task, f"--output_dir={outs['teacher']}",
                                  f"--config_path={teacher_config}", "--epochs=8", "--warmup_proportion=0.05")
  for dtype in DTYPES:
    logs[f"task_{dtype}"] = tiny.run_main(
        run_finetuning, *task, f"--output_dir={outs[f'task_{dtype}']}", f"--config_path={student_config}",
        f"--teacher_config_path={teacher_config}", f"--teacher_ckpt_path={outs['teacher']}",
        "--intermediate_epochs=4", "--prediction_epochs=3", f"--dtype={dtype}")
  return outs, logs


def _progress(log):
  """{stage: [(step, {term: value})]} from the progress lines of a log."""
  stages = {}
  for stage, step, terms in PROGRESS.findall(log):
    values = {name: float(value) for name, value in re.findall(r"(\w+) (\S+)", terms)}
    stages.setdefault(stage, []).append((int(step), values))
  return stages


def _has_loss_scale(checkpoint_dir):
  names = [name for name, _ in tf.train.list_variables(tf.train.latest_checkpoint(checkpoint_dir))]
  if LOSS_SCALE not in names:
    return False
  scale = tf.train.load_checkpoint(tf.train.latest_checkpoint(checkpoint_dir)).get_tensor(LOSS_SCALE)
  assert math.isfinite(scale) and scale >= 1, scale
  return True


@pytest.mark.parametrize("dtype", DTYPES)
def test_general_distillation(runs, dtype):
  out = runs[0][f"general_{dtype}"]
  with open(os.path.join(out, "training_summary.json")) as f:
    summary = json.load(f)
  assert summary["dtype"] == dtype and summary["global_step"] == 12
  history = summary["history"]
  assert [h["step"] for h in history] == [4, 8, 12]
  assert all(math.isfinite(h[term]) for h in history for term in ("embedding", "hidden", "attention", "total"))
  assert history[-1]["total"] < history[0]["total"]
  assert _has_loss_scale(os.path.join(out, "checkpoints")) == (dtype == "float16")


def test_teacher_for_task_distillation_learned(runs):
  with open(os.path.join(runs[0]["teacher"], "eval_results.json")) as f:
    assert json.load(f)["best"]["accuracy"] > 0.7  # Whether token 5 occurs: a teacher worth distilling.


@pytest.mark.parametrize("dtype", DTYPES)
def test_task_distillation(runs, dtype):
  out = runs[0][f"task_{dtype}"]
  progress = _progress(runs[1][f"task_{dtype}"])
  assert [step for step, _ in progress["intermediate"]] == [16, 32, 48, 64]
  assert [step for step, _ in progress["prediction"]] == [16, 32, 48]
  for stage, lines in progress.items():
    assert all(math.isfinite(v) for _, terms in lines for v in terms.values()), stage
    assert lines[-1][1]["total"] < lines[0][1]["total"], stage
  with open(os.path.join(out, "training_summary.json")) as f:
    summary = json.load(f)
  assert summary["dtype"] == dtype
  assert [s["stage"] for s in summary["stages"]] == ["intermediate", "prediction"]
  with open(os.path.join(out, "eval_results.json")) as f:
    assert json.load(f)["best"]["accuracy"] > 0.7  # The student learned the task from the teacher.
  for checkpoint_dir in (os.path.join(out, "intermediate", "checkpoints"), os.path.join(out, "checkpoints")):
    assert _has_loss_scale(checkpoint_dir) == (dtype == "float16"), checkpoint_dir
