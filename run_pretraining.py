"""General distillation (TinyBERT, arXiv 1909.10351): a frozen pretrained teacher teaches a student on unlabeled
text through embedding, hidden-state and attention losses over a teacher→student layer map.

  python3 run_pretraining.py --data_dir DATA --output_dir OUT --config_path configs/tinybert_4l_312.json \
    --teacher_config_path TEACHER/config.json --teacher_ckpt_path TEACHER

DATA comes from prepare_dataset/create_distilled_pretraining_data.py. OUT receives `checkpoints/` (student
encoder, W_h, optimizer, step and input position), `summaries/`, the student's `config.json` and
`training_summary.json`; it is a valid `--ckpt_path` for run_finetuning.py. Re-running the same command resumes.
"""

import os
import sys
import time

from absl import flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from modeling import cli, files, losses, records, training
from modeling.errors import UserError

flags.DEFINE_string("data_dir", None, "Folder of pretraining TFRecords and meta.json.")
flags.DEFINE_string("output_dir", None, "Where checkpoints, summaries and the student config go.")
flags.DEFINE_string("config_path", None, "The student's model config (JSON).")
flags.DEFINE_string("teacher_config_path", None, "The teacher's model config (JSON, or a Hugging Face folder).")
flags.DEFINE_string("teacher_ckpt_path", None, "The teacher's checkpoint: TF2, Google TF1 BERT, or a Hugging Face "
                    "folder.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length; must match the data's meta.json.")
flags.DEFINE_integer("batch_size", 8, "Global batch size.")
flags.DEFINE_integer("epochs", 100, "Epochs of --steps_per_epoch steps.")
flags.DEFINE_integer("steps_per_epoch", 10000, "Steps per epoch.")
flags.DEFINE_integer("steps_per_loop", 100, "Steps inside one tf.function call between progress lines.")
flags.DEFINE_integer("warmup_steps", 10000, "Linear learning-rate warmup steps (capped below the total).")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate of AdamW, decayed linearly to zero.")
flags.DEFINE_string("ckpt_path", None, "Optional checkpoint to initialise the student encoder from.")
flags.DEFINE_bool("init_embeddings_from_teacher", False,
                  "Start the student's token/position/segment embeddings (and W_h) from the teacher's, projected onto "
                  "their top principal directions (modeling/teacher_init.py). Not in the TinyBERT paper: it helps "
                  "when the general-distillation text is small. BERT-family students only; not with --ckpt_path.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to LayerNorm and biases).")
cli.define_distillation_flags()
cli.define_runtime_flags()

FLAGS = flags.FLAGS


def _validate():
  """Every check that needs no model: flags, paths, configs, data sidecar, layer map."""
  for name in ("data_dir", "output_dir", "config_path", "teacher_config_path", "teacher_ckpt_path"):
    if not getattr(FLAGS, name):
      raise UserError(f"--{name} is required")
  cli.check_positive(max_seq_length=FLAGS.max_seq_length, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
                     steps_per_epoch=FLAGS.steps_per_epoch, steps_per_loop=FLAGS.steps_per_loop,
                     learning_rate=FLAGS.learning_rate, save_checkpoint_steps=FLAGS.save_checkpoint_steps,
                     keep_checkpoint_max=FLAGS.keep_checkpoint_max)
  if FLAGS.warmup_steps < 0:
    raise UserError(f"--warmup_steps must not be negative, got {FLAGS.warmup_steps}")
  student = cli.load_config_flag("config_path", FLAGS.config_path)
  teacher = cli.load_config_flag("teacher_config_path", FLAGS.teacher_config_path)
  cli.check_path("teacher_ckpt_path", FLAGS.teacher_ckpt_path)
  if FLAGS.ckpt_path:
    cli.check_path("ckpt_path", FLAGS.ckpt_path)
    if FLAGS.init_embeddings_from_teacher:
      raise UserError("--init_embeddings_from_teacher and --ckpt_path both set the student's starting weights; "
                      "choose one")
  layer_map = cli.check_pair(student, teacher, FLAGS.layer_map, FLAGS.max_seq_length)
  meta = records.read_meta(FLAGS.data_dir)
  records.check_meta(meta, FLAGS.data_dir, max_seq_length=FLAGS.max_seq_length, vocab_size=student.vocab_size)
  cli.check_vocab_matches(meta, FLAGS.data_dir, FLAGS.teacher_ckpt_path, "teacher_ckpt_path")
  weights = losses.parse_loss_weights(FLAGS.loss_weights)
  data_files = ([os.path.join(FLAGS.data_dir, f) for f in meta["files"]] if meta.get("files")
                else records.record_files(FLAGS.data_dir, "train"))
  for path in data_files:
    cli.check_path("data_dir", path)
  files.ensure_writable_dir(FLAGS.output_dir, "output_dir")
  return student, teacher, layer_map, weights, data_files


