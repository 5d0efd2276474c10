"""Multi-replica general distillation on one machine, run as it would be on a cluster.

`mirrored` runs over two logical CPU devices (`--cpu_devices=2`); `multi_worker_mirrored` runs as two worker
processes talking over loopback, each with its own `TF_CONFIG`. Both must give the losses of `one_device` on the
same global batches: dropout is off, the seed is fixed, and every replica gets its slice of the same global batch.
A resumed `mirrored` run must continue exactly as the uninterrupted one.

Tolerance: relative 1e-5 per logged term (absolute 1e-9 for the near-zero attention term of random tiny models).
The two runs do the same arithmetic except the order of float32 sums: a replica sums the gradient over its half of
the batch and the all-reduce adds the halves, where one device sums the whole batch at once (a 1e-7 relative
difference per step), and Adam's normalisation can enlarge such a difference in near-zero gradients over steps.
Measured on CPU: no difference at all (the losses are bitwise equal). On GPUs, NCCL's sum order differs, hence the
margin. The margin is tight enough to catch a real mistake: clipping each replica's gradient before the all-reduce
(what the tf-models AdamW does on its own) moved the total loss by 1.3e-4 relative after 10 steps.
"""

import json
import os
import shutil
import socket

import pytest
import tensorflow as tf

from tests import tiny

TERMS = ("embedding", "hidden", "attention", "total")
REL_TOLERANCE, ABS_TOLERANCE = 1e-5, 1e-9
STEPS, STEPS_PER_LOOP = 10, 5


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _summary(out):
  with open(os.path.join(out, "training_summary.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """`one_device`, `mirrored`, two `multi_worker_mirrored` workers and a resumed `mirrored` run, side by side."""
  d = tmp_path_factory.mktemp("distribution")
  no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
  teacher_config = tiny.write_config(d / "teacher.json", num_hidden_layers=2, **no_dropout)
  student_config = tiny.write_config(d / "student.json", num_hidden_layers=1, hidden_size=8, intermediate_size=16,
                                     **no_dropout)
  common = [f"--data_dir={tiny.pretraining_data(d / 'data')}", f"--config_path={student_config}",
            f"--teacher_config_path={teacher_config}",
            f"--teacher_ckpt_path={tiny.save_encoder(teacher_config, d / 'teacher')}",
            "--max_seq_length=16", "--batch_size=8", "--epochs=1", f"--steps_per_epoch={STEPS}",
            f"--steps_per_loop={STEPS_PER_LOOP}", "--save_checkpoint_steps=5", "--warmup_steps=2",
            "--learning_rate=3e-3", "--seed=7"]
  outs = {name: str(d / name) for name in ("one_device", "mirrored", "multi_worker")}
  cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
  with tiny.Scripts(d) as scripts:
    scripts.start("one_device", "run_pretraining.py", *common, f"--output_dir={outs['one_device']}")
    scripts.start("mirrored", "run_pretraining.py", *common, f"--output_dir={outs['mirrored']}",
                  "--distribution_strategy=mirrored", "--cpu_devices=2")
    for index in range(2):
      tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
      scripts.start(f"worker_{index}", "run_pretraining.py", *common, f"--output_dir={outs['multi_worker']}",
                    "--distribution_strategy=multi_worker_mirrored", env={"TF_CONFIG": json.dumps(tf_config)})
    codes = scripts.wait("mirrored", timeout=900)
    if codes["mirrored"] == 0:  # Resume a copy of the mirrored run from step 5, while the workers still run.
      outs["mirrored_resumed"] = _stopped_at_step_5(outs["mirrored"], str(d / "mirrored_resumed"))
      scripts.start("mirrored_resumed", "run_pretraining.py", *common, f"--output_dir={outs['mirrored_resumed']}",
                    "--distribution_strategy=mirrored", "--cpu_devices=2")
    codes.update(scripts.wait(timeout=900))
  for name, code in codes.items():
    assert code == 0, f"{name} exited with {code}:\n{scripts.log(name)[-3000:]}"
  return outs, scripts


def _stopped_at_step_5(out, copy):
  """A copy of the output folder `out` as if its run had stopped right after saving step 5."""
  shutil.copytree(out, copy)
  ckpt_dir = os.path.join(copy, "checkpoints")
  for name in os.listdir(ckpt_dir):
    if name.startswith("ckpt-10"):
      os.remove(os.path.join(ckpt_dir, name))
  tf.compat.v1.train.update_checkpoint_state(ckpt_dir, os.path.join(ckpt_dir, "ckpt-5"))
  os.remove(os.path.join(copy, "training_summary.json"))
  return copy


def _assert_same_losses(history, reference):
  assert [h["step"] for h in history] == [h["step"] for h in reference] == [5, 10]
  for h, r in zip(history, reference):
    for term in TERMS:
      assert h[term] == pytest.approx(r[term], rel=REL_TOLERANCE, abs=ABS_TOLERANCE), (h["step"], term)


def test_mirrored_on_two_cpu_devices_matches_one_device(runs):
  outs, scripts = runs
  summary = _summary(outs["mirrored"])
  assert summary["replicas"] == 2 and summary["distribution_strategy"] == "mirrored"
  assert "CPU:1" in scripts.log("mirrored")  # The second logical device took part.
  _assert_same_losses(summary["history"], _summary(outs["one_device"])["history"])
  assert summary["history"][-1]["total"] < summary["history"][0]["total"]


def test_two_workers_match_one_device(runs):
  outs, _ = runs
  summary = _summary(outs["multi_worker"])
  assert summary["replicas"] == 2 and summary["distribution_strategy"] == "multi_worker_mirrored"
  _assert_same_losses(summary["history"], _summary(outs["one_device"])["history"])


def test_only_the_chief_writes_the_outputs(runs):
  outs, scripts = runs
  out = outs["multi_worker"]
  assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("ckpt-10")
  assert os.listdir(os.path.join(out, "summaries", "general"))
  # The other worker saves too (saving takes part in collectives) but into a folder of its own.
  assert tf.train.latest_checkpoint(os.path.join(out, ".workers", "worker_1")).endswith("ckpt-10")
  assert sorted(os.listdir(out)) == [".workers", "checkpoints", "config.json", "summaries", "training_summary.json"]
  assert "step 10/10" in scripts.log("worker_0") and "step 10/10" in scripts.log("worker_1")


def test_mirrored_resumes_at_the_exact_input_position(runs):
  # A distributed iterator is not checkpointable: on resume the input is rebuilt and skips the batches done.
  outs, scripts = runs
  assert "resumed from" in scripts.log("mirrored_resumed")
  resumed = _summary(outs["mirrored_resumed"])
  # The summary holds the whole run's history: the loop before the resume and the one after it.
  assert resumed["resumed_from_step"] == 5 and [h["step"] for h in resumed["history"]] == [5, 10]
  uninterrupted = _summary(outs["mirrored"])["history"][-1]
  for term in TERMS:
    assert resumed["history"][-1][term] == pytest.approx(uninterrupted[term], rel=REL_TOLERANCE, abs=ABS_TOLERANCE)
