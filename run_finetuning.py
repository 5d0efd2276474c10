r"""Task fine-tuning and TinyBERT task distillation (arXiv 1909.10351).

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
import os
import time

from absl import flags, logging

from modeling import cli, export, files, multi_teacher, records, schedules, task_distillation, tflite, training
from modeling.checkpoints import restore_encoder
from modeling.config import POOLINGS, ModelConfig, save_config
from modeling.encoders import set_expose_qkv
from modeling.errors import UserError, run_script
from modeling.evaluation import Evaluator
from modeling.models import build_task_model
from modeling.teacher_init import init_from_teacher

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """The seed's flags, then each feature's own (all listed by --help)."""
  flags.DEFINE_string("task_name", None, "The task the data was prepared for (see prepare_dataset/).",
                      flag_values=flag_values)
  flags.DEFINE_string("data_dir", None, "Folder of task TFRecords and meta.json from create_finetuning_data.py.",
                      flag_values=flag_values)
  flags.DEFINE_string("output_dir", None, "Where checkpoints, results and the export go.", flag_values=flag_values)
  flags.DEFINE_string("config_path", None, "The model (student) config.", flag_values=flag_values)
  flags.DEFINE_string("teacher_config_path", None, "The teacher's config; without it, plain fine-tuning. Several "
                      "teachers: a comma-separated list (stage 2 averages their soft targets; the first teacher also "
                      "teaches stage 1).", flag_values=flag_values)
  flags.DEFINE_string("ckpt_path", None, "Checkpoint to initialise the encoder from: an output folder of "
                      "run_pretraining.py, a TF2 or TF1 checkpoint, or a Hugging Face folder.", flag_values=flag_values)
  flags.DEFINE_string("teacher_ckpt_path", None, "The fine-tuned teacher: an output folder of this script; with "
                      "several teachers, one per --teacher_config_path entry, comma-separated, in the same order.",
                      flag_values=flag_values)
  flags.DEFINE_integer("max_seq_length", 128, "Sequence length; must match the data's meta.json.",
                       flag_values=flag_values)
  flags.DEFINE_integer("batch_size", 8, "Global training batch size.", flag_values=flag_values)
  flags.DEFINE_integer("epochs", 3, "Epochs of plain fine-tuning, and the default for each distillation stage.",
                       flag_values=flag_values)
  flags.DEFINE_float("learning_rate", 5e-5, "Peak AdamW learning rate, with linear warmup and decay per stage.",
                     flag_values=flag_values)
  flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of each stage's steps spent in linear warmup.",
                     flag_values=flag_values)
  flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to LayerNorm and biases).",
                     flag_values=flag_values)
  flags.DEFINE_integer("eval_batch_size", 64, "Batch size for dev and test prediction.", flag_values=flag_values)
  flags.DEFINE_enum("pooling", "auto", ("auto",) + POOLINGS,
                    "What the task head reads: 'first_token' (BERT's pooler on [CLS]), 'mean' (the mean of the last "
                    "layer over the real tokens), or 'auto': the config's 'pooling' when it names one, else 'mean' "
                    "for a student whose layers start from random weights (no --ckpt_path, and no layer copy by "
                    "--init_from_teacher), whose [CLS] is the same vector for every input; from --ckpt_path, the "
                    "pooling its run recorded in its config.json ('mean' for a general student of "
                    "run_pretraining.py, whose pooler no loss trains), else 'first_token'. Written into "
                    "output_dir/config.json.", flag_values=flag_values)
  task_distillation.define_flags(flag_values)
  multi_teacher.define_flags(flag_values)
  cli.define_export_flags(flag_values)
  cli.define_distillation_flags(flag_values)
  cli.define_runtime_flags(default_steps_per_loop=50, flag_values=flag_values)
  for module in (task_distillation, multi_teacher, cli, tflite):
    flags.adopt_module_key_flags(module, flag_values)


@dataclasses.dataclass(frozen=True)
class Settings:
  """The validated flags, and what was read to validate them."""
  config_path: str
  ckpt_path: str | None
  teacher_ckpt_path: str | None
  student: ModelConfig
  meta: dict
  split_files: dict
  init_from_teacher: bool
  init_layer_map: list | None  # The teacher layers --init_from_teacher copies.
  training: task_distillation.TaskTraining  # What the stages share: data, batches, teachers, losses, runtime.
  export: cli.Export


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
  if f.intermediate_prediction_weight < 0:
    raise UserError(f"--intermediate_prediction_weight must be at least 0, got {f.intermediate_prediction_weight}")
  stage_one = f.teacher_config_path and f.distill_stage in ("intermediate", "both")
  if f.intermediate_prediction_weight and not stage_one:
    raise UserError("--intermediate_prediction_weight adds to stage 1, which runs with a teacher and --distill_stage "
                    "intermediate or both")
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
  train_splits = ("train", "train_augmented") if f.augmented_data else ("train",)
  if f.augmented_data:
    if not f.teacher_config_path:
      raise UserError("--augmented_data needs --teacher_config_path: augmented rows carry no gold labels, only "
                      "the teacher's targets")
    if "train_augmented" not in split_files or not meta["num_examples"].get("train_augmented"):
      raise UserError(f"--augmented_data: {os.path.join(f.data_dir, records.META_FILE)} lists no train_augmented "
                      f"records; prepare the data with create_finetuning_data.py --augmented_file")
  intermediate, teachers, teacher_files, init_layer_map = multi_teacher.teachers_from_flags(
      f, student, meta, f.augmented_data)
  if f.init_from_teacher:
    if not teachers:
      raise UserError("--init_from_teacher needs --teacher_config_path")
    if f.ckpt_path:
      raise UserError("--init_from_teacher and --ckpt_path both set the student's starting weights; choose one")
  pooling, why = _pooling(f, student, teachers[0].config if teachers else None)
  student = student.replace(pooling=pooling)
  logging.info("the student's head reads %s (%s)", "the mean of the last layer" if pooling == "mean"
               else "the pooler on the first token", why)
  if export.hf_dir_for(f.export_hf, f.output_dir) and pooling == "mean":
    raise UserError(f"--export_hf: the student's head reads the mean of its last layer ({why}), and Hugging Face's "
                    f"*ForSequenceClassification heads read the first token; pass --pooling=first_token to export it")
  export_settings = cli.export_from_flags(f, student, meta, f.data_dir, f.output_dir,
                                          (f.ckpt_path, teachers[0].ckpt_path if teachers else None))
  files.ensure_writable_dir(f.output_dir, "output_dir")
  stages = task_distillation.plan_stages(bool(f.teacher_config_path), f.distill_stage, f.epochs, f.learning_rate,
                                         f.intermediate_epochs, f.prediction_epochs, f.intermediate_learning_rate)
  run = task_distillation.TaskTraining(
      output_dir=f.output_dir, stages=stages, train_files=tuple(split_files[split] for split in train_splits),
      num_train_examples=sum(meta["num_examples"][split] for split in train_splits), augmented=f.augmented_data,
      regression=meta["task_type"] == "regression", max_seq_length=f.max_seq_length, batch_size=f.batch_size,
      eval_batch_size=f.eval_batch_size, warmup_proportion=f.warmup_proportion, weight_decay=f.weight_decay,
      runtime=cli.runtime_from_flags(f), teacher=teachers[0].config if teachers else None,
      teachers=tuple(teachers), teacher_files=tuple(teacher_files), intermediate=intermediate,
      cache_teacher_outputs=f.cache_teacher_outputs, teacher_cache_dir=f.teacher_cache_dir, temperature=temperature,
      gold_label_weight=gold_label_weight, intermediate_prediction_weight=f.intermediate_prediction_weight)
  return Settings(config_path=f.config_path, ckpt_path=f.ckpt_path, teacher_ckpt_path=f.teacher_ckpt_path,
                  student=student, meta=meta, split_files=split_files, init_from_teacher=f.init_from_teacher,
                  init_layer_map=init_layer_map, training=run, export=export_settings)


def _pooling(f: flags.FlagValues, student: ModelConfig, teacher: ModelConfig | None) -> tuple[str, str]:
  """--pooling resolved: what the student's head reads (see the flag's help), and why."""
  if f.pooling != "auto":
    return f.pooling, f"--pooling={f.pooling}"
  if student.pooling:
    return student.pooling, f"the 'pooling' of {student.source}"
  copies_layers = f.init_from_teacher and teacher is not None and teacher.hidden_size == student.hidden_size
  if copies_layers:  # The student takes the teacher's layers and head, so it reads what the teacher's head read.
    return teacher.head_pooling, "--pooling=auto, as the teacher whose layers it copies"
  if f.ckpt_path:
    found = cli.recorded_pooling(f.ckpt_path)
    if found:  # A general student records "mean": its pooler was never trained.
      return found[0], f"--pooling=auto, as recorded for --ckpt_path in {found[1]}"
    return "first_token", "--pooling=auto, for a student that starts from --ckpt_path"
  return "mean", "--pooling=auto, for a student whose layers start from random weights"


def main():
  s = _validate(FLAGS)
  run = s.training
  strategy = cli.start_runtime(run.runtime)
  out = run.output_dir
  with strategy.scope():
    student = build_task_model(s.student, s.meta["num_labels"])
    if s.ckpt_path:
      logging.info("student encoder: %s", restore_encoder(student.encoder, s.student, s.ckpt_path))
    teachers = []
    for spec in run.teachers:
      teacher = build_task_model(spec.config, s.meta["num_labels"])
      logging.info("teacher: %s", teacher.restore(spec.ckpt_path, "--teacher_ckpt_path"))
      teacher.trainable = False
      teachers.append(teacher)
    distillation = None
    if run.intermediate:
      if run.intermediate.needs_qkv:
        set_expose_qkv(teachers[0])
      # Built once: TinyBERT's W_h is trained in stage 1, and --init_from_teacher may set it.
      distillation = run.intermediate.build(s.student, run.teacher)
    if s.init_from_teacher:
      tinybert = distillation if run.intermediate and run.intermediate.kind == "tinybert" else None
      logging.info("%s", init_from_teacher(student.encoder, teachers[0].encoder, s.init_layer_map, tinybert))
      if s.student.hidden_size == run.teacher.hidden_size:
        student.head.set_weights(teachers[0].head.get_weights())
  # Every worker evaluates, but only the chief writes into the output folder; the others write beside it.
  evaluator = Evaluator(student, s.meta, s.split_files, out if training.is_chief(strategy) else os.path.join(
      out, ".workers", f"worker_{strategy.cluster_resolver.task_id}"), run.max_seq_length, run.eval_batch_size)
  start = time.time()
  summary = {"stages": [task_distillation.train_stage(run, strategy, *stage, student, teachers, distillation,
                                                      evaluator) for stage in run.stages]}
  best_prefix = evaluator.restore_best()
  if not training.is_chief(strategy):
    return
  save_config(s.student, os.path.join(out, "config.json"))
  final_scores = evaluator.finish(best_prefix)
  exported = export.export_task_model(student, s.student, s.meta, s.split_files, out, **dataclasses.asdict(s.export))
  if isinstance(exported["tflite"], dict):  # The int8 gate's scores go next to the dev scores.
    evaluator.results["tflite"] = exported["tflite"]
  if s.export.hf_dir:
    evaluator.results["hf_model"] = s.export.hf_dir
  files.write_json(evaluator.results_path, evaluator.results)
  summary.update(task_name=s.meta["task_name"], seconds=time.time() - start, dev=final_scores,
                 best=evaluator.results["best"], export_dir=s.export.export_dir, hf_model=s.export.hf_dir,
                 teacher=s.teacher_ckpt_path, student_config=s.config_path, ckpt_path=s.ckpt_path,
                 batch_size=run.batch_size, dtype=run.runtime.dtype,
                 distribution_strategy=run.runtime.distribution_strategy)
  summary.update(label_list=s.meta.get("label_list"), augmented_data=run.augmented,
                 train_examples=run.num_train_examples, init_from_teacher=s.init_from_teacher,
                 intermediate_loss=run.intermediate.kind if run.intermediate else None,
                 teacher_weights=[spec.weight for spec in run.teachers] if len(run.teachers) > 1 else None)
  training.write_training_summary(out, summary)
  logging.info("done: dev %s; best checkpoint %s", " ".join(f"{k} {v:.4f}" for k, v in final_scores.items()),
               best_prefix)


if __name__ == "__main__":
  define_flags()
  run_script(main)
