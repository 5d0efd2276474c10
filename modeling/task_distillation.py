"""The stages of task training (TinyBERT, arXiv 1909.10351): their losses, trained variables and training data.

  finetune      cross-entropy on the gold labels (MSE for regression): plain fine-tuning, how a teacher is made;
  intermediate  embedding + hidden + attention losses against the frozen teacher (no labels), W_h trained too;
  prediction    soft cross-entropy against the teacher's logits at a temperature (MSE for regression), optionally
                plus a weighted gold-label loss.

With a teacher-output cache (`modeling.teacher_cache`) each training batch also carries the teacher's outputs,
so the teacher runs once, in the first epoch. `train_stage` runs one stage of run_finetuning.py, whose stage flags
`define_flags` defines.
"""

import dataclasses
import math
import os
from collections.abc import Callable, Sequence

import tensorflow as tf
from absl import flags, logging

from modeling import cli, losses, multi_teacher, records, relation_losses, teacher_cache, training
from modeling.config import ModelConfig
from modeling.encoders import set_expose_qkv
from modeling.evaluation import Evaluator
from modeling.models import TaskModel
from modeling.relation_losses import IntermediateLoss
from modeling.schedules import LinearSchedule

STAGES = ("finetune", "intermediate", "prediction")
CACHE_CHOICES = ("none", "logits", "all")
# Stage 1 also keeps the logits (a few bytes an example), so that stage 2 can read them from its files.
_CACHED_PARTS = {"prediction": ("logits",), "intermediate": ("logits", "hidden", "attention")}

# Checkpoints save the input position, and with it the shuffle buffer of cached stage-1 batches (hidden states and
# attention logits): the buffer is capped at this many bytes, or it would hold, and save, the whole cache.
CACHED_SHUFFLE_BYTES = 256 << 20


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """run_finetuning.py's flags for the distillation stages, their schedules, the teacher-output cache and the
  augmented rows."""
  flags.DEFINE_enum("distill_stage", "both", ["intermediate", "prediction", "both"],
                    "Which task-distillation stages to run when a teacher is given.", flag_values=flag_values)
  flags.DEFINE_integer("intermediate_epochs", None, "Epochs of stage 1 (default: --epochs).", flag_values=flag_values)
  flags.DEFINE_integer("prediction_epochs", None, "Epochs of stage 2 (default: --epochs).", flag_values=flag_values)
  flags.DEFINE_float("intermediate_learning_rate", None, "Learning rate of stage 1 (default: --learning_rate).",
                     flag_values=flag_values)
  flags.DEFINE_float("temperature", 1.0, "Softmax temperature of the prediction-layer loss.", flag_values=flag_values)
  flags.DEFINE_float("intermediate_prediction_weight", 0.0, "Weight of the prediction-layer loss (the first "
                     "teacher's soft targets) added to stage 1, which then trains the head too and is scored on dev "
                     "after each epoch (0: stage 1 trains the intermediate layers only, as TinyBERT's).",
                     flag_values=flag_values)
  flags.DEFINE_float("gold_label_weight", 0.0, "Weight of the gold-label loss added to stage 2 (0: soft targets "
                     "only).", flag_values=flag_values)
  flags.DEFINE_float("temperature_end", None, "Temperature at the end of stage 2, reached linearly from "
                     "--temperature (default: --temperature throughout).", flag_values=flag_values)
  flags.DEFINE_float("gold_label_weight_end", None, "Gold-label weight at the end of stage 2, reached linearly from "
                     "--gold_label_weight (default: --gold_label_weight throughout).", flag_values=flag_values)
  flags.DEFINE_enum("cache_teacher_outputs", "none", list(CACHE_CHOICES),
                    "Compute the frozen teacher's outputs once and reuse them in later epochs: 'logits' for stage 2, "
                    "'all' adds the mapped hidden states and attention logits for stage 1 (large: see README), whose "
                    "cached batches are shuffled whole. With --teacher_cache_dir, stage 2 of 'all' reads the logits "
                    "from stage 1's files instead of running the teacher again.", flag_values=flag_values)
  flags.DEFINE_string("teacher_cache_dir", None, "Folder for the teacher-output cache (default: in memory).",
                      flag_values=flag_values)
  flags.DEFINE_bool("augmented_data", False, "Also train on the data folder's train_augmented.tfrecord (from "
                    "create_finetuning_data.py --augmented_file): rows without gold labels, learnt from the "
                    "teacher only, in both stages. Needs a teacher; dev and test stay the original ones.",
                    flag_values=flag_values)


