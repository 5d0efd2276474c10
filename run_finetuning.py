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

import math
import os
import shutil
import sys
import time

import numpy as np
from absl import flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from modeling import cli, files, losses, records, teacher_cache, training
from modeling.errors import UserError

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
flags.DEFINE_float("gold_label_weight", 0.0, "Weight of the gold-label loss added to stage 2 (0: soft targets only).")
flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of each stage's steps spent in linear warmup.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to LayerNorm and biases).")
flags.DEFINE_integer("eval_batch_size", 64, "Batch size for dev and test prediction.")
flags.DEFINE_string("vocab_file", None, "Vocab (or SentencePiece model) for the exported raw-string signature; "
                    "defaults to the vocab beside --ckpt_path or --teacher_ckpt_path when there is one.")
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (default: output_dir/saved_model; '-' skips).")
flags.DEFINE_bool("export_tflite", False, "Also write output_dir/model.tflite (token-id inputs).")
flags.DEFINE_enum("cache_teacher_outputs", "none", ["none", "logits", "all"],
                  "Compute the frozen teacher's outputs once and reuse them in later epochs: 'logits' for stage 2, "
                  "'all' adds the mapped hidden states and attention logits for stage 1 (large: see README). "
                  "Batches are then shuffled as whole batches.")
flags.DEFINE_string("teacher_cache_dir", None, "Folder for the teacher-output cache (default: in memory).")
cli.define_distillation_flags()
cli.define_runtime_flags(default_steps_per_loop=50)

FLAGS = flags.FLAGS


def _teacher_head_size(path: str):
  """The label count of the head in a fine-tuned teacher checkpoint, or None when it has no head."""
  from modeling.checkpoints import find_checkpoint
  kind, prefix = find_checkpoint(path)
  if kind != "tf2":
    return None
  import tensorflow as tf
  for name, shape in tf.train.list_variables(prefix):
    if name.startswith("head/kernel/"):
      return shape[-1]
  return None


def _validate():
  """Every check that needs no model; returns what main() needs."""
  for name in ("task_name", "data_dir", "output_dir", "config_path"):
    if not getattr(FLAGS, name):
      raise UserError(f"--{name} is required")
  cli.check_positive(max_seq_length=FLAGS.max_seq_length, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
                     learning_rate=FLAGS.learning_rate, temperature=FLAGS.temperature,
                     eval_batch_size=FLAGS.eval_batch_size, steps_per_loop=FLAGS.steps_per_loop)
  if FLAGS.gold_label_weight < 0:
    raise UserError(f"--gold_label_weight must not be negative, got {FLAGS.gold_label_weight}")
  if not 0 <= FLAGS.warmup_proportion < 1:
    raise UserError(f"--warmup_proportion must be in [0, 1), got {FLAGS.warmup_proportion}")
  student = cli.load_config_flag("config_path", FLAGS.config_path)
  meta = records.read_meta(FLAGS.data_dir)
  if meta.get("kind") != "finetuning":
    raise UserError(f"--data_dir {FLAGS.data_dir} holds {meta.get('kind')!r} data, not task data from "
                    f"create_finetuning_data.py")
  if meta.get("task_name", "").lower() != FLAGS.task_name.lower():
    raise UserError(f"--task_name={FLAGS.task_name} but {FLAGS.data_dir} was prepared for task "
                    f"{meta.get('task_name')!r}")
  records.check_meta(meta, FLAGS.data_dir, max_seq_length=FLAGS.max_seq_length, vocab_size=student.vocab_size)
  if FLAGS.max_seq_length > student.max_sequence_length:
    raise UserError(f"--max_seq_length={FLAGS.max_seq_length} exceeds {student.source}'s "
                    f"{student.max_sequence_length} positions")
  if FLAGS.ckpt_path:
    cli.check_path("ckpt_path", FLAGS.ckpt_path)
    cli.check_vocab_matches(meta, FLAGS.data_dir, FLAGS.ckpt_path, "ckpt_path")
  teacher, layer_map = None, None
  if FLAGS.teacher_config_path:
    teacher = cli.load_config_flag("teacher_config_path", FLAGS.teacher_config_path)
    cli.check_path("teacher_ckpt_path", FLAGS.teacher_ckpt_path)
    cli.check_vocab_matches(meta, FLAGS.data_dir, FLAGS.teacher_ckpt_path, "teacher_ckpt_path")
    layer_map = cli.check_pair(student, teacher, FLAGS.layer_map, FLAGS.max_seq_length)
    head = _teacher_head_size(FLAGS.teacher_ckpt_path)
    if head is None:
      raise UserError(f"--teacher_ckpt_path {FLAGS.teacher_ckpt_path} has no task head; fine-tune the teacher "
                      f"first with run_finetuning.py without --teacher_config_path")
    if head != meta["num_labels"]:
      raise UserError(f"the teacher's head has {head} outputs but task {meta['task_name']} has "
                      f"{meta['num_labels']} labels")
  elif FLAGS.teacher_ckpt_path:
    raise UserError("--teacher_ckpt_path needs --teacher_config_path")
  weights = losses.parse_loss_weights(FLAGS.loss_weights)
  split_files = {split: os.path.join(FLAGS.data_dir, name) for split, name in meta["record_files"].items()}
  for path in split_files.values():
    cli.check_path("data_dir", path)
  if "train" not in split_files or not meta["num_examples"].get("train"):
    raise UserError(f"--data_dir {FLAGS.data_dir} has no training examples")
  files.ensure_writable_dir(FLAGS.output_dir, "output_dir")
  return student, teacher, layer_map, weights, meta, split_files


