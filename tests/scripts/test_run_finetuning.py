"""run_finetuning.py on tiny models: plain fine-tuning (teacher making), both distillation stages, export, refusals.

Refusals are checked in-process through the script's own flag definitions and `_validate`; one test runs a refusal
from the command line, for the one-line error and the exit status. One training run (the teacher) goes through the
command line too; the others call the script's `main` in this process (`tiny.run_main`), which spares a fresh Python
and TensorFlow per run.
"""

import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import run_finetuning
from modeling.errors import UserError
from prepare_dataset import create_finetuning_data
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
  """run_finetuning.py on the tiny task in this process; returns the log it wrote."""
  return tiny.run_main(run_finetuning, *COMMON, f"--data_dir={setup['data']}", *args)


def _distil(setup, teacher, name, *args, config=None):
  """Distils `teacher` into `config` (default: the tiny student) in folder `name`; returns (folder, its log)."""
  out = str(setup["dir"] / name)
  log = _run(setup, f"--output_dir={out}", f"--config_path={config or setup['student_config']}",
             f"--teacher_config_path={setup['teacher_config']}", f"--teacher_ckpt_path={teacher}", *args)
  return out, log


def _validate(*argv):
  """run_finetuning.py's validation of a command line, in this process."""
  flag_values = flags.FlagValues()
  run_finetuning.define_flags(flag_values)
  flag_values(["run_finetuning.py", *argv])
  return run_finetuning._validate(flag_values)


def _assert_refused(args, message, output_dir, regex=False):
  """`args` are refused before anything is written, with one line that holds `message` (or matches it)."""
  with pytest.raises(UserError) as refused:
    _validate(*COMMON, *args)
  line = str(refused.value)
  assert "\n" not in line, line
  assert (re.search(message, line) if regex else message in line), line
  assert not os.path.exists(output_dir)


@pytest.fixture(scope="module")
def teacher_run(setup):
  """Plain fine-tuning of the teacher, from the command line: (its folder, the finished process)."""
  out = str(setup["dir"] / "teacher")
  result = tiny.run_script("run_finetuning.py", *COMMON, f"--data_dir={setup['data']}", f"--output_dir={out}",
                           f"--config_path={setup['teacher_config']}", "--epochs=8", "--learning_rate=1e-2",
                           "--warmup_proportion=0.05", "--export_dir=-")
  assert result.returncode == 0, result.stderr[-3000:]
  return out, result


@pytest.fixture(scope="module")
def teacher(teacher_run):
  return teacher_run[0]


@pytest.fixture(scope="module")
def student(setup, teacher):
  return _distil(setup, teacher, "student", "--intermediate_epochs=3", "--prediction_epochs=6", "--learning_rate=1e-2",
                 "--export_tflite")


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
  out, log = student
  summary = _json(os.path.join(out, "training_summary.json"))
  assert [s["stage"] for s in summary["stages"]] == ["intermediate", "prediction"]
  assert set(summary["stages"][0]["final_losses"]) == {"embedding", "hidden", "attention", "total"}
  assert "prediction" in summary["stages"][1]["final_losses"]
  # What stage 2's head reads, checked after stage 1: a tiny student's token states are far from one vector.
  assert 0.0 <= summary["stages"][0]["last_layer_common_share"] < 0.995
  assert "last_layer_common_share" not in summary["stages"][1]
  assert tf.train.latest_checkpoint(os.path.join(out, "intermediate", "checkpoints"))
  results = _json(os.path.join(out, "eval_results.json"))
  assert [r["stage"] for r in results["epochs"]] == ["prediction"] * 6
  assert results["best"]["accuracy"] > 0.6
  for name in ("config.json", "test_predictions.tsv", "model.tflite", os.path.join("saved_model", "saved_model.pb")):
    assert os.path.exists(os.path.join(out, name)), name
  assert "[intermediate] step" in log and "[prediction] step" in log


