r"""A control for the old_demo table: each student alone on the train split plus the transfer set *with* its labels.

  python3 experiments/old_demo_controls.py --tasks mnist                 # shifted copies with their digits' labels
  python3 experiments/old_demo_controls.py --tasks mnist --with_kd       # and KD on the same labelled data
  python3 experiments/old_demo_controls.py --tasks imdb_reviews --students bilstm,transformer

The distilled students of `experiments/old_demo_table.py` learn from a transfer set the student alone never sees. This
asks how much of their gain the transfer inputs would give without the teacher. On mnist the transfer set is shifted
copies of the train digits, whose labels a shift keeps, so this is the student alone with plain shift augmentation:
the fair twin; `--with_kd` then distils the same student on the same labelled data, so that the teacher's soft
targets are all that differs. On IMDB the transfer reviews come without labels in the table; labelling them by hand
is what distillation stands in for, so this row is the ceiling the teacher's labels aim at, not a baseline.

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

from modeling import files, runtime_env
from modeling.errors import UserError

try:
  from experiments import old_demo_table as table  # Imported from the repo root (the tests).
except ModuleNotFoundError:  # Run as `python3 experiments/old_demo_controls.py`: its own folder is on sys.path.
  import old_demo_table as table

# --tasks, --seeds and --output_dir are old_demo_table's flags (one absl namespace); this adds --students.
flags.DEFINE_list("students", None, "Students to run (default: all of the task's).")
flags.DEFINE_bool("with_kd", False, "Also distil each student on the same labelled data (train + transfer set with "
                  "gold labels), with the KD setting old_demo_table.json in --output_dir selected for it and the "
                  "teacher logits cached in --cache_dir: the teacher's soft targets on top of the same data.")
FLAGS = flags.FLAGS


def labelled_transfer(data, transfer, transfer_labels):
  """The train split with the transfer set and its gold labels appended."""
  return np.concatenate([data.train[0], transfer]), np.concatenate([data.train[1], transfer_labels])


def _recorded_teacher(task, data, experiment, transfer):
  outputs = table.teacher_outputs(task, data, experiment, FLAGS.cache_dir, transfer)  # The table's cache.
  if "transfer_logits" not in outputs:
    raise UserError(f"the cached teacher of {task} has no transfer-set logits; run old_demo_table.py first")
  return table.recorded_teacher(data, outputs, transfer)


def _selections(task: str) -> dict:
  path = os.path.join(FLAGS.output_dir, "old_demo_table.json")
  try:
    with open(path) as f:
      return json.load(f)["results"][task]["selections"]
  except (OSError, KeyError, ValueError) as e:
    raise UserError(f"--with_kd reads the KD settings of {task} from {path}: {e}") from None


def run_task(task: str, students: list[str] | None, seeds: int, with_kd: bool = False) -> dict:
  experiment = table.EXPERIMENTS[task]
  data, transfer, transfer_labels = table.prepare_data(task, experiment)
  if transfer is None:
    raise UserError(f"{task} has no transfer set in old_demo_table.EXPERIMENTS")
  train = labelled_transfer(data, transfer, transfer_labels)
  chosen = [(name, config) for name, config in experiment.students if students is None or name in students]
  if not chosen:
    raise UserError(f"--students: none of {students} is a student of {task} "
                    f"({', '.join(name for name, _ in experiment.students)})")
  teacher, selections = (_recorded_teacher(task, data, experiment, transfer), _selections(task)) if with_kd else (
      None, {})
  runs, summary = [], {}
  for name, config in chosen:
    summary[name] = {}
    for arm, kd in (("alone", None), ("kd", selections.get(name))):
      if arm == "kd" and not with_kd:
        continue
      for seed in range(seeds):
        run = table.train_student(data, name, config, experiment, seed, teacher if kd else None,
                                  None if kd is None else tuple(kd), train=train)
        run["train"] = "train + transfer, gold labels"
        runs.append(run)
        print(f"{task} {name} seed {seed} {arm} on train + labelled transfer: valid {run['valid_accuracy']:.4f}, "
              f"test {run['test_accuracy']:.4f}, {run['seconds']:.0f} s", file=sys.stderr, flush=True)
      tests = [run["test_accuracy"] for run in runs if run["student"] == name and run["kd"] == kd]
      summary[name][arm] = {"mean": statistics.fmean(tests), "n": len(tests),
                            "std": statistics.stdev(tests) if len(tests) > 1 else 0.0}
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
    lines = ["| task | student | on train + transfer with gold labels, test: alone | with KD |", "|---|---|---|---|"]
    for task in FLAGS.tasks:
      start = time.time()
      results[task] = run_task(task, FLAGS.students, FLAGS.seeds, FLAGS.with_kd)
      results[task]["run"] = {"command": " ".join(["python3 experiments/old_demo_controls.py"] + sys.argv[1:]),
                              "date": time.strftime("%Y-%m-%d"), "minutes": (time.time() - start) / 60,
                              "cpu": runtime_env.cpu_model(), "cores": os.cpu_count()}
      files.write_json(path, results)
      for name, arms in results[task]["summary"].items():
        cells = [f"{arms[arm]['mean']:.4f} ± {arms[arm]['std']:.4f} (n={arms[arm]['n']})" if arm in arms else "n/a"
                 for arm in ("alone", "kd")]
        lines.append(f"| {task} | {name} | {' | '.join(cells)} |")
    print("\n".join(lines))
  except UserError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
