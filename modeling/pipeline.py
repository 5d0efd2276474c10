"""Pipelines of documented commands (`distill.py`, `demo.py`): the step runner, and the teacher/student table.

Every step of a pipeline is one of the scripts a user runs, started as a subprocess with its flags printed before it
runs, so a user can repeat any step by hand. A step whose completion file exists is skipped; the training scripts
resume from their own checkpoints, so a pipeline interrupted anywhere continues where it stopped when re-run.

The closing table compares models on what a deployment cares about: the task metric on dev (and test where it is
labelled), encoder parameters, and batch-1 latency of the exported SavedModel's `serve_ids` signature at the run's
sequence length, with the speed-up over the first row (the teacher).
"""

import dataclasses
import math
import os
import re
import shlex
import subprocess
import sys
import time

from modeling import files
from modeling.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flag_value(value) -> str:
  return ("true" if value else "false") if isinstance(value, bool) else str(value)


def command_line(script: str, args: dict) -> list[str]:
  """The command running repo script `script` with `--name=value` for every argument that is not None."""
  return [sys.executable, os.path.join(ROOT, script)] + [f"--{k}={_flag_value(v)}" for k, v in args.items()
                                                         if v is not None]


def _shown(command: list[str]) -> str:
  return " ".join(shlex.quote(os.path.relpath(c, ROOT) if c.startswith(ROOT + os.sep) else c) for c in command)


def run_step(title: str, script: str, args: dict, done_file: str) -> bool:
  """Prints and runs one documented command unless `done_file` (written last by that command) exists.

  Args:
    title: what the step does, printed above the command.
    script: the script's path relative to the repo root.
    args: its flags; None values are left out, booleans are written true/false.
    done_file: the file whose existence means the step's output is complete.

  Returns:
    True if the command ran, False if it was skipped as already done.

  Raises:
    UserError: the command exited with a non-zero status (its own error is printed above).
  """
  print(f"\n=== {title}", flush=True)
  command = command_line(script, args)
  print("$ " + _shown(command), flush=True)
  if os.path.exists(done_file):
    print(f"(already done: {done_file})", flush=True)
    return False
  start = time.time()
  result = subprocess.run(command, cwd=ROOT, check=False)
  if result.returncode:
    raise UserError(f"step '{title}' failed (exit {result.returncode}); fix it and run the same command again to "
                    "resume")
  print(f"({time.time() - start:.0f}s)", flush=True)
  return True


def script_has_flag(script: str, name: str) -> bool:
  """Whether repo script `script` defines flag `name` (read from its source, without starting TensorFlow)."""
  with open(os.path.join(ROOT, script)) as f:
    return re.search(rf"DEFINE_\w+\(\s*[\"']{re.escape(name)}[\"']", f.read()) is not None


def spread_layer_map(teacher_layers: int, student_layers: int) -> list[int]:
  """Teacher layer g(m) = ceil(m * N / M) for student layer m: evenly spaced, the last teacher layer included.

  Equals TinyBERT's uniform map m * N / M when M divides N; otherwise (6 layers onto 4: 2, 3, 5, 6) it still spans
  the whole teacher.
  """
  return [math.ceil(m * teacher_layers / student_layers) for m in range(1, student_layers + 1)]


def encoder_params(config_path: str) -> int:
  """The parameter count of the encoder that `config_path` describes (heads and poolers of tasks excluded)."""
  from modeling import build_encoder, load_config
  return build_encoder(load_config(config_path)).count_params()


def latency_ms(saved_model_dir: str, seq: int, repeats: int = 30) -> float:
  """Median milliseconds of one batch-1 call of the SavedModel's `serve_ids` signature at length `seq`."""
  import numpy as np
  import tensorflow as tf
  serve = tf.saved_model.load(saved_model_dir).signatures["serve_ids"]
  ones = tf.ones([1, seq], tf.int32)
  inputs = {"input_word_ids": ones, "input_mask": ones, "input_type_ids": tf.zeros_like(ones)}
  for _ in range(5):
    serve(**inputs)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    serve(**inputs)
    times.append(time.perf_counter() - start)
  return 1000 * float(np.median(times))


@dataclasses.dataclass
class ModelRow:
  """One model of the closing table."""
  name: str
  dev: float | None
  params: int
  latency_ms: float | None
  test: float | None = None


def results_table(rows: list[ModelRow], metric: str, seq: int) -> str:
  """A Markdown table of `rows` (the first is the teacher) and a line comparing the last row with the first."""
  with_test = any(row.test is not None for row in rows)
  teacher = rows[0]

  def number(value, spec):
    return "n/a" if value is None else format(value, spec)

  header = (f"| model | dev {metric} |" + (f" test {metric} |" if with_test else "")
            + f" encoder params | batch-1 latency (SavedModel, seq {seq}) | speed-up |")
  lines = [header, "|" + "---|" * (header.count("|") - 1)]
  for row in rows:
    speed_up = teacher.latency_ms / row.latency_ms if teacher.latency_ms and row.latency_ms else None
    lines.append(f"| {row.name} | {number(row.dev, '.4f')} |" + (f" {number(row.test, '.4f')} |" if with_test else "")
                 + f" {row.params / 1e6:.1f}M | {number(row.latency_ms, '.1f')} ms | {number(speed_up, '.1f')}x |")
  student = rows[-1]
  if len(rows) > 1:
    kept = f"{100 * student.dev / teacher.dev:.1f}%" if student.dev is not None and teacher.dev else "n/a"
    faster = (f"{teacher.latency_ms / student.latency_ms:.1f}x" if teacher.latency_ms and student.latency_ms
              else "n/a")
    lines.append(f"\nthe student keeps {kept} of the teacher's dev {metric} with "
                 f"{teacher.params / student.params:.1f}x fewer parameters and is {faster} faster")
  return "\n".join(lines)


def write_results(output_dir: str, stem: str, rows: list[ModelRow], metric: str, seq: int, **extra) -> str:
  """Writes `<stem>.md` (the table) and `<stem>.json` (the rows and `extra`) atomically; returns the table."""
  table = results_table(rows, metric, seq)
  with files.atomic_path(os.path.join(output_dir, f"{stem}.md")) as tmp, open(tmp, "w") as f:
    f.write(table + "\n")
  files.write_json(os.path.join(output_dir, f"{stem}.json"),
                   {"metric": metric, "max_seq_length": seq, "rows": [dataclasses.asdict(r) for r in rows], **extra})
  return table
