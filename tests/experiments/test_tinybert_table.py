"""The quality table (experiments/tinybert_table.py): the commands it runs, what it skips, and its arithmetic.

No training runs here: `subprocess.run` inside `modeling.pipeline.run_step` is replaced by a recorder, so the real
step runner decides what to skip and the test sees exactly the command lines a real run would start.
"""

import json
import os
import pathlib
import statistics
import sys
import types

import pytest

from experiments import tinybert_table as table

MPNET = {"model_type": "mpnet", "vocab_size": 30527, "hidden_size": 768, "num_hidden_layers": 12,
         "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
         "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 514, "type_vocab_size": 1,
         "initializer_range": 0.02, "pad_token_id": 1, "layer_norm_eps": 1e-05, "relative_attention_num_buckets": 32}
MINILM = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
          "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
          "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
          "initializer_range": 0.02}
ALL_ROWS = "teacher,no,hinton,task,task_long,tinybert,init_from_teacher,tinybert_augmented"


def _write(path, obj):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(obj))


def _write_run(folder, dev, test, seconds=60.0):
  _write(folder / "eval_results.json",
         {"primary_metric": "accuracy", "final_dev": {"accuracy": dev}, "test": {"accuracy": test}})
  _write(folder / "training_summary.json", {"seconds": seconds})
  return str(folder)


@pytest.fixture
def bench(tmp_path, monkeypatch):
  """Fake teacher folders, no encoder builds, and a recorder in place of the subprocesses: returns the calls."""
  for name, config in (("mpnet", MPNET), ("minilm", MINILM)):
    _write(tmp_path / name / "config.json", config)
    (tmp_path / name / "vocab.txt").write_text("<s>\n")
    label, _, student, suffix = table.TEACHERS[name]
    monkeypatch.setitem(table.TEACHERS, name, (label, lambda name=name: str(tmp_path / name), student, suffix))
  monkeypatch.setattr(table.pipeline, "encoder_params",
                      lambda path: {"mpnet": 109_486_464, "minilm": 22_713_216}.get(
                          os.path.basename(os.path.dirname(path)), 14_500_000))
  calls = []

  def run(command, cwd, check):
    assert command[0] == sys.executable and cwd == table.ROOT and not check
    flags = dict(arg[2:].split("=", 1) for arg in command[2:])
    calls.append((os.path.relpath(command[1], table.ROOT), flags))
    return types.SimpleNamespace(returncode=0)

  monkeypatch.setattr(table.pipeline.subprocess, "run", run)
  return types.SimpleNamespace(root=tmp_path, out=tmp_path / "out", results=tmp_path / "results", calls=calls)


def _main(bench, *argv):
  table.main(["--output_dir", str(bench.out), "--results_dir", str(bench.results), *argv])


def _as_given(flags):
  """The coordinator's command-line values, compared as numbers where they are numbers (3e-5 == 3e-05)."""
  def value(v):
    try:
      return float(v)
    except ValueError:
      return v
  return {k: value(v) for k, v in flags.items()}


def _mpnet_steps(bench):
  """The exact commands the coordinator ran by hand for the MPNet table (seed 1), relative to the output folder."""
  mpnet, out = str(bench.root / "mpnet"), str(bench.out / "medium_mpnet")
  rt = os.path.join(out, "rotten_tomatoes")
  return {
      "news": ("prepare_dataset/news_to_text.py", {"output_file": f"{out}/news.txt"}, f"{out}/news.txt"),
      "general data": ("prepare_dataset/create_distilled_pretraining_data.py",
                       {"input_file": f"{out}/news.txt", "output_file": f"{out}/general_data/train.tfrecord",
                        "vocab_file": f"{mpnet}/vocab.txt", "max_seq_length": "64"},
                       f"{out}/general_data/meta.json"),
      "general student": ("run_pretraining.py",
                          {"data_dir": f"{out}/general_data", "output_dir": f"{out}/general_student",
                           "config_path": os.path.join(table.ROOT, "configs/mpnet_4l_312.json"),
                           "teacher_config_path": f"{mpnet}/config.json", "teacher_ckpt_path": mpnet,
                           "max_seq_length": "64", "batch_size": "32", "epochs": "1", "steps_per_epoch": "400",
                           "steps_per_loop": "25", "warmup_steps": "40", "learning_rate": "3e-4",
                           "layer_map": "3,6,9,12", "seed": "1", "save_checkpoint_steps": "100",
                           "init_embeddings_from_teacher": "true", "dtype": "bfloat16"},
                          f"{out}/general_student/training_summary.json"),
      "data": ("prepare_dataset/create_finetuning_data.py",
               {"task_name": "rotten_tomatoes", "vocab_path": f"{mpnet}/vocab.txt", "output_dir": f"{rt}/data",
                "max_seq_length": "64", "max_examples": "2000"}, f"{rt}/data/meta.json"),
      "teacher": ("run_finetuning.py",
                  {"task_name": "rotten_tomatoes", "data_dir": f"{rt}/data", "output_dir": f"{rt}/teacher",
                   "config_path": f"{mpnet}/config.json", "ckpt_path": mpnet, "max_seq_length": "64",
                   "batch_size": "32", "epochs": "3", "learning_rate": "3e-5", "seed": "1", "steps_per_loop": "10",
                   "export_dir": "-", "dtype": "bfloat16"}, f"{rt}/teacher/training_summary.json"),
  }


