"""Task fine-tuning and TinyBERT task distillation (arXiv 1909.10351).

Without `--teacher_config_path` this fine-tunes `--config_path` from `--ckpt_path` on the task: that is how a
teacher is made. With a teacher (a fine-tuned output folder of this script) it distils in two stages:

  1. intermediate: embedding + hidden + attention losses over the layer map (no labels used);
  2. prediction: soft cross-entropy against the teacher's logits at `--temperature` (MSE for regression),
     optionally plus `--gold_label_weight` times the loss on the gold labels.

  python3 run_finetuning.py --task_name rotten_tomatoes --data_dir DATA --output_dir OUT \
    --config_path configs/tinybert_4l_312.json --ckpt_path GENERAL_STUDENT \
    --teacher_config_path TEACHER/config.json --teacher_ckpt_path TEACHER

OUT receives `checkpoints/` (latest), `best/` (best dev epoch), `intermediate/` (stage 1), `summaries/`,
`eval_results.json`, `test_predictions.tsv`, `config.json`, the vocab, and the exported `saved_model/` whose
serving signature takes raw strings. Re-running the same command resumes.
"""

import dataclasses
import math
import os
import time

import tensorflow as tf
from absl import flags, logging

from modeling import (
  cli,
  export,
  files,
  multi_teacher,
  records,
  relation_losses,
  schedules,
  task_distillation,
  tflite,
  training,
)
from modeling.checkpoints import restore_encoder
from modeling.config import ModelConfig, load_config, save_config
from modeling.encoders import set_expose_qkv
from modeling.errors import UserError, run_script
from modeling.evaluation import Evaluator
from modeling.models import build_task_model

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("task_name", None, "The task the data was prepared for (see prepare_dataset/).")
  flags.DEFINE_string("data_dir", None, "Folder of task TFRecords and meta.json from create_finetuning_data.py.")
  flags.DEFINE_string("output_dir", None, "Where checkpoints, results and the export go.")
  flags.DEFINE_string("config_path", None, "The model (student) config.")
  flags.DEFINE_string("teacher_config_path", None, "The teacher's config; without it, plain fine-tuning. Several "
                      "teachers: a comma-separated list (stage 2 averages their soft targets; the first teacher also "
                      "teaches stage 1).")
  flags.DEFINE_string("ckpt_path", None, "Checkpoint to initialise the encoder from: an output folder of "
                      "run_pretraining.py, a TF2 or TF1 checkpoint, or a Hugging Face folder.")
  flags.DEFINE_string("teacher_ckpt_path", None, "The fine-tuned teacher: an output folder of this script; with "
                      "several teachers, one per --teacher_config_path entry, comma-separated, in the same order.")
  flags.DEFINE_integer("max_seq_length", 128, "Sequence length; must match the data's meta.json.")
  flags.DEFINE_integer("batch_size", 8, "Global training batch size.")
  flags.DEFINE_integer("epochs", 3, "Epochs of plain fine-tuning, and the default for each distillation stage.")
  flags.DEFINE_float("learning_rate", 5e-5, "Peak AdamW learning rate, with linear warmup and decay per stage.")
  flags.DEFINE_enum("distill_stage", "both", ["intermediate", "prediction", "both"],
                    "Which task-distillation stages to run when a teacher is given.")
  flags.DEFINE_integer("intermediate_epochs", None, "Epochs of stage 1 (default: --epochs).")
  flags.DEFINE_integer("prediction_epochs", None, "Epochs of stage 2 (default: --epochs).")
  flags.DEFINE_float("intermediate_learning_rate", None, "Learning rate of stage 1 (default: --learning_rate).")
  flags.DEFINE_float("temperature", 1.0, "Softmax temperature of the prediction-layer loss.")
  flags.DEFINE_float("gold_label_weight", 0.0, "Weight of the gold-label loss added to stage 2 (0: soft targets "
                     "only).")
  flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of each stage's steps spent in linear warmup.")
  flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to LayerNorm and biases).")
  flags.DEFINE_integer("eval_batch_size", 64, "Batch size for dev and test prediction.")
  flags.DEFINE_string("vocab_file", None, "Vocab (or SentencePiece model) for the exported raw-string signature; "
                      "defaults to the vocab beside --ckpt_path or --teacher_ckpt_path when there is one.")
  flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (default: output_dir/saved_model; '-' "
                      "skips).")
  tflite.define_export_tflite_flag()
  flags.DEFINE_float("max_int8_accuracy_drop", 0.01, "With --export_tflite=int8: the largest drop of the dev primary "
                     "metric (0.01 = one point of accuracy) an int8 model may show against fp32 and still ship.")
  flags.DEFINE_integer("int8_calibration_examples", 100, "Training examples that calibrate the full-integer model.")
  flags.DEFINE_string("merges_file", None, "merges.txt of a BPE vocab.json (RoBERTa); default: merges.txt beside the "
                      "vocab. Copied into output_dir and the Hugging Face folder.")
  flags.DEFINE_string("export_hf", None, "Also write a Hugging Face folder that transformers loads "
                      "(*ForSequenceClassification + tokenizer): a path, or 'true' for output_dir/hf_model.")
  flags.DEFINE_enum("cache_teacher_outputs", "none", list(task_distillation.CACHE_CHOICES),
                    "Compute the frozen teacher's outputs once and reuse them in later epochs: 'logits' for stage 2, "
                    "'all' adds the mapped hidden states and attention logits for stage 1 (large: see README). "
                    "Batches are then shuffled as whole batches.")
  flags.DEFINE_string("teacher_cache_dir", None, "Folder for the teacher-output cache (default: in memory).")
  # Several teachers, schedules, augmented rows.
  flags.DEFINE_string("teacher_weights", "", "Several teachers: their weights in the averaged soft targets, "
                      "comma-separated (normalised to sum to 1; empty: equal weights).")
  flags.DEFINE_string("teacher_data_dir", "", "Per teacher, comma-separated: a folder of the same task examples "
                      "tokenized for that teacher (create_finetuning_data.py with its vocab); an empty entry means "
                      "--data_dir. The first teacher's entry must be empty when stage 1 runs.")
  flags.DEFINE_float("temperature_end", None, "Temperature at the end of stage 2, reached linearly from "
                     "--temperature (default: --temperature throughout).")
  flags.DEFINE_float("gold_label_weight_end", None, "Gold-label weight at the end of stage 2, reached linearly from "
                     "--gold_label_weight (default: --gold_label_weight throughout).")
  flags.DEFINE_bool("augmented_data", False, "Also train on the data folder's train_augmented.tfrecord (from "
                    "create_finetuning_data.py --augmented_file): rows without gold labels, learnt from the "
                    "teacher only, in both stages. Needs a teacher; dev and test stay the original ones.")
  cli.define_distillation_flags()
  cli.define_runtime_flags(default_steps_per_loop=50)