def test_export_agrees_with_checkpoint(student, setup):
  from modeling import load_config, records
  from modeling.models import build_task_model
  out = student[0]
  config = load_config(out)  # The run records its head's pooling: 'mean', as the student started from random.
  assert config.pooling == "mean" and load_config(setup["student_config"]).pooling is None
  model = build_task_model(config, 2)
  model.restore(os.path.join(out, "best"), "best")
  features, _ = next(iter(records.make_dataset([os.path.join(setup["data"], "dev.tfrecord")], 16, 8,
                                               label_dtype=tf.int64)))
  expected = tf.nn.softmax(model(features, training=False)["logits"]).numpy()
  loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
  got = loaded.signatures["serve_ids"](**features)["probabilities"].numpy()
  np.testing.assert_allclose(got, expected, atol=1e-5)
  from modeling import tflite
  classifier = tflite.TFLiteClassifier(os.path.join(out, "model.tflite"))
  got = classifier.predict({name: features[name][:2].numpy() for name in records.FEATURES})
  np.testing.assert_allclose(got, expected[:2], atol=1e-4)


def test_teacher_output_folder_chains_as_ckpt_path(setup, teacher):
  from modeling import load_config
  from modeling.checkpoints import restore_encoder
  from modeling.encoders import build_encoder
  encoder = build_encoder(load_config(setup["teacher_config"]))
  assert "best" in restore_encoder(encoder, load_config(setup["teacher_config"]), teacher)


def test_refusal_on_the_command_line_is_one_line(setup, tmp_path):
  out = tmp_path / "out"
  result = tiny.run_script("run_finetuning.py", *COMMON, f"--data_dir={setup['data']}", f"--output_dir={out}",
                           f"--config_path={setup['student_config']}", "--max_int8_accuracy_drop=-0.5")
  assert result.returncode == 1, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == "error: --max_int8_accuracy_drop must not be negative, got -0.5"
  assert not out.exists()


def test_help_lists_every_flag():
  flag_values = flags.FlagValues()
  run_finetuning.define_flags(flag_values)
  listed = set(re.findall(r"--(?:\[no\])?(\w+)", flag_values.module_help(run_finetuning.__name__)))
  assert listed >= set(flag_values) - {"flagfile", "undefok"}
  assert {"export_tflite", "teacher_weights", "temperature_end", "intermediate_loss", "seed"} <= listed


def test_distillation_with_teacher_output_cache(setup, teacher):
  cache = str(setup["dir"] / "cached_teacher")
  out, log = _distil(setup, teacher, "cached", "--epochs=2", "--learning_rate=1e-2", "--cache_teacher_outputs=all",
                     f"--teacher_cache_dir={cache}", "--export_dir=-", "--intermediate_prediction_weight=0.5")
  # One teacher pass in all: stage 2 reads the logits from stage 1's files.
  assert "[prediction] teacher logits read from stage 1's cache" in log
  assert len([name for name in os.listdir(cache) if name.endswith(".index")]) == 1
  stages = _json(os.path.join(out, "training_summary.json"))["stages"]
  assert [s["stage"] for s in stages] == ["intermediate", "prediction"]
  for stage in stages:
    assert all(np.isfinite(v) for v in stage["final_losses"].values())
    assert stage["steps"] == 2 * 256 // 16
  # Stage 1 with a prediction term (the teacher's logits from the cache) trains the head and is scored on dev.
  assert stages[0]["prediction_weight"] == 0.5 and "prediction" in stages[0]["final_losses"]
  epochs = _json(os.path.join(out, "eval_results.json"))["epochs"]
  assert [(e["stage"], e["epoch"]) for e in epochs] == [("intermediate", 1), ("intermediate", 2), ("prediction", 1),
                                                        ("prediction", 2)]


_WORDS = ["good", "great", "fine", "bad", "dull", "awful", "movie", "plot", "the", "a", "cast", "was"]


def _text_task(folder, rng, n):
  """A tsv task the model can learn from words: positive rows hold a positive word."""
  rows = ["sentence\tlabel"]
  for _ in range(n):
    label = int(rng.integers(0, 2))
    words = list(rng.choice(_WORDS[6:], 4)) + [_WORDS[int(rng.integers(0, 3)) + (0 if label else 3)]]
    rng.shuffle(words)
    rows.append(f"{' '.join(words)}\t{'pos' if label else 'neg'}")
  return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def text_data(tmp_path_factory):
  """Task data prepared by create_finetuning_data.py from text, with a small WordPiece vocab."""
  d = tmp_path_factory.mktemp("text_task")
  rng = np.random.default_rng(0)
  for split, n in (("train", 160), ("dev", 48), ("test", 16)):
    (d / f"{split}.tsv").write_text(_text_task(d, rng, n))
  vocab = d / "vocab.txt"
  vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_WORDS]) + "\n")
  tiny.run_main(create_finetuning_data, "--task_name=tsv", f"--data_dir={d}", f"--vocab_path={vocab}",
                f"--output_dir={d / 'data'}", "--max_seq_length=16")
  return {"dir": d, "data": str(d / "data"), "vocab": str(vocab),
          "config": tiny.write_config(d / "config.json", vocab_size=len(_WORDS) + 5, num_hidden_layers=1,
                                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)}