def test_mpnet_runs_the_coordinators_commands_then_every_row(bench):
  _main(bench, "--teacher", "mpnet", "--seeds", "1", "--rows", ALL_ROWS, "--tasks", "rotten_tomatoes")
  expected = _mpnet_steps(bench)
  scripts = [script for script, _ in bench.calls]
  assert [(s, _as_given(f)) for s, f in bench.calls[:5]] == [
      (s, _as_given(f)) for s, f, _ in (expected[k] for k in ("news", "general data", "general student", "data",
                                                               "teacher"))]
  rt = str(bench.out / "medium_mpnet" / "rotten_tomatoes")
  # Then the augmented data (its own folder), then seed 1 of the seven student rows in table order.
  assert scripts[5:] == ["prepare_dataset/augment_data.py", "prepare_dataset/create_finetuning_data.py"] + [
      "run_finetuning.py"] * 7
  augment, augmented_data = bench.calls[5][1], bench.calls[6][1]
  assert augment == {"task_name": "rotten_tomatoes", "output_dir": f"{rt}/augmented", "num_augmented": "4",
                     "seed": "1", "max_examples": "2000"}
  assert augmented_data == dict(expected["data"][1], output_dir=f"{rt}/data_augmented",
                                augmented_file=f"{rt}/augmented/train_augmented.tsv")
  runs = {os.path.basename(flags["output_dir"]): flags for _, flags in bench.calls[7:]}
  # --pooling auto: the rows that start from random weights read the mean (their folders say so), the general
  # student's rows the first token.
  assert list(runs) == ["no_mean_seed1", "hinton_mean_seed1", "task_mean_seed1", "task_long_mean_seed1",
                        "tinybert_seed1", "init_from_teacher_mean_seed1", "tinybert_augmented_seed1"]
  student = {"task_name": "rotten_tomatoes", "data_dir": f"{rt}/data", "max_seq_length": "64", "batch_size": "32",
             "export_dir": "-", "config_path": os.path.join(table.ROOT, "configs/mpnet_4l_312.json"),
             "learning_rate": "0.0005", "steps_per_loop": "20", "seed": "1"}
  distill = dict(student, teacher_config_path=f"{rt}/teacher/config.json", teacher_ckpt_path=f"{rt}/teacher",
                 layer_map="3,6,9,12", cache_teacher_outputs="all", teacher_cache_dir=f"{rt}/teacher_cache")
  stages = {"intermediate_epochs": "3", "prediction_epochs": "3"}
  general = str(bench.out / "medium_mpnet" / "general_student")
  mean = {"pooling": "mean"}
  first = {"pooling": "first_token"}
  want = {
      "no_mean_seed1": dict(student, epochs="6", **mean),
      "hinton_mean_seed1": dict(distill, distill_stage="prediction", prediction_epochs="6", **mean),
      "task_mean_seed1": dict(distill, **stages, **mean),
      "task_long_mean_seed1": dict(distill, intermediate_epochs="3", prediction_epochs="6", **mean),
      "tinybert_seed1": dict(distill, ckpt_path=general, **stages, **first),
      "init_from_teacher_mean_seed1": dict(distill, init_from_teacher="true", **stages, **mean),
      "tinybert_augmented_seed1": dict(distill, ckpt_path=general, augmented_data="true", **stages,
                                       data_dir=f"{rt}/data_augmented", **first),
  }
  for name, flags in runs.items():
    assert flags == dict(want[name], output_dir=f"{rt}/{name}"), name