def main():
  student_config, teacher_config, layer_map, weights, data_files = _validate()
  from modeling.checkpoints import restore_encoder  # Imported late: flags are checked before TF models load.
  from modeling.encoders import build_encoder
  from modeling.losses import IntermediateDistillation

  training.set_threads(FLAGS.intra_op_threads, FLAGS.inter_op_threads)
  training.configure_determinism(FLAGS.seed)
  strategy = training.make_strategy(FLAGS.distribution_strategy, FLAGS.tpu, FLAGS.cpu_devices)
  training.set_dtype(FLAGS.dtype)
  total_steps = FLAGS.epochs * FLAGS.steps_per_epoch
  logging.info("general distillation: %s (%d layers) -> %s (%d layers), layer map %s, %d steps of %d",
               teacher_config.source, teacher_config.num_hidden_layers, student_config.source,
               student_config.num_hidden_layers, layer_map, total_steps, FLAGS.batch_size)

  with strategy.scope():
    teacher = build_encoder(teacher_config)
    logging.info("teacher: %s", restore_encoder(teacher, teacher_config, FLAGS.teacher_ckpt_path))
    teacher.trainable = False
    student = build_encoder(student_config)
    if FLAGS.ckpt_path:
      logging.info("student initialised from %s", restore_encoder(student, student_config, FLAGS.ckpt_path))
    distillation = IntermediateDistillation(
        student_config.hidden_size, teacher_config.hidden_size, layer_map, FLAGS.attention_loss, FLAGS.projection,
        weights, initializer_range=student_config.initializer_range)
    if FLAGS.init_embeddings_from_teacher:
      from modeling.teacher_init import init_embeddings_from_teacher
      logging.info(init_embeddings_from_teacher(student, teacher, distillation))
    optimizer = training.make_optimizer(FLAGS.learning_rate, total_steps, FLAGS.warmup_steps, FLAGS.dtype,
                                        FLAGS.weight_decay)

  def loss_fn(features, is_training):
    teacher_outputs = teacher(features, training=False)
    student_outputs = student(features, training=is_training)
    return distillation(student_outputs, teacher_outputs, features["input_mask"])

  dataset = records.make_dataset(data_files, FLAGS.max_seq_length, FLAGS.batch_size, shuffle=True, repeat=True,
                                 seed=FLAGS.seed, drop_remainder=True)
  loop = training.TrainLoop(
      strategy=strategy, loss_fn=loss_fn,
      # The pooler is outside every intermediate loss, so it is not trained here.
      variables_fn=lambda: [v for v in student.trainable_variables if "pooler" not in v.name]
      + distillation.trainable_variables,
      optimizer=optimizer, dataset=dataset, output_dir=FLAGS.output_dir, global_batch_size=FLAGS.batch_size,
      checkpoint_objects={"encoder": student.garden_network, "projection": distillation},
      steps_per_loop=FLAGS.steps_per_loop, save_checkpoint_steps=FLAGS.save_checkpoint_steps,
      keep_checkpoint_max=FLAGS.keep_checkpoint_max, models=[student], name="general")
  start_step = loop.restore()
  if start_step >= total_steps:
    logging.info("already trained for %d steps; nothing to do", start_step)
  start = time.time()
  last = loop.run(total_steps)
  if loop.chief:
    from modeling.config import save_config
    save_config(student_config, os.path.join(FLAGS.output_dir, "config.json"))
    training.write_training_summary(FLAGS.output_dir, {
        "stage": "general_distillation", "global_step": loop.step, "total_steps": total_steps,
        "resumed_from_step": start_step, "final_losses": last, "seconds": time.time() - start,
        "layer_map": layer_map, "attention_loss": FLAGS.attention_loss, "projection": FLAGS.projection,
        "loss_weights": weights, "batch_size": FLAGS.batch_size, "dtype": FLAGS.dtype,
        "distribution_strategy": FLAGS.distribution_strategy, "replicas": strategy.num_replicas_in_sync,
        "init_embeddings_from_teacher": FLAGS.init_embeddings_from_teacher,
        "student_config": FLAGS.config_path, "teacher_config": FLAGS.teacher_config_path,
        "teacher_ckpt": FLAGS.teacher_ckpt_path, "history": loop.history})
    logging.info("done: step %d, %s; student checkpoint in %s", loop.step,
                 " ".join(f"{k} {v:.4f}" for k, v in last.items()), os.path.join(FLAGS.output_dir, "checkpoints"))


if __name__ == "__main__":
  cli.run(main)