@dataclasses.dataclass(frozen=True)
class Settings:
  """The validated flags, and what was read to validate them."""
  output_dir: str
  config_path: str
  ckpt_path: str | None
  teacher_ckpt_path: str | None
  max_seq_length: int
  batch_size: int
  eval_batch_size: int
  stages: tuple  # (stage, epochs, learning rate) in the order they run.
  warmup_proportion: float
  weight_decay: float
  cache_teacher_outputs: str
  teacher_cache_dir: str | None
  vocab: str | None  # --vocab_file, or the vocab found beside a checkpoint.
  export_dir: str | None  # None: no export.
  export_tflite: str  # "false", "fp32" or "int8".
  max_int8_accuracy_drop: float
  int8_calibration_examples: int
  merges: str | None  # A BPE vocab's merges.txt.
  hf_dir: str | None  # --export_hf's folder; None: no Hugging Face export.
  student: ModelConfig
  teacher: ModelConfig | None  # The first teacher, which also teaches stage 1.
  meta: dict
  split_files: dict
  runtime: cli.Runtime
  # Distillation: the intermediate loss, teachers, schedules, student init and augmented rows.
  intermediate: relation_losses.IntermediateLoss | None  # None: stage 1 does not run.
  teachers: tuple  # multi_teacher.TeacherSpec per teacher, with its label permutation.
  teacher_files: tuple  # Per teacher, its own training files (None: the student's).
  temperature: schedules.LinearSchedule
  gold_label_weight: schedules.LinearSchedule
  init_from_teacher: bool
  init_layer_map: list | None
  train_files: tuple  # train.tfrecord, and train_augmented.tfrecord with --augmented_data.
  num_train_examples: int
  augmented: bool