def test_mpnet_skips_the_hand_run_steps_and_finished_runs(bench):
  """With the coordinator's folders done, only the unfinished runs start; the finished ones fill the table."""
  for _, _, done in _mpnet_steps(bench).values():
    _write(bench.root / done, {"primary_metric": "accuracy"})
  rt = bench.out / "medium_mpnet" / "rotten_tomatoes"
  _write(rt / "teacher" / "eval_results.json",
         {"primary_metric": "accuracy", "final_dev": {"accuracy": 0.88}, "test": {"accuracy": 0.86}})
  _write(bench.out / "medium_mpnet" / "general_student" / "training_summary.json",
         {"global_step": 400, "batch_size": 32, "final_losses": {"total": 3.25}, "seconds": 3000})
  _write_run(rt / "no_mean_seed1", 0.70, 0.69, seconds=900)
  _write_run(rt / "no_mean_seed2", 0.72, 0.71, seconds=1500)  # a seed not asked for now still counts in the table
  _write_run(rt / "no_seed1", 0.10, 0.10)  # a first-token run: not this table's row under --pooling auto
  _write_run(rt / "tinybert_seed1", 0.84, 0.83)
  (rt / "task_mean_seed1").mkdir()  # started, not finished: runs again (and resumes from its checkpoints)

  _main(bench, "--teacher", "mpnet", "--seeds", "1", "--rows", "no,task,tinybert", "--tasks", "rotten_tomatoes")
  assert [os.path.basename(flags["output_dir"]) for _, flags in bench.calls] == ["task_mean_seed1"]

  report = (bench.results / "tinybert_table_mpnet_auto.md").read_text()
  assert report.startswith("Teacher all-mpnet-base-v2 (109.5M) -> student configs/mpnet_4l_312.json (14.5M), "
                           "layer map 3,6,9,12; layer copy configs/mpnet_6l_768.json (14.5M), layer map "
                           "2,4,6,8,10,12\n")
  quality, compute = report.split("Training time")
  rows = {line.split(" | ")[0].strip("| "): line for line in quality.splitlines() if line.startswith("| ")}
  assert rows["teacher"] == "| teacher | 109.5M | 0.8800 | 0.8600 | 100.0% / 100.0% |"
  assert rows["no distillation"].startswith("| no distillation | 14.5M | 0.7100 ± 0.0141 (n=2) | 0.7000 ± 0.0141 |")
  assert rows["TinyBERT (general + task)"].endswith(f"| 0.8400 (n=1) | 0.8300 | {100 * 0.84 / 0.88:.1f}% / "
                                                    f"{100 * 0.83 / 0.86:.1f}% |")
  assert rows["task KD"] == "| task KD | 14.5M | n/a | n/a | n/a |"
  assert "400 steps of 32 sequences (final loss 3.25)" in report
  assert "| general student (once) | 50 |" in compute
  assert "| no distillation | 20 (n=2) |" in compute  # (15 + 25) / 2 minutes
  saved = json.loads((bench.results / "tinybert_table_mpnet_auto.json").read_text())
  assert saved["layer_map"] == "3,6,9,12" and saved["teacher"] == "all-mpnet-base-v2"
  assert saved["tasks"]["rotten_tomatoes"]["seeds"]["no distillation"] == [1, 2]
  assert (bench.results / "tinybert_table_mpnet_auto.png").stat().st_size > 0
  assert not (bench.results / "tinybert_table.md").exists() and not (bench.results / "tinybert_table_mpnet.md").exists()


def test_auto_follows_the_pooling_the_general_student_recorded(bench):
  out = bench.out / "medium"
  _write(out / "general_student" / "training_summary.json",
         {"global_step": 600, "batch_size": 32, "final_losses": {"total": 3.0}, "seconds": 60})
  recorded = json.loads(pathlib.Path(table.ROOT, "configs", "tinybert_4l_312.json").read_text())
  _write(out / "general_student" / "config.json", dict(recorded, pooling="mean"))  # as run_pretraining.py writes
  for task in ("rotten_tomatoes", "bbc_news"):
    _write(out / task / "data" / "meta.json", {"primary_metric": "accuracy"})
    _write(out / task / "teacher" / "training_summary.json", {})
  _main(bench, "--seeds", "1", "--rows", "tinybert", "--tasks", "bbc_news")
  (_, flags), = [call for call in bench.calls if call[0] == "run_finetuning.py"]
  assert os.path.basename(flags["output_dir"]) == "tinybert_mean_seed1" and flags["pooling"] == "mean"
  assert table.general_pooling(str(out / "general_student")) == "mean"
  assert table.general_pooling(str(out / "nowhere")) == "first_token"


