"""The relations table (experiments/relations_table.py): the commands of each row, what it skips and waits for, and
its report and checks.

No training runs here: `subprocess.run` inside `modeling.pipeline.run_step` is replaced by a fake script that records
the command line and writes the completion file the real script would write last, so the real step runner decides
what to skip and the test sees the commands a real run would start, in their order.
"""

import json
import os
import pathlib
import subprocess
import sys
import time
import types

import pytest

from experiments import relations_table as rt
from modeling import load_config, relation_losses
from modeling.errors import UserError
from tests.experiments.test_tinybert_table import MINILM, MPNET, _write, _write_run

PARAMS = {"minilm": 22_713_216, "mpnet": 109_486_464}
STUDENT_PARAMS = 19_200_000


def _done_file(script, flags):
  if script == "prepare_dataset/news_to_text.py":
    return flags["output_file"]
  if script == "prepare_dataset/create_distilled_pretraining_data.py":
    return os.path.join(os.path.dirname(flags["output_file"]), "meta.json")
  if script == "prepare_dataset/create_finetuning_data.py":
    return os.path.join(flags["output_dir"], "meta.json")
  return os.path.join(flags["output_dir"], "training_summary.json")


@pytest.fixture
def bench(tmp_path, monkeypatch):
  """Fake teacher assets, no encoder builds, and a fake for every script: returns the calls and the folders."""
  for name, config in (("mpnet", MPNET), ("minilm", MINILM)):
    _write(tmp_path / name / "config.json", config)
    monkeypatch.setattr(rt.assets, f"{name}_dir", lambda name=name: str(tmp_path / name))
    label, _, student, suffix = rt.table.TEACHERS[name]  # tinybert_table.py holds the functions themselves.
    monkeypatch.setitem(rt.table.TEACHERS, name, (label, lambda name=name: str(tmp_path / name), student, suffix))
  monkeypatch.setattr(rt.pipeline, "encoder_params", lambda path: PARAMS.get(
      os.path.basename(os.path.dirname(path)), STUDENT_PARAMS))
  calls = []

  def run(command, cwd, check):
    assert command[0] == sys.executable and cwd == rt.ROOT and not check
    script = os.path.relpath(command[1], rt.ROOT)
    flags = dict(arg[2:].split("=", 1) for arg in command[2:])
    calls.append((script, flags))
    done = _done_file(script, flags)
    if script == "run_finetuning.py":
      _write_run(pathlib.Path(flags["output_dir"]), 0.7, 0.71)
    elif script == "run_pretraining.py":
      _write(pathlib.Path(done), {"global_step": 600, "batch_size": 32, "final_losses": {"total": 1.25}, "seconds": 1200})
    else:
      _write(pathlib.Path(done), {"primary_metric": "accuracy"})
    return types.SimpleNamespace(returncode=0)

  monkeypatch.setattr(rt.pipeline.subprocess, "run", run)
  out = tmp_path / "out"
  return types.SimpleNamespace(root=tmp_path, out=out, results=tmp_path / "results", calls=calls,
                               paths=rt.layout(str(out)))


def _main(bench, *argv):
  rt.main(["--output_dir", str(bench.out), "--results_dir", str(bench.results), *argv])


def _runs(bench):
  """{output folder name: flags} of the run_finetuning.py calls, in call order."""
  return {os.path.basename(flags["output_dir"]): flags for script, flags in bench.calls if script == "run_finetuning.py"}


