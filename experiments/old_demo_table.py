r"""Teacher, student alone and distilled student on mnist-5k and rotten_tomatoes, over several seeds (mean +- std).

  python3 experiments/old_demo_table.py                     # defaults: 3 seeds, about 10 minutes on 2 cores
  python3 experiments/old_demo_table.py --seeds 5 --epoch_scale 3

Prints a Markdown table and writes it to experiments/results/old_demo_table.md (atomically). Accuracy is on each
task's test split (the hash rule of old_demo/utils.py).
"""

import os
import sys
import time

import numpy as np
import tf_keras
from absl import app, flags

from modeling import files
from modeling.errors import UserError
from old_demo import distillation, utils

flags.DEFINE_integer("seeds", 3, "Number of seeds (0, 1, ...) per task.")
flags.DEFINE_float("epoch_scale", 1.0, "Multiplies every epoch count below, to train longer.")
flags.DEFINE_list("tasks", ["mnist", "rotten_tomatoes"], "Tasks to run, keys of EXPERIMENTS.")
flags.DEFINE_string("output", os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                           "old_demo_table.md"), "Markdown file to write.")
FLAGS = flags.FLAGS

# Per task: teacher and student (architecture, config), epochs, and the distillation hyper-parameters.
EXPERIMENTS = {
    "mnist": {"teacher": ("cnn", {}), "student": ("mlp", {"hidden_units": [64]}), "teacher_epochs": 5,
              "epochs": 10, "batch_size": 64, "temp": 4.0, "a": 0.5, "b": 0.5},
    "rotten_tomatoes": {"teacher": ("transformer", {}), "student": ("attention", {"embedding_dim": 16}),
                        "teacher_epochs": 2, "epochs": 4, "batch_size": 64, "temp": 2.0, "a": 0.5, "b": 0.5},
}


def run_task(task: str, seed: int, scale: float):
  """Returns the test accuracies (teacher, student alone, student distilled) for one task and seed."""
  setup = EXPERIMENTS[task]
  data = utils.get_dataset(task)(None)
  epochs = max(1, round(setup["epochs"] * scale))
  teacher_epochs = max(1, round(setup["teacher_epochs"] * scale))

  def build(role):
    name, config = setup[role]
    return utils.build_model(name, utils.get_architecture(name), data, config)

  tf_keras.utils.set_random_seed(seed)
  teacher = build("teacher")
  distillation.fit_supervised(teacher, data.train, data.valid, epochs=teacher_epochs,
                              batch_size=setup["batch_size"], seed=seed, verbose=0)
  tf_keras.utils.set_random_seed(seed + 1000)
  alone = build("student")
  distillation.fit_supervised(alone, data.train, data.valid, epochs=epochs, batch_size=setup["batch_size"],
                              seed=seed, verbose=0)
  tf_keras.utils.set_random_seed(seed + 1000)  # The same initial student as "alone".
  student, _ = distillation.distill(teacher, build("student"), data.train, data.valid, temp=setup["temp"],
                                    a=setup["a"], b=setup["b"], epochs=epochs, batch_size=setup["batch_size"],
                                    cache_teacher=True, seed=seed, verbose=0)
  return [distillation.evaluate_accuracy(model, data.test) for model in (teacher, alone, student)]


def table(results, seeds: int, scale: float) -> str:
  command = "python3 experiments/old_demo_table.py" + (f" --epoch_scale {scale:g}" if scale != 1 else "")
  lines = [f"Test accuracy, mean ± std over {seeds} seeds (`{command} --seeds {seeds}`).", "",
           "| task | teacher | student | teacher acc | student alone | student distilled | T, a, b |",
           "|---|---|---|---|---|---|---|"]
  for task, accuracies in results.items():
    setup = EXPERIMENTS[task]
    cells = [f"{np.mean(column):.4f} ± {np.std(column):.4f}" for column in np.array(accuracies).T]
    lines.append(f"| {task} | {setup['teacher'][0]} | {setup['student'][0]} | {' | '.join(cells)} | "
                 f"{setup['temp']:g}, {setup['a']:g}, {setup['b']:g} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  try:
    unknown = sorted(set(FLAGS.tasks) - set(EXPERIMENTS))
    if unknown or FLAGS.seeds < 1 or FLAGS.epoch_scale <= 0:
      raise UserError(f"--tasks must be among {sorted(EXPERIMENTS)} (got unknown {unknown}), --seeds >= 1 and "
                      "--epoch_scale > 0")
    files.ensure_writable_dir(os.path.dirname(os.path.abspath(FLAGS.output)), "output")
    results = {}
    for task in FLAGS.tasks:
      results[task] = []
      for seed in range(FLAGS.seeds):
        start = time.time()
        results[task].append(run_task(task, seed, FLAGS.epoch_scale))
        print(f"{task} seed {seed}: teacher/alone/distilled = {results[task][-1]} ({time.time() - start:.0f} s)",
              file=sys.stderr, flush=True)
    text = table(results, FLAGS.seeds, FLAGS.epoch_scale)
    with files.atomic_path(FLAGS.output) as tmp, open(tmp, "w") as f:
      f.write(text)
    print(text, end="")
  except UserError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
