"""run_finetuning.py on tiny models: plain fine-tuning (teacher making), both distillation stages, export, refusals."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests import tiny

COMMON = ["--task_name=tiny", "--max_seq_length=16", "--batch_size=16", "--seed=3", "--steps_per_loop=4"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  d = tmp_path_factory.mktemp("finetuning")
  no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
  return {"dir": d, "data": tiny.task_data(d / "data", train=256, dev=64),
              "teacher_config": tiny.write_config(d / "teacher.json", **no_dropout),
              "student_config": tiny.write_config(d / "student.json", num_hidden_layers=2, hidden_size=8,
                                               intermediate_size=16, **no_dropout)}


def _run(setup, *args):
  result = tiny.run_script("run_finetuning.py", *COMMON, f"--data_dir={setup['data']}", *args)
  return result


@pytest.fixture(scope="module")
def teacher(setup):
  out = str(setup["dir"] / "teacher")
  result = _run(setup, f"--output_dir={out}", f"--config_path={setup['teacher_config']}", "--epochs=8",
                "--learning_rate=1e-2", "--warmup_proportion=0.05", "--export_dir=-")
  assert result.returncode == 0, result.stderr[-3000:]
  return out


@pytest.fixture(scope="module")
def student(setup, teacher):
  out = str(setup["dir"] / "student")
  result = _run(setup, f"--output_dir={out}", f"--config_path={setup['student_config']}",
                f"--teacher_config_path={setup['teacher_config']}", f"--teacher_ckpt_path={teacher}",
                "--intermediate_epochs=3", "--prediction_epochs=6", "--learning_rate=1e-2", "--export_tflite")
  assert result.returncode == 0, result.stderr[-3000:]
  return out, result


def _json(path):
  with open(path) as f:
    return json.load(f)


def test_plain_finetuning_learns_and_writes_outputs(teacher):
  results = _json(os.path.join(teacher, "eval_results.json"))
  assert [r["epoch"] for r in results["epochs"]] == list(range(1, 9))
  assert results["best"]["accuracy"] == max(r["accuracy"] for r in results["epochs"])
  assert results["best"]["accuracy"] > 0.8  # The label is whether token 5 occurs: easy for a trained model.
  assert tf.train.latest_checkpoint(os.path.join(teacher, "best"))
  with open(os.path.join(teacher, "test_predictions.tsv")) as f:
    rows = f.read().splitlines()
  assert rows[0] == "index\tprediction\tlabel" and len(rows) == 65
  assert "test" in results and 0 <= results["test"]["accuracy"] <= 1


def test_distillation_runs_both_stages(student, setup):
  out, result = student
  summary = _json(os.path.join(out, "training_summary.json"))
  assert [s["stage"] for s in summary["stages"]] == ["intermediate", "prediction"]
  assert set(summary["stages"][0]["final_losses"]) == {"embedding", "hidden", "attention", "total"}
  assert "prediction" in summary["stages"][1]["final_losses"]
  assert tf.train.latest_checkpoint(os.path.join(out, "intermediate", "checkpoints"))
  results = _json(os.path.join(out, "eval_results.json"))
  assert [r["stage"] for r in results["epochs"]] == ["prediction"] * 6
  assert results["best"]["accuracy"] > 0.6
  for name in ("config.json", "test_predictions.tsv", "model.tflite", os.path.join("saved_model", "saved_model.pb")):
    assert os.path.exists(os.path.join(out, name)), name
  assert "[intermediate] step" in result.stderr and "[prediction] step" in result.stderr


def test_export_agrees_with_checkpoint(student, setup):
  from modeling import load_config, records
  from modeling.models import build_task_model
  out = student[0]
  model = build_task_model(load_config(setup["student_config"]), 2)
  model.restore(os.path.join(out, "best"), "best")
  features, _ = next(iter(records.make_dataset([os.path.join(setup["data"], "dev.tfrecord")], 16, 8,
                                               label_dtype=tf.int64)))
  expected = tf.nn.softmax(model(features, training=False)["logits"]).numpy()
  loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
  got = loaded.signatures["serve_ids"](**features)["probabilities"].numpy()
  np.testing.assert_allclose(got, expected, atol=1e-5)
  interpreter = tf.lite.Interpreter(model_path=os.path.join(out, "model.tflite"))
  interpreter.allocate_tensors()
  runner = interpreter.get_signature_runner()
  names = sorted(interpreter.get_signature_list()["serving_default"]["inputs"])
  row = {name: features[key][:1].numpy() for name, key in zip(names, sorted(records.FEATURES))}
  tflite = next(iter(runner(**row).values()))
  np.testing.assert_allclose(tflite[0], expected[0], atol=1e-4)


def test_teacher_output_folder_chains_as_ckpt_path(setup, teacher):
  from modeling import load_config
  from modeling.checkpoints import restore_encoder
  from modeling.encoders import build_encoder
  encoder = build_encoder(load_config(setup["teacher_config"]))
  assert "best" in restore_encoder(encoder, load_config(setup["teacher_config"]), teacher)


@pytest.mark.parametrize("case, message", [
    ("task", "was prepared for task 'tiny'"),
    ("seq", "max_seq_length=32 but"),
    ("labels", "the teacher's head has 2 outputs but task tiny has 3 labels"),
    ("headless", "has no task head"),
    ("vocab_missing", "--vocab_file: not found: /nonexistent/vocab.txt"),
    ("vocab_other", "is not the vocab the data was prepared with"),
])
def test_refusals(setup, teacher, case, message):
  d = setup["dir"]
  args = [f"--output_dir={d / 'refused'}", f"--config_path={setup['student_config']}",
          f"--teacher_config_path={setup['teacher_config']}", f"--teacher_ckpt_path={teacher}"]
  extra = []
  if case == "task":
    extra = ["--task_name=sst-2"]
  elif case == "seq":
    extra = ["--max_seq_length=32"]
  elif case == "labels":
    extra = [f"--data_dir={tiny.task_data(d / 'three', train=16, dev=8, num_labels=3)}"]
  elif case == "headless":
    args[-1] = f"--teacher_ckpt_path={tiny.save_encoder(setup['teacher_config'], d / 'headless')}"
  elif case == "vocab_missing":  # Checked before training, not when the export needs it.
    extra = ["--vocab_file=/nonexistent/vocab.txt"]
  elif case == "vocab_other":
    (d / "other_vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nother\n")
    extra = [f"--vocab_file={d / 'other_vocab.txt'}"]
  result = _run(setup, *args, *extra)
  assert result.returncode == 1, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert message in result.stderr.strip().splitlines()[-1]
  assert not os.path.exists(os.path.join(d / "refused", "checkpoints"))


def test_distillation_with_teacher_output_cache(setup, teacher):
  out = str(setup["dir"] / "cached")
  result = _run(setup, f"--output_dir={out}", f"--config_path={setup['student_config']}",
                f"--teacher_config_path={setup['teacher_config']}", f"--teacher_ckpt_path={teacher}",
                "--epochs=2", "--learning_rate=1e-2", "--cache_teacher_outputs=all", "--export_dir=-")
  assert result.returncode == 0, result.stderr[-3000:]
  stages = _json(os.path.join(out, "training_summary.json"))["stages"]
  assert [s["stage"] for s in stages] == ["intermediate", "prediction"]
  for stage in stages:
    assert all(np.isfinite(v) for v in stage["final_losses"].values())
    assert stage["steps"] == 2 * 256 // 16