def test_every_row_from_nothing_runs_in_order_with_its_flags(bench):
  _main(bench, "--seeds", "1", "--intra_op_threads", "1", "--inter_op_threads", "1")
  p, minilm, mpnet = bench.paths, str(bench.root / "minilm"), str(bench.root / "mpnet")
  assert [(script, os.path.relpath(flags.get("output_dir") or flags["output_file"], bench.out))
          for script, flags in bench.calls] == [
      ("prepare_dataset/create_finetuning_data.py", "medium/rotten_tomatoes/data"),
      ("prepare_dataset/news_to_text.py", "medium/news.txt"),
      ("prepare_dataset/create_distilled_pretraining_data.py", "medium/general_data/train.tfrecord"),
      ("run_pretraining.py", "medium/general_student_minilmv2"),
      ("run_finetuning.py", "medium/rotten_tomatoes/h6_alone_seed1"),  # Rows without a teacher first.
      ("run_finetuning.py", "medium/rotten_tomatoes/h6_finetune_seed1"),
      ("run_finetuning.py", "medium/rotten_tomatoes/teacher"),  # The MiniLM teacher, once a row needs it.
      ("run_finetuning.py", "medium/rotten_tomatoes/h6_minilmv2_seed1"),
      ("run_finetuning.py", "medium/rotten_tomatoes/h6_kd_minilm_seed1"),
      ("prepare_dataset/create_finetuning_data.py", "medium_mpnet_alldata/rotten_tomatoes/data"),
      ("run_finetuning.py", "medium_mpnet_alldata/rotten_tomatoes/teacher"),
      ("prepare_dataset/create_finetuning_data.py", "medium/rotten_tomatoes/data_mpnet"),
      ("run_finetuning.py", "medium/rotten_tomatoes/h6_kd_mpnet_seed1"),
      ("run_finetuning.py", "medium/rotten_tomatoes/h6_kd_both_seed1")]
  data, general_data, general = bench.calls[0][1], bench.calls[2][1], bench.calls[3][1]
  assert data == {"task_name": "rotten_tomatoes", "vocab_path": f"{minilm}/vocab.txt", "output_dir": p["data"],
                  "max_seq_length": "64", "max_examples": "2000"}
  assert general_data["vocab_file"] == f"{minilm}/vocab.txt" and general_data["max_seq_length"] == "128"
  assert general == {
      "intra_op_threads": "1", "inter_op_threads": "1", "data_dir": str(bench.out / "medium" / "general_data"),
      "output_dir": p["general"], "config_path": os.path.join(rt.ROOT, "configs/minilm_student_4l_384_h6.json"),
      "teacher_config_path": f"{minilm}/config.json", "teacher_ckpt_path": minilm, "max_seq_length": "128",
      "batch_size": "32", "epochs": "1", "steps_per_epoch": "600", "steps_per_loop": "25", "warmup_steps": "60",
      "learning_rate": "0.0003", "seed": "1", "save_checkpoint_steps": "100", "init_embeddings_from_teacher": "true",
      "dtype": "bfloat16", "intermediate_loss": "minilmv2", "relation_heads": "12",
      "layer_map": "2,3,5,6"}  # Unused by MiniLMv2.
  mpnet_data = bench.calls[11][1]
  assert mpnet_data == dict(data, vocab_path=f"{mpnet}/vocab.txt", output_dir=p["data_mpnet"])
  assert "max_examples" not in bench.calls[9][1]  # The MPNet teacher fine-tunes on every review.
  mpnet_teacher = bench.calls[10][1]  # As tinybert_table.py --teacher mpnet's, on all reviews: 1 epoch, bfloat16.
  assert mpnet_teacher["ckpt_path"] == mpnet and mpnet_teacher["dtype"] == "bfloat16" and mpnet_teacher["epochs"] == "1"

  rows = _runs(bench)
  student = {"intra_op_threads": "1", "inter_op_threads": "1", "task_name": "rotten_tomatoes", "data_dir": p["data"],
             "max_seq_length": "64", "batch_size": "32", "export_dir": "-",
             "config_path": os.path.join(rt.ROOT, "configs/minilm_student_4l_384_h6.json"), "learning_rate": "0.0005",
             "steps_per_loop": "20", "seed": "1", "pooling": "first_token"}
  general_student = dict(student, ckpt_path=p["general"])
  teacher = p["minilm_teacher"]
  minilm_teacher = {"teacher_config_path": f"{teacher}/config.json", "teacher_ckpt_path": teacher,
                    "cache_teacher_outputs": "logits", "teacher_cache_dir": p["cache"]}
  prediction = dict(general_student, distill_stage="prediction", prediction_epochs="6")
  mpnet_teacher_dir = p["mpnet_teacher"]
  want = {
      "h6_alone_seed1": dict(student, epochs="6"),
      "h6_finetune_seed1": dict(general_student, epochs="6"),
      "h6_minilmv2_seed1": dict(general_student, **minilm_teacher, intermediate_loss="minilmv2", relation_heads="12",
                                intermediate_epochs="3", prediction_epochs="3"),
      "h6_kd_minilm_seed1": dict(prediction, **minilm_teacher),
      "h6_kd_mpnet_seed1": dict(prediction, vocab_file=f"{minilm}/vocab.txt", cache_teacher_outputs="logits",
                                teacher_cache_dir=p["cache"], teacher_config_path=f"{mpnet_teacher_dir}/config.json",
                                teacher_ckpt_path=mpnet_teacher_dir, teacher_data_dir=p["data_mpnet"]),
      "h6_kd_both_seed1": dict(prediction, vocab_file=f"{minilm}/vocab.txt", cache_teacher_outputs="logits",
                               teacher_cache_dir=p["cache"], teacher_config_path=f"{teacher}/config.json,{mpnet_teacher_dir}/config.json",
                               teacher_ckpt_path=f"{teacher},{mpnet_teacher_dir}", teacher_weights="0.5,0.5",
                               teacher_data_dir=f",{p['data_mpnet']}"),
  }
  for name, flags in want.items():
    assert rows[name] == dict(flags, output_dir=os.path.join(p["task_dir"], name)), name