@dataclasses.dataclass(frozen=True)
class TaskTraining:
  """What the stages of one run_finetuning.py run share, from its validated flags."""
  output_dir: str
  stages: tuple  # (stage, epochs, learning rate) in the order they run, from `plan_stages`.
  train_files: tuple  # train.tfrecord, and train_augmented.tfrecord with --augmented_data.
  num_train_examples: int
  augmented: bool  # Some training rows carry no gold label.
  regression: bool
  max_seq_length: int
  batch_size: int
  eval_batch_size: int
  warmup_proportion: float
  weight_decay: float
  runtime: cli.Runtime
  teacher: ModelConfig | None  # The first teacher, which also teaches stage 1.
  teachers: tuple  # multi_teacher.TeacherSpec per teacher, with its label permutation.
  teacher_files: tuple  # Per teacher, its own training files (None: the student's).
  intermediate: IntermediateLoss | None  # None: stage 1 does not run.
  cache_teacher_outputs: str
  teacher_cache_dir: str | None
  temperature: LinearSchedule
  gold_label_weight: LinearSchedule
  intermediate_prediction_weight: float = 0.0  # Stage 1's prediction-layer term (0: none).


def gold_loss(logits: tf.Tensor, labels: tf.Tensor, regression: bool, has_unlabeled: bool = False) -> tf.Tensor:
  """Cross-entropy against the gold label ids, or MSE against the gold scores for regression.

  With `has_unlabeled` (augmented rows, whose label is -1), the mean runs over the rows with a label >= 0 only, and
  a batch without any is 0.
  """
  if not has_unlabeled:
    if regression:
      return losses.mse(logits[:, 0], labels)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
  valid = tf.cast(labels >= 0, tf.float32)
  if regression:
    per_row = tf.square(tf.cast(logits[:, 0], tf.float32) - tf.cast(labels, tf.float32))
  else:
    per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0),
                                                             logits=tf.cast(logits, tf.float32))
  return tf.reduce_sum(per_row * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)


def _schedule(value: float | LinearSchedule, steps: int) -> LinearSchedule:
  return (value if isinstance(value, LinearSchedule) else LinearSchedule(float(value))).over(steps)


def make_loss_fn(stage: str, student: TaskModel, teacher: TaskModel | None = None, distillation=None, *,
                 temperature: float | LinearSchedule = 1.0, gold_label_weight: float | LinearSchedule = 0.0,
                 regression: bool = False, step: tf.Variable | None = None, total_steps: int = 1,
                 teacher_weights: Sequence[float] | None = None, has_unlabeled: bool = False,
                 teacher_layers: Sequence[int] | None = None, intermediate_prediction_weight: float = 0.0) -> Callable:
  """The `loss_fn(batch, training) -> terms` of one stage, for `modeling.training.TrainLoop`.

  Args:
    stage: one of `STAGES`.
    student: the task model being trained.
    teacher: the frozen teacher task model (distillation stages). A batch that carries cached teacher outputs as
      its third element uses those instead; with several teachers that is `{"teacher_logits": [batch, teachers,
      labels]}` from `multi_teacher_dataset`.
    distillation: the intermediate-layer loss layer (stage `intermediate`).
    temperature: softmax temperature of the prediction loss: a number or a `LinearSchedule` over the stage.
    gold_label_weight: weight of the gold-label loss added in stage `prediction` (0: soft targets only), a number
      or a `LinearSchedule`.
    regression: the task regresses a score.
    step: the stage's step counter (its optimizer's `iterations`), at which the schedules are read (None: 0).
    total_steps: the stage's step count, over which the schedules run.
    teacher_weights: with several teachers, their weights in the averaged soft targets.
    has_unlabeled: some rows carry no gold label (-1, augmented rows); the gold loss skips them.
    teacher_layers: stage `intermediate` with TinyBERT's loss: where the mapped teacher layers sit in the teacher
      outputs, as `train_dataset` returns it (None: the loss's own layer map, for a teacher run at every step).
    intermediate_prediction_weight: stage `intermediate`: weight of the prediction-layer term `prediction` (the
      teacher's soft targets at the temperature) added to its `total` (0: none).

  A schedule that changes is logged as the terms `temperature` and `gold_label_weight`.
  """
  temperature, gold_label_weight = _schedule(temperature, total_steps), _schedule(gold_label_weight, total_steps)

  def loss_fn(batch, is_training):
    features, labels = batch[:2]
    outputs = student(features, training=is_training)
    if stage == "finetune":
      loss = gold_loss(outputs["logits"], labels, regression, has_unlabeled)
      return {"total": loss, "gold": loss}
    teacher_outputs = batch[2] if len(batch) == 3 else teacher(features, training=False)
    now = step if step is not None else 0
    if stage == "intermediate":
      if teacher_layers is not None:
        terms = distillation(outputs, teacher_outputs, features["input_mask"], teacher_layers=teacher_layers)
      else:
        terms = distillation(outputs, teacher_outputs, features["input_mask"])
      if intermediate_prediction_weight:
        terms = dict(terms, prediction=losses.prediction_loss(outputs["logits"], teacher_outputs["logits"],
                                                              temperature(now), regression))
        terms["total"] = terms["total"] + intermediate_prediction_weight * terms["prediction"]
      return terms
    t, gold_weight = temperature(now), gold_label_weight(now)
    if "teacher_logits" in teacher_outputs:
      targets = losses.average_soft_targets(tf.unstack(teacher_outputs["teacher_logits"], axis=1), teacher_weights,
                                            t, regression)
      terms = {"prediction": losses.soft_target_loss(outputs["logits"], targets, t, regression)}
    else:
      terms = {"prediction": losses.prediction_loss(outputs["logits"], teacher_outputs["logits"], t, regression)}
    terms["total"] = terms["prediction"]
    if gold_label_weight.start or gold_label_weight.end:
      terms["gold"] = gold_loss(outputs["logits"], labels, regression, has_unlabeled)
      terms["total"] += gold_weight * terms["gold"]
    # Logged with the loss terms, in the progress line and TensorBoard (each the mean over its loop).
    if not temperature.is_constant:
      terms["temperature"] = t
    if not gold_label_weight.is_constant:
      terms["gold_label_weight"] = gold_weight
    return terms

  return loss_fn


