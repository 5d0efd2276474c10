"""distill.py end to end on a tiny Hugging Face teacher and a csv task: steps, files, resume, table, refusals."""

import json
import os

import numpy as np
import pytest
from absl import flags
from safetensors.numpy import save_file

import distill
from modeling.config import config_from_dict, load_config
from modeling.errors import UserError
from tests import hf_tiny, tiny

WORDS = ["good", "great", "fine", "bad", "awful", "poor"] + [f"w{i}" for i in range(29)]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS  # 40 entries: the tiny teacher's vocab_size
STUDENT = dict(tiny.TINY, vocab_size=40, hidden_size=8, num_hidden_layers=1, intermediate_size=16,
               max_position_embeddings=12)


def _write_csv(path, n, seed):
  """Sentences of filler words with one sentiment word; the label is that word's polarity."""
  rng = np.random.default_rng(seed)
  with open(path, "w") as f:
    f.write("text,label\n")
    for _ in range(n):
      label = int(rng.integers(0, 2))
      words = list(rng.choice(WORDS[6:], int(rng.integers(2, 7))))
      words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(WORDS[:3] if label else WORDS[3:6])))
      f.write(f"{' '.join(words)},{'pos' if label else 'neg'}\n")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  d = tmp_path_factory.mktemp("distill")
  teacher = d / "hf_teacher"
  teacher.mkdir()
  config, tensors = hf_tiny.bert_masked_lm()
  with open(teacher / "config.json", "w") as f:
    json.dump(config, f)
  save_file(tensors, str(teacher / "model.safetensors"))
  (teacher / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  data = d / "csv"
  data.mkdir()
  for split, n, seed in (("train", 160, 0), ("dev", 48, 1), ("test", 48, 2)):
    _write_csv(data / f"{split}.csv", n, seed)
  student_config = tiny.write_config(d / "student.json", **{k: v for k, v in STUDENT.items() if k in tiny.TINY})
  return {"dir": d, "teacher": str(teacher), "data": str(data), "student_config": student_config,
          "out": str(d / "out")}


def _args(setup, **overrides):
  args = {"teacher": setup["teacher"], "task_name": "csv", "data_dir": setup["data"], "text_column": "text",
          "label_column": "label", "student_config": setup["student_config"], "output_dir": setup["out"],
          "max_seq_length": 12, "batch_size": 16, "teacher_epochs": 1, "teacher_learning_rate": 1e-3,
          "intermediate_epochs": 1, "prediction_epochs": 1, "steps_per_loop": 5, "seed": 3, **overrides}
  return [f"--{k}={v}" for k, v in args.items() if v is not None]


@pytest.fixture(scope="module")
def runs(setup):
  first = tiny.run_script("distill.py", *_args(setup))
  assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
  second = tiny.run_script("distill.py", *_args(setup))
  assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
  return first, second


def test_runs_every_step_and_writes_the_outputs(setup, runs):
  first, _ = runs
  out = setup["out"]
  for path in ("data/meta.json", "data/train.tfrecord", "teacher/training_summary.json",
               "teacher/saved_model/saved_model.pb", "student/training_summary.json",
               "student/saved_model/saved_model.pb", "student/model.tflite", "distill_results.md",
               "distill_results.json"):
    assert os.path.exists(os.path.join(out, path)), path
  # Each step is printed as a command a user can repeat, with the teacher's vocab for the data.
  assert f"--vocab_path={setup['teacher']}/vocab.txt" in first.stdout
  assert "--text_column=text" in first.stdout and "--label_column=label" in first.stdout
  assert first.stdout.count("$ ") == 3 and "already done" not in first.stdout
  assert f"--teacher_ckpt_path={out}/teacher" in first.stdout and "--layer_map=2" in first.stdout
  with open(os.path.join(out, "student", "training_summary.json")) as f:
    assert [s["stage"] for s in json.load(f)["stages"]] == ["intermediate", "prediction"]


def test_second_run_skips_every_step(runs):
  _, second = runs
  assert second.stdout.count("(already done:") == 3


def test_table_compares_teacher_and_student(setup, runs):
  with open(os.path.join(setup["out"], "distill_results.json")) as f:
    results = json.load(f)
  teacher, student = results["rows"]
  assert results["metric"] == "accuracy" and results["max_seq_length"] == 12
  assert teacher["name"].startswith("teacher bert 2L-16") and student["name"].startswith("student bert 1L-8")
  for row in (teacher, student):
    assert 0 <= row["dev"] <= 1 and 0 <= row["test"] <= 1 and row["latency_ms"] > 0
  with open(os.path.join(setup["out"], "teacher", "eval_results.json")) as f:
    assert teacher["dev"] == json.load(f)["final_dev"]["accuracy"]
  # Encoder parameters, independently: embeddings + layers + pooler of each tiny config.
  def params(h, layers, inner, vocab=40, positions=12):
    block = 4 * (h * h + h) + 2 * h + h * inner + inner + inner * h + h + 2 * h
    return vocab * h + positions * h + 2 * h + 2 * h + layers * block + h * h + h
  assert teacher["params"] == params(16, 2, 24) and student["params"] == params(8, 1, 16)
  with open(os.path.join(setup["out"], "distill_results.md")) as f:
    table = f.read()
  assert "| model | dev accuracy | test accuracy | encoder params | batch-1 latency (SavedModel, seq 12) |" in table
  assert "| 1.0x |" in table and "fewer parameters" in table
  assert table.strip() in runs[1].stdout


def _validate(*argv):
  flag_values = flags.FlagValues()
  distill.define_flags(flag_values)
  flag_values(["distill.py", *argv])
  return distill._validate(flag_values)


def test_refusals(setup, tmp_path):
  no_vocab = tmp_path / "no_vocab"
  no_vocab.mkdir()
  for name in ("config.json", "model.safetensors"):
    os.link(os.path.join(setup["teacher"], name), no_vocab / name)
  with pytest.raises(UserError, match="--teacher is required"):
    _validate(*_args(setup, teacher=None))
  with pytest.raises(UserError, match="--teacher: folder not found: /nowhere"):
    _validate(*_args(setup, teacher="/nowhere"))
  with pytest.raises(UserError, match=r"--teacher .*no_vocab: no vocab in the folder \(looked for vocab.txt"):
    _validate(*_args(setup, teacher=str(no_vocab)))
  with pytest.raises(UserError, match="--task_name: unknown task 'nope'; known tasks: "):
    _validate(*_args(setup, task_name="nope", text_column=None, label_column=None, data_dir=None))
  with pytest.raises(UserError, match="student vocab_size 120"):
    _validate(*_args(setup, student_config=tiny.write_config(tmp_path / "wrong.json")))


def test_default_student_follows_the_teachers_family_and_vocab(setup, tmp_path):
  bert = load_config(os.path.join(setup["teacher"], "config.json"))
  config, path = distill._student_config(None, bert, str(tmp_path))
  assert config.model_type == "tinybert" and config.vocab_size == 40 and config.hidden_size == 312
  assert path == str(tmp_path / "student_config.json")
  mpnet = config_from_dict(dict(tiny.TINY_MPNET, vocab_size=30527), "mpnet")
  config, path = distill._student_config(None, mpnet, str(tmp_path))
  assert config.model_type == "mpnet" and path.endswith("configs/mpnet_4l_312.json")
  # A 2-head teacher cannot teach TinyBERT4's 12 heads: refused before anything runs.
  with pytest.raises(UserError, match="the student has 12 heads"):
    _validate(*_args(setup, student_config=None, output_dir=str(tmp_path / "o")))
  assert not os.path.exists(tmp_path / "o")


def test_refusal_is_one_line(setup, tmp_path):
  result = tiny.run_script("distill.py", *_args(setup, teacher=str(tmp_path / "missing"),
                                                output_dir=str(tmp_path / "out")))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == f"error: --teacher: folder not found: {tmp_path / 'missing'}"
  assert not os.path.exists(tmp_path / "out")