def test_the_minilm_teacher_is_tinybert_tables_own_command(bench):
  """Either script finds the teacher done: relations_table.py starts exactly the command tinybert_table.py does."""
  _main(bench, "--seeds", "1", "--rows", "kd_minilm")
  mine = _runs(bench)["teacher"]
  bench.calls.clear()
  for done in ("teacher/training_summary.json", "teacher/eval_results.json"):
    (bench.out / "medium" / "rotten_tomatoes" / done).unlink()
  rt.table.main(["--output_dir", str(bench.out), "--results_dir", str(bench.results), "--rows", "teacher",
                 "--tasks", "rotten_tomatoes"])
  assert [flags for _, flags in bench.calls] == [mine]


def test_seeds_two_and_three_skip_what_is_done(bench):
  _main(bench, "--seeds", "1")
  bench.calls.clear()
  _main(bench, "--seeds", "1,2", "--rows", "minilmv2,alone")
  assert [os.path.basename(flags["output_dir"]) for _, flags in bench.calls] == ["h6_alone_seed2",
                                                                                  "h6_minilmv2_seed2"]
  saved = json.loads((bench.results / "relations_table.json").read_text())
  assert saved["rows"]["trained alone"]["seeds"] == [1, 2] and saved["rows"]["KD from both"]["seeds"] == [1]


def test_alone_needs_neither_the_general_student_nor_a_teacher(bench):
  _main(bench, "--seeds", "3", "--rows", "alone")
  assert [script for script, _ in bench.calls] == ["prepare_dataset/create_finetuning_data.py", "run_finetuning.py"]


def test_report_only_starts_nothing_and_shows_missing_rows(bench):
  _main(bench, "--report_only")
  assert bench.calls == []
  report = (bench.results / "relations_table.md").read_text()
  assert "| KD from both | 19.2M | n/a | n/a | 0 | n/a |" in report
  assert "| teacher MiniLM-L6-H384 (2,000 reviews) | 22.7M | n/a | n/a | not run | n/a |" in report
  assert "points on dev and test: dev n/a, test n/a points: not measured yet" in report


def test_report_table_teachers_and_checks(bench):
  task_dir = bench.out / "medium" / "rotten_tomatoes"
  _write_run(task_dir / "teacher", 0.79, 0.81, seconds=600)
  _write_run(bench.out / "medium_mpnet_alldata" / "rotten_tomatoes" / "teacher", 0.8876, 0.9020, seconds=4070)
  _write_run(task_dir / "h6_alone_seed1", 0.68, 0.70, seconds=120)
  _write_run(task_dir / "h6_alone_seed2", 0.70, 0.72, seconds=180)
  _write_run(task_dir / "h6_minilmv2_seed1", 0.74, 0.75)
  _write_run(task_dir / "h6_minilmv2_seed2", 0.72, 0.74)
  _write_run(task_dir / "h6_kd_minilm_seed1", 0.73, 0.75)
  _write_run(task_dir / "h6_kd_mpnet_seed1", 0.75, 0.74)
  _write_run(task_dir / "h6_kd_both_seed1", 0.76, 0.745)
  _write(task_dir / "h6_finetune_seed1" / "eval_results.json", {})  # Unfinished: no training_summary.json.
  _write(pathlib.Path(bench.paths["general"]) / "training_summary.json",
         {"global_step": 600, "batch_size": 32, "final_losses": {"total": 0.5}, "seconds": 1500})
  _main(bench, "--report_only")

  report = (bench.results / "relations_table.md").read_text()
  lines = {line.split(" | ")[0].strip("| "): line for line in report.splitlines() if line.startswith("| ")}
  assert lines["teacher MiniLM-L6-H384 (2,000 reviews)"] == (
      "| teacher MiniLM-L6-H384 (2,000 reviews) | 22.7M | 0.7900 | 0.8100 | 1 | 10 |")
  assert lines["teacher all-mpnet-base-v2 (10,250 reviews)"].startswith(
      "| teacher all-mpnet-base-v2 (10,250 reviews) | 109.5M | 0.8876 | 0.9020 | 1 | 68 |")
  assert lines["trained alone"] == "| trained alone | 19.2M | 0.6900 ± 0.0141 | 0.7100 ± 0.0141 | 2 (1,2) | 2 |"
  assert lines["MiniLMv2 general + task KD"].startswith("| MiniLMv2 general + task KD | 19.2M | 0.7300 ± 0.0141 |")
  assert lines["MiniLMv2 general + fine-tuning"] == "| MiniLMv2 general + fine-tuning | 19.2M | n/a | n/a | 0 | n/a |"
  # 0.73 - 0.69 = 4 dev points, 0.745 - 0.71 = 3.5 test points: the goal is met.
  assert ("minus trained alone >= 3 points on dev and test: dev +4.00, test +3.50 points: met (n=2 and n=2 seeds)"
          in report)
  assert ("KD from both minus KD from MiniLM: dev +3.00, test -0.50 points; two teachers beat it on dev (n=1 and n=1 "
          "seeds)") in report
  assert "KD from both minus KD from MPNet: dev +1.00, test +0.50 points; two teachers beat it on dev and test" in report
  assert "600 steps of 32 sequences, final loss 0.5000, 25 min" in report
  saved = json.loads((bench.results / "relations_table.json").read_text())
  assert saved["checks"]["goal"]["met"] is True
  assert saved["checks"]["two_teachers"]["KD from MPNet"]["test"] == pytest.approx(0.5)
  assert saved["teachers"]["all-mpnet-base-v2 (10,250 reviews)"]["test"] == 0.9020
  assert saved["rows"]["MiniLMv2 general + task KD"]["scores"] == [[0.74, 0.75], [0.72, 0.74]]
  assert "MiniLMv2 general + fine-tuning" not in saved["rows"]


