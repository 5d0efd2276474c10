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

from modeling import cli, export, files, losses, records, task_distillation, tflite, training
from modeling.checkpoints import restore_encoder
from modeling.config import ModelConfig, save_config
from modeling.errors import UserError, run_script
from modeling.evaluation import Evaluator
from modeling.models import build_task_model

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("task_name", None, "The task the data was prepared for (see prepare_dataset/).")
  flags.DEFINE_string("data_dir", None, "Folder of task TFRecords and meta.json from create_finetuning_data.py.")
  flags.DEFINE_string("output_dir", None, "Where checkpoints, results and the export go.")
  flags.DEFINE_string("config_path", None, "The model (student) config.")
  flags.DEFINE_string("teacher_config_path", None, "The teacher's config; without it, plain fine-tuning.")
  flags.DEFINE_string("ckpt_path", None, "Checkpoint to initialise the encoder from: an output folder of "
                      "run_pretraining.py, a TF2 or TF1 checkpoint, or a Hugging Face folder.")
  flags.DEFINE_string("teacher_ckpt_path", None, "The fine-tuned teacher: an output folder of this script.")
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
  temperature: float
  gold_label_weight: float
  attention_loss: str
  projection: str
  loss_weights: dict
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
  teacher: ModelConfig | None
  layer_map: list | None
  meta: dict
  split_files: dict
  runtime: cli.Runtime


def _validate(f: flags.FlagValues) -> Settings:
  """Every check that needs no model."""
  for name in ("task_name", "data_dir", "output_dir", "config_path"):
    if not f[name].value:
      raise UserError(f"--{name} is required")
  cli.check_positive(max_seq_length=f.max_seq_length, batch_size=f.batch_size, epochs=f.epochs,
                     learning_rate=f.learning_rate, temperature=f.temperature, eval_batch_size=f.eval_batch_size,
                     steps_per_loop=f.steps_per_loop)
  if f.gold_label_weight < 0:
    raise UserError(f"--gold_label_weight must not be negative, got {f.gold_label_weight}")
  if not 0 <= f.warmup_proportion < 1:
    raise UserError(f"--warmup_proportion must be in [0, 1), got {f.warmup_proportion}")
  student = cli.load_config_flag("config_path", f.config_path)
  meta = cli.read_task_meta(f.data_dir, f.task_name)
  records.check_meta(meta, f.data_dir, max_seq_length=f.max_seq_length, vocab_size=student.vocab_size)
  if f.max_seq_length > student.max_sequence_length:
    raise UserError(f"--max_seq_length={f.max_seq_length} exceeds {student.source}'s "
                    f"{student.max_sequence_length} positions")
  if f.ckpt_path:
    cli.check_path("ckpt_path", f.ckpt_path)
    cli.check_vocab_matches(meta, f.data_dir, f.ckpt_path, "ckpt_path")
  teacher, layer_map = None, None
  if f.teacher_config_path:
    teacher = cli.load_config_flag("teacher_config_path", f.teacher_config_path)
    cli.check_path("teacher_ckpt_path", f.teacher_ckpt_path)
    cli.check_vocab_matches(meta, f.data_dir, f.teacher_ckpt_path, "teacher_ckpt_path")
    layer_map = cli.check_pair(student, teacher, f.layer_map, f.max_seq_length)
    cli.check_teacher_head(f.teacher_ckpt_path, meta)
  elif f.teacher_ckpt_path:
    raise UserError("--teacher_ckpt_path needs --teacher_config_path")
  weights = losses.parse_loss_weights(f.loss_weights)
  split_files = {split: os.path.join(f.data_dir, name) for split, name in meta["record_files"].items()}
  for path in split_files.values():
    cli.check_path("data_dir", path)
  if "train" not in split_files or not meta["num_examples"].get("train"):
    raise UserError(f"--data_dir {f.data_dir} has no training examples")
  vocab = cli.export_vocab(f.vocab_file, meta, f.ckpt_path, f.teacher_ckpt_path)
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
      warmup_proportion=f.warmup_proportion, weight_decay=f.weight_decay, temperature=f.temperature,
      gold_label_weight=f.gold_label_weight, attention_loss=f.attention_loss, projection=f.projection,
      loss_weights=weights, cache_teacher_outputs=f.cache_teacher_outputs, teacher_cache_dir=f.teacher_cache_dir,
      vocab=vocab, export_dir=export_dir, export_tflite=f.export_tflite,
      max_int8_accuracy_drop=f.max_int8_accuracy_drop, int8_calibration_examples=f.int8_calibration_examples,
      merges=merges, hf_dir=hf_dir, student=student, teacher=teacher,
      layer_map=layer_map, meta=meta, split_files=split_files, runtime=cli.runtime_from_flags(f))