def stage_variables(stage: str, student: TaskModel, distillation: losses.IntermediateDistillation | None = None,
                    trains_head: bool = False):
  """What one stage checkpoints besides the optimizer, and the function giving the variables it trains.

  Stage `intermediate` trains the encoder variables its loss reaches (`intermediate_variables`) and W_h, or with
  `trains_head` (a prediction-layer term in its loss) the whole model and W_h; the others the whole model.

  Returns:
    `(checkpoint_objects, variables_fn)` for `modeling.training.TrainLoop`.
  """
  objects = student.checkpoint_objects()
  if stage == "intermediate":
    objects["projection"] = distillation
    if trains_head:
      return objects, lambda: student.trainable_variables + distillation.trainable_variables
    trained = intermediate_variables(student.encoder, distillation)
    return objects, lambda: trained
  return objects, lambda: student.trainable_variables


def intermediate_variables(encoder, distillation) -> list:
  """The variables stage 1 trains: the encoder's that its loss reaches, and the loss layer's own (W_h).

  Stage 1's losses read the hidden states and attention logits (TinyBERT) or the last layer's queries, keys and
  values (MiniLM), never the pooled output, so the pooler gets no gradient; nor, under MiniLM, does the rest of the
  last layer. Such variables are left out rather than handed to the optimizer without a gradient, which it would
  warn about at every trace. Which variables the loss reaches is a property of the graph, not of the values, so
  it is found once, from the gradients of one forward pass on a dummy input.

  Args:
    encoder: the student's encoder (for MiniLM, with `attention_qkv` exposed, as stage 1 runs it).
    distillation: the stage-1 loss layer, `losses.IntermediateDistillation` or `relation_losses.MiniLMDistillation`.
  """
  ids = tf.fill([1, 4], 2)
  with tf.GradientTape() as tape:
    outputs = encoder({"input_word_ids": ids, "input_mask": tf.ones_like(ids), "input_type_ids": tf.zeros_like(ids)},
                      training=False)
    if isinstance(distillation, relation_losses.MiniLMDistillation):
      if "attention_qkv" not in outputs:
        raise ValueError("MiniLM's stage 1 reads attention_qkv; call encoders.set_expose_qkv on the student first")
      read = outputs["attention_qkv"][-1]
    else:
      read = (outputs["hidden_states"], outputs["attention_logits"])
    probe = tf.add_n([tf.reduce_sum(tf.cast(t, tf.float32)) for t in tf.nest.flatten(read)])
  # A distributed (mirrored) variable takes gradients in a replica context only; its local copies take them here.
  local = [v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v for v in encoder.trainable_variables]
  gradients = tape.gradient(probe, local)
  reached = [v for v, g in zip(encoder.trainable_variables, gradients) if g is not None]
  return reached + list(distillation.trainable_variables)