def _validate(f: flags.FlagValues) -> Settings:
  """Every check that needs no model."""
  for name in ("task_name", "data_dir", "output_dir", "config_path"):
    if not f[name].value:
      raise UserError(f"--{name} is required")
  cli.check_positive(max_seq_length=f.max_seq_length, batch_size=f.batch_size, epochs=f.epochs,
                     learning_rate=f.learning_rate, eval_batch_size=f.eval_batch_size,
                     steps_per_loop=f.steps_per_loop)
  temperature = schedules.parse_schedule("temperature", f.temperature, f.temperature_end, strict=True)
  gold_label_weight = schedules.parse_schedule("gold_label_weight", f.gold_label_weight, f.gold_label_weight_end)
  if not 0 <= f.warmup_proportion < 1:
    raise UserError(f"--warmup_proportion must be in [0, 1), got {f.warmup_proportion}")
  student = cli.load_config_flag("config_path", f.config_path)
  meta = cli.read_task_meta(f.data_dir, f.task_name)
  records.check_meta(meta, f.data_dir, max_seq_length=f.max_seq_length, vocab_size=student.vocab_size,
                     model_type=student.model_type, config_flag="config_path")
  if f.max_seq_length > student.max_sequence_length:
    raise UserError(f"--max_seq_length={f.max_seq_length} exceeds {student.source}'s "
                    f"{student.max_sequence_length} positions")
  if f.ckpt_path:
    cli.check_path("ckpt_path", f.ckpt_path)
    cli.check_vocab_matches(meta, f.data_dir, f.ckpt_path, "ckpt_path")
  split_files = {split: os.path.join(f.data_dir, name) for split, name in meta["record_files"].items()}
  for path in split_files.values():
    cli.check_path("data_dir", path)
  if "train" not in split_files or not meta["num_examples"].get("train"):
    raise UserError(f"--data_dir {f.data_dir} has no training examples")
  train_files = [split_files["train"]]
  if f.augmented_data:
    if not f.teacher_config_path:
      raise UserError("--augmented_data needs --teacher_config_path: augmented rows carry no gold labels, only "
                      "the teacher's targets")
    if "train_augmented" not in split_files or not meta["num_examples"].get("train_augmented"):
      raise UserError(f"--augmented_data: {os.path.join(f.data_dir, records.META_FILE)} lists no train_augmented "
                      f"records; prepare the data with create_finetuning_data.py --augmented_file")
    train_files.append(split_files["train_augmented"])
  intermediate, teachers, teacher_files, init_layer_map = _validate_teachers(f, student, meta, f.augmented_data)
  teacher = load_config(teachers[0].config_path) if teachers else None
  if f.init_from_teacher:
    if not teachers:
      raise UserError("--init_from_teacher needs --teacher_config_path")
    if f.ckpt_path:
      raise UserError("--init_from_teacher and --ckpt_path both set the student's starting weights; choose one")
  vocab = cli.export_vocab(f.vocab_file, meta, f.ckpt_path, teachers[0].ckpt_path if teachers else None)
  merges = export.merges_for(vocab, f.merges_file, meta)
  if f.max_int8_accuracy_drop < 0:
    raise UserError(f"--max_int8_accuracy_drop must not be negative, got {f.max_int8_accuracy_drop}")
  cli.check_positive(int8_calibration_examples=f.int8_calibration_examples)
  if f.export_tflite == "int8":
    tflite.check_int8_gate_data(meta, f.data_dir)
  hf_dir = export.hf_dir_for(f.export_hf, f.output_dir)
  if hf_dir:
    export.check_hf_export(hf_dir, student, meta)
  files.ensure_writable_dir(f.output_dir, "output_dir")
  export_dir = None if f.export_dir == "-" else (f.export_dir or os.path.join(f.output_dir, "saved_model"))
  stages = task_distillation.plan_stages(bool(f.teacher_config_path), f.distill_stage, f.epochs, f.learning_rate,
                                         f.intermediate_epochs, f.prediction_epochs, f.intermediate_learning_rate)
  return Settings(
      output_dir=f.output_dir, config_path=f.config_path, ckpt_path=f.ckpt_path, teacher_ckpt_path=f.teacher_ckpt_path,
      max_seq_length=f.max_seq_length, batch_size=f.batch_size, eval_batch_size=f.eval_batch_size, stages=stages,
      warmup_proportion=f.warmup_proportion, weight_decay=f.weight_decay,
      cache_teacher_outputs=f.cache_teacher_outputs, teacher_cache_dir=f.teacher_cache_dir,
      vocab=vocab, export_dir=export_dir, export_tflite=f.export_tflite,
      max_int8_accuracy_drop=f.max_int8_accuracy_drop, int8_calibration_examples=f.int8_calibration_examples,
      merges=merges, hf_dir=hf_dir, student=student, teacher=teacher,
      meta=meta, split_files=split_files, runtime=cli.runtime_from_flags(f),
      intermediate=intermediate, teachers=tuple(teachers), teacher_files=tuple(teacher_files),
      temperature=temperature, gold_label_weight=gold_label_weight, init_from_teacher=f.init_from_teacher,
      init_layer_map=init_layer_map, train_files=tuple(train_files),
      num_train_examples=sum(meta["num_examples"][split] for split in ("train", "train_augmented")[:len(train_files)]),
      augmented=f.augmented_data)