def test_int8_gate_hf_folder_and_raw_string_signature(text_data):
  from modeling import records, tflite
  out = str(text_data["dir"] / "out")
  tiny.run_main(
      run_finetuning, "--task_name=tsv", f"--data_dir={text_data['data']}", f"--output_dir={out}",
      f"--config_path={text_data['config']}", f"--vocab_file={text_data['vocab']}", "--max_seq_length=16",
      "--batch_size=16", "--epochs=4", "--learning_rate=1e-2", "--seed=1", "--export_tflite=int8",
      "--max_int8_accuracy_drop=1.0", "--int8_calibration_examples=16", "--export_hf=true", "--pooling=first_token")
  results = _json(os.path.join(out, "eval_results.json"))
  gate = results["tflite"]
  assert gate["kept"] == "dynamic" and gate["max_drop"] == 1.0 and gate["metric"] == "accuracy"
  for mode in ("fp32", "dynamic", "int8"):
    assert 0 <= gate[mode] <= 1 and os.path.isfile(os.path.join(out, gate["files"][mode]))
  with open(os.path.join(out, "model.tflite"), "rb") as shipped, \
       open(os.path.join(out, gate["files"]["dynamic"]), "rb") as dynamic:
    assert shipped.read() == dynamic.read()
  # fp32 TFLite scores on dev as the Keras model does.
  assert abs(gate["fp32"] - results["final_dev"]["accuracy"]) < 1e-6
  assert results["hf_model"] == os.path.join(out, "hf_model")
  hf = _json(os.path.join(out, "hf_model", "config.json"))
  assert hf["architectures"] == ["BertForSequenceClassification"] and hf["id2label"] == {"0": "neg", "1": "pos"}
  assert _json(os.path.join(out, "hf_model", "tokenizer_config.json"))["tokenizer_class"] == "BertTokenizer"
  assert os.path.isfile(os.path.join(out, "hf_model", "model.safetensors"))
  assert _json(os.path.join(out, "training_summary.json"))["hf_model"] == os.path.join(out, "hf_model")
  # The raw-string signature tokenizes as the data was prepared: same outputs as serve_ids on the dev records.
  loaded = tf.saved_model.load(os.path.join(out, "saved_model"))
  with open(text_data["dir"] / "dev.tsv") as f:
    texts = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
  features, _ = next(iter(records.make_dataset([os.path.join(text_data["data"], "dev.tfrecord")], 16, 48,
                                               label_dtype=tf.int64)))
  by_ids = loaded.signatures["serve_ids"](**features)["probabilities"].numpy()
  by_text = loaded.signatures["serving_default"](text=tf.constant(texts))["probabilities"].numpy()
  np.testing.assert_allclose(by_text, by_ids, atol=1e-6)
  assert tflite.TFLiteClassifier(os.path.join(out, "model.tflite")).predict(
      {k: v[:1].numpy() for k, v in features.items()}).shape == (1, 2)