def test_goal_not_met_when_one_split_falls_short():
  found = {"trained alone": {"seeds": [1], "scores": [(0.70, 0.70)]},
           "MiniLMv2 general + task KD": {"seeds": [1], "scores": [(0.74, 0.72)]}}
  result = rt.checks(found)
  assert result["goal"]["dev"] == pytest.approx(4.0) and result["goal"]["test"] == pytest.approx(2.0)
  assert result["goal"]["met"] is False
  assert result["two_teachers"]["KD from MiniLM"] == {"dev": None, "test": None}
  assert "points: not met" in rt.format_checks(result, found)


def test_bad_arguments_exit_with_the_flag_named(bench):
  with pytest.raises(SystemExit, match="--rows: unknown row 'hinton'; rows are 'trained alone' \\(alone\\)"):
    _main(bench, "--rows", "alone,hinton")
  with pytest.raises(SystemExit, match="--seeds='1,x': give comma-separated integers"):
    _main(bench, "--seeds", "1,x")
  with pytest.raises(SystemExit, match="names no row"):
    _main(bench, "--rows", ",")
  assert bench.calls == []


def test_rows_by_name_or_key_in_table_order():
  assert rt.parse_args(["--rows", "kd_both,Trained Alone,minilmv2"]).rows == [
      "trained alone", "MiniLMv2 general + task KD", "KD from both"]


def test_student_config_has_other_heads_than_the_teacher_and_only_minilmv2_takes_it(tmp_path):
  student = load_config(os.path.join(rt.ROOT, rt.STUDENT_CONFIG))
  assert (student.num_hidden_layers, student.hidden_size, student.num_attention_heads, student.intermediate_size,
          student.vocab_size) == (4, 384, 6, 1536, 30522)
  _write(tmp_path / "minilm.json", MINILM)
  teacher = load_config(str(tmp_path / "minilm.json"))
  loss = relation_losses.parse_intermediate_loss("minilmv2", student, teacher, relation_heads=rt.RELATION_HEADS)
  assert (loss.kind, loss.relation_heads, loss.teacher_layer) == ("minilmv2", 12, 6)
  with pytest.raises(UserError, match="--intermediate_loss=tinybert compares attention heads one to one"):
    relation_losses.parse_intermediate_loss("tinybert", student, teacher, layer_map="2,3,5,6")


def test_waiting_step_waits_for_a_process_writing_the_same_output(tmp_path, capsys):
  target = tmp_path / "teacher"
  release = tmp_path / "release"  # The other process runs until the test lets it go, however loaded the machine.
  other = subprocess.Popen(
      [sys.executable, "-c", f"import os, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.05)",
       "--output_dir=teacher"], cwd=tmp_path)  # A relative path, resolved against the process's folder.
  try:
    deadline = time.time() + 30
    while other.pid not in rt.other_writers(str(target)) and time.time() < deadline:
      time.sleep(0.05)
    assert rt.other_writers(str(target)) == [other.pid]
    assert rt.other_writers(str(tmp_path / "elsewhere")) == []
    release.touch()
    started = []
    step = rt.waiting_step(lambda *args: started.append((args, other.poll())) or True, poll_seconds=0.1)
    assert step("t", "run_finetuning.py", {"output_dir": str(target)}, "done") is True
    assert started == [(("t", "run_finetuning.py", {"output_dir": str(target)}, "done"), 0)]  # After it ended.
    assert f"(waiting for process {other.pid}, which is writing {target})" in capsys.readouterr().out
  finally:
    other.kill()
    other.wait()
