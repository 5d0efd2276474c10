"""Several fine-tuned teachers for one student: their flags and checks, their label sets, and their logits, computed
once.

The teachers may differ in architecture and vocabulary but must share the task's label set. Each teacher's logits
over the training set are computed once, in the data's order, into a [num_examples, num_labels] table (a few bytes
per example), so an extra teacher costs one forward pass over the data. A teacher with another vocabulary reads its
own tokenization of the same raw examples, prepared in the same order into a data folder of its own; the tables
are then joined to the student's examples by position. The prediction loss averages the teachers' soft targets
with normalised weights (`modeling.losses.average_soft_targets`) at the step's temperature.
"""

import dataclasses
import json
import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from absl import flags, logging

from modeling import cli, files, progress, records, teacher_cache
from modeling.config import ModelConfig
from modeling.errors import UserError


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
  """One teacher: its config and checkpoint, its weight, its data folder (None: the student's), and the columns that
  put its logits in the task's label order (None: already in order; see `label_permutations`), and its config as
  read and checked (with the head pooling recorded beside the checkpoint; None until `teachers_from_flags`)."""
  config_path: str
  ckpt_path: str
  weight: float = 1.0
  data_dir: str | None = None
  permutation: tuple[int, ...] | None = None
  config: ModelConfig | None = None


def _split(spec: str | Sequence[str] | None) -> list[str]:
  if spec is None:
    return []
  if isinstance(spec, str):
    return [item.strip() for item in spec.split(",")] if spec.strip() else []
  return [str(item).strip() for item in spec]


def parse_teachers(config_paths: str | Sequence[str], ckpt_paths: str | Sequence[str],
                   weights: str | Sequence[str] | None = None,
                   data_dirs: str | Sequence[str] | None = None) -> list[TeacherSpec]:
  """Pairs the comma-separated teacher flags up into one `TeacherSpec` per teacher.

  Args:
    config_paths: `--teacher_config_path`, one config per teacher.
    ckpt_paths: `--teacher_ckpt_path`, one fine-tuned output folder per teacher, in the same order.
    weights: `--teacher_weights`, one non-negative number per teacher (empty: equal weights).
    data_dirs: `--teacher_data_dir`, one data folder per teacher, where an empty entry means the student's data
      (empty: every teacher reads the student's data).

  Raises:
    UserError: naming the flag, when the counts differ or a weight is not a non-negative number.
  """
  configs, ckpts = _split(config_paths), _split(ckpt_paths)
  if len(ckpts) != len(configs):
    raise UserError(f"--teacher_ckpt_path has {len(ckpts)} entries but --teacher_config_path has {len(configs)}; "
                    f"give one checkpoint per teacher config, in the same order")
  weight_items, dir_items = _split(weights), _split(data_dirs)
  if weight_items and len(weight_items) != len(configs):
    raise UserError(f"--teacher_weights has {len(weight_items)} weights for {len(configs)} teachers; give one per "
                    f"--teacher_config_path entry, or none for equal weights")
  try:
    values = [float(w) for w in weight_items] or [1.0] * len(configs)
  except ValueError:
    raise UserError(f"--teacher_weights={','.join(weight_items)}: expected comma-separated numbers") from None
  if any(w < 0 for w in values) or (values and sum(values) <= 0):
    raise UserError(f"--teacher_weights={','.join(weight_items)}: weights must be non-negative and not all zero")
  if dir_items and len(dir_items) != len(configs):
    raise UserError(f"--teacher_data_dir has {len(dir_items)} entries for {len(configs)} teachers; give one per "
                    f"teacher (an empty entry means the student's --data_dir)")
  dir_items = dir_items or [""] * len(configs)
  return [TeacherSpec(c, k, w, d or None) for c, k, w, d in zip(configs, ckpts, values, dir_items)]


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """run_finetuning.py's flags for several teachers, beside the comma lists of --teacher_config_path and
  --teacher_ckpt_path."""
  flags.DEFINE_string("teacher_weights", "", "Several teachers: their weights in the averaged soft targets, "
                      "comma-separated (normalised to sum to 1; empty: equal weights).", flag_values=flag_values)
  flags.DEFINE_string("teacher_data_dir", "", "Per teacher, comma-separated: a folder of the same task examples "
                      "tokenized for that teacher (create_finetuning_data.py with its vocab); an empty entry means "
                      "--data_dir. The first teacher's entry must be empty when stage 1 runs.",
                      flag_values=flag_values)


