"""run_pretraining.py end to end on tiny models: training, outputs, exact resume and its summary, refusals.

One training run and one refusal go through the command line (progress on stderr, the one-line error and its exit
status); the other runs call the script's `main` in this process on its own flags (`tiny.run_main`). The stop on a
non-finite loss is tested on TrainLoop itself (tests/modeling/test_training.py), and its one-line exit on the entry
point (tests/modeling/test_errors.py).
"""

import json
import os
import shutil

import pytest
import tensorflow as tf

import run_pretraining
from modeling.errors import UserError
from tests import tiny

COMMON = ["--max_seq_length=16", "--steps_per_loop=5", "--warmup_steps=2", "--seed=7"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  d = tmp_path_factory.mktemp("pretraining")
  teacher_config = tiny.write_config(d / "teacher.json")
  student_config = tiny.write_config(d / "student.json", num_hidden_layers=2, hidden_size=8, intermediate_size=16)
  return {"dir": d, "data": tiny.pretraining_data(d / "data"), "teacher_config": teacher_config,
              "student_config": student_config, "teacher": tiny.save_encoder(teacher_config, d / "teacher")}


def _args(s, out, **overrides):
  values = {"data_dir": s["data"], "output_dir": out, "config_path": s["student_config"],
                "teacher_config_path": s["teacher_config"], "teacher_ckpt_path": s["teacher"], "epochs": 2,
                "steps_per_epoch": 10, "learning_rate": 3e-3, "save_checkpoint_steps": 5, "keep_checkpoint_max": 10}
  values.update(overrides)
  return [f"--{k}={v}" for k, v in values.items()] + COMMON


def _summary(out):
  with open(os.path.join(out, "training_summary.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def full_run(setup):
  out = str(setup["dir"] / "full")
  result = tiny.run_script("run_pretraining.py", *_args(setup, out))
  assert result.returncode == 0, result.stderr[-3000:]
  return out, result


def test_trains_and_writes_outputs(full_run):
  out, result = full_run
  summary = _summary(out)
  assert summary["global_step"] == 20
  history = summary["history"]
  assert [h["step"] for h in history] == [5, 10, 15, 20]
  assert history[-1]["total"] < history[0]["total"]
  for term in ("embedding", "hidden", "attention", "total"):
    assert term in history[-1]
  assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("ckpt-20")
  assert os.listdir(os.path.join(out, "summaries", "general"))
  with open(os.path.join(out, "config.json")) as f:
    recorded = json.load(f)
  # The student's config, with the pooling a task head should read: no loss trained the pooler.
  assert recorded["num_hidden_layers"] == 2 and recorded["pooling"] == "mean"
  assert "step 20/20" in result.stderr and "examples/s" in result.stderr and "ETA" in result.stderr


def test_output_is_a_student_checkpoint(full_run, setup):
  from modeling import load_encoder
  encoder = load_encoder(setup["student_config"], full_run[0])
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(full_run[0], "checkpoints")))
  key = "encoder/_embedding_layer/embeddings/.ATTRIBUTES/VARIABLE_VALUE"
  assert (encoder.garden_network._embedding_layer.embeddings.numpy() == reader.get_tensor(key)).all()


def test_resume_matches_uninterrupted_run(full_run, setup):
  out = str(setup["dir"] / "resumed")
  shutil.copytree(full_run[0], out)
  ckpt_dir = os.path.join(out, "checkpoints")
  for name in os.listdir(ckpt_dir):  # Pretend the run stopped right after saving step 10.
    if name.startswith(("ckpt-15", "ckpt-20")):
      os.remove(os.path.join(ckpt_dir, name))
  tf.compat.v1.train.update_checkpoint_state(ckpt_dir, os.path.join(ckpt_dir, "ckpt-10"),
                                             [os.path.join(ckpt_dir, "ckpt-5"), os.path.join(ckpt_dir, "ckpt-10")])
  os.remove(os.path.join(out, "training_summary.json"))
  assert "resumed from" in tiny.run_main(run_pretraining, *_args(setup, out))
  resumed = _summary(out)
  assert resumed["resumed_from_step"] == 10 and resumed["global_step"] == 20
  uninterrupted = _summary(full_run[0])
  # The whole run's history, not only the part after the resume.
  assert [h["step"] for h in resumed["history"]] == [5, 10, 15, 20]
  for h, want in zip(resumed["history"], uninterrupted["history"]):
    for term in ("embedding", "hidden", "attention", "total"):
      assert h[term] == pytest.approx(want[term], rel=1e-5), (h["step"], term)
  # Running the finished command again trains nothing and keeps the history and the final losses.
  assert "nothing to do" in tiny.run_main(run_pretraining, *_args(setup, out))
  again = _summary(out)
  assert again["history"] == resumed["history"] and again["final_losses"] == resumed["final_losses"]
  assert set(again["final_losses"]) == {"embedding", "hidden", "attention", "total"}


@pytest.mark.parametrize("overrides, message", [
    ({"max_seq_length": 32}, "max_seq_length=32 but"),
    ({"layer_map": "1,2,3"}, "has 3 entries; the student has 2 layers"),
    ({"teacher_ckpt_path": "/nonexistent/teacher"}, "--teacher_ckpt_path: not found"),
    ({"config_path": "VOCAB"}, "vocab_size 99"),
    ({"config_path": "HEADS"}, "the student has 4 heads"),
    ({"config_path": "HEADS", "intermediate_loss": "minilm"}, "--intermediate_loss=minilm compares attention heads"),
    ({"intermediate_loss": "minilmv2", "relation_heads": 3}, "--relation_heads=3 does not divide the student's"),
    ({"intermediate_loss": "minilm", "minilm_teacher_layer": 5}, "--minilm_teacher_layer=5 is out of range"),
    ({"init_embeddings_from_teacher": "true", "ckpt_path": "TEACHER"}, "set the student's starting weights; choose"),
    ({"init_from_teacher": "true", "ckpt_path": "TEACHER"}, "--init_from_teacher and --ckpt_path both set"),
    ({"init_from_teacher": "true", "init_embeddings_from_teacher": "true"}, "already includes"),
    ({"data_dir": "ROBERTA"}, "data was prepared with roberta special tokens"),
])
def test_refusals(setup, overrides, message):
  d = setup["dir"]
  if overrides.get("config_path") == "VOCAB":
    overrides["config_path"] = tiny.write_config(d / "vocab99.json", vocab_size=99, num_hidden_layers=2)
  if overrides.get("config_path") == "HEADS":
    overrides["config_path"] = tiny.write_config(d / "heads4.json", num_attention_heads=4, num_hidden_layers=2)
  if overrides.get("data_dir") == "ROBERTA":  # The family check: RoBERTa-style specials for a BERT config.
    data = shutil.copytree(setup["data"], d / "roberta_data", dirs_exist_ok=True)
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps(dict(meta, special_tokens={"scheme": "roberta"})))
    overrides["data_dir"] = str(data)
  if overrides.get("ckpt_path") == "TEACHER":
    overrides["ckpt_path"] = setup["teacher"]
  args = [a for a in _args(setup, str(d / "refused")) if not a.startswith("--max_seq_length")]
  args = [a for a in args if not any(a.startswith(f"--{k}=") for k in overrides)]
  args += [f"--{k}={v}" for k, v in overrides.items()]
  if "max_seq_length" not in overrides:
    args.append("--max_seq_length=16")
  with pytest.raises(UserError) as refused:
    tiny.run_main(run_pretraining, *args)
  assert message in str(refused.value) and "\n" not in str(refused.value)
  assert not os.path.exists(os.path.join(d / "refused", "checkpoints"))


