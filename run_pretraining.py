"""General distillation (TinyBERT, arXiv 1909.10351): a frozen pretrained teacher teaches a student on unlabeled
text through embedding, hidden-state and attention losses over a teacher→student layer map.

  python3 run_pretraining.py --data_dir DATA --output_dir OUT --config_path configs/tinybert_4l_312.json \
    --teacher_config_path TEACHER/config.json --teacher_ckpt_path TEACHER

DATA comes from prepare_dataset/create_distilled_pretraining_data.py. OUT receives `checkpoints/` (student
encoder, W_h, optimizer, step and input position), `summaries/`, the student's `config.json` and
`training_summary.json`; it is a valid `--ckpt_path` for run_finetuning.py. Re-running the same command resumes.
"""

import dataclasses
import os
import time

from absl import flags, logging

from modeling import cli, files, records, relation_losses, training
from modeling.checkpoints import restore_encoder
from modeling.config import ModelConfig, save_config
from modeling.encoders import build_encoder
from modeling.errors import UserError, run_script
from modeling.teacher_init import init_embeddings_from_teacher, init_from_teacher

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """The seed's flags, then the distillation and runtime ones (all listed by --help)."""
  flags.DEFINE_string("data_dir", None, "Folder of pretraining TFRecords and meta.json.", flag_values=flag_values)
  flags.DEFINE_string("output_dir", None, "Where checkpoints, summaries and the student config go.",
                      flag_values=flag_values)
  flags.DEFINE_string("config_path", None, "The student's model config (JSON).", flag_values=flag_values)
  flags.DEFINE_string("teacher_config_path", None, "The teacher's model config (JSON, or a Hugging Face folder).",
                      flag_values=flag_values)
  flags.DEFINE_string("teacher_ckpt_path", None, "The teacher's checkpoint: TF2, Google TF1 BERT, or a Hugging Face "
                      "folder.", flag_values=flag_values)
  flags.DEFINE_integer("max_seq_length", 128, "Sequence length; must match the data's meta.json.",
                       flag_values=flag_values)
  flags.DEFINE_integer("batch_size", 8, "Global batch size.", flag_values=flag_values)
  flags.DEFINE_integer("epochs", 100, "Epochs of --steps_per_epoch steps.", flag_values=flag_values)
  flags.DEFINE_integer("steps_per_epoch", 10000, "Steps per epoch.", flag_values=flag_values)
  flags.DEFINE_integer("steps_per_loop", 100, "Steps inside one tf.function call between progress lines.",
                       flag_values=flag_values)
  flags.DEFINE_integer("warmup_steps", 10000, "Linear learning-rate warmup steps (capped below the total).",
                       flag_values=flag_values)
  flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate of AdamW, decayed linearly to zero.",
                     flag_values=flag_values)
  flags.DEFINE_string("ckpt_path", None, "Optional checkpoint to initialise the student encoder from.",
                      flag_values=flag_values)
  flags.DEFINE_bool("init_embeddings_from_teacher", False,
                    "Start the student's token/position/segment embeddings (and W_h) from the teacher's, projected "
                    "onto their top principal directions (modeling/teacher_init.py). Not in the TinyBERT paper: it "
                    "helps when the general-distillation text is small. BERT-family students only; not with "
                    "--ckpt_path.", flag_values=flag_values)
  flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to LayerNorm and biases).",
                     flag_values=flag_values)
  cli.define_distillation_flags(flag_values)
  cli.define_runtime_flags(flag_values=flag_values)


@dataclasses.dataclass(frozen=True)
class Settings:
  """The validated flags, and what was read to validate them."""
  output_dir: str
  config_path: str
  teacher_config_path: str
  teacher_ckpt_path: str
  ckpt_path: str | None
  init_embeddings_from_teacher: bool
  max_seq_length: int
  batch_size: int
  total_steps: int
  warmup_steps: int
  learning_rate: float
  weight_decay: float
  attention_loss: str
  projection: str
  student: ModelConfig
  teacher: ModelConfig
  data_files: list
  runtime: cli.Runtime
  intermediate: relation_losses.IntermediateLoss  # --intermediate_loss, checked against both configs.
  init_from_teacher: bool
  init_layer_map: list | None  # The teacher layers --init_from_teacher copies (None without it).