def _stages(has_teacher: bool):
  """(name, epochs, learning rate) of each stage to run, in order."""
  if not has_teacher:
    return [("finetune", FLAGS.epochs, FLAGS.learning_rate)]
  stages = []
  if FLAGS.distill_stage in ("intermediate", "both"):
    stages.append(("intermediate", FLAGS.intermediate_epochs or FLAGS.epochs,
                   FLAGS.intermediate_learning_rate or FLAGS.learning_rate))
  if FLAGS.distill_stage in ("prediction", "both"):
    stages.append(("prediction", FLAGS.prediction_epochs or FLAGS.epochs, FLAGS.learning_rate))
  return stages


def _restore_task_model(model, path: str, what: str) -> str:
  """Restores encoder and head from an output folder of this script; every variable must be matched."""
  import tensorflow as tf

  from modeling.checkpoints import find_checkpoint
  _, prefix = find_checkpoint(path)
  checkpoint = tf.train.Checkpoint(encoder=model.encoder.garden_network, head=model.head)
  try:
    checkpoint.read(prefix).assert_existing_objects_matched().expect_partial()
  except (AssertionError, ValueError) as e:
    raise UserError(f"{what} {prefix} does not fit the model: {str(e).splitlines()[0][:300]}") from None
  return prefix


class Evaluator:
  """Dev-set evaluation after each epoch, the record of every epoch, and the best checkpoint."""

  def __init__(self, model, meta, split_files, output_dir):
    import tensorflow as tf

    from modeling import metrics
    self.model, self.meta, self.metrics = model, meta, metrics
    self.regression = meta["task_type"] == "regression"
    self.label_dtype = tf.float32 if self.regression else tf.int64
    self.dev_splits = [s for s in split_files if s.startswith("dev")]
    self.split_files = split_files
    self.primary = meta.get("primary_metric") or metrics.primary_metric(meta["task_name"], meta["task_type"])
    os.makedirs(output_dir, exist_ok=True)
    self.results_path = os.path.join(output_dir, "eval_results.json")
    self.results = (files.read_json(self.results_path) if os.path.isfile(self.results_path)
                    else {"task_name": meta["task_name"], "primary_metric": self.primary, "epochs": [], "best": None})
    self.best_manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(encoder=model.encoder.garden_network, head=model.head),
        os.path.join(output_dir, "best"), max_to_keep=1)
    self._predict = tf.function(lambda features: model(features, training=False)["logits"])

  def predict(self, split):
    dataset = records.make_dataset([self.split_files[split]], FLAGS.max_seq_length, FLAGS.eval_batch_size,
                                   label_dtype=self.label_dtype)
    logits, labels = [], []
    for features, batch_labels in dataset:
      logits.append(self._predict(features).numpy())
      labels.append(batch_labels.numpy())
    return np.concatenate(logits), np.concatenate(labels)

  def evaluate(self):
    results = {}
    for split in self.dev_splits:
      logits, labels = self.predict(split)
      scores = self.metrics.compute_metrics(self.meta.get("metric") or self.meta["task_type"], logits, labels)
      results.update({(k if split == "dev" else f"{split}_{k}"): v for k, v in scores.items()})
    return results

  def after_epoch(self, stage, epoch, step):
    if any(r["stage"] == stage and r["epoch"] == epoch for r in self.results["epochs"]):
      return  # Already evaluated before a resume.
    scores = self.evaluate()
    record = dict(stage=stage, epoch=epoch, step=step, **scores)
    self.results["epochs"].append(record)
    best = self.results["best"]
    if best is None or scores[self.primary] > best[self.primary]:
      self.results["best"] = record
      self.best_manager.save(checkpoint_number=step)
    logging.info("[%s] epoch %d dev: %s (best %s %.4f)", stage, epoch,
                 " ".join(f"{k} {v:.4f}" for k, v in scores.items()), self.primary,
                 self.results["best"][self.primary])
    files.write_json(self.results_path, self.results)