def teachers_from_flags(flag_values: flags.FlagValues, student: ModelConfig, meta: dict, augmented: bool) -> tuple:
  """Checks run_finetuning.py's teacher flags against the student and the task data, before any model is built.

  Every teacher needs a config, a fine-tuned checkpoint whose head fits the task's labels, and (with its own
  vocabulary) a data folder holding the student's examples in the same order. The first teacher also teaches
  stage 1, so it is checked with `--intermediate_loss` against the student.

  Args:
    flag_values: the teacher flags (`--teacher_*`, this module's `define_flags`), `--data_dir`,
      `--max_seq_length`, `--distill_stage`, `--cache_teacher_outputs` and those of `cli.define_distillation_flags`.
    student: the student's config.
    meta: the task data's meta.json.
    augmented: training also reads the data's `train_augmented` records.

  Returns:
    `(intermediate, specs, teacher_files, init_layer_map)`: the checked `relation_losses.IntermediateLoss` (None
    when stage 1 does not run), a `TeacherSpec` per teacher with its label permutation, per teacher its own training
    files (None: the student's), and the teacher layers --init_from_teacher copies (None without it). Without
    --teacher_config_path: `(None, [], [], None)`.
  """
  f = flag_values
  if not f.teacher_config_path:
    for name in ("teacher_ckpt_path", "teacher_weights", "teacher_data_dir"):
      if f[name].value:
        raise UserError(f"--{name} needs --teacher_config_path")
    return None, [], [], None
  specs = parse_teachers(f.teacher_config_path, f.teacher_ckpt_path or "", f.teacher_weights, f.teacher_data_dir)
  configs, labels, teacher_files = [], [], []
  for spec in specs:
    config = cli.load_config_flag("teacher_config_path", spec.config_path)
    cli.check_path("teacher_ckpt_path", spec.ckpt_path)
    config = cli.with_recorded_pooling(config, spec.ckpt_path, "teacher_ckpt_path")
    data_dir, teacher_meta, files_of_teacher = f.data_dir, meta, None
    if spec.data_dir:
      data_dir, teacher_meta = spec.data_dir, records.read_meta(spec.data_dir, "teacher_data_dir")
      check_same_examples(meta, teacher_meta, spec.data_dir)
      records.check_meta(teacher_meta, spec.data_dir, max_seq_length=f.max_seq_length, vocab_size=config.vocab_size)
      splits = ("train", "train_augmented") if augmented else ("train",)
      for split in splits:
        if teacher_meta["num_examples"].get(split) != meta["num_examples"].get(split):
          raise UserError(f"--teacher_data_dir {spec.data_dir} has {teacher_meta['num_examples'].get(split)} "
                          f"{split} examples but --data_dir has {meta['num_examples'].get(split)}")
      files_of_teacher = [cli.check_path("teacher_data_dir", os.path.join(spec.data_dir,
                                                                          teacher_meta["record_files"][split]))
                          for split in splits]
    records.check_meta(teacher_meta, data_dir, model_type=config.model_type, config_flag="teacher_config_path")
    cli.check_vocab_matches(teacher_meta, data_dir, spec.ckpt_path, "teacher_ckpt_path")
    cli.check_teacher_head(spec.ckpt_path, meta)
    configs.append(config)
    labels.append(teacher_meta.get("label_list") if spec.data_dir else recorded_label_list(spec.ckpt_path))
    teacher_files.append(files_of_teacher)
  specs = [dataclasses.replace(spec, permutation=None if p is None else tuple(p), config=config)
           for spec, p, config in zip(specs, label_permutations(meta["label_list"], labels), configs)]
  stage_1 = f.distill_stage != "prediction"
  if specs[0].data_dir and (stage_1 or f.init_from_teacher):
    raise UserError("--teacher_data_dir: the first teacher also teaches stage 1 (and --init_from_teacher) on the "
                    "student's tokens, so its entry must be empty; or use --distill_stage=prediction")
  intermediate = cli.check_pair(student, configs[0], f.max_seq_length, f, same_tokens=not specs[0].data_dir,
                                intermediate=stage_1)
  for spec, config in zip(specs[1:], configs[1:]):
    cli.check_pair(student, config, f.max_seq_length, f, same_tokens=not spec.data_dir, intermediate=False)
  if intermediate and intermediate.needs_qkv and f.cache_teacher_outputs == "all":
    raise UserError(f"--cache_teacher_outputs=all caches TinyBERT's layers, not what "
                    f"--intermediate_loss={intermediate.kind} reads; use --cache_teacher_outputs=logits")
  init_layer_map = None
  if f.init_from_teacher:
    init_layer_map = cli.init_layer_map(intermediate, student, configs[0], f.layer_map)
  return intermediate, specs, teacher_files, init_layer_map