def test_pooling_flag_resolves_from_the_starting_point(setup, teacher, tmp_path):
  """--pooling=auto: mean for a student whose layers start random; from a checkpoint, what its run recorded, else
  the first token; a layer copy reads what the teacher's head read; a config or the flag that names one wins. The
  teacher's own run recorded 'mean'."""
  from modeling import load_config
  assert load_config(teacher).pooling == "mean"
  base = [f"--data_dir={setup['data']}", f"--output_dir={tmp_path / 'out'}"]
  student = f"--config_path={setup['student_config']}"
  assert _validate(*COMMON, *base, student).student.pooling == "mean"
  assert _validate(*COMMON, *base, student, "--pooling=first_token").student.pooling == "first_token"
  # From --ckpt_path: what that run recorded (the teacher's run: 'mean'), the first token without a record.
  assert _validate(*COMMON, *base, student, f"--ckpt_path={teacher}").student.pooling == "mean"
  assert _validate(*COMMON, *base, student, f"--ckpt_path={teacher}", "--pooling=first_token").student.pooling == \
      "first_token"
  unrecorded = tmp_path / "unrecorded"
  shutil.copytree(teacher, unrecorded)
  os.remove(unrecorded / "config.json")
  assert _validate(*COMMON, *base, student, f"--ckpt_path={unrecorded}").student.pooling == "first_token"
  named = tiny.write_config(tmp_path / "named.json", num_hidden_layers=2, hidden_size=8, intermediate_size=16,
                            pooling="first_token")
  assert _validate(*COMMON, *base, f"--config_path={named}").student.pooling == "first_token"
  # A layer copy from the teacher reads what the teacher's head read; the teacher's config file does not name a
  # pooling, so it is taken from the teacher's run folder.
  wide = tiny.write_config(tmp_path / "wide.json", num_hidden_layers=2)
  settings = _validate(*COMMON, *base, f"--config_path={wide}", f"--teacher_config_path={setup['teacher_config']}",
                       f"--teacher_ckpt_path={teacher}", "--init_from_teacher", "--layer_map=1,2")
  assert settings.student.pooling == "mean" and settings.training.teachers[0].config.pooling == "mean"
  first_teacher = tmp_path / "first_teacher"
  shutil.copytree(teacher, first_teacher)
  with open(first_teacher / "config.json") as f:
    recorded = json.load(f)
  (first_teacher / "config.json").write_text(json.dumps(dict(recorded, pooling="first_token")))
  settings = _validate(*COMMON, *base, f"--config_path={wide}", f"--teacher_config_path={setup['teacher_config']}",
                       f"--teacher_ckpt_path={first_teacher}", "--init_from_teacher", "--layer_map=1,2")
  assert settings.student.pooling == "first_token"
  assert _validate(*COMMON, *base, student, f"--ckpt_path={first_teacher}").student.pooling == "first_token"
  # A narrower student keeps random layers under --init_from_teacher: mean.
  settings = _validate(*COMMON, *base, student, f"--teacher_config_path={setup['teacher_config']}",
                       f"--teacher_ckpt_path={first_teacher}", "--init_from_teacher")
  assert settings.student.pooling == "mean"


def test_pooling_refusals(setup, teacher, tmp_path):
  out = tmp_path / "out"
  base = [f"--data_dir={setup['data']}", f"--output_dir={out}", f"--config_path={setup['student_config']}"]
  _assert_refused([*base, "--export_hf=true"], "--export_hf: the student's head reads the mean of its last layer "
                  "(--pooling=auto, for a student whose layers start from random weights), and Hugging Face's "
                  "*ForSequenceClassification heads read the first token; pass --pooling=first_token", out)
  named = tiny.write_config(tmp_path / "named.json", pooling="first_token")
  _assert_refused([*base, f"--teacher_config_path={named}", f"--teacher_ckpt_path={teacher}"],
                  f"--teacher_ckpt_path {teacher} was trained with pooling 'mean'", out)
  with pytest.raises(flags.IllegalFlagValueError):
    _validate(*COMMON, *base, "--pooling=max")


def test_no_cuda_error_line_on_a_cpu_only_machine(teacher_run):
  from modeling import runtime_env
  if runtime_env.has_nvidia_device():
    pytest.skip("this machine has an NVIDIA device")
  assert "cuInit" not in teacher_run[1].stderr


@pytest.mark.parametrize("args, message", [
    (["--export_tflite=int8"], "--export_tflite=int8 scores the int8 models against fp32 on labelled dev data"),
    (["--export_hf=FOREIGN"], "--export_hf: Hugging Face export folder .* already holds something else"),
    (["--max_int8_accuracy_drop=-0.5"], "--max_int8_accuracy_drop must not be negative"),
    (["--merges_file=/nonexistent/merges.txt"], "--merges_file: not found"),
])
def test_export_refusals_before_training(setup, tmp_path, args, message):
  data = setup["data"]
  if args[0] == "--export_tflite=int8":  # The tiny data without a dev split.
    data = tiny.task_data(tmp_path / "nodev", train=32, dev=0)
    meta = _json(os.path.join(data, "meta.json"))
    meta["record_files"].pop("dev")
    meta["num_examples"].pop("dev")
    with open(os.path.join(data, "meta.json"), "w") as f:
      json.dump(meta, f)
  if args[0] == "--export_hf=FOREIGN":
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    args = [f"--export_hf={tmp_path / 'foreign'}", "--pooling=first_token"]
  out = tmp_path / "out"
  _assert_refused([f"--data_dir={data}", f"--output_dir={out}", f"--config_path={setup['student_config']}", *args],
                  message, out, regex=True)


