r"""The seed's Hinton-distillation table, offline: a teacher, and students trained alone and distilled, over 3 seeds.

  python3 experiments/old_demo_table.py                          # IMDB (imdb_reviews) and mnist, documented scale
  python3 experiments/old_demo_table.py --tasks mnist --update   # one task, keeping the other's results
  python3 experiments/old_demo_table.py --quick                  # a smoke run of every step, numbers meaningless

Per task, the teacher is trained once: on imdb_reviews, all-mpnet-base-v2 (`--text_teacher minilm`: the first table's
MiniLM-L6-H384) through `old_demo.architectures.build_bert`, fine-tuned on the train subsample; on mnist, a CNN. Its
logits on the train, validation and test examples are computed once and cached in `--cache_dir`; students read them
through `RecordedTeacher`. Every student is trained alone and distilled with Hinton KD, from the same initial weights.
The distilled students also learn from a transfer set, which the teacher labels and the student alone never sees:
4,000 more IMDB train reviews without their labels (`transfer_examples`), or 4 shifted copies of every mnist train
digit (`transfer_copies`); its logits are cached with the others.

Hyper-parameters are chosen on the validation split only. Every run keeps the weights of its epoch with the best
validation accuracy (at most `max_epochs`, stopping after `patience` epochs without a better one). The KD setting
(temp, a, b) of each student is the grid point whose seed-0 run has the best validation accuracy (ties: the earlier
grid point); seeds 1 and 2 are then run with it. Test accuracy is read once per run, after its selection.

Writes `--output_dir/old_demo_table.json` (every run, the selections, the summary, and per task the command, date,
minutes, CPU and load average) and `old_demo_table.md` (the table) after each task, atomically, and prints the table.
"""

import dataclasses
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
import tf_keras
from absl import app, flags

from modeling import assets, files, runtime_env
from modeling.errors import UserError
from old_demo import architectures, datasets, distiller

flags.DEFINE_list("tasks", ["imdb_reviews", "mnist"], "Tasks to run, keys of EXPERIMENTS.")
flags.DEFINE_integer("seeds", 3, "Seeds per student (0, 1, ...).")
flags.DEFINE_enum("text_teacher", "mpnet", ["mpnet", "minilm"],
                  "IMDB teacher: all-mpnet-base-v2 (109.5M, the table's) or MiniLM-L6-H384 (22.7M, the first table's).")
flags.DEFINE_bool("update", False, "Keep the results of the tasks not run that an earlier old_demo_table.json in "
                  "--output_dir holds (each task records its own command, date, minutes and machine load).")
flags.DEFINE_bool("quick", False, "Tiny sizes, one epoch and a two-point grid: checks that every step runs.")
flags.DEFINE_string("output_dir", os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
                    "Folder of old_demo_table.json and old_demo_table.md.")
