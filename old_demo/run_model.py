r"""Trains one model on a task without a teacher and saves it: this is how a teacher for distillation.py is made.

  python3 old_demo/run_model.py --arch cnn --task mnist --weights_dir /tmp/kd --epochs 5
  python3 old_demo/distillation.py --teacher cnn --student mlp --task mnist --weights_dir /tmp/kd

Writes `--weights_dir/{--name}.h5` and `{--name}.json` (architecture, config, task), and prints the test
accuracy.
"""

import contextlib
import sys

from absl import flags

from modeling.errors import UserError, run_script

flags.DEFINE_string("arch", None, "Architecture, a name in old_demo.utils.ARCHITECTURES.")
flags.DEFINE_string("task", None, "Dataset, a name in old_demo.utils.DATASETS.")
flags.DEFINE_string("weights_dir", None, "Output folder of {name}.h5 and {name}.json.")
flags.DEFINE_string("name", "teacher", "Role of the model: the file stem that distillation.py looks for.")
flags.DEFINE_string("config", None, "JSON object (or JSON file) of keyword arguments for the architecture builder.")
flags.DEFINE_string("data_dir", None, "Folder of user-downloaded data (imdb, mnli, yelp); unused otherwise.")
flags.DEFINE_integer("epochs", 5, "Training epochs.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 42, "Seed for a repeatable CPU run.")
flags.mark_flags_as_required(["arch", "task", "weights_dir"])
FLAGS = flags.FLAGS


def run() -> float:
  """Validates the flags, trains the model, saves it and returns its test accuracy."""
  import tf_keras

  from modeling import files
  from old_demo import architectures, datasets, distiller, saving

  builder = architectures.get_architecture(FLAGS.arch)
  load_task = datasets.get_dataset(FLAGS.task)
  config = architectures.parse_config(FLAGS.config, "config")
  if FLAGS.epochs < 1 or FLAGS.batch_size < 1:
    raise UserError(f"--epochs and --batch_size must be >= 1, got {FLAGS.epochs} and {FLAGS.batch_size}")
  files.ensure_writable_dir(FLAGS.weights_dir, "weights_dir")
  data = load_task(FLAGS.data_dir)
  tf_keras.utils.set_random_seed(FLAGS.seed)
  model = architectures.build_model(FLAGS.arch, builder, data, config)
  distiller.fit_supervised(model, data.train, data.valid, task_type=data.task_type, epochs=FLAGS.epochs,
                           batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate, seed=FLAGS.seed,
                           verbose=2)
  saving.save_model(model, FLAGS.weights_dir, FLAGS.name, FLAGS.arch, config, FLAGS.task)
  return distiller.evaluate_accuracy(model, data.test, data.task_type)


def main():
  with contextlib.redirect_stdout(sys.stderr):  # Keras progress goes to stderr; stdout gets only the result.
    test_accuracy = run()
  print(f"{FLAGS.name} ({FLAGS.arch} on {FLAGS.task}) test accuracy: {test_accuracy:.4f}")


if __name__ == "__main__":
  run_script(main)