def _copy_data(src, dst, shift=0, meta_updates=None, augmented=0):
  """A copy of a task data folder: token ids shifted by `shift` (another vocab), optional augmented rows (label -1)."""
  from modeling import records
  os.makedirs(dst, exist_ok=True)
  meta = _json(os.path.join(src, "meta.json"))
  for name in meta["record_files"].values():
    with records.RecordWriter(os.path.join(dst, name)) as writer:
      for features, labels in records.make_dataset([os.path.join(src, name)], 16, 1, label_dtype=tf.int64):
        ids = features["input_word_ids"][0].numpy()
        writer.write(records.serialize_example(np.where(ids > 0, ids + shift, 0), features["input_mask"][0].numpy(),
                                               features["input_type_ids"][0].numpy(), int(labels[0])))
  if augmented:  # Rows of dev without their gold labels, as create_finetuning_data.py --augmented_file writes them.
    with records.RecordWriter(os.path.join(dst, "train_augmented.tfrecord")) as writer:
      dataset = records.make_dataset([os.path.join(src, "dev.tfrecord")], 16, 1, label_dtype=tf.int64)
      for features, _ in dataset.take(augmented):
        writer.write(records.serialize_example(*(features[k][0].numpy() for k in records.FEATURES), -1))
    meta["num_examples"]["train_augmented"] = augmented
    meta["record_files"]["train_augmented"] = "train_augmented.tfrecord"
  meta.update(meta_updates or {})
  records.write_meta(str(dst), meta)
  return str(dst)