def _validate_teachers(f: flags.FlagValues, student: ModelConfig, meta: dict, augmented: bool):
  """Checks the teacher flags; returns `(intermediate loss or None, teacher specs, their own files, init layer map)`."""
  if not f.teacher_config_path:
    for name in ("teacher_ckpt_path", "teacher_weights", "teacher_data_dir"):
      if f[name].value:
        raise UserError(f"--{name} needs --teacher_config_path")
    return None, [], [], None
  specs = multi_teacher.parse_teachers(f.teacher_config_path, f.teacher_ckpt_path or "", f.teacher_weights,
                                       f.teacher_data_dir)
  configs, labels, teacher_files = [], [], []
  for spec in specs:
    config = cli.load_config_flag("teacher_config_path", spec.config_path)
    cli.check_path("teacher_ckpt_path", spec.ckpt_path)
    data_dir, teacher_meta, files_of_teacher = f.data_dir, meta, None
    if spec.data_dir:
      data_dir, teacher_meta = spec.data_dir, records.read_meta(spec.data_dir, "teacher_data_dir")
      multi_teacher.check_same_examples(meta, teacher_meta, spec.data_dir)
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
    labels.append(teacher_meta.get("label_list") if spec.data_dir else multi_teacher.recorded_label_list(spec.ckpt_path))
    teacher_files.append(files_of_teacher)
  permutations = multi_teacher.label_permutations(meta["label_list"], labels)
  specs = [dataclasses.replace(spec, permutation=None if p is None else tuple(p))
           for spec, p in zip(specs, permutations)]
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