flags.DEFINE_string("cache_dir", os.path.join(tempfile.gettempdir(), "old_demo_table_cache"),
                    "Folder of the cached teacher logits (one .npz per task and setting).")
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One task's row group: the teacher, the students, the data sizes and the search space.

  Attributes:
    teacher: (architecture, builder config); a config path starting with an `ASSET_FOLDERS` name starts in that
      asset folder, and `precision: "auto"` becomes bfloat16 on a CPU with bfloat16 instructions, else float32.
    students: (architecture, builder config) per student.
    train_examples, valid_examples, test_examples: sizes of the seeded subsamples (None: the whole split).
    teacher_train_examples: the first N train examples the teacher is trained on (None: all of train).
    teacher_epochs: epochs of teacher training (the best validation epoch is kept).
    teacher_learning_rate: learning rate of the teacher (the peak one with "adamw").
    teacher_batch_size: batch size of teacher training.
    max_epochs: epochs of each student run at most (the best validation epoch is kept).
    batch_size: batch size of every run.
    grid: the (temp, a, b) points searched for each student.
    teacher_optimizer: "adam" (constant learning rate), or "adamw" for fine-tuning a pretrained encoder: AdamW with
      a linear warmup over the first 10% of the steps and a linear decay to zero (`modeling.training`).
    patience: a student run stops after this many epochs without a better validation accuracy (None: never).
    transfer_examples: text tasks: this many more train-split inputs, taken after the train subsample in the same
      permutation and without their labels, form the transfer set the distilled students also learn from (the
      teacher's logits only). 0: no transfer set.
    transfer_copies: image tasks: the transfer set is this many copies of each train image, each shifted by up to
      `transfer_shift_pixels` in both directions (zero fill; a seeded draw per copy). 0: no transfer set.
    transfer_shift_pixels: the largest shift of a transfer copy, in pixels.
  """
  teacher: tuple[str, dict]
  students: tuple[tuple[str, dict], ...]
  train_examples: int | None
  valid_examples: int | None
  test_examples: int | None
  teacher_train_examples: int | None
  teacher_epochs: int
  teacher_learning_rate: float
  teacher_batch_size: int
  max_epochs: int
  batch_size: int
  grid: tuple[tuple[float, float, float], ...]
  teacher_optimizer: str = "adam"
  patience: int | None = None
  transfer_examples: int = 0
  transfer_copies: int = 0
  transfer_shift_pixels: int = 2


_TEXT_STUDENTS = tuple((name, {"sequence_length": 128}) for name in ("bilstm", "bigru", "attention", "transformer"))
_IMDB_SIZES = {"train_examples": 1000, "valid_examples": 400, "test_examples": 1000, "teacher_train_examples": 1000}
_MPNET = {"hf_dir": "mpnet", "pooling": "mean", "max_seq_length": 128, "precision": "auto"}
_MINILM = {"config_path": "minilm/config.json", "ckpt_path": "minilm", "vocab_file": "minilm/vocab.txt",
           "max_seq_length": 128}
EXPERIMENTS = {
    "imdb_reviews": Experiment(
        teacher=("bert", _MPNET), students=_TEXT_STUDENTS, **_IMDB_SIZES, teacher_epochs=1,
        teacher_learning_rate=3e-5, teacher_batch_size=16, teacher_optimizer="adamw", max_epochs=10, patience=3,
        batch_size=32, grid=((1.0, 0.5, 0.5), (2.0, 0.5, 0.5), (2.0, 0.1, 0.9), (5.0, 0.1, 0.9)),
        transfer_examples=4000),
    "mnist": Experiment(
        teacher=("cnn", {"random_shift": 0.1}), students=(("mlp", {"hidden_units": [64]}),), train_examples=None,
        valid_examples=None, test_examples=None, teacher_train_examples=None, teacher_epochs=40, teacher_learning_rate=1e-3,
        teacher_batch_size=64, max_epochs=150, patience=30, batch_size=64,
        grid=tuple((temp, round(1 - b, 1), b) for temp in (4.0, 20.0) for b in (0.5, 0.9)), transfer_copies=4),
}
# The first table's IMDB teacher (--text_teacher minilm), as it was run on 2026-11-28.
MINILM_IMDB = Experiment(
    teacher=("bert", _MINILM), students=_TEXT_STUDENTS, **_IMDB_SIZES, teacher_epochs=2, teacher_learning_rate=8e-5,
    teacher_batch_size=16, max_epochs=4, batch_size=32, grid=((2.0, 0.5, 0.5), (5.0, 0.1, 0.9)))
# Asset folders a teacher config can name: the MiniLM and MPNet Hugging Face folders of ASSETS.md.
ASSET_FOLDERS = {"minilm": assets.minilm_dir, "mpnet": assets.mpnet_dir}


def quick(experiment: Experiment) -> Experiment:
  """The smoke-test version of `experiment`: a few dozen examples, one epoch, two grid points."""
  small = {"train_examples": 64, "valid_examples": 32, "test_examples": 32, "teacher_train_examples": 32,
           "transfer_examples": 32 if experiment.transfer_examples else 0,
           "transfer_copies": 1 if experiment.transfer_copies else 0}
  if experiment.teacher[0] == "bert":
    small["teacher"] = ("bert", {**experiment.teacher[1], "max_seq_length": 32})
    small["students"] = tuple((name, {**config, "sequence_length": 32}) for name, config in experiment.students)
  return dataclasses.replace(experiment, teacher_epochs=1, max_epochs=1, grid=experiment.grid[:2], **small)


def subsample(arrays, size: int | None, seed: int = 0):
  """The first `size` examples of a `seed`ed permutation of `(x, y)` (all of them, permuted, when size is None)."""
  order = np.random.default_rng(seed).permutation(len(arrays[1]))[:size]
  return arrays[0][order], arrays[1][order]


def shifted_copies(images: np.ndarray, copies: int, max_shift: int, seed: int = 0) -> np.ndarray:
  """`copies` copies of each of `images` (`[n, height, width, channels]`), each moved by a seeded whole-pixel shift
  of up to `max_shift` down/up and right/left, zero-filled; copy k of every image comes before copy k + 1."""
  rng = np.random.default_rng(seed)
  height, width = images.shape[1:3]
  out = np.zeros((copies * len(images),) + images.shape[1:], images.dtype)
  for k in range(copies):
    shifts = rng.integers(-max_shift, max_shift + 1, size=(len(images), 2))
    for i, (dy, dx) in enumerate(shifts):
      target = out[k * len(images) + i]
      target[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
          images[i, max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
  return out


def prepare_data(task: str, experiment: Experiment):
  """`(data, transfer, transfer_labels)`: the task's splits, subsampled as `experiment` says, and the transfer set's
  inputs and gold labels (None without one). The table never reads those labels; the controls do.

  A text vocabulary is rebuilt from the train subsample and the transfer texts: both arms, alone and distilled, read
  the same vocabulary, and unlabelled text is fair game for building one.
  """
  data = datasets.get_dataset(task)(None)
  full_train = data.train
  data.train = subsample(full_train, experiment.train_examples)
  data.valid = subsample(data.valid, experiment.valid_examples)
  data.test = subsample(data.test, experiment.test_examples)
  transfer = transfer_labels = None
  if experiment.transfer_examples:
    if data.modality != "text":
      raise UserError(f"{task}: transfer_examples applies to text tasks; images use transfer_copies")
    if experiment.train_examples is None:
      raise UserError(f"{task}: transfer_examples needs a train subsample (train_examples) to take them after")
    order = np.random.default_rng(0).permutation(len(full_train[1]))
    rest = order[experiment.train_examples:experiment.train_examples + experiment.transfer_examples]
    if len(rest) < experiment.transfer_examples:
      raise UserError(f"{task}: {experiment.transfer_examples} transfer examples asked, {len(rest)} left in train")
    transfer, transfer_labels = full_train[0][rest], full_train[1][rest]
  elif experiment.transfer_copies:
    if data.modality != "image":
      raise UserError(f"{task}: transfer_copies applies to image tasks; text uses transfer_examples")
    transfer = shifted_copies(data.train[0], experiment.transfer_copies, experiment.transfer_shift_pixels)
    transfer_labels = np.tile(data.train[1], experiment.transfer_copies)  # A shift keeps the digit.
  if data.modality == "text":
    texts = data.train[0] if transfer is None else np.concatenate([data.train[0], transfer])
    data.vocabulary = datasets.build_vocabulary(texts)
  return data, transfer, transfer_labels


def recorded_teacher(data: datasets.TaskData, outputs: dict, transfer: np.ndarray | None) -> "RecordedTeacher":
  """The teacher of `teacher_outputs`, answering from its logits on train, validation and the transfer set."""
  recorded = [(data.train[0], outputs["train_logits"]), (data.valid[0], outputs["valid_logits"])]
  if transfer is not None:
    recorded.append((transfer, outputs["transfer_logits"]))
  return RecordedTeacher(np.concatenate([x for x, _ in recorded]), np.concatenate([z for _, z in recorded]))


def _keys(inputs) -> tf.Tensor:
  """One string per example: the text itself, or the serialized tensor of an image."""
  if inputs.dtype == tf.string:
    return inputs
  return tf.map_fn(tf.io.serialize_tensor, inputs, fn_output_signature=tf.string)


class RecordedTeacher(tf_keras.Model):
  """A teacher that answers from recorded logits: the logits recorded for each input example.

  Lets a teacher run once over a fixed set of examples (texts, or images matched by their exact values). An example
  that was not recorded is an error.

  Args:
    inputs: the recorded examples (strings, or an array of images).
    logits: `[len(inputs), classes]` logits, row i for `inputs[i]`.
  """

  def __init__(self, inputs, logits, **kwargs):
    super().__init__(**kwargs)
    keys = _keys(tf.constant(inputs)).numpy()
    keys, rows = np.unique(keys, return_index=True)
    self._table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(rows, tf.int64)), default_value=-1)
    self._logits = tf.constant(logits, tf.float32)

  def call(self, inputs, training=False):
    rows = self._table.lookup(_keys(inputs))
    tf.debugging.assert_non_negative(rows, "RecordedTeacher: an example without recorded logits")
    return tf.gather(self._logits, rows)


def _best_epoch_callback(max_epochs: int, patience: int | None = None) -> tf_keras.callbacks.EarlyStopping:
  """Keeps the weights of the epoch with the best validation accuracy; stops after `patience` epochs without a
  better one (never when None)."""
  return tf_keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience or max_epochs,
                                          restore_best_weights=True)


class _StepLog(tf_keras.callbacks.Callback):
  """Logs step/total, the running loss and the ETA every `every` steps: a teacher epoch can take many minutes."""

  def __init__(self, total_steps: int, every: int = 5):
    super().__init__()
    self.total_steps, self.every, self.step, self.start = total_steps, max(every, total_steps // 20), 0, time.time()

  def on_train_batch_end(self, batch, logs=None):
    self.step += 1
    if self.step % self.every == 0 or self.step == self.total_steps:
      elapsed = time.time() - self.start
      print(f"teacher step {self.step}/{self.total_steps} loss {logs['loss']:.4f} accuracy {logs['accuracy']:.4f} "
            f"{elapsed:.0f} s, ETA {elapsed / self.step * (self.total_steps - self.step):.0f} s", file=sys.stderr,
            flush=True)


bf16_instructions = runtime_env.has_bf16_instructions  # a module name, so tests can stand in for the CPU


def resolve_config(config: dict) -> dict:
  """A builder config with asset folders and `precision: "auto"` resolved (see `Experiment.teacher`)."""
  resolved = {}
  for key, value in config.items():
    if isinstance(value, str) and value.split("/")[0] in ASSET_FOLDERS:
      head, _, rest = value.partition("/")
      value = os.path.join(ASSET_FOLDERS[head](), rest) if rest else ASSET_FOLDERS[head]()
    elif key == "precision" and value == "auto":
      value = "bfloat16" if bf16_instructions() else "float32"
    resolved[key] = value
  return resolved


def _build(data: datasets.TaskData, name: str, config: dict) -> tf_keras.Model:
  return architectures.build_model(name, architectures.get_architecture(name), data, resolve_config(config))


def _logits(predict, x: np.ndarray, batch_size: int = 64, what: str = "") -> np.ndarray:
  """`predict` (a model's inference function) over `x` in batches, logging progress when `what` names the split."""
  parts, start = [], time.time()
  for i in range(0, len(x), batch_size):
    parts.append(predict(tf.constant(x[i:i + batch_size])).numpy())
    if what:
      print(f"teacher logits {what}: {i + len(parts[-1])}/{len(x)}, {time.time() - start:.0f} s", file=sys.stderr,
            flush=True)
  return np.concatenate(parts)


def cache_key(task: str, experiment: Experiment) -> str:
  """The hash naming a task's teacher cache: the task and the settings the teacher and the data depend on.

  Settings left at their defaults are not part of it, so adding a field with a default keeps older caches valid.
  """
  defaults = {field.name: field.default for field in dataclasses.fields(Experiment)}
  settings = {field: value for field, value in dataclasses.asdict(experiment).items()
              if field.startswith(("teacher", "train_", "valid_", "test_", "transfer_"))
              and not (field in defaults and value == defaults[field])}
  return hashlib.sha1(repr((task, sorted(settings.items()))).encode()).hexdigest()[:12]


def teacher_outputs(task: str, data: datasets.TaskData, experiment: Experiment, cache_dir: str,
                    transfer: np.ndarray | None = None) -> dict:
  """Trains the teacher once (seed 0) and returns its logits per split (and on the `transfer` inputs, as
  `transfer_logits`) and its accuracies, cached on disk.

  The cache file is named by `cache_key`, so a changed teacher or data setting trains a new teacher while changed
  student settings reuse it. With one teacher epoch there is no epoch to choose, so validation is not run during
  training (its logits are computed once, after).
  """
  path = os.path.join(cache_dir, f"{task}-{cache_key(task, experiment)}.npz")
  if os.path.isfile(path):
    with np.load(path) as cached:
      return {name: cached[name] for name in cached.files}
  start = time.time()
  tf_keras.utils.set_random_seed(0)
  name, config = experiment.teacher
  config = resolve_config(config)
  teacher = architectures.build_model(name, architectures.get_architecture(name), data, config)
  train = (data.train[0][:experiment.teacher_train_examples], data.train[1][:experiment.teacher_train_examples])
  steps = experiment.teacher_epochs * -(-len(train[1]) // experiment.teacher_batch_size)
  optimizer = "adam"
  if experiment.teacher_optimizer == "adamw":
    from modeling import training

    optimizer = training.make_optimizer(experiment.teacher_learning_rate, steps, warmup_steps=max(1, steps // 10))
  callbacks = [_StepLog(steps)]
  if experiment.teacher_epochs > 1:
    callbacks.append(_best_epoch_callback(experiment.teacher_epochs))
  distiller.fit_supervised(teacher, train, data.valid if experiment.teacher_epochs > 1 else None,
                           epochs=experiment.teacher_epochs, batch_size=experiment.teacher_batch_size,
                           optimizer=optimizer, learning_rate=experiment.teacher_learning_rate, seed=0,
                           callbacks=callbacks, verbose=0)
  predict = tf.function(lambda batch: teacher(batch, training=False), reduce_retracing=True)
  outputs = {f"{split}_logits": _logits(predict, getattr(data, split)[0], what=split)
             for split in ("train", "valid", "test")}
  if transfer is not None:
    outputs["transfer_logits"] = _logits(predict, transfer, what="transfer")
  for split in ("valid", "test"):
    outputs[f"{split}_accuracy"] = np.float64(np.mean(outputs[f"{split}_logits"].argmax(-1) == getattr(data, split)[1]))
  outputs["seconds"] = np.float64(time.time() - start)
  outputs["precision"] = np.str_(config.get("precision", "float32"))
  files.ensure_writable_dir(cache_dir, "cache_dir")
  with files.atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, **outputs)
  tf_keras.backend.clear_session()  # The students need none of the teacher's graph.
  return outputs


def train_student(data: datasets.TaskData, name: str, config: dict, experiment: Experiment, seed: int,
                  teacher: tf_keras.Model | None = None, kd: tuple[float, float, float] | None = None,
                  transfer: np.ndarray | None = None, train: tuple | None = None) -> dict:
  """One run: the student alone (`kd` None) or distilled from `teacher` with `kd` = (temp, a, b), on the labelled
  train split plus, when distilled, the unlabelled `transfer` inputs. `train` replaces the labelled train split.

  Returns the run's record: validation accuracy of the kept epoch, that epoch, and test accuracy.
  """
  start = time.time()
  tf_keras.utils.set_random_seed(seed + 1000)  # The same initial student alone and distilled.
  student = _build(data, name, config)
  callback = _best_epoch_callback(experiment.max_epochs, experiment.patience)
  common = {"epochs": experiment.max_epochs, "batch_size": experiment.batch_size, "seed": seed, "verbose": 0,
            "callbacks": [callback]}
  train = data.train if train is None else train
  if kd is None:
    distiller.fit_supervised(student, train, data.valid, **common)
  else:
    temp, a, b = kd
    student, _ = distiller.distill(teacher, student, train, data.valid, temp=temp, a=a, b=b, cache_teacher=True,
                                   transfer_data=transfer, **common)
  return {"student": name, "seed": seed, "kd": None if kd is None else list(kd), "best_epoch": callback.best_epoch + 1,
          "valid_accuracy": distiller.evaluate_accuracy(student, data.valid),
          "test_accuracy": distiller.evaluate_accuracy(student, data.test), "seconds": round(time.time() - start, 1)}


def select(grid_runs: list[dict]) -> list[float]:
  """The (temp, a, b) of the grid run with the best validation accuracy; the earliest among ties."""
  best = max(range(len(grid_runs)), key=lambda i: (grid_runs[i]["valid_accuracy"], -i))
  return grid_runs[best]["kd"]


def _mean_std(values: list[float]) -> dict:
  return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
          "n": len(values)}


def summarize(runs: list[dict], selections: dict[str, list[float]]) -> dict:
  """Per student: test accuracy alone and distilled (mean, sample std, n) over the seeds with the selected KD
  setting, and the gain of the means in accuracy points (x100)."""
  summary = {}
  for name, kd in selections.items():
    alone = [run["test_accuracy"] for run in runs if run["student"] == name and run["kd"] is None]
    distilled = [run["test_accuracy"] for run in runs if run["student"] == name and run["kd"] == kd]
    summary[name] = {"kd": kd, "alone": _mean_std(alone), "distilled": _mean_std(distilled),
                     "gain_points": 100 * (statistics.fmean(distilled) - statistics.fmean(alone))}
  return summary


def markdown_table(results: dict) -> str:
  """The table of `results` (task -> {"teacher": {...}, "summary": summarize(...)}), one row per student."""
  lines = ["| task | teacher (test) | student | alone (test) | Hinton KD (test) | gain (points) | T, a, b |",
           "|---|---|---|---|---|---|---|"]
  for task, result in results.items():
    teacher = f"{result['teacher']['name']} {result['teacher']['test_accuracy']:.4f}"
    for name, row in result["summary"].items():
      cells = [f"{row[kind]['mean']:.4f} ± {row[kind]['std']:.4f} (n={row[kind]['n']})" for kind in ("alone",
                                                                                                     "distilled")]
      lines.append(f"| {task} | {teacher} | {name} | {cells[0]} | {cells[1]} | {row['gain_points']:+.2f} | "
                   f"{', '.join(f'{value:g}' for value in row['kd'])} |")
  return "\n".join(lines) + "\n"


def run_task(task: str, experiment: Experiment, seeds: int, cache_dir: str) -> dict:
  """Teacher, then per student: alone on every seed, the grid on seed 0, the selected setting on the other seeds."""
  data, transfer, _ = prepare_data(task, experiment)
  outputs = teacher_outputs(task, data, experiment, cache_dir, transfer)
  teacher = recorded_teacher(data, outputs, transfer)
  runs, selections = [], {}
  for name, config in experiment.students:
    for seed in range(seeds):
      runs.append(train_student(data, name, config, experiment, seed))
      _log(task, runs[-1])
    grid_runs = []
    for kd in experiment.grid:
      grid_runs.append(train_student(data, name, config, experiment, 0, teacher, kd, transfer))
      _log(task, grid_runs[-1])
    selections[name] = select(grid_runs)
    runs += grid_runs
    for seed in range(1, seeds):
      runs.append(train_student(data, name, config, experiment, seed, teacher, tuple(selections[name]), transfer))
      _log(task, runs[-1])
  teacher_record = {"name": _teacher_name(experiment), "valid_accuracy": float(outputs["valid_accuracy"]),
                    "test_accuracy": float(outputs["test_accuracy"]), "seconds": float(outputs["seconds"]),
                    "precision": str(outputs.get("precision", "float32"))}
  sizes = {split: len(getattr(data, split)[1]) for split in ("train", "valid", "test")}
  sizes["transfer"] = 0 if transfer is None else len(transfer)
  return {"teacher": teacher_record, "sizes": sizes,
          "experiment": dataclasses.asdict(experiment), "runs": runs, "selections": selections,
          "summary": summarize(runs, selections)}


def _teacher_name(experiment: Experiment) -> str:
  """The teacher's name in the table: its asset folder (mpnet, minilm) when it has one, else its architecture."""
  values = [value.split("/")[0] for value in experiment.teacher[1].values() if isinstance(value, str)]
  return next((value for value in values if value in ASSET_FOLDERS), experiment.teacher[0])


def _log(task: str, run: dict) -> None:
  print(f"{task} {run['student']} seed {run['seed']} kd={run['kd']}: valid {run['valid_accuracy']:.4f} "
        f"(epoch {run['best_epoch']}), test {run['test_accuracy']:.4f}, {run['seconds']:.0f} s", file=sys.stderr,
        flush=True)


def write_results(output_dir: str, results: dict, update: bool) -> str:
  """Writes old_demo_table.json and .md for `results` (task -> run_task(...) with its run record) and returns the
  table; with `update`, the tasks of an earlier old_demo_table.json that are not in `results` are kept."""
  path = os.path.join(output_dir, "old_demo_table.json")
  merged = {}
  if update and os.path.isfile(path):
    with open(path) as f:
      merged = json.load(f).get("results", {})
  merged.update(results)
  table = markdown_table(merged)
  files.write_json(path, {"results": merged})
  commands = "\n".join(f"- {task}: `{result['run']['command']}`, {result['run']['date']}, "
                        f"{result['run']['minutes']:.1f} min" for task, result in merged.items() if "run" in result)
  with files.atomic_path(os.path.join(output_dir, "old_demo_table.md")) as tmp, open(tmp, "w") as f:
    f.write(f"Test accuracy, mean ± std over seeds.\n\n{table}\n{commands}\n")
  return table


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}")
  try:
    unknown = sorted(set(FLAGS.tasks) - set(EXPERIMENTS))
    if unknown:
      raise UserError(f"--tasks: unknown {unknown}; choose among {sorted(EXPERIMENTS)}")
    if FLAGS.seeds < 1:
      raise UserError(f"--seeds must be >= 1, got {FLAGS.seeds}")
    files.ensure_writable_dir(FLAGS.output_dir, "output_dir")
    command = "python3 experiments/old_demo_table.py" + (" --quick" if FLAGS.quick else "") + (
        f" --seeds {FLAGS.seeds}" if FLAGS.seeds != 3 else "") + (
        f" --tasks {','.join(FLAGS.tasks)}" if FLAGS.tasks != ["imdb_reviews", "mnist"] else "") + (
        f" --text_teacher {FLAGS.text_teacher}" if FLAGS.text_teacher != "mpnet" else "") + (
        " --update" if FLAGS.update else "")
    results = {}
    for task in FLAGS.tasks:
      start, load_start = time.time(), os.getloadavg()
      experiment = MINILM_IMDB if task == "imdb_reviews" and FLAGS.text_teacher == "minilm" else EXPERIMENTS[task]
      experiment = quick(experiment) if FLAGS.quick else experiment
      results[task] = run_task(task, experiment, FLAGS.seeds, FLAGS.cache_dir)
      results[task]["run"] = {"command": command, "date": time.strftime("%Y-%m-%d"),
                              "minutes": (time.time() - start) / 60, "cpu": runtime_env.cpu_model(), "cores": os.cpu_count(),
                              "load_average_start": load_start, "load_average_end": os.getloadavg()}
      # Written after every task, so that a later task's failure loses nothing.
      table = write_results(FLAGS.output_dir, results, FLAGS.update)
    print(table, end="")
  except UserError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