@pytest.fixture(scope="module")
def second_teacher(setup):
  """A teacher of another shape and vocabulary (ids shifted by 10), fine-tuned on its own tokenization."""
  d = setup["dir"]
  data = _copy_data(setup["data"], d / "data_shifted", shift=10, meta_updates={"vocab_size": 130})
  config = tiny.write_config(d / "teacher2.json", vocab_size=130, hidden_size=12, num_hidden_layers=2,
                             intermediate_size=24, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  out = str(d / "teacher2")
  tiny.run_main(run_finetuning, *COMMON, f"--data_dir={data}", f"--output_dir={out}", f"--config_path={config}",
                "--epochs=4", "--learning_rate=1e-2", "--export_dir=-")
  assert _json(os.path.join(out, "training_summary.json"))["label_list"] == ["0", "1"]
  return {"config": config, "ckpt": out, "data": data}


def test_two_teachers_with_schedules(setup, teacher, second_teacher):
  """Stage 2 averages two teachers (the second reads its own vocab), temperature 4 -> 1, gold weight 0 -> 0.5."""
  out = str(setup["dir"] / "two_teachers")
  log = _run(setup, f"--output_dir={out}", f"--config_path={setup['student_config']}",
             f"--teacher_config_path={setup['teacher_config']},{second_teacher['config']}",
                f"--teacher_ckpt_path={teacher},{second_teacher['ckpt']}",
                f"--teacher_data_dir=,{second_teacher['data']}",
                "--teacher_weights=2,1", "--distill_stage=prediction", "--prediction_epochs=2", "--learning_rate=1e-2",
                "--temperature=4", "--temperature_end=1", "--gold_label_weight_end=0.5", "--export_dir=-",
                "--cache_teacher_outputs=logits", f"--teacher_cache_dir={out}_cache")
  assert "logits of 2 teachers over 256 examples ready" in log
  tables = sorted(os.listdir(f"{out}_cache"))  # Each teacher's logits table, kept for the next run.
  assert len(tables) == 2 and all(name.startswith("teacher_logits-") and name.endswith(".npy") for name in tables)
  assert all(np.load(os.path.join(f"{out}_cache", name)).shape == (256, 2) for name in tables)
  summary = _json(os.path.join(out, "training_summary.json"))
  assert summary["teacher_weights"] == [2.0, 1.0] and summary["label_list"] == ["0", "1"]
  (stage,) = summary["stages"]
  assert stage["temperature"] == [4.0, 1.0] and stage["gold_label_weight"] == [0.0, 0.5]
  history = stage["history"]  # 32 steps in loops of 4: each entry is the mean of its loop's values.
  assert len(history) == 8
  # Step i (0-based, 32 steps) has temperature 4 - 3 i / 31; loop k averages steps 4k..4k+3.
  want_t = [np.mean([4 - 3 * i / 31 for i in range(4 * k, 4 * k + 4)]) for k in range(8)]
  np.testing.assert_allclose([h["temperature"] for h in history], want_t, rtol=1e-5)
  np.testing.assert_allclose([h["gold_label_weight"] for h in history], [(4 - t) / 6 for t in want_t], rtol=1e-5)
  assert all(np.isfinite(h["gold"]) and np.isfinite(h["prediction"]) for h in history)
  assert f"temperature {want_t[0]:.4f}" in log  # The progress line shows the schedule values.


def test_minilmv2_stage_one_with_another_head_count(setup, teacher):
  d = setup["dir"]
  student = tiny.write_config(d / "student_h4.json", num_hidden_layers=2, hidden_size=8, intermediate_size=16,
                              num_attention_heads=4, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  out, _ = _distil(setup, teacher, "minilmv2", "--intermediate_loss=minilmv2", "--intermediate_epochs=2",
                   "--prediction_epochs=1", "--learning_rate=1e-2", "--export_dir=-", config=student)
  stages = _json(os.path.join(out, "training_summary.json"))["stages"]
  history = stages[0]["history"]
  assert set(history[0]) >= {"query_relation", "key_relation", "value_relation"}
  assert history[-1]["total"] < history[0]["total"]
  assert np.isfinite(stages[1]["final_losses"]["prediction"])


def test_init_from_teacher_starts_at_the_teacher(setup, teacher):
  """Equal width, layer map 1,2: the student is the teacher's first two layers, so stage 1's hidden loss is ~0."""
  d = setup["dir"]
  student = tiny.write_config(d / "student_wide.json", num_hidden_layers=2, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0)
  out, log = _distil(setup, teacher, "init_from_teacher", "--init_from_teacher", "--layer_map=1,2",
                        "--distill_stage=intermediate", "--intermediate_epochs=1", "--export_dir=-", config=student)
  assert "teacher layers [1, 2] copied into student layers 1..2" in log
  first = _json(os.path.join(out, "training_summary.json"))["stages"][0]["history"][0]
  assert first["hidden"] < 1e-5 and first["embedding"] < 1e-5, first


def test_augmented_rows_train_on_teacher_targets_only(setup, teacher):
  """64 augmented rows (label -1) join the 256 training rows; the gold term ignores them and stays finite."""
  data = _copy_data(setup["data"], setup["dir"] / "data_augmented", augmented=64)
  out, _ = _distil(setup, teacher, "augmented", f"--data_dir={data}", "--augmented_data", "--distill_stage=prediction",
                   "--prediction_epochs=1", "--gold_label_weight=1", "--learning_rate=1e-2", "--export_dir=-")
  summary = _json(os.path.join(out, "training_summary.json"))
  assert summary["train_examples"] == 320
  (stage,) = summary["stages"]
  assert stage["steps_per_epoch"] == 320 // 16 and stage["steps"] == 20
  assert all(np.isfinite(h["gold"]) and h["gold"] > 0 for h in stage["history"])
  results = _json(os.path.join(out, "eval_results.json"))
  assert set(results) >= {"epochs", "best", "test"} and "train_augmented" not in json.dumps(results)


@pytest.mark.parametrize("case, message", [
    ("task", "was prepared for task 'tiny'"),
    ("seq", "max_seq_length=32 but"),
    ("labels", "the teacher's head has 2 outputs but task tiny has 3 labels"),
    ("headless", "has no task head"),
    ("vocab_missing", "--vocab_file: not found: /nonexistent/vocab.txt"),  # Checked before training, not at export.
    ("vocab_other", "is not the vocab the data was prepared with"),
    ("family", "data was prepared with roberta special tokens"),
    ("family_teacher", "the --teacher_config_path model is a bert"),
    ("aug_no_teacher", "--augmented_data needs --teacher_config_path"),
    ("aug_missing", "lists no train_augmented records"),
    ("init_ckpt", "--init_from_teacher and --ckpt_path both set"),
    ("init_no_teacher", "--init_from_teacher needs --teacher_config_path"),
    ("weights", "--teacher_weights has 3 weights for 1 teachers"),
    ("ckpts", "--teacher_ckpt_path has 2 entries but --teacher_config_path has 1"),
    ("label_set", "every teacher must share the task's label set"),
    ("temperature_end", "--temperature_end must be above 0"),
    ("gold_end", "--gold_label_weight_end must be at least 0"),
    ("first_teacher_dir", "--teacher_data_dir: the first teacher also teaches stage 1"),
    ("heads", "--intermediate_loss=tinybert compares attention heads one to one"),
    ("minilm_cache", "--cache_teacher_outputs=all caches TinyBERT's layers"),
    ("joint_negative", "--intermediate_prediction_weight must be at least 0"),
    ("joint_no_stage_one", "--intermediate_prediction_weight adds to stage 1"),
])
def test_refusals(setup, teacher, tmp_path, case, message):
  d = setup["dir"]
  args = {"data_dir": setup["data"], "output_dir": tmp_path / "refused", "config_path": setup["student_config"],
          "teacher_config_path": setup["teacher_config"], "teacher_ckpt_path": teacher}
  if case == "task":
    args["task_name"] = "sst-2"
  elif case == "seq":
    args["max_seq_length"] = 32
  elif case == "labels":
    args["data_dir"] = tiny.task_data(d / "three", train=16, dev=8, num_labels=3)
  elif case == "headless":
    args["teacher_ckpt_path"] = tiny.save_encoder(setup["teacher_config"], d / "headless")
  elif case == "vocab_missing":
    args["vocab_file"] = "/nonexistent/vocab.txt"
  elif case == "vocab_other":
    (d / "other_vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nother\n")
    args["vocab_file"] = d / "other_vocab.txt"
  elif case in ("family", "family_teacher"):
    data = d / f"data_{case}"
    if not data.exists():
      shutil.copytree(setup["data"], data)
      meta = _json(data / "meta.json")
      (data / "meta.json").write_text(json.dumps(dict(meta, special_tokens={"scheme": "roberta"})))
    args["data_dir"] = data
    if case == "family_teacher":
      args["config_path"] = tiny.write_config(d / "student_roberta.json", model_type="roberta", num_hidden_layers=2,
                                              hidden_size=8, intermediate_size=16)
  elif case == "aug_no_teacher":
    args.update(teacher_config_path="", teacher_ckpt_path="", augmented_data="true")
  elif case == "aug_missing":
    args["augmented_data"] = "true"
  elif case == "init_ckpt":
    args.update(init_from_teacher="true", ckpt_path=teacher)
  elif case == "init_no_teacher":
    args.update(teacher_config_path="", teacher_ckpt_path="", init_from_teacher="true")
  elif case == "weights":
    args["teacher_weights"] = "1,2,3"
  elif case == "ckpts":
    args["teacher_ckpt_path"] = f"{teacher},{teacher}"
  elif case == "label_set":
    other = d / "teacher_other_labels"
    if not other.exists():
      shutil.copytree(teacher, other)
      summary = _json(other / "training_summary.json")
      (other / "training_summary.json").write_text(json.dumps(dict(summary, label_list=["neg", "pos"])))
    args["teacher_ckpt_path"] = other
  elif case == "temperature_end":
    args["temperature_end"] = 0
  elif case == "gold_end":
    args["gold_label_weight_end"] = -1
  elif case == "first_teacher_dir":
    args["teacher_data_dir"] = setup["data"]
  elif case == "heads":
    args["config_path"] = tiny.write_config(d / "student_h4_refused.json", num_hidden_layers=2, num_attention_heads=4)
  elif case == "minilm_cache":
    args.update(intermediate_loss="minilm", cache_teacher_outputs="all")
  elif case == "joint_negative":
    args["intermediate_prediction_weight"] = -1
  elif case == "joint_no_stage_one":
    args.update(intermediate_prediction_weight=1, distill_stage="prediction")
  _assert_refused([f"--{k}={v}" for k, v in args.items()], message, tmp_path / "refused")