def test_layer_copy_rows_start_the_wide_student_from_the_teacher(bench, monkeypatch):
  """Half the teacher's layers at its width, --init_from_teacher, its own layer map, cache and dtype; under auto its
  head reads what the fine-tuned teacher recorded; both augmented rows share one augmentation."""
  params = {"mpnet_6l_768.json": 66_000_000, "mpnet_4l_312.json": 14_400_000, "config.json": 109_486_464}
  monkeypatch.setattr(table.pipeline, "encoder_params", lambda path: params[os.path.basename(path)])
  for _, _, done in _mpnet_steps(bench).values():  # the general student is made (and the rest of these)
    _write(bench.root / done, {"global_step": 400, "batch_size": 32, "final_losses": {"total": 3.0}, "seconds": 60})
  out = bench.out / "medium_mpnet"
  for task in ("rotten_tomatoes", "imdb_reviews"):
    _write(out / task / "data" / "meta.json", {"primary_metric": "accuracy"})
    _write(out / task / "teacher" / "training_summary.json", {})
    _write(out / task / "teacher" / "config.json", dict(MPNET, pooling="first_token"))  # as run_finetuning.py writes
  _main(bench, "--teacher", "mpnet", "--seeds", "1", "--rows", "tinybert_augmented,copy,copy_augmented",
        "--tasks", "rotten_tomatoes,imdb_reviews")
  scripts = [script for script, _ in bench.calls]
  assert scripts.count("prepare_dataset/augment_data.py") == 2  # once per task
  runs = {os.path.relpath(flags["output_dir"], out): flags for script, flags in bench.calls
          if script == "run_finetuning.py"}
  assert list(runs) == [f"{task}/{key}_seed1" for task in ("rotten_tomatoes", "imdb_reviews")
                        for key in ("tinybert_augmented", "copy", "copy_augmented")]
  rt = str(out / "rotten_tomatoes")
  copy = runs["rotten_tomatoes/copy_seed1"]
  assert copy["config_path"] == os.path.join(table.ROOT, "configs", "mpnet_6l_768.json")
  assert (copy["layer_map"], copy["init_from_teacher"], copy["teacher_ckpt_path"]) == (
      "2,4,6,8,10,12", "true", f"{rt}/teacher")
  assert (copy["cache_teacher_outputs"], copy["dtype"], copy["pooling"]) == ("all", "bfloat16", "first_token")
  assert (copy["intermediate_epochs"], copy["prediction_epochs"], copy["data_dir"]) == ("3", "3", f"{rt}/data")
  assert copy["learning_rate"] == "3e-05" and "ckpt_path" not in copy  # the teacher's, not the random students' 5e-4
  augmented = runs["rotten_tomatoes/copy_augmented_seed1"]
  assert augmented == dict(copy, augmented_data="true", data_dir=f"{rt}/data_augmented",
                           output_dir=f"{rt}/copy_augmented_seed1")
  assert runs["rotten_tomatoes/tinybert_augmented_seed1"]["data_dir"] == f"{rt}/data_augmented"
  assert runs["imdb_reviews/copy_seed1"]["cache_teacher_outputs"] == "logits"  # 3.7 MB a row at seq 128
  assert runs["imdb_reviews/tinybert_augmented_seed1"]["cache_teacher_outputs"] == "all"

  _write_run(out / "rotten_tomatoes" / "copy_seed1", 0.85, 0.86)
  _main(bench, "--teacher", "mpnet", "--rows", "copy", "--tasks", "rotten_tomatoes", "--report_only")
  report = (bench.results / "tinybert_table_mpnet_auto.md").read_text()
  assert "layer copy configs/mpnet_6l_768.json (66.0M), layer map 2,4,6,8,10,12" in report.splitlines()[0]
  assert "| layer copy | 66.0M | 0.8500 (n=1) | 0.8600 | n/a |" in report  # no finished teacher run here
  assert "| TinyBERT + augmentation | 14.4M |" in report
  saved = json.loads((bench.results / "tinybert_table_mpnet_auto.json").read_text())
  assert (saved["copy_student_config"], saved["copy_layer_map"]) == ("configs/mpnet_6l_768.json", "2,4,6,8,10,12")