def _export(model, output_dir, tokenizer, regression):
  """SavedModel with raw-string signatures (tokenizer in the graph), and optionally TFLite on token ids."""
  import tensorflow as tf

  export_dir = FLAGS.export_dir or os.path.join(output_dir, "saved_model")
  seq = FLAGS.max_seq_length

  def outputs(logits):
    return {"score": logits[:, 0]} if regression else {"probabilities": tf.nn.softmax(logits, axis=-1)}

  module = tf.Module()
  module.model = model
  ids_spec = {k: tf.TensorSpec([None, seq], tf.int32, name=k) for k in records.FEATURES}
  module.serve_ids = tf.function(lambda features: outputs(model(features, training=False)["logits"]),
                                 input_signature=[ids_spec])
  signatures = {"serve_ids": module.serve_ids}
  if tokenizer is not None:
    module.preprocessor = tokenizer.keras_preprocessor(seq)
    module.serve_text = tf.function(
        lambda text: outputs(model(module.preprocessor(text), training=False)["logits"]),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    module.serve_pair = tf.function(
        lambda text_a, text_b: outputs(model(module.preprocessor([text_a, text_b]), training=False)["logits"]),
        input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                         tf.TensorSpec([None], tf.string, name="text_b")])
    signatures.update(serving_default=module.serve_text, serve_pair=module.serve_pair)
  else:
    signatures["serving_default"] = module.serve_ids
    logging.warning("no vocab known (--vocab_file); the export takes token ids only")
  with files.atomic_path(export_dir) as tmp:
    tf.saved_model.save(module, tmp, signatures=signatures)
  logging.info("exported SavedModel to %s (signatures: %s)", export_dir, ", ".join(sorted(signatures)))
  if FLAGS.export_tflite:
    concrete = tf.function(lambda w, m, t: outputs(model({"input_word_ids": w, "input_mask": m, "input_type_ids": t},
                                                         training=False)["logits"]),
                           input_signature=[tf.TensorSpec([1, seq], tf.int32)] * 3).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    with files.atomic_path(os.path.join(output_dir, "model.tflite")) as tmp, open(tmp, "wb") as f:
      f.write(converter.convert())
    logging.info("exported TFLite model to %s", os.path.join(output_dir, "model.tflite"))
  return export_dir


# Checkpoints save the input position, and with it the shuffle buffer of cached stage-1 batches (hidden states and
# attention logits): the buffer is capped at this many bytes, or it would hold, and save, the whole cache.
_CACHED_SHUFFLE_BYTES = 256 << 20