def plan_stages(has_teacher: bool, distill_stage: str, epochs: int, learning_rate: float,
                intermediate_epochs: int | None = None, prediction_epochs: int | None = None,
                intermediate_learning_rate: float | None = None) -> tuple:
  """The `(stage, epochs, learning rate)` of each stage to run, in order: `finetune` without a teacher, else the
  distillation stages that `distill_stage` (`intermediate`, `prediction` or `both`) names."""
  if not has_teacher:
    return (("finetune", epochs, learning_rate),)
  stages = []
  if distill_stage in ("intermediate", "both"):
    stages.append(("intermediate", intermediate_epochs or epochs, intermediate_learning_rate or learning_rate))
  if distill_stage in ("prediction", "both"):
    stages.append(("prediction", prediction_epochs or epochs, learning_rate))
  return tuple(stages)


def uses_cache(stage: str, cache: str) -> bool:
  """Whether `--cache_teacher_outputs=cache` caches the teacher's outputs for `stage`."""
  return stage in _CACHED_PARTS and (cache == "all" or (cache == "logits" and stage == "prediction"))


def train_dataset(train_file: str | Sequence[str], stage: str, *, max_seq_length: int, batch_size: int,
                  label_dtype: tf.DType, num_examples: int, seed: int | None = None, teacher: TaskModel | None = None,
                  teacher_config: ModelConfig | None = None, layer_map: Sequence[int] | None = None,
                  cache: str = "none", cache_dir: str | None = None) -> tuple[tf.data.Dataset, list | None]:
  """The repeated, shuffled training batches of one stage, and the layer map its intermediate loss must use.

  Every example is used: batches run across epoch boundaries, and a file of fewer examples than one batch still
  gives full batches (of repeated examples).

  Args:
    train_file: the task's training TFRecords (a list: several files read as one, e.g. with augmented rows).
    stage: one of `STAGES`.
    max_seq_length, batch_size: as the records and the run.
    label_dtype: `tf.int64` for classes, `tf.float32` for regression scores.
    num_examples: examples in `train_file` (from meta.json), to size the shuffle buffers.
    seed: the shuffle seed.
    teacher: the frozen teacher, whose outputs are cached when `uses_cache(stage, cache)`.
    teacher_config: the teacher's config, to size the buffer of cached stage-1 batches.
    layer_map: g(m) for m = 1..M.
    cache: `--cache_teacher_outputs`: `none`, `logits` (stage 2) or `all` (both stages).
    cache_dir: folder for the cache files (None: in memory).

  Returns:
    `(dataset, loss_layer_map)`. The batches are `(features, labels)`, or `(features, labels, teacher_outputs)`
    from the cache, whose hidden states and attention logits hold only the mapped layers: `loss_layer_map` is
    then `teacher_cache.cached_layer_map(layer_map)`, else `layer_map` itself.
  """
  layer_map = list(layer_map) if layer_map is not None else None
  train_files = [train_file] if isinstance(train_file, str) else list(train_file)
  if teacher is None or not uses_cache(stage, cache):
    dataset = records.make_dataset(train_files, max_seq_length, batch_size, label_dtype=label_dtype, shuffle=True,
                                   repeat=True, seed=seed, drop_remainder=True)
    return dataset, layer_map
  what = _CACHED_PARTS[stage]
  # The cache replays its first pass, so the pass it records must be in file order: shuffling comes after it. The
  # last batch keeps the remainder of the file, so that every example has its teacher outputs.
  ordered = records.make_dataset(train_files, max_seq_length, batch_size, label_dtype=label_dtype)
  cache_key = "-".join([records.sha256_file(path) for path in train_files] + [str(batch_size)])
  stage_one = (teacher_cache.cache_prefix(teacher, cache_dir, _CACHED_PARTS["intermediate"], layer_map,
                                          cache_key=cache_key)
               if stage == "prediction" and cache == "all" and cache_dir and layer_map else None)
  if stage_one and teacher_cache.is_complete(stage_one):
    # Stage 1 of this run (or of an earlier one on the same teacher and data) left the teacher's logits on disk:
    # one read of its files replaces the teacher's pass, and the logits alone stay in memory.
    logging.info("[prediction] teacher logits read from stage 1's cache %s", stage_one)
    cached = teacher_cache.cache_teacher_outputs(
        teacher, ordered, layer_map, _CACHED_PARTS["intermediate"], storage=cache_dir, cache_key=cache_key,
        keep=what, prefix=stage_one).cache()
  else:
    cached = teacher_cache.cache_teacher_outputs(teacher, ordered, layer_map, what, storage=cache_dir or "memory",
                                                 cache_key=cache_key)
  num_batches = -(-num_examples // batch_size)
  if stage == "intermediate":
    # Its losses do not use the labels, and its cached outputs are large: whole cached batches are shuffled, then
    # cut into full batches again across the epoch boundary, as the uncached records are.
    per_batch = teacher_cache.estimate_cache_bytes(
        batch_size, max_seq_length, hidden_size=teacher_config.hidden_size,
        num_heads=teacher_config.num_attention_heads, num_mapped_layers=len(layer_map), what=what)
    buffer = max(1, min(num_batches, CACHED_SHUFFLE_BYTES // max(per_batch, 1)))
    examples = cached.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).unbatch()
    return examples.repeat().batch(batch_size, drop_remainder=True), teacher_cache.cached_layer_map(layer_map)
  # The prediction stage learns the classes from these batches, so a training file sorted by label (bbc_news) must
  # not give one-class batches: its examples are reshuffled one by one (logits are small) and batched again.
  examples = cached.shuffle(num_batches, seed=seed, reshuffle_each_iteration=True).unbatch()
  examples = examples.shuffle(num_batches * batch_size, seed=seed, reshuffle_each_iteration=True)
  return examples.repeat().batch(batch_size, drop_remainder=True), layer_map


def multi_teacher_dataset(train_files: Sequence[str], teachers: Sequence[TaskModel],
                          teacher_files: Sequence[Sequence[str] | None], permutations: Sequence, *,
                          max_seq_length: int, batch_size: int, eval_batch_size: int, label_dtype: tf.DType,
                          num_examples: int, seed: int | None = None,
                          cache_dir: str | None = None) -> tf.data.Dataset:
  """Stage-2 batches carrying every teacher's logits, each teacher run once over its own tokenization, in file order.

  Args:
    train_files: the student's training TFRecords.
    teachers: the frozen teacher task models.
    teacher_files: per teacher, its own tokenization of the same examples in the same order (None: `train_files`).
    permutations: per teacher, the columns putting its logits in the task's label order (None: in order).
    max_seq_length, batch_size: as the records and the run; `eval_batch_size` for the teachers' passes.
    label_dtype: `tf.int64` for classes, `tf.float32` for regression scores.
    num_examples: examples in `train_files`, checked against each teacher's table.
    seed: the shuffle seed.
    cache_dir: a folder keeping each teacher's logits table between runs (`--teacher_cache_dir` with
      `--cache_teacher_outputs`); None: computed in memory for this run.

  Returns:
    Repeated, shuffled batches `(features, labels, {"teacher_logits": [batch, teachers, labels]})`.
  """
  def ordered(paths):
    return records.make_dataset(list(paths), max_seq_length, eval_batch_size, label_dtype=label_dtype)

  tables = []
  for model, own_files, permutation in zip(teachers, teacher_files, permutations):
    data_files = list(own_files or train_files)
    tables.append(multi_teacher.teacher_logits_table(
        model, ordered(data_files), permutation, num_examples=num_examples,
        cache_file=multi_teacher.cached_table_path(cache_dir, model, data_files) if cache_dir else None))
  examples = multi_teacher.add_teacher_logits(ordered(train_files).unbatch(), tables, num_examples)
  return (examples.shuffle(num_examples, seed=seed, reshuffle_each_iteration=True).repeat()
          .batch(batch_size, drop_remainder=True))


def train_stage(t: TaskTraining, strategy: tf.distribute.Strategy, stage: str, epochs: int, learning_rate: float,
                student: TaskModel, teachers: Sequence[TaskModel], distillation, evaluator: Evaluator) -> dict:
  """Runs one stage to its last epoch, or resumes it, evaluating on dev after each epoch of a stage that trains the
  head; returns the stage's entry of training_summary.json.

  Args:
    t: what the run's stages share.
    strategy: the distribution strategy the models were built under.
    stage, epochs, learning_rate: one entry of `t.stages`.
    student: the task model being trained.
    teachers: the frozen teacher task models, in the order of `t.teachers`.
    distillation: the intermediate-layer loss layer, built once for the run (None without stage 1).
    evaluator: the run's dev evaluation and best checkpoint.
  """
  label_dtype = tf.float32 if t.regression else tf.int64
  steps_per_epoch = max(1, t.num_train_examples // t.batch_size)
  total_steps = epochs * steps_per_epoch
  teacher = teachers[0] if teachers else None
  layer_map = t.intermediate.layer_map if t.intermediate else None
  if stage == "prediction" and (len(teachers) > 1 or t.teachers[0].data_dir):
    dataset = multi_teacher_dataset(
        t.train_files, teachers, t.teacher_files, [spec.permutation for spec in t.teachers],
        max_seq_length=t.max_seq_length, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size,
        label_dtype=label_dtype, num_examples=t.num_train_examples, seed=t.runtime.seed,
        cache_dir=t.teacher_cache_dir if uses_cache(stage, t.cache_teacher_outputs) else None)
    logging.info("[prediction] logits of %d teachers over %d examples ready", len(teachers), t.num_train_examples)
  else:
    dataset, teacher_layers = train_dataset(
        list(t.train_files), stage, max_seq_length=t.max_seq_length, batch_size=t.batch_size,
        label_dtype=label_dtype, num_examples=t.num_train_examples, seed=t.runtime.seed, teacher=teacher,
        teacher_config=t.teacher, layer_map=layer_map, cache=t.cache_teacher_outputs, cache_dir=t.teacher_cache_dir)
  if not (stage == "intermediate" and t.intermediate.kind == "tinybert"):
    teacher_layers = None  # Only TinyBERT's loss reads mapped layers, from the cache or from the teacher.
  with strategy.scope():
    optimizer = training.make_optimizer(learning_rate, total_steps, math.ceil(t.warmup_proportion * total_steps),
                                        t.runtime.dtype, t.weight_decay)
  if t.intermediate and t.intermediate.needs_qkv:
    set_expose_qkv(student, stage == "intermediate")  # Before the stage's step is traced.
  trains_head = stage != "intermediate" or t.intermediate_prediction_weight > 0
  objects, variables_fn = stage_variables(stage, student, distillation, trains_head=trains_head)
  final = stage == t.stages[-1][0]
  loop = training.TrainLoop(
      strategy=strategy, variables_fn=variables_fn, optimizer=optimizer, dataset=dataset, checkpoint_objects=objects,
      loss_fn=make_loss_fn(
          stage, student, teacher, distillation if stage == "intermediate" else None, temperature=t.temperature,
          gold_label_weight=t.gold_label_weight, regression=t.regression, step=optimizer.iterations,
          total_steps=total_steps, teacher_weights=[spec.weight for spec in t.teachers], has_unlabeled=t.augmented,
          teacher_layers=teacher_layers, intermediate_prediction_weight=t.intermediate_prediction_weight),
      output_dir=t.output_dir if final else os.path.join(t.output_dir, stage), global_batch_size=t.batch_size,
      steps_per_loop=min(t.runtime.steps_per_loop, steps_per_epoch),
      save_checkpoint_steps=t.runtime.save_checkpoint_steps, keep_checkpoint_max=t.runtime.keep_checkpoint_max,
      models=[student], name=stage)
  resumed = loop.restore()
  logging.info("[%s] %d epochs of %d steps (batch %d, lr %g)%s", stage, epochs, steps_per_epoch, t.batch_size,
               learning_rate, f", resuming at step {resumed}" if resumed else "")
  for epoch in range(1, epochs + 1):
    loop.run(epoch * steps_per_epoch, total_steps)
    if trains_head:  # Stage 1 alone trains no head, so its dev scores would mean nothing.
      evaluator.after_epoch(stage, epoch, loop.step)
  entry = {"stage": stage, "epochs": epochs, "steps": loop.step, "final_losses": loop.final_losses,
           "learning_rate": learning_rate, "history": loop.history, "steps_per_epoch": steps_per_epoch}
  if stage == "intermediate" and t.intermediate_prediction_weight:
    entry["prediction_weight"] = t.intermediate_prediction_weight
  if stage == "intermediate":  # What stage 2's head will read: warned when it is one vector for every token.
    entry["last_layer_common_share"] = evaluator.feature_check(stage)
  if stage == "prediction":
    entry.update(temperature=[t.temperature.start, t.temperature.end if t.temperature.end is not None
                              else t.temperature.start],
                 gold_label_weight=[t.gold_label_weight.start, t.gold_label_weight.end
                                    if t.gold_label_weight.end is not None else t.gold_label_weight.start])
  return entry