def test_report_only_starts_nothing(bench):
  _main(bench, "--teacher", "mpnet", "--rows", ALL_ROWS, "--report_only")
  assert bench.calls == []
  assert "| TinyBERT + augmentation | 14.5M | n/a | n/a | n/a |" in (
      bench.results / "tinybert_table_mpnet_auto.md").read_text()


def test_runs_recorded_earlier_stay_in_the_table_unless_on_disk_or_forgotten(bench):
  task_dir = bench.out / "medium_mpnet" / "rotten_tomatoes"
  _write_run(task_dir / "teacher", 0.88, 0.87, seconds=600)
  _write_run(task_dir / f"{table.run_key('no distillation', 'mean')}_seed2", 0.72, 0.73, seconds=120)
  recorded = {"rotten_tomatoes": {"metric": "accuracy", "seeds": {"teacher": [1], "no distillation": [1, 2],
                                                                   "retired row": [1]},
                                  "scores": {"teacher": [[0.90, 0.88]], "no distillation": [[0.70, 0.71], [0.5, 0.5]],
                                             "retired row": [[0.1, 0.1]]},
                                  "minutes": {"teacher": [30.0], "no distillation": [10.0, 11.0],
                                              "retired row": [1.0]}},
              "bbc_news": {"metric": "accuracy", "seeds": {"teacher": [1]}, "scores": {"teacher": [[0.97, 0.96]]},
                           "minutes": {"teacher": [14.0]}}}
  _write(bench.results / "tinybert_table_mpnet_mean.json", {"tasks": recorded})
  args = ("--teacher", "mpnet", "--pooling", "mean", "--tasks", "rotten_tomatoes", "--rows", "no", "--report_only")
  _main(bench, *args)
  saved = json.loads((bench.results / "tinybert_table_mpnet_mean.json").read_text())
  rt = saved["tasks"]["rotten_tomatoes"]
  assert rt["seeds"] == {"teacher": [1], "no distillation": [1, 2]}
  assert rt["scores"]["teacher"] == [[0.88, 0.87]]  # the teacher on disk wins over the recorded one
  assert rt["scores"]["no distillation"] == [[0.70, 0.71], [0.72, 0.73]]  # seed 1 recorded, seed 2 from disk
  assert rt["minutes"]["no distillation"] == [10.0, 2.0]
  assert saved["kept_from_results_file"] == {"rotten_tomatoes": {"no distillation": [1]}}
  assert "bbc_news" not in saved["tasks"]  # only the selected tasks are in the table
  report = (bench.results / "tinybert_table_mpnet_mean.md").read_text()
  assert "| no distillation | 14.5M | 0.7100 ± 0.0141 (n=2) | 0.7200 ± 0.0141 |" in report
  assert "no longer on disk, kept: rotten_tomatoes: no distillation seed 1." in report
  _main(bench, *args, "--forget_recorded")
  saved = json.loads((bench.results / "tinybert_table_mpnet_mean.json").read_text())
  assert saved["tasks"]["rotten_tomatoes"]["seeds"] == {"teacher": [1], "no distillation": [2]}
  assert saved["kept_from_results_file"] == {}
  assert "no longer on disk" not in (bench.results / "tinybert_table_mpnet_mean.md").read_text()


def test_a_teacher_still_training_is_left_out_of_the_table(bench):
  task_dir = bench.out / "medium_mpnet" / "rotten_tomatoes"
  _write(task_dir / "teacher" / "eval_results.json", {"primary_metric": "accuracy", "epochs": [{"accuracy": 0.8}]})
  _write_run(task_dir / f"{table.run_key('no distillation', 'mean')}_seed1", 0.72, 0.73)
  _main(bench, "--teacher", "mpnet", "--pooling", "mean", "--tasks", "rotten_tomatoes", "--rows", "no",
        "--report_only")
  saved = json.loads((bench.results / "tinybert_table_mpnet_mean.json").read_text())
  assert saved["tasks"]["rotten_tomatoes"]["seeds"] == {"no distillation": [1]}