def label_permutations(task_labels: Sequence[str], teacher_labels: Sequence[Sequence[str] | None],
                       flag: str = "teacher_ckpt_path") -> list[list[int] | None]:
  """For each teacher, the columns that put its logits in the task's label order (None: already in order).

  Args:
    task_labels: the student data's `label_list`.
    teacher_labels: per teacher, the label list it was fine-tuned on (from its data's `meta.json`), or None when
      unknown (then only the head size can be checked, by the caller).
    flag: the flag that lists the teachers, for the message.

  Raises:
    UserError: naming `flag` and the teacher, when a teacher's label set differs from the task's.
  """
  task_labels = [str(label) for label in task_labels]
  permutations = []
  for index, labels in enumerate(teacher_labels):
    if labels is None or [str(label) for label in labels] == task_labels:
      permutations.append(None)
      continue
    labels = [str(label) for label in labels]
    if sorted(labels) != sorted(task_labels) or len(set(labels)) != len(labels):
      raise UserError(f"--{flag}: teacher {index + 1} was fine-tuned on labels {labels}, but the task's are "
                      f"{task_labels}; every teacher must share the task's label set")
    permutations.append([labels.index(label) for label in task_labels])
  return permutations


def recorded_label_list(teacher_dir: str) -> list[str] | None:
  """The label list a fine-tuned teacher folder records in its `training_summary.json` (None when it records none:
  then only its head size can be checked)."""
  path = os.path.join(teacher_dir, "training_summary.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    labels = json.load(f).get("label_list")
  return [str(label) for label in labels] if labels else None


def teacher_logits_table(teacher: Callable, dataset: tf.data.Dataset, permutation: Sequence[int] | None = None,
                         batch_size: int | None = None, num_examples: int | None = None,
                         cache_file: str | None = None) -> np.ndarray:
  """One teacher's logits over a whole dataset, in its order: a float32 [num_examples, num_labels] array.

  Args:
    teacher: a frozen model mapping a feature dict to a dict with `logits`; called with `training=False`.
    dataset: a finite, unshuffled dataset of `(features, labels)` batches (or unbatched examples with
      `batch_size`), in the same example order as the student's data.
    permutation: from `label_permutations`, to put the columns in the task's label order.
    batch_size: batch an unbatched dataset first.
    num_examples: the dataset's example count, if known, for the progress report's ETA and the cache file's check.
    cache_file: a `.npy` file holding the table (in the teacher's own label order): read when it exists, else
      written (atomically) after the pass. Its name must identify the teacher's weights and the data
      (`cached_table_path`).
  """
  table = None
  if cache_file and os.path.isfile(cache_file):
    table = np.load(cache_file)
    if num_examples is not None and table.shape[0] != num_examples:
      raise UserError(f"the teacher-logits cache file {cache_file} covers {table.shape[0]} examples, the data "
                      f"{num_examples}; delete it to compute the logits again")
    logging.info("teacher logits: %d examples read from %s", table.shape[0], cache_file)
  if table is None:
    if batch_size:
      dataset = dataset.batch(batch_size)
    predict = tf.function(lambda features: tf.cast(teacher(features, training=False)["logits"], tf.float32))
    batches = progress.progress(dataset, "teacher logits", total=num_examples, sizes=lambda batch: len(batch[1]))
    table = np.concatenate([predict(batch[0]).numpy() for batch in batches], axis=0)
    if cache_file:
      with files.atomic_path(cache_file) as tmp, open(tmp, "wb") as f:
        np.save(f, table)
  return table[:, list(permutation)] if permutation is not None else table


def cached_table_path(cache_dir: str, teacher: tf.Module, data_files: Sequence[str]) -> str:
  """The `.npy` file of `teacher`'s logits table over `data_files` in `cache_dir`, named by a fingerprint of the
  teacher's weights and of the files' bytes, so a changed teacher or changed data never reads an old table."""
  files.ensure_writable_dir(cache_dir, "teacher_cache_dir")
  fingerprint = teacher_cache.teacher_fingerprint(teacher, "logits-table-v1",
                                                  [records.sha256_file(path) for path in data_files])
  return os.path.join(cache_dir, f"teacher_logits-{fingerprint}.npy")


def add_teacher_logits(examples: tf.data.Dataset, tables: Sequence[np.ndarray],
                       num_examples: int | None = None) -> tf.data.Dataset:
  """Joins per-teacher logits tables to unbatched `(features, labels)` examples by position.

  Args:
    examples: the student's unbatched training examples, in the order the tables were computed in.
    tables: one [num_examples, num_labels] table per teacher, from `teacher_logits_table`.
    num_examples: the student's example count (its `meta.json`), checked against the tables: a zip would
      silently stop at the shorter side.

  Returns:
    A dataset of `(features, labels, {"teacher_logits": [num_teachers, num_labels]})`, the shape of a cached batch
    (see `modeling.teacher_cache`), to shuffle and batch afterwards.

  Raises:
    ValueError: when the tables differ in shape, or from `num_examples`.
  """
  shapes = {table.shape for table in tables}
  if len(shapes) != 1:
    raise ValueError(f"the teachers' logits tables differ in shape: {sorted(shapes)}")
  if num_examples is not None and tables[0].shape[0] != num_examples:
    raise ValueError(f"the teachers' logits cover {tables[0].shape[0]} examples, the student's data {num_examples}")
  stacked = np.stack(tables, axis=1).astype(np.float32)  # [num_examples, num_teachers, num_labels]
  logits = tf.data.Dataset.from_tensor_slices({"teacher_logits": stacked})
  return tf.data.Dataset.zip((examples, logits)).map(lambda example, outputs: (*example, outputs))


def check_same_examples(student_meta: dict, teacher_meta: dict, teacher_dir: str) -> None:
  """Refuses a teacher data folder that does not hold the student's training examples in the same order.

  Both folders must count the same training examples and, when both record one, the same `examples_sha256`
  (a digest of the raw examples, independent of tokenization).

  Raises:
    UserError: naming `--teacher_data_dir` and the folder.
  """
  counts = (student_meta["num_examples"].get("train"), teacher_meta.get("num_examples", {}).get("train"))
  if counts[0] != counts[1]:
    raise UserError(f"--teacher_data_dir {teacher_dir} has {counts[1]} training examples but --data_dir has "
                    f"{counts[0]}; prepare both from the same raw data")
  digests = (student_meta.get("examples_sha256"), teacher_meta.get("examples_sha256"))
  if all(digests) and digests[0] != digests[1]:
    raise UserError(f"--teacher_data_dir {teacher_dir} was prepared from other raw examples (or another order) "
                    f"than --data_dir")
  if teacher_meta.get("task_name", "").lower() != student_meta.get("task_name", "").lower():
    raise UserError(f"--teacher_data_dir {teacher_dir} is task {teacher_meta.get('task_name')!r}, --data_dir "
                    f"is {student_meta.get('task_name')!r}")