def _train_stage(s: Settings, strategy, stage, epochs, learning_rate, student, teachers, distillation, evaluator):
  """Runs one stage to its last epoch (or resumes it); returns its entry of training_summary.json."""
  regression = s.meta["task_type"] == "regression"
  label_dtype = tf.float32 if regression else tf.int64
  steps_per_epoch = max(1, s.num_train_examples // s.batch_size)
  total_steps = epochs * steps_per_epoch
  teacher = teachers[0] if teachers else None
  layer_map = s.intermediate.layer_map if s.intermediate else None
  if stage == "prediction" and (len(teachers) > 1 or s.teachers[0].data_dir):
    dataset = task_distillation.multi_teacher_dataset(
        s.train_files, teachers, s.teacher_files, [spec.permutation for spec in s.teachers],
        max_seq_length=s.max_seq_length, batch_size=s.batch_size, eval_batch_size=s.eval_batch_size,
        label_dtype=label_dtype, num_examples=s.num_train_examples, seed=s.runtime.seed)
    logging.info("[prediction] logits of %d teachers over %d examples computed", len(teachers), s.num_train_examples)
  else:
    dataset, layer_map = task_distillation.train_dataset(
        list(s.train_files), stage, max_seq_length=s.max_seq_length, batch_size=s.batch_size,
        label_dtype=label_dtype, num_examples=s.num_train_examples, seed=s.runtime.seed, teacher=teacher,
        teacher_config=s.teacher, layer_map=layer_map, cache=s.cache_teacher_outputs, cache_dir=s.teacher_cache_dir)
  if stage == "intermediate" and s.intermediate.kind == "tinybert":
    distillation.layer_map = layer_map  # The cached layers, when stage 1 reads the teacher-output cache.
  with strategy.scope():
    optimizer = training.make_optimizer(learning_rate, total_steps, math.ceil(s.warmup_proportion * total_steps),
                                        s.runtime.dtype, s.weight_decay)
  if s.intermediate and s.intermediate.needs_qkv:
    set_expose_qkv(student, stage == "intermediate")  # Before the stage's step is traced.
  objects, variables_fn = task_distillation.stage_variables(stage, student, distillation)
  final = stage == s.stages[-1][0]
  loop = training.TrainLoop(
      strategy=strategy, variables_fn=variables_fn, optimizer=optimizer, dataset=dataset, checkpoint_objects=objects,
      loss_fn=task_distillation.make_loss_fn(
          stage, student, teacher, distillation if stage == "intermediate" else None, temperature=s.temperature,
          gold_label_weight=s.gold_label_weight, regression=regression, step=optimizer.iterations,
          total_steps=total_steps, teacher_weights=[spec.weight for spec in s.teachers], has_unlabeled=s.augmented),
      output_dir=s.output_dir if final else os.path.join(s.output_dir, stage), global_batch_size=s.batch_size,
      steps_per_loop=min(s.runtime.steps_per_loop, steps_per_epoch),
      save_checkpoint_steps=s.runtime.save_checkpoint_steps, keep_checkpoint_max=s.runtime.keep_checkpoint_max,
      models=[student], name=stage)
  resumed = loop.restore()
  logging.info("[%s] %d epochs of %d steps (batch %d, lr %g)%s", stage, epochs, steps_per_epoch, s.batch_size,
               learning_rate, f", resuming at step {resumed}" if resumed else "")
  for epoch in range(1, epochs + 1):
    loop.run(epoch * steps_per_epoch, total_steps)
    if stage != "intermediate":  # Stage 1 trains no head, so dev scores would mean nothing.
      evaluator.after_epoch(stage, epoch, loop.step)
  entry = {"stage": stage, "epochs": epochs, "steps": loop.step, "final_losses": loop.final_losses,
           "learning_rate": learning_rate, "history": loop.history, "steps_per_epoch": steps_per_epoch}
  if stage == "prediction":
    entry.update(temperature=[s.temperature.start, s.temperature.end if s.temperature.end is not None
                              else s.temperature.start],
                 gold_label_weight=[s.gold_label_weight.start, s.gold_label_weight.end
                                    if s.gold_label_weight.end is not None else s.gold_label_weight.start])
  return entry


def main():
  s = _validate(FLAGS)
  strategy = cli.start_runtime(s.runtime)
  out = s.output_dir
  with strategy.scope():
    student = build_task_model(s.student, s.meta["num_labels"])
    if s.ckpt_path:
      logging.info("student encoder: %s", restore_encoder(student.encoder, s.student, s.ckpt_path))
    teachers = []
    for spec in s.teachers:
      teacher = build_task_model(load_config(spec.config_path), s.meta["num_labels"])
      logging.info("teacher: %s", teacher.restore(spec.ckpt_path, "--teacher_ckpt_path"))
      teacher.trainable = False
      teachers.append(teacher)
    distillation = None
    if s.intermediate:
      if s.intermediate.needs_qkv:
        set_expose_qkv(teachers[0])
      # Built once: TinyBERT's W_h is trained in stage 1, and --init_from_teacher may set it.
      distillation = s.intermediate.build(s.student, s.teacher)
    if s.init_from_teacher:
      from modeling.teacher_init import init_from_teacher
      tinybert = distillation if s.intermediate and s.intermediate.kind == "tinybert" else None
      logging.info("%s", init_from_teacher(student.encoder, teachers[0].encoder, s.init_layer_map, tinybert))
      if s.student.hidden_size == s.teacher.hidden_size:
        student.head.set_weights(teachers[0].head.get_weights())
  # Every worker evaluates, but only the chief writes into the output folder; the others write beside it.
  evaluator = Evaluator(student, s.meta, s.split_files, out if training.is_chief(strategy) else os.path.join(
      out, ".workers", f"worker_{strategy.cluster_resolver.task_id}"), s.max_seq_length, s.eval_batch_size)
  start = time.time()
  summary = {"stages": [_train_stage(s, strategy, *stage, student, teachers, distillation, evaluator)
                        for stage in s.stages]}
  best_prefix = evaluator.restore_best()
  if not training.is_chief(strategy):
    return
  save_config(s.student, os.path.join(out, "config.json"))
  final_scores = evaluator.finish(best_prefix)
  exported = export.export_task_model(
      student, s.student, s.meta, s.split_files, out, vocab=s.vocab, merges=s.merges, export_dir=s.export_dir,
      export_tflite=s.export_tflite, hf_dir=s.hf_dir, max_int8_accuracy_drop=s.max_int8_accuracy_drop,
      int8_calibration_examples=s.int8_calibration_examples)
  if isinstance(exported["tflite"], dict):  # The int8 gate's scores go next to the dev scores.
    evaluator.results["tflite"] = exported["tflite"]
  if s.hf_dir:
    evaluator.results["hf_model"] = s.hf_dir
  files.write_json(evaluator.results_path, evaluator.results)
  summary.update(task_name=s.meta["task_name"], seconds=time.time() - start, dev=final_scores,
                 best=evaluator.results["best"], export_dir=s.export_dir, hf_model=s.hf_dir, teacher=s.teacher_ckpt_path,
                 student_config=s.config_path, ckpt_path=s.ckpt_path, batch_size=s.batch_size, dtype=s.runtime.dtype,
                 distribution_strategy=s.runtime.distribution_strategy)
  summary.update(label_list=s.meta.get("label_list"), augmented_data=s.augmented,
                 train_examples=s.num_train_examples, init_from_teacher=s.init_from_teacher,
                 intermediate_loss=s.intermediate.kind if s.intermediate else None,
                 teacher_weights=[spec.weight for spec in s.teachers] if len(s.teachers) > 1 else None)
  training.write_training_summary(out, summary)
  logging.info("done: dev %s; best checkpoint %s", " ".join(f"{k} {v:.4f}" for k, v in final_scores.items()),
               best_prefix)


if __name__ == "__main__":
  define_flags()
  run_script(main)