def test_minilm_keeps_its_layout_tasks_and_settings(bench):
  out = bench.out / "medium"
  for task in ("rotten_tomatoes", "bbc_news"):  # data and teacher done: the student rows are what is left
    _write(out / task / "data" / "meta.json", {"primary_metric": "accuracy"})
    _write(out / task / "teacher" / "training_summary.json", {})
  _main(bench, "--seeds", "2", "--rows", "no,hinton", "--pooling", "first_token")  # The original table's heads.
  assert [os.path.relpath(flags["output_dir"], out) for _, flags in bench.calls] == [
      "rotten_tomatoes/no_seed2", "rotten_tomatoes/hinton_seed2", "bbc_news/no_seed2", "bbc_news/hinton_seed2"]
  hinton = bench.calls[1][1]
  assert hinton["layer_map"] == "2,3,5,6" and hinton["config_path"].endswith("configs/tinybert_4l_312.json")
  assert hinton["pooling"] == "first_token"
  assert (bench.results / "tinybert_table.md").exists() and (bench.results / "tinybert_table.png").exists()


def test_minilm_data_and_teacher_commands(bench):
  _main(bench, "--seeds", "1", "--rows", "teacher", "--tasks", "bbc_news")
  (data_script, data), (teacher_script, teacher) = bench.calls
  assert data_script == "prepare_dataset/create_finetuning_data.py"
  assert data["max_examples"] == "1000" and data["sample_examples"] == "true" and data["max_seq_length"] == "64"
  assert teacher_script == "run_finetuning.py"
  assert {k: teacher[k] for k in ("epochs", "learning_rate", "seed", "steps_per_loop")} == {
      "epochs": "3", "learning_rate": "5e-05", "seed": "1", "steps_per_loop": "20"}
  assert "dtype" not in teacher


def test_mpnet_imdb_takes_a_seeded_sample_of_its_sorted_reviews(bench):
  """IMDB's file lists every negative review first: a capped split must be a random sample, not the first rows."""
  _main(bench, "--teacher", "mpnet", "--seeds", "1", "--rows", "teacher,tinybert_augmented", "--tasks", "imdb_reviews")
  by_script = {}
  for script, flags in bench.calls:
    by_script.setdefault(script, []).append(flags)
  data = by_script["prepare_dataset/create_finetuning_data.py"][0]
  assert (data["max_examples"], data["sample_examples"], data["max_seq_length"]) == ("2000", "true", "128")
  augment = by_script["prepare_dataset/augment_data.py"][0]
  assert (augment["max_examples"], augment["sample_examples"]) == ("2000", "true")
  teacher = next(f for f in by_script["run_finetuning.py"] if f["output_dir"].endswith("teacher"))
  assert (teacher["epochs"], teacher["learning_rate"]) == ("2", "3e-05")


def test_bad_tasks_and_rows_exit_with_the_flag_named(bench):
  with pytest.raises(SystemExit, match="--tasks: bbc; with --teacher mpnet"):
    _main(bench, "--teacher", "mpnet", "--tasks", "bbc")
  with pytest.raises(SystemExit, match="--rows: unknown row 'distilbert'"):
    _main(bench, "--rows", "no,distilbert")
  assert bench.calls == []


def test_parse_rows_takes_names_and_keys_in_table_order():
  assert table.parse_rows("tinybert_augmented, Hinton KD,no") == ["no distillation", "Hinton KD",
                                                                   "TinyBERT + augmentation"]
  assert table.parse_rows("TinyBERT") == ["TinyBERT (general + task)"]


def test_scores_of_reads_dev_and_test(tmp_path):
  assert table.scores_of(_write_run(tmp_path / "run", 0.75, 0.72)) == (0.75, 0.72)


