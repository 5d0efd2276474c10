r"""How much faster multi-epoch distillation gets with `cache_teacher=True` (same run, same machine).

  python3 benchmarks/bench_old_demo_cache.py [--epochs 5] [--repeats 1]

Distils the default CNN teacher (untrained: the speed does not depend on its weights) into an MLP student on the
mnist-5k train split, once with the teacher run at every step and once with its outputs computed up front, and
prints a JSON line followed by a one-line summary. Both runs use the same seed; the JSON also reports the largest
relative difference between their loss histories.
"""

import json
import time

import numpy as np
import tf_keras
from absl import app, flags

from old_demo import distillation, utils

flags.DEFINE_integer("epochs", 5, "Distillation epochs per run.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_integer("repeats", 1, "Timed runs per mode; the fastest one counts.")
FLAGS = flags.FLAGS


def timed_run(data, teacher, cache: bool):
  tf_keras.utils.set_random_seed(0)
  student = utils.build_mlp(data)
  start = time.perf_counter()
  _, history = distillation.distill(teacher, student, data.train, temp=4.0, epochs=FLAGS.epochs,
                                    batch_size=FLAGS.batch_size, cache_teacher=cache, seed=0, verbose=0)
  return time.perf_counter() - start, history.history["loss"]


def main(argv):
  del argv
  data = utils.load_mnist()
  tf_keras.utils.set_random_seed(0)
  teacher = utils.build_cnn(data)
  timed_run(data, teacher, cache=False)  # Warm-up: the first run pays one-off TensorFlow start-up costs.
  seconds, losses = {}, {}
  for cache in (False, True):
    runs = [timed_run(data, teacher, cache) for _ in range(FLAGS.repeats)]
    seconds[cache] = min(run[0] for run in runs)
    losses[cache] = runs[0][1]
  result = {
      "benchmark": "old_demo cache_teacher", "task": "mnist", "teacher": "cnn", "student": "mlp",
      "train_examples": len(data.train[1]), "epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size,
      "seconds_uncached": round(seconds[False], 3), "seconds_cached": round(seconds[True], 3),
      "speedup": round(seconds[False] / seconds[True], 3),
      "max_relative_loss_difference": float(np.max(np.abs(np.subtract(losses[True], losses[False]))
                                                   / np.abs(losses[False]))),
  }
  print(json.dumps(result))
  print(f"cache_teacher=True: {FLAGS.epochs} epochs in {seconds[True]:.1f} s vs {seconds[False]:.1f} s "
        f"uncached, {result['speedup']:.2f}x faster (CNN teacher -> MLP student, mnist-5k, same run)")


if __name__ == "__main__":
  app.run(main)
