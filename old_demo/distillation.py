r"""Classic knowledge distillation (Hinton et al., 2015, https://arxiv.org/abs/1503.02531) for any tf_keras models.

The student learns from the gold labels and from the teacher's softened outputs:

  loss = a * CE(y, softmax(z_S)) + b * T^2 * CE(softmax(z_T / T), softmax(z_S / T))

The T^2 factor (switchable) keeps the soft term's gradients on the scale of the hard term's as T grows. Binary and
multi-label tasks use sigmoids in place of the softmaxes (BCE on the labels plus BCE of sigmoid(z_S / T) against
sigmoid(z_T / T)); regression uses a * MSE(y, z_S) + b * MSE(z_T, z_S), where a temperature means nothing.

Python:

  student, history = distill(teacher, student, (x_train, y_train), (x_valid, y_valid), temp=4.0, a=0.5, b=0.5)

The code lives in `losses` (the loss and metrics), `distiller` (the training model and `distill`), `datasets` and
`architectures` (the registries); this module re-exports their public names and holds the command line.

Command line (from the repository root):

  python3 old_demo/distillation.py --teacher cnn --student mlp --task mnist --weights_dir /tmp/kd \
    --train_teacher --temp 4 --a 0.5 --b 0.5 --epochs 10 --seed 1
"""

import contextlib
import os
import sys

import tf_keras

from modeling.errors import UserError, run_script
from old_demo.distiller import Distiller, check_arguments, distill, evaluate_accuracy, fit_supervised
from old_demo.losses import TASK_TYPES, hinton_loss

__all__ = ["TASK_TYPES", "Distiller", "distill", "evaluate_accuracy", "fit_supervised", "hinton_loss", "results_table",
           "run"]


def _define_flags():
  from absl import flags

  flags.DEFINE_string("teacher", None, "Teacher architecture, a name in old_demo.utils.ARCHITECTURES.")
  flags.DEFINE_string("student", None, "Student architecture, a name in old_demo.utils.ARCHITECTURES.")
  flags.DEFINE_string("task", None, "Dataset, a name in old_demo.utils.DATASETS.")
  flags.DEFINE_string("weights_dir", None, "Folder of teacher.h5 (written by old_demo/run_model.py or "
                      "--train_teacher) and of the outputs: student.h5 and results.md.")
  flags.DEFINE_string("data_dir", None, "Folder of user-downloaded data (imdb, mnli, yelp); unused otherwise.")
  flags.DEFINE_string("teacher_config", None, "JSON object of keyword arguments for the teacher builder, "
                      "e.g. '{\"filters\": 64}'. Default: the builder's defaults.")
  flags.DEFINE_string("student_config", None, "JSON object of keyword arguments for the student builder.")
  flags.DEFINE_bool("train_teacher", False, "Train the teacher on the task first and save it to --weights_dir, "
                    "instead of loading --weights_dir/teacher.h5.")
  flags.DEFINE_bool("student_alone", True, "Also train a same-seed copy of the student without a teacher and "
                    "report its accuracy as the baseline.")
  flags.DEFINE_float("temp", 1.0, "Temperature T > 0 of the softened outputs.")
  flags.DEFINE_float("a", 0.5, "Weight >= 0 of the hard-label term.")
  flags.DEFINE_float("b", 0.5, "Weight >= 0 of the teacher term.")
  flags.DEFINE_bool("scale_by_temp_squared", True, "Multiply the teacher term by T^2.")
  flags.DEFINE_integer("epochs", 10, "Epochs of distillation (and of the student-alone baseline).")
  flags.DEFINE_integer("teacher_epochs", 5, "Epochs of teacher training with --train_teacher.")
  flags.DEFINE_integer("batch_size", 32, "Batch size.")
  flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
  flags.DEFINE_bool("cache_teacher", True, "Compute the teacher outputs once instead of at every step.")
  flags.DEFINE_integer("seed", 42, "Seed for a repeatable CPU run.")
  flags.mark_flags_as_required(["teacher", "student", "task", "weights_dir"])
  return flags.FLAGS