def test_refusal_on_the_command_line_is_one_line(setup):
  out = setup["dir"] / "refused_cli"
  result = tiny.run_script("run_pretraining.py", *_args(setup, str(out), layer_map="1,2,3"))
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == "error: --layer_map='1,2,3' has 3 entries; the student has 2 layers"
  assert not os.path.exists(os.path.join(out, "checkpoints"))


def test_init_embeddings_from_teacher(setup):
  out = str(setup["dir"] / "init")
  log = tiny.run_main(run_pretraining, *_args(setup, out, epochs=1, steps_per_epoch=5), "--init_embeddings_from_teacher")
  assert "student embeddings set from the teacher's top 8 of 16 principal directions" in log
  assert _summary(out)["init_embeddings_from_teacher"] is True


def test_minilmv2_with_another_head_count(setup):
  """MiniLMv2 relates queries, keys and values over R relation heads, so a 4-head student learns from 2 heads; it
  reads one teacher layer, so the student may have more layers than the teacher (no --layer_map is read)."""
  d = setup["dir"]
  teacher_layers = tiny.read_json(setup["teacher_config"])["num_hidden_layers"]
  student = tiny.write_config(d / "heads4_v2.json", num_hidden_layers=teacher_layers + 1, hidden_size=8,
                              intermediate_size=16, num_attention_heads=4)
  out = str(d / "minilmv2")
  tiny.run_main(run_pretraining, *_args(setup, out, config_path=student, learning_rate=1e-2),
                "--intermediate_loss=minilmv2", "--minilm_teacher_layer=3")
  summary = _summary(out)
  assert summary["intermediate_loss"] == "minilmv2" and summary["relation_heads"] == 2
  assert summary["minilm_teacher_layer"] == 3
  history = summary["history"]
  assert set(history[-1]) >= {"query_relation", "key_relation", "value_relation", "total"}
  assert history[-1]["total"] < history[0]["total"]


def test_init_from_teacher_copies_layers(setup):
  """At equal width with a consecutive layer map, the student starts as the teacher's first layers: loss ~0.

  (A tiny learning rate: Adam moves every weight by about the learning rate whatever the gradient's size.)
  """
  d = setup["dir"]
  student = tiny.write_config(d / "wide_student.json", num_hidden_layers=2, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0)
  out = str(d / "init_layers")
  log = tiny.run_main(run_pretraining, *_args(setup, out, config_path=student, epochs=1, steps_per_epoch=5,
                                              layer_map="1,2", learning_rate=1e-7), "--init_from_teacher")
  assert "teacher layers [1, 2] copied into student layers 1..2" in log
  first = _summary(out)["history"][0]
  assert first["hidden"] < 1e-4 and first["embedding"] < 1e-4, first