def _cached_shuffle_batches(teacher_config, layer_map, what, steps_per_epoch):
  """How many cached batches the shuffle buffer holds: all of them, or what `_CACHED_SHUFFLE_BYTES` fits."""
  per_batch = teacher_cache.estimate_cache_bytes(
      FLAGS.batch_size, FLAGS.max_seq_length, hidden_size=teacher_config.hidden_size,
      num_heads=teacher_config.num_attention_heads, num_mapped_layers=len(layer_map), what=what)
  return max(1, min(steps_per_epoch, _CACHED_SHUFFLE_BYTES // max(per_batch, 1)))


def _train_dataset(stage, teacher, teacher_config, layer_map, train_file, label_dtype, steps_per_epoch):
  """The repeated training batches; with a teacher-output cache, each batch also carries the teacher's outputs."""
  what = {"prediction": ("logits",), "intermediate": ("hidden", "attention")}.get(stage)
  cached = FLAGS.cache_teacher_outputs == "all" or (FLAGS.cache_teacher_outputs == "logits" and stage == "prediction")
  if teacher is None or not what or not cached:
    return records.make_dataset([train_file], FLAGS.max_seq_length, FLAGS.batch_size, label_dtype=label_dtype,
                                shuffle=True, repeat=True, seed=FLAGS.seed, drop_remainder=True)
  # The cache replays its first pass, so the pass it records must be in file order: shuffling comes after it.
  ordered = records.make_dataset([train_file], FLAGS.max_seq_length, FLAGS.batch_size, label_dtype=label_dtype,
                                 drop_remainder=True)
  cached_batches = teacher_cache.cache_teacher_outputs(
      teacher, ordered, layer_map, what, storage=FLAGS.teacher_cache_dir or "memory",
      cache_key=f"{records.sha256_file(train_file)}-{FLAGS.batch_size}")
  if stage == "intermediate":  # Its losses do not use the labels, and its cached outputs are large: whole batches.
    buffer = _cached_shuffle_batches(teacher_config, layer_map, what, steps_per_epoch)
    return cached_batches.shuffle(buffer, seed=FLAGS.seed, reshuffle_each_iteration=True).repeat()
  batches = cached_batches.shuffle(steps_per_epoch, seed=FLAGS.seed, reshuffle_each_iteration=True)
  # The prediction stage learns the classes from these batches, so a training file sorted by label (bbc_news) must
  # not give one-class batches: its examples are reshuffled one by one (logits are small) and batched again.
  examples = batches.unbatch().shuffle(steps_per_epoch * FLAGS.batch_size, seed=FLAGS.seed,
                                       reshuffle_each_iteration=True)
  return examples.batch(FLAGS.batch_size, drop_remainder=True).repeat()


def main():
  student_config, teacher_config, layer_map, weights, meta, split_files = _validate()
  import tensorflow as tf

  from modeling.checkpoints import restore_encoder
  from modeling.config import save_config
  from modeling.losses import IntermediateDistillation, prediction_loss
  from modeling.models import build_task_model
  from modeling.tokenization import build_tokenizer

  training.set_threads(FLAGS.intra_op_threads, FLAGS.inter_op_threads)
  training.configure_determinism(FLAGS.seed)
  strategy = training.make_strategy(FLAGS.distribution_strategy, FLAGS.tpu, FLAGS.cpu_devices)
  training.set_dtype(FLAGS.dtype)
  regression = meta["task_type"] == "regression"
  num_labels = meta["num_labels"]
  train_examples = meta["num_examples"]["train"]
  steps_per_epoch = max(1, train_examples // FLAGS.batch_size)
  out = FLAGS.output_dir

  with strategy.scope():
    student = build_task_model(student_config, num_labels)
    if FLAGS.ckpt_path:
      logging.info("student encoder: %s", restore_encoder(student.encoder, student_config, FLAGS.ckpt_path))
    teacher = None
    if teacher_config is not None:
      teacher = build_task_model(teacher_config, num_labels)
      logging.info("teacher: %s", _restore_task_model(teacher, FLAGS.teacher_ckpt_path, "--teacher_ckpt_path"))
      teacher.trainable = False
      distillation = IntermediateDistillation(
          student_config.hidden_size, teacher_config.hidden_size, layer_map, FLAGS.attention_loss,
          FLAGS.projection, weights, initializer_range=student_config.initializer_range)

  def gold_loss(logits, labels):
    if regression:
      return losses.mse(logits[:, 0], labels)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))

  def make_loss_fn(stage):
    def loss_fn(batch, is_training):
      features, labels = batch[:2]
      outputs = student(features, training=is_training)
      if stage == "finetune":
        loss = gold_loss(outputs["logits"], labels)
        return {"total": loss, "gold": loss}
      # A cached batch carries the teacher's outputs as its third element (see modeling/teacher_cache.py).
      teacher_outputs = batch[2] if len(batch) == 3 else teacher(features, training=False)
      if stage == "intermediate":
        return distillation(outputs, teacher_outputs, features["input_mask"])
      terms = {"prediction": prediction_loss(outputs["logits"], teacher_outputs["logits"], FLAGS.temperature,
                                             regression)}
      terms["total"] = terms["prediction"]
      if FLAGS.gold_label_weight:
        terms["gold"] = gold_loss(outputs["logits"], labels)
        terms["total"] += FLAGS.gold_label_weight * terms["gold"]
      return terms
    return loss_fn

  # Every worker evaluates, but only the chief writes into the output folder; the others write beside it.
  evaluator = Evaluator(student, meta, split_files, out if training.is_chief(strategy) else os.path.join(
      out, ".workers", f"worker_{strategy.cluster_resolver.task_id}"))
  label_dtype = tf.float32 if regression else tf.int64
  stages = _stages(teacher is not None)
  start = time.time()
  summary = {"stages": []}
  for index, (stage, epochs, learning_rate) in enumerate(stages):
    total_steps = epochs * steps_per_epoch
    final = index == len(stages) - 1
    stage_dir = out if final else os.path.join(out, stage)
    with strategy.scope():
      optimizer = training.make_optimizer(learning_rate, total_steps,
                                          math.ceil(FLAGS.warmup_proportion * total_steps), FLAGS.dtype,
                                          FLAGS.weight_decay)
    objects = {"encoder": student.encoder.garden_network, "head": student.head}
    trainable = lambda: student.trainable_variables
    if stage == "intermediate":
      objects["projection"] = distillation
      trainable = lambda: student.encoder.trainable_variables + distillation.trainable_variables
    dataset = _train_dataset(stage, teacher, teacher_config, layer_map, split_files["train"], label_dtype,
                             steps_per_epoch)
    if stage == "intermediate" and FLAGS.cache_teacher_outputs == "all":
      distillation.layer_map = teacher_cache.cached_layer_map(layer_map)
    loop = training.TrainLoop(
        strategy=strategy, loss_fn=make_loss_fn(stage), variables_fn=trainable, optimizer=optimizer,
        dataset=dataset, checkpoint_objects=objects, output_dir=stage_dir, global_batch_size=FLAGS.batch_size,
        steps_per_loop=min(FLAGS.steps_per_loop, steps_per_epoch), save_checkpoint_steps=FLAGS.save_checkpoint_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max, models=[student], name=stage)
    resumed = loop.restore()
    logging.info("[%s] %d epochs of %d steps (batch %d, lr %g)%s", stage, epochs, steps_per_epoch, FLAGS.batch_size,
                 learning_rate, f", resuming at step {resumed}" if resumed else "")
    last = {}
    for epoch in range(1, epochs + 1):
      last = loop.run(epoch * steps_per_epoch, total_steps) or last
      if stage != "intermediate":  # Stage 1 trains no head, so dev scores would mean nothing.
        evaluator.after_epoch(stage, epoch, loop.step)
    summary["stages"].append({"stage": stage, "epochs": epochs, "steps": loop.step, "final_losses": last,
                              "learning_rate": learning_rate})

  best_prefix = evaluator.best_manager.latest_checkpoint
  if best_prefix:
    tf.train.Checkpoint(encoder=student.encoder.garden_network, head=student.head).read(best_prefix) \
        .assert_existing_objects_matched().expect_partial()
  if not training.is_chief(strategy):
    return
  save_config(student_config, os.path.join(out, "config.json"))
  vocab = FLAGS.vocab_file or cli.find_vocab(FLAGS.ckpt_path, FLAGS.teacher_ckpt_path)
  if vocab and records.sha256_file(vocab) != meta.get("vocab_sha256"):
    raise UserError(f"--vocab_file {vocab} is not the vocab the data was prepared with")
  if vocab:
    shutil.copyfile(vocab, os.path.join(out, os.path.basename(vocab)))
  final_scores = evaluator.evaluate()
  if "test" in split_files:
    logits, labels = evaluator.predict("test")
    with files.atomic_path(os.path.join(out, "test_predictions.tsv")) as tmp, open(tmp, "w") as f:
      f.write("index\tprediction\tlabel\n")
      for i, (row, label) in enumerate(zip(logits, labels)):
        prediction = f"{row[0]:.6f}" if regression else meta["label_list"][int(np.argmax(row))]
        gold = f"{label:.6f}" if regression else (meta["label_list"][int(label)] if meta.get("test_has_labels")
                                                   else "")
        f.write(f"{i}\t{prediction}\t{gold}\n")
    if meta.get("test_has_labels"):
      evaluator.results["test"] = evaluator.metrics.compute_metrics(
          meta.get("metric") or meta["task_type"], logits, labels)
  evaluator.results["final_dev"] = final_scores
  evaluator.results["best_checkpoint"] = best_prefix
  files.write_json(evaluator.results_path, evaluator.results)
  tokenizer = build_tokenizer(**({"spm_model_file": vocab} if vocab and vocab.endswith(".model") else
                                 {"vocab_file": vocab}), do_lower_case=meta.get("do_lower_case")) if vocab else None
  export_dir = None if FLAGS.export_dir == "-" else _export(student, out, tokenizer, regression)
  summary.update(task_name=meta["task_name"], seconds=time.time() - start, dev=final_scores,
                 best=evaluator.results["best"], export_dir=export_dir, teacher=FLAGS.teacher_ckpt_path,
                 student_config=FLAGS.config_path, ckpt_path=FLAGS.ckpt_path, batch_size=FLAGS.batch_size,
                 dtype=FLAGS.dtype, distribution_strategy=FLAGS.distribution_strategy)
  training.write_training_summary(out, summary)
  logging.info("done: dev %s; best checkpoint %s", " ".join(f"{k} {v:.4f}" for k, v in final_scores.items()),
               best_prefix)


if __name__ == "__main__":
  cli.run(main)