def results_table(rows) -> str:
  """A Markdown table of `(model, accuracy)` rows."""
  lines = ["| model | test accuracy |", "|---|---|"]
  lines += [f"| {name} | {value:.4f} |" for name, value in rows]
  return "\n".join(lines) + "\n"


def run(flags_values) -> str:
  """Runs the command line: validates flags, trains or loads the teacher, distils, writes `results.md`."""
  from modeling import files
  from old_demo import architectures, datasets, saving

  fv = flags_values
  teacher_arch = architectures.get_architecture(fv.teacher, "teacher")
  student_arch = architectures.get_architecture(fv.student, "student")
  load_task = datasets.get_dataset(fv.task)
  teacher_config = architectures.parse_config(fv.teacher_config, "teacher_config")
  student_config = architectures.parse_config(fv.student_config, "student_config")
  check_arguments(fv.temp, fv.a, fv.b, fv.epochs, fv.batch_size, "multiclass", "logits", "logits")
  files.ensure_writable_dir(fv.weights_dir, "weights_dir")
  teacher_path = os.path.join(fv.weights_dir, "teacher.h5")
  if not fv.train_teacher and not os.path.isfile(teacher_path):
    raise UserError(f"--weights_dir: {teacher_path} not found; train one with old_demo/run_model.py --name teacher "
                    "or pass --train_teacher")

  data = load_task(fv.data_dir)
  rows = []
  tf_keras.utils.set_random_seed(fv.seed)
  teacher = architectures.build_model(fv.teacher, teacher_arch, data, teacher_config)
  if fv.train_teacher:
    fit_supervised(teacher, data.train, data.valid, task_type=data.task_type, epochs=fv.teacher_epochs,
                   batch_size=fv.batch_size, learning_rate=fv.learning_rate, seed=fv.seed, verbose=2)
    saving.save_model(teacher, fv.weights_dir, "teacher", fv.teacher, teacher_config, fv.task)
  else:
    saving.load_model_weights(teacher, fv.weights_dir, "teacher", fv.teacher, teacher_config, fv.task)
  rows.append((f"teacher ({fv.teacher})", evaluate_accuracy(teacher, data.test, data.task_type)))

  if fv.student_alone:
    tf_keras.utils.set_random_seed(fv.seed)
    alone = architectures.build_model(fv.student, student_arch, data, student_config)
    fit_supervised(alone, data.train, data.valid, task_type=data.task_type, epochs=fv.epochs,
                   batch_size=fv.batch_size, learning_rate=fv.learning_rate, seed=fv.seed, verbose=2)
    rows.append((f"student alone ({fv.student})", evaluate_accuracy(alone, data.test, data.task_type)))

  tf_keras.utils.set_random_seed(fv.seed)
  student = architectures.build_model(fv.student, student_arch, data, student_config)
  student, _ = distill(teacher, student, data.train, data.valid, temp=fv.temp, a=fv.a, b=fv.b,
                       scale_by_temp_squared=fv.scale_by_temp_squared, task_type=data.task_type, epochs=fv.epochs,
                       batch_size=fv.batch_size, learning_rate=fv.learning_rate, cache_teacher=fv.cache_teacher,
                       seed=fv.seed, verbose=2)
  rows.append((f"student distilled ({fv.student}, T={fv.temp:g}, a={fv.a:g}, b={fv.b:g})",
               evaluate_accuracy(student, data.test, data.task_type)))
  saving.save_model(student, fv.weights_dir, "student", fv.student, student_config, fv.task)

  table = f"Task: {fv.task} (test split, {len(data.test[1])} examples)\n\n" + results_table(rows)
  with files.atomic_path(os.path.join(fv.weights_dir, "results.md")) as tmp, open(tmp, "w") as f:
    f.write(table)
  return table


def main():
  from absl import flags

  with contextlib.redirect_stdout(sys.stderr):  # Keras progress goes to stderr; stdout gets only the table.
    table = run(flags.FLAGS)
  print(table, end="")


if __name__ == "__main__":
  _define_flags()
  run_script(main)