def _validate(f: flags.FlagValues) -> Settings:
  """Every check that needs no model: flags, paths, configs, data sidecar, layer map."""
  for name in ("data_dir", "output_dir", "config_path", "teacher_config_path", "teacher_ckpt_path"):
    if not f[name].value:
      raise UserError(f"--{name} is required")
  cli.check_positive(max_seq_length=f.max_seq_length, batch_size=f.batch_size, epochs=f.epochs,
                     steps_per_epoch=f.steps_per_epoch, steps_per_loop=f.steps_per_loop,
                     learning_rate=f.learning_rate, save_checkpoint_steps=f.save_checkpoint_steps,
                     keep_checkpoint_max=f.keep_checkpoint_max)
  if f.warmup_steps < 0:
    raise UserError(f"--warmup_steps must not be negative, got {f.warmup_steps}")
  student = cli.load_config_flag("config_path", f.config_path)
  teacher = cli.load_config_flag("teacher_config_path", f.teacher_config_path)
  cli.check_path("teacher_ckpt_path", f.teacher_ckpt_path)
  if f.ckpt_path:
    cli.check_path("ckpt_path", f.ckpt_path)
    for flag in ("init_embeddings_from_teacher", "init_from_teacher"):
      if f[flag].value:
        raise UserError(f"--{flag} and --ckpt_path both set the student's starting weights; choose one")
  if f.init_from_teacher and f.init_embeddings_from_teacher:
    raise UserError("--init_from_teacher already includes --init_embeddings_from_teacher; choose one")
  intermediate = cli.check_pair(student, teacher, f.max_seq_length, f)
  meta = records.read_meta(f.data_dir)
  records.check_meta(meta, f.data_dir, max_seq_length=f.max_seq_length, vocab_size=student.vocab_size,
                     model_type=student.model_type, config_flag="config_path")
  records.check_meta(meta, f.data_dir, model_type=teacher.model_type, config_flag="teacher_config_path")
  cli.check_vocab_matches(meta, f.data_dir, f.teacher_ckpt_path, "teacher_ckpt_path")
  data_files = ([os.path.join(f.data_dir, name) for name in meta["files"]] if meta.get("files")
                else records.record_files(f.data_dir, "train"))
  for path in data_files:
    cli.check_path("data_dir", path)
  files.ensure_writable_dir(f.output_dir, "output_dir")
  return Settings(
      output_dir=f.output_dir, config_path=f.config_path, teacher_config_path=f.teacher_config_path,
      teacher_ckpt_path=f.teacher_ckpt_path, ckpt_path=f.ckpt_path,
      init_embeddings_from_teacher=f.init_embeddings_from_teacher, max_seq_length=f.max_seq_length,
      batch_size=f.batch_size, total_steps=f.epochs * f.steps_per_epoch, warmup_steps=f.warmup_steps,
      learning_rate=f.learning_rate, weight_decay=f.weight_decay, attention_loss=f.attention_loss,
      projection=f.projection, student=student, teacher=teacher, data_files=data_files,
      runtime=cli.runtime_from_flags(f),
      intermediate=intermediate, init_from_teacher=f.init_from_teacher,
      init_layer_map=(cli.init_layer_map(intermediate, student, teacher, f.layer_map) if f.init_from_teacher
                      else None))


