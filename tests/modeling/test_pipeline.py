"""The pipeline library (modeling/pipeline.py): layer spreading, the step runner's skip, the table and its files."""

import json
import os

import demo
from modeling import pipeline
from modeling.config import load_config


def test_spread_layer_map():
  assert pipeline.spread_layer_map(6, 4) == [2, 3, 5, 6]
  assert pipeline.spread_layer_map(12, 4) == [3, 6, 9, 12]  # TinyBERT's uniform map where M divides N
  assert pipeline.spread_layer_map(2, 1) == [2]


def test_done_step_is_printed_and_skipped(tmp_path, capsys):
  done = tmp_path / "done.json"
  done.write_text("{}")
  # The script does not exist: a skipped step never starts it.
  assert not pipeline.run_step("a title", "no_such_script.py", {"a": 1, "b": None, "c": True}, str(done))
  out = capsys.readouterr().out
  assert "=== a title" in out and "no_such_script.py --a=1 --c=true" in out and "--b" not in out
  assert f"(already done: {done})" in out


def test_script_has_flag():
  assert pipeline.script_has_flag("run_finetuning.py", "teacher_ckpt_path")
  assert not pipeline.script_has_flag("run_finetuning.py", "no_such_flag")


def test_table_numbers_and_files(tmp_path):
  rows = [pipeline.ModelRow("teacher T", 0.9, 110_000_000, 40.0, test=0.88),
          pipeline.ModelRow("student S", 0.81, 14_500_000, 5.0, test=None)]
  table = pipeline.write_results(str(tmp_path), "r", rows, "accuracy", 64, task_name="x")
  lines = table.splitlines()
  assert lines[0] == ("| model | dev accuracy | test accuracy | encoder params | batch-1 latency (SavedModel, seq 64) "
                      "| speed-up |")
  assert lines[1] == "|---|---|---|---|---|---|"
  assert lines[2] == "| teacher T | 0.9000 | 0.8800 | 110.0M | 40.0 ms | 1.0x |"
  assert lines[3] == "| student S | 0.8100 | n/a | 14.5M | 5.0 ms | 8.0x |"
  assert "keeps 90.0% of the teacher's dev accuracy with 7.6x fewer parameters and is 8.0x faster" in table
  with open(tmp_path / "r.md") as f:
    assert f.read() == table + "\n"
  with open(tmp_path / "r.json") as f:
    saved = json.load(f)
  assert saved["task_name"] == "x" and saved["rows"][1]["params"] == 14_500_000 and saved["max_seq_length"] == 64


def test_demo_scales_pick_the_teacher_and_a_matching_student():
  assert demo.SCALES["small"]["teacher"] == "minilm" and demo.SCALES["full"]["teacher"] == "mpnet"
  for name, _, student, _ in demo.TEACHERS.values():
    config = load_config(os.path.join(pipeline.ROOT, student))
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size) == (4, 312, 12, 1200), name
  assert load_config(os.path.join(pipeline.ROOT, demo.TEACHERS["mpnet"][2])).vocab_size == 30527