def test_format_table_means_spread_and_share_of_teacher():
  scores = {"teacher": [(0.80, 0.78)], "no distillation": [(0.60, 0.62), (0.70, 0.66), (0.65, 0.64)],
            "TinyBERT (general + task)": [(0.78, 0.76)], "TinyBERT + augmentation": [(0.79, 0.77), (0.81, 0.77)]}
  params = {row: 14.4e6 for row in table.ROWS}
  params["teacher"] = 22.7e6
  lines = table.format_table({"rt": {"metric": "accuracy", "scores": scores}}, params).splitlines()
  assert lines[0] == "| model | params | rt dev accuracy | rt test accuracy | % of teacher (rt dev / test) |"
  assert [line.split(" | ")[0].strip("| ") for line in lines[2:]] == list(table.ROWS)
  rows = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
  assert rows["teacher"] == "| teacher | 22.7M | 0.8000 | 0.7800 | 100.0% / 100.0% |"
  spread = statistics.stdev([0.60, 0.70, 0.65])
  assert rows["no distillation"] == (f"| no distillation | 14.4M | 0.6500 ± {spread:.4f} (n=3) | 0.6400 ± 0.0200 | "
                                     f"{100 * 0.65 / 0.80:.1f}% / {100 * 0.64 / 0.78:.1f}% |")
  assert rows["TinyBERT (general + task)"].endswith("| 0.7800 (n=1) | 0.7600 | 97.5% / 97.4% |")
  assert rows["TinyBERT + augmentation"] == ("| TinyBERT + augmentation | 14.4M | 0.8000 ± 0.0141 (n=2) | "
                                             "0.7700 ± 0.0000 | 100.0% / 98.7% |")
  assert rows["Hinton KD"] == "| Hinton KD | 14.4M | n/a | n/a | n/a |"
  assert rows["init from teacher"] == "| init from teacher | 14.4M | n/a | n/a | n/a |"


def test_full_scale_reads_every_example_for_both_teachers(bench):
  """Scale `full` inherits medium's settings except what it overrides: never medium's caps on the examples."""
  for teacher in table.TEACHERS:
    assert set(table.SCALES["full"][teacher]["task_examples"].values()) == {None}, teacher
  _main(bench, "--teacher", "mpnet", "--scale", "full", "--seeds", "1", "--rows", "teacher", "--tasks", "imdb_reviews")
  data = bench.calls[0][1]
  assert "max_examples" not in data and "sample_examples" not in data and data["max_seq_length"] == "256"


def test_prune_checkpoints_deletes_only_finished_runs_resume_checkpoints(bench, capsys):
  rt = bench.out / "medium_mpnet" / "rotten_tomatoes"
  _write(rt / "data" / "meta.json", {"primary_metric": "accuracy"})
  teacher = rt / "teacher"
  _write_run(teacher, 0.88, 0.89)
  finished, unfinished = rt / "no_mean_seed1", rt / "no_mean_seed2"
  _write_run(finished, 0.70, 0.71)
  for folder in (teacher, finished, unfinished):
    for sub in ("checkpoints", "intermediate/checkpoints", "best"):
      (folder / sub).mkdir(parents=True)
      (folder / sub / "ckpt-1.data-00000-of-00001").write_bytes(b"x" * 1000)

  _main(bench, "--teacher", "mpnet", "--tasks", "rotten_tomatoes", "--seeds", "1,2", "--rows", "teacher,no",
        "--prune_checkpoints")
  # Only seed 2 ran (the recorder writes nothing, so it stays unfinished and keeps its checkpoints).
  assert [os.path.basename(f["output_dir"]) for _, f in bench.calls] == ["no_mean_seed2"]
  for folder in (teacher, finished):
    assert not (folder / "checkpoints").exists() and not (folder / "intermediate" / "checkpoints").exists()
    assert (folder / "best" / "ckpt-1.data-00000-of-00001").exists() and (folder / "eval_results.json").exists()
  assert (unfinished / "checkpoints").exists() and (unfinished / "intermediate" / "checkpoints").exists()
  assert f"(deleted 0.00 GB of resume checkpoints in {finished})" in capsys.readouterr().out


def test_without_prune_checkpoints_nothing_is_deleted(bench):
  rt = bench.out / "medium_mpnet" / "rotten_tomatoes"
  _write(rt / "data" / "meta.json", {"primary_metric": "accuracy"})
  _write_run(rt / "no_mean_seed1", 0.70, 0.71)
  (rt / "no_mean_seed1" / "checkpoints").mkdir()
  _main(bench, "--teacher", "mpnet", "--tasks", "rotten_tomatoes", "--seeds", "1", "--rows", "no")
  assert (rt / "no_mean_seed1" / "checkpoints").exists()
  assert table.prune_resume_checkpoints(str(rt / "no_mean_seed1")) == 0 and not (rt / "no_mean_seed1" / "checkpoints").exists()
