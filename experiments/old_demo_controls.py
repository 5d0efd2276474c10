r"""A control for the old_demo table: each student alone on the train split plus the transfer set *with* its labels.

  python3 experiments/old_demo_controls.py --tasks mnist                 # shifted copies with their digits' labels
  python3 experiments/old_demo_controls.py --tasks imdb_reviews --students bilstm,transformer

The distilled students of `experiments/old_demo_table.py` learn from a transfer set the student alone never sees. This
asks how much of their gain the transfer inputs would give without the teacher. On mnist the transfer set is shifted
copies of the train digits, whose labels a shift keeps, so this is the student alone with plain shift augmentation:
the fair twin. On IMDB the transfer reviews come without labels in the table; labelling them by hand is what
distillation stands in for, so this row is the ceiling the teacher's labels aim at, not a baseline.

Same data, students, seeds, epochs and early stopping as the table (`old_demo_table.EXPERIMENTS`). Writes
`--output_dir/old_demo_controls.json` (every run, and per task the mean, sample std and the command) and prints a
table.
"""

import json
import os
import statistics
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import old_demo_table as table  # noqa: E402  (a sibling script, not a package)
from modeling import files, runtime_env  # noqa: E402
from modeling.errors import UserError  # noqa: E402

# --tasks, --seeds and --output_dir are old_demo_table's flags (one absl namespace); this adds --students.
flags.DEFINE_list("students", None, "Students to run (default: all of the task's).")
FLAGS = flags.FLAGS


def labelled_transfer(data, transfer, transfer_labels):
  """The train split with the transfer set and its gold labels appended."""
  return np.concatenate([data.train[0], transfer]), np.concatenate([data.train[1], transfer_labels])


def run_task(task: str, students: list[str] | None, seeds: int) -> dict:
  experiment = table.EXPERIMENTS[task]
  data, transfer, transfer_labels = table.prepare_data(task, experiment, with_transfer_labels=True)
  if transfer is None:
    raise UserError(f"{task} has no transfer set in old_demo_table.EXPERIMENTS")
  train = labelled_transfer(data, transfer, transfer_labels)
  chosen = [(name, config) for name, config in experiment.students if students is None or name in students]
  if not chosen:
    raise UserError(f"--students: none of {students} is a student of {task} "
                    f"({', '.join(name for name, _ in experiment.students)})")
  runs, summary = [], {}
  for name, config in chosen:
    for seed in range(seeds):
      run = table.train_student(data, name, config, experiment, seed, train=train)
      run["train"] = "train + transfer, gold labels"
      runs.append(run)
      print(f"{task} {name} seed {seed} alone on train + labelled transfer: valid {run['valid_accuracy']:.4f}, "
            f"test {run['test_accuracy']:.4f}, {run['seconds']:.0f} s", file=sys.stderr, flush=True)
    tests = [run["test_accuracy"] for run in runs if run["student"] == name]
    summary[name] = {"mean": statistics.fmean(tests), "std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                     "n": len(tests)}
  return {"sizes": {"train": len(data.train[1]), "transfer": len(transfer)}, "runs": runs, "summary": summary}


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  try:
    unknown = sorted(set(FLAGS.tasks) - set(table.EXPERIMENTS))
    if unknown:
      raise UserError(f"--tasks: unknown {unknown}; choose among {sorted(table.EXPERIMENTS)}")
    files.ensure_writable_dir(FLAGS.output_dir, "output_dir")
    path = os.path.join(FLAGS.output_dir, "old_demo_controls.json")
    results = {}
    if os.path.isfile(path):  # Other tasks' results are kept.
      with open(path) as f:
        results = json.load(f)
    lines = ["| task | student | alone on train + transfer with gold labels (test) |", "|---|---|---|"]
    for task in FLAGS.tasks:
      start = time.time()
      results[task] = run_task(task, FLAGS.students, FLAGS.seeds)
      results[task]["run"] = {"command": " ".join(["python3 experiments/old_demo_controls.py"] + sys.argv[1:]),
                              "date": time.strftime("%Y-%m-%d"), "minutes": (time.time() - start) / 60,
                              "cpu": runtime_env.cpu_model(), "cores": os.cpu_count()}
      files.write_json(path, results)
      for name, row in results[task]["summary"].items():
        lines.append(f"| {task} | {name} | {row['mean']:.4f} ± {row['std']:.4f} (n={row['n']}) |")
    print("\n".join(lines))
  except UserError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