def main():
  s = _validate(FLAGS)
  strategy = cli.start_runtime(s.runtime)
  intermediate = s.intermediate
  logging.info("general distillation (%s): %s (%d layers) -> %s (%d layers), layer map %s, %d steps of %d",
               intermediate.kind, s.teacher.source, s.teacher.num_hidden_layers, s.student.source,
               s.student.num_hidden_layers, intermediate.layer_map, s.total_steps, s.batch_size)

  with strategy.scope():
    teacher = build_encoder(s.teacher, expose_qkv=intermediate.needs_qkv)
    logging.info("teacher: %s", restore_encoder(teacher, s.teacher, s.teacher_ckpt_path))
    teacher.trainable = False
    student = build_encoder(s.student, expose_qkv=intermediate.needs_qkv)
    if s.ckpt_path:
      logging.info("student initialised from %s", restore_encoder(student, s.student, s.ckpt_path))
    distillation = intermediate.build(s.student, s.teacher)
    tinybert = distillation if intermediate.kind == "tinybert" else None  # Only TinyBERT's loss has a W_h to set.
    if s.init_embeddings_from_teacher:
      logging.info(init_embeddings_from_teacher(student, teacher, tinybert))
    if s.init_from_teacher:
      logging.info("%s", init_from_teacher(student, teacher, s.init_layer_map, tinybert))
    optimizer = training.make_optimizer(s.learning_rate, s.total_steps, s.warmup_steps, s.runtime.dtype,
                                        s.weight_decay)

  def loss_fn(features, is_training):
    teacher_outputs = teacher(features, training=False)
    student_outputs = student(features, training=is_training)
    return distillation(student_outputs, teacher_outputs, features["input_mask"])

  dataset = records.make_dataset(s.data_files, s.max_seq_length, s.batch_size, shuffle=True, repeat=True,
                                 seed=s.runtime.seed, drop_remainder=True)
  loop = training.TrainLoop(
      strategy=strategy, loss_fn=loss_fn,
      # The pooler is outside every intermediate loss, so it is not trained here.
      variables_fn=lambda: [v for v in student.trainable_variables if "pooler" not in v.name]
      + distillation.trainable_variables,
      optimizer=optimizer, dataset=dataset, output_dir=s.output_dir, global_batch_size=s.batch_size,
      checkpoint_objects={"encoder": student.garden_network, "projection": distillation},
      steps_per_loop=s.runtime.steps_per_loop, save_checkpoint_steps=s.runtime.save_checkpoint_steps,
      keep_checkpoint_max=s.runtime.keep_checkpoint_max, models=[student], name="general")
  start_step = loop.restore()
  if start_step >= s.total_steps:
    logging.info("already trained for %d steps; nothing to do", start_step)
  start = time.time()
  loop.run(s.total_steps)
  if loop.chief:
    # No loss here trains the pooler, so a task head on this student should read the mean of its last layer:
    # run_finetuning.py's --pooling=auto reads this record (unless the student's config named a pooling).
    save_config(s.student.replace(pooling=s.student.pooling or "mean"), os.path.join(s.output_dir, "config.json"))
    training.write_training_summary(s.output_dir, {
        "stage": "general_distillation", "global_step": loop.step, "total_steps": s.total_steps,
        "resumed_from_step": start_step, "final_losses": loop.final_losses, "seconds": time.time() - start,
        "intermediate_loss": intermediate.kind, "relation_heads": intermediate.relation_heads,
        "minilm_teacher_layer": intermediate.teacher_layer, "layer_map": intermediate.layer_map,
        "attention_loss": s.attention_loss, "projection": s.projection, "loss_weights": intermediate.loss_weights,
        "init_from_teacher": s.init_from_teacher, "batch_size": s.batch_size, "dtype": s.runtime.dtype,
        "distribution_strategy": s.runtime.distribution_strategy, "replicas": strategy.num_replicas_in_sync,
        "init_embeddings_from_teacher": s.init_embeddings_from_teacher,
        "student_config": s.config_path, "teacher_config": s.teacher_config_path,
        "teacher_ckpt": s.teacher_ckpt_path, "history": loop.history})
    logging.info("done: step %d, %s; student checkpoint in %s", loop.step,
                 " ".join(f"{k} {v:.4f}" for k, v in loop.final_losses.items()),
                 os.path.join(s.output_dir, "checkpoints"))


if __name__ == "__main__":
  define_flags()
  run_script(main)