def _train_stage(s: Settings, strategy, stage, epochs, learning_rate, student, teacher, evaluator):
  """Runs one stage to its last epoch (or resumes it); returns its entry of training_summary.json."""
  regression = s.meta["task_type"] == "regression"
  steps_per_epoch = max(1, s.meta["num_examples"]["train"] // s.batch_size)
  total_steps = epochs * steps_per_epoch
  dataset, layer_map = task_distillation.train_dataset(
      s.split_files["train"], stage, max_seq_length=s.max_seq_length, batch_size=s.batch_size,
      label_dtype=tf.float32 if regression else tf.int64, num_examples=s.meta["num_examples"]["train"],
      seed=s.runtime.seed, teacher=teacher, teacher_config=s.teacher, layer_map=s.layer_map,
      cache=s.cache_teacher_outputs, cache_dir=s.teacher_cache_dir)
  with strategy.scope():
    optimizer = training.make_optimizer(learning_rate, total_steps, math.ceil(s.warmup_proportion * total_steps),
                                        s.runtime.dtype, s.weight_decay)
    distillation = None
    if stage == "intermediate":
      distillation = losses.IntermediateDistillation(
          s.student.hidden_size, s.teacher.hidden_size, layer_map, s.attention_loss, s.projection, s.loss_weights,
          initializer_range=s.student.initializer_range)
  objects, variables_fn = task_distillation.stage_variables(stage, student, distillation)
  final = stage == s.stages[-1][0]
  loop = training.TrainLoop(
      strategy=strategy, variables_fn=variables_fn, optimizer=optimizer, dataset=dataset, checkpoint_objects=objects,
      loss_fn=task_distillation.make_loss_fn(stage, student, teacher, distillation, temperature=s.temperature,
                                             gold_label_weight=s.gold_label_weight, regression=regression),
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
  return {"stage": stage, "epochs": epochs, "steps": loop.step, "final_losses": loop.final_losses,
          "learning_rate": learning_rate, "history": loop.history}


def main():
  s = _validate(FLAGS)
  strategy = cli.start_runtime(s.runtime)
  out = s.output_dir
  with strategy.scope():
    student = build_task_model(s.student, s.meta["num_labels"])
    if s.ckpt_path:
      logging.info("student encoder: %s", restore_encoder(student.encoder, s.student, s.ckpt_path))
    teacher = None
    if s.teacher is not None:
      teacher = build_task_model(s.teacher, s.meta["num_labels"])
      logging.info("teacher: %s", teacher.restore(s.teacher_ckpt_path, "--teacher_ckpt_path"))
      teacher.trainable = False
  # Every worker evaluates, but only the chief writes into the output folder; the others write beside it.
  evaluator = Evaluator(student, s.meta, s.split_files, out if training.is_chief(strategy) else os.path.join(
      out, ".workers", f"worker_{strategy.cluster_resolver.task_id}"), s.max_seq_length, s.eval_batch_size)
  start = time.time()
  summary = {"stages": [_train_stage(s, strategy, *stage, student, teacher, evaluator) for stage in s.stages]}
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
  training.write_training_summary(out, summary)
  logging.info("done: dev %s; best checkpoint %s", " ".join(f"{k} {v:.4f}" for k, v in final_scores.items()),
               best_prefix)


if __name__ == "__main__":
  define_flags()
  run_script(main)
