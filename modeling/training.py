"""What both training scripts share: strategy, precision, optimizer, and the resumable multi-step train loop.

The loop runs `steps_per_loop` steps inside one `tf.function`, then logs progress (step/total, every loss term,
examples/s, ETA), writes TensorBoard scalars and saves a checkpoint when due. The checkpoint holds everything a
run needs to continue exactly: the models, the optimizer and its step, the input iterator's position and the
dropout generators' state, so re-running the same command continues where the last checkpoint left off. A
non-finite loss stops the run with the step it appeared at; the last good checkpoint is left as it was. Beside the
checkpoints, `history.json` holds the logged terms of every loop up to the latest checkpoint, so the history of a
run survives its resumes.

Under `mirrored` and `multi_worker_mirrored` a step is the same computation as on one device: every replica gets
its slice of the same global batch, gradients are summed over replicas before they are clipped, and the logged
terms are the mean of the replicas' means. Only the chief writes summaries and the real checkpoints.
"""

import os
import time
from collections.abc import Callable, Sequence

import tensorflow as tf
import tf_keras
from absl import logging
from official.modeling import grad_utils, optimization

from modeling import files
from modeling.errors import UserError

HISTORY_FILE = "history.json"
STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
DTYPES = ("float32", "bfloat16", "float16")


def configure_determinism(seed: int | None) -> None:
  """Seeds Python, NumPy and TF, and makes dropout draw from checkpointable generators (for exact resume)."""
  if seed is None:
    return
  tf_keras.utils.set_random_seed(seed)
  tf_keras.backend.experimental.enable_tf_random_generator()


def set_threads(intra_op: int = 0, inter_op: int = 0) -> None:
  """Sets TensorFlow's thread pools (0 keeps the default); must run before the first op."""
  if intra_op:
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
  if inter_op:
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def make_strategy(name: str, tpu: str | None = None, cpu_devices: int = 0) -> tf.distribute.Strategy:
  """The distribution strategy named by `--distribution_strategy`.

  Args:
    name: one of `STRATEGIES`. `multi_worker_mirrored` reads the cluster from the `TF_CONFIG` variable.
    tpu: the TPU address for `tpu`.
    cpu_devices: with no GPU, split the CPU into this many logical devices so that `mirrored` has replicas
      (used to test multi-replica runs on one machine). 0 leaves the devices alone.
  """
  if name not in STRATEGIES:
    raise UserError(f"--distribution_strategy={name!r}; choose one of {', '.join(STRATEGIES)}")
  if cpu_devices > 1 and not tf.config.list_physical_devices("GPU"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)
  if name == "multi_worker_mirrored":
    if "TF_CONFIG" not in os.environ:
      raise UserError("--distribution_strategy=multi_worker_mirrored needs the TF_CONFIG environment variable")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if not tpu:
    raise UserError("--distribution_strategy=tpu needs --tpu (a TPU name or grpc:// address)")
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def set_dtype(dtype: str) -> None:
  """Sets the Keras compute policy: float32, or mixed precision with bfloat16 or float16 (loss-scaled)."""
  if dtype not in DTYPES:
    raise UserError(f"--dtype={dtype!r}; choose one of {', '.join(DTYPES)}")
  policy = "float32" if dtype == "float32" else f"mixed_{dtype}"
  tf_keras.mixed_precision.set_global_policy(policy)


def make_optimizer(learning_rate: float, total_steps: int, warmup_steps: int, dtype: str = "float32",
                   weight_decay: float = 0.01) -> tf_keras.optimizers.Optimizer:
  """AdamW with linear warmup then linear decay to zero, from `official.modeling.optimization`.

  LayerNorm and bias variables are excluded from weight decay, as in BERT. With `dtype="float16"` the optimizer is
  wrapped for dynamic loss scaling.
  """
  warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
  config = optimization.OptimizationConfig({
      "optimizer": {"type": "adamw", "adamw": {
          "weight_decay_rate": weight_decay, "epsilon": 1e-6,
          "exclude_from_weight_decay": ["LayerNorm", "layer_norm", "bias"]}},
      "learning_rate": {"type": "polynomial", "polynomial": {
          "initial_learning_rate": learning_rate, "decay_steps": max(total_steps, 1), "end_learning_rate": 0.0}},
      "warmup": {"type": "linear", "linear": {"warmup_steps": warmup_steps, "warmup_learning_rate": 0.0}},
  })
  factory = optimization.OptimizerFactory(config)
  optimizer = factory.build_optimizer(factory.build_learning_rate())
  if dtype == "float16":
    optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
  return optimizer


def dropout_generators(*models: tf_keras.Model) -> list[tf.random.Generator]:
  """The random generators of every Dropout layer, so a checkpoint can carry their state."""
  generators = []
  for model in models:
    for layer in model.submodules:
      generator = getattr(getattr(layer, "_random_generator", None), "_generator", None)
      if isinstance(layer, tf_keras.layers.Dropout) and generator is not None:
        generators.append(generator)
  return generators


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return True
  return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0
                                                   and "chief" not in resolver.cluster_spec().as_dict())


def _format_seconds(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class NonFiniteLossError(UserError):
  """The loss became NaN or infinite; the message names the step."""


class TrainLoop:
  """A resumable training loop over a per-replica loss function.

  Args:
    strategy: the distribution strategy; models, optimizer and `loss_fn`'s variables were built in its scope.
    loss_fn: `(batch, training) -> dict` of float32 scalar terms, with `total` the one to minimise. Runs per
      replica on the local batch and returns local means.
    variables_fn: `() -> list` of the variables to train.
    optimizer: from `make_optimizer`; `optimizer.iterations` is the global step.
    dataset: a repeated, batched `tf.data.Dataset` of the global batch.
    checkpoint_objects: what to checkpoint besides the optimizer, iterator and dropout state, e.g.
      `{"encoder": ..., "projection": ...}`.
    output_dir: checkpoints go to `output_dir/checkpoints`, summaries to `output_dir/summaries`.
    global_batch_size: examples per step, for examples/s.
    steps_per_loop: steps inside one `tf.function` call between logs.
    save_checkpoint_steps: save about this often (rounded up to whole loops), and always at the end.
    keep_checkpoint_max: how many checkpoints `CheckpointManager` keeps.
    models: the models whose dropout generators are checkpointed.
    name: a label for log lines (e.g. `general`, `stage1`).
    jit_compile: compile each replica's step (forward, backward, optimizer update) with XLA.
  """

  def __init__(self, *, strategy: tf.distribute.Strategy, loss_fn: Callable, variables_fn: Callable,
               optimizer, dataset: tf.data.Dataset, checkpoint_objects: dict[str, object], output_dir: str,
               global_batch_size: int, steps_per_loop: int = 100, save_checkpoint_steps: int = 1000,
               keep_checkpoint_max: int = 3, models: Sequence[tf_keras.Model] = (), name: str = "train",
               jit_compile: bool = False):
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
      # Uneven replica batches would make the mean of the replicas' means differ from the batch mean.
      raise UserError(f"--batch_size={global_batch_size} must be a multiple of the {replicas} replicas")
    self.strategy = strategy
    self.loss_fn = loss_fn
    self.variables_fn = variables_fn
    self.optimizer = optimizer
    self.global_batch_size = global_batch_size
    self.steps_per_loop = max(1, steps_per_loop)
    self.save_checkpoint_steps = max(1, save_checkpoint_steps)
    self.name = name
    self.jit_compile = jit_compile
    self.chief = is_chief(strategy)
    self.output_dir = output_dir
    self.dataset = dataset
    # A plain iterator is checkpointable, so one device resumes at the exact input position at no cost. A
    # distributed iterator is not; it is made on the first `run`, after `restore` has set how many batches to skip,
    # which is exact because the pipeline is deterministic for a given --seed. It must be the dataset's first
    # iterator: a shuffle that reshuffles each iteration gives a second iterator of the same dataset another order.
    self.iterator_in_checkpoint = isinstance(strategy, tf.distribute.OneDeviceStrategy)
    self.iterator = iter(dataset) if self.iterator_in_checkpoint else None
    self._skip_batches = 0
    generators = dropout_generators(*models)
    extra = {"iterator": self.iterator} if self.iterator_in_checkpoint else {}
    if generators:
      extra["dropout_rng"] = generators
    self.checkpoint = tf.train.Checkpoint(optimizer=optimizer, **checkpoint_objects, **extra)
    # Workers other than the chief must still write (collective ops), but to a folder of their own.
    ckpt_dir = os.path.join(output_dir, "checkpoints")
    if not self.chief:
      ckpt_dir = os.path.join(output_dir, ".workers", f"worker_{strategy.cluster_resolver.task_id}")
    self.manager = tf.train.CheckpointManager(self.checkpoint, ckpt_dir, max_to_keep=keep_checkpoint_max)
    self.history_path = os.path.join(ckpt_dir, HISTORY_FILE)
    self.writer = (tf.summary.create_file_writer(os.path.join(output_dir, "summaries", name)) if self.chief
                   else tf.summary.create_noop_writer())
    self._train_fn = None
    # One entry per loop: the mean terms, `step` and `examples_per_second`.
    self.history: list[dict[str, float]] = []

  def _make_iterator(self, skip_batches: int):
    """The distributed iterator over the global batches from number `skip_batches` on."""
    dataset = self.dataset.skip(skip_batches) if skip_batches else self.dataset
    # Every worker reads the whole pipeline and keeps its replicas' slices of each global batch (DATA sharding),
    # so a step sees the same examples whatever the number of workers and replicas. FILE sharding (the AUTO
    # default when there are enough files) would give each worker other files: other batches, and an empty
    # input for a worker when there are fewer files than workers.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    with self.strategy.scope():
      return iter(self.strategy.experimental_distribute_dataset(dataset))

  @property
  def step(self) -> int:
    return int(self.optimizer.iterations.numpy())

  @property
  def final_losses(self) -> dict[str, float]:
    """The mean terms of the last loop of the whole run (also when this process trained nothing), or {}."""
    if not self.history:
      return {}
    return {k: v for k, v in self.history[-1].items() if k not in ("step", "examples_per_second")}

  def _save(self, step: int) -> None:
    self.manager.save(checkpoint_number=step)
    files.write_json(self.history_path, self.history)

  def restore(self) -> int:
    """Restores the latest checkpoint of this loop, if any, and the history up to it; returns the global step."""
    latest = self.manager.latest_checkpoint
    if latest:
      self.checkpoint.restore(latest).assert_existing_objects_matched()
      logging.info("[%s] resumed from %s at step %d", self.name, latest, self.step)
      if os.path.isfile(self.history_path):
        self.history = [h for h in files.read_json(self.history_path) if h["step"] <= self.step]
      if not self.iterator_in_checkpoint:
        if self.iterator is not None:
          raise RuntimeError("TrainLoop.restore must come before the first run")
        self._skip_batches = self.step
    return self.step

  def _replica_step(self, batch):
    with tf.GradientTape() as tape:
      terms = self.loss_fn(batch, True)
      loss = terms["total"] / self.strategy.num_replicas_in_sync
    # Gradients are summed over replicas first and clipped after, so a step is the same update on any number of
    # replicas. (The AdamW of `official.modeling.optimization` clips inside `apply_gradients`, before the implicit
    # all-reduce: each replica's share would be clipped on its own.) With float16 the loss is scaled and the
    # gradients unscaled after the all-reduce. Variables the loss does not reach (the pooler, in general
    # distillation) are left out, not given zeros.
    grad_utils.minimize_using_explicit_allreduce(
        tape, self.optimizer, loss, self.variables_fn(), post_allreduce_callbacks=[self._clip_gradients])
    return terms

  def _clip_gradients(self, gradients_and_variables):
    optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
    clip_norm = getattr(optimizer, "gradient_clip_norm", 0.0)
    gradients, variables = zip(*gradients_and_variables)
    if clip_norm > 0:
      gradients, _ = tf.clip_by_global_norm(gradients, clip_norm)
    return list(zip(gradients, variables))

  def _build_train_fn(self):
    # XLA compiles the step, not the loop around it: reading the input iterator cannot be compiled.
    replica_step = tf.function(self._replica_step, jit_compile=True) if self.jit_compile else self._replica_step

    @tf.function
    def train_fn(iterator, num_steps):
      totals, first_bad = None, tf.constant(-1, tf.int64)
      for _ in tf.range(num_steps):
        per_replica = self.strategy.run(replica_step, args=(next(iterator),))
        terms = {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}
        finite = tf.reduce_all([tf.math.is_finite(v) for v in terms.values()])
        first_bad = tf.where(tf.logical_and(first_bad < 0, tf.logical_not(finite)),
                             self.optimizer.iterations, first_bad)
        totals = terms if totals is None else {k: totals[k] + terms[k] for k in terms}
      return {k: v / tf.cast(num_steps, tf.float32) for k, v in totals.items()}, first_bad
    return train_fn

  def run(self, until_step: int, total_steps: int | None = None,
          after_loop: Callable[[int], None] | None = None) -> dict[str, float]:
    """Trains until the global step reaches `until_step`; returns the mean terms of the last loop.

    Args:
      until_step: the global step to stop at.
      total_steps: the run's last step, for the ETA (defaults to `until_step`).
      after_loop: called with the step after each loop, e.g. to evaluate.
    """
    total_steps = total_steps or until_step
    if self.iterator is None:
      self.iterator = self._make_iterator(self._skip_batches)
    if self._train_fn is None:
      # The optimizer's slots are made before the first call: a tf.function whose first call creates variables is
      # traced twice.
      with self.strategy.scope():
        self.optimizer._create_all_weights(self.variables_fn())
      self._train_fn = self._build_train_fn()
    last_saved = self.step
    start_step, start_time, last = self.step, time.time(), {}
    while self.step < until_step:
      num_steps = min(self.steps_per_loop, until_step - self.step)
      loop_start = time.time()
      terms, first_bad = self._train_fn(self.iterator, tf.constant(num_steps))
      elapsed = time.time() - loop_start
      last = {k: float(v) for k, v in terms.items()}
      if int(first_bad) >= 0:
        kept = self.manager.latest_checkpoint or "none yet"
        raise NonFiniteLossError(f"[{self.name}] loss became non-finite at step {int(first_bad)} "
                                 f"({', '.join(f'{k}={v:.4g}' for k, v in last.items())}); "
                                 f"last good checkpoint kept: {kept}")
      step = self.step
      examples_per_second = num_steps * self.global_batch_size / max(elapsed, 1e-9)
      rate = (step - start_step) / max(time.time() - start_time, 1e-9)
      eta = (total_steps - step) / max(rate, 1e-9)
      logging.info("[%s] step %d/%d | %s | %.1f examples/s | ETA %s", self.name, step, total_steps,
                   " ".join(f"{k} {v:.4f}" for k, v in last.items()), examples_per_second, _format_seconds(eta))
      with self.writer.as_default(step=step):
        for k, v in last.items():
          tf.summary.scalar(f"loss/{k}", v)
        tf.summary.scalar("examples_per_second", examples_per_second)
        learning_rate = self.optimizer.learning_rate
        if callable(learning_rate):
          tf.summary.scalar("learning_rate", learning_rate(self.optimizer.iterations))
      self.history.append(dict(last, step=step, examples_per_second=examples_per_second))
      if step - last_saved >= self.save_checkpoint_steps or step >= until_step:
        self._save(step)
        last_saved = step
      if after_loop is not None:
        after_loop(step)
    self.writer.flush()
    return last


def write_training_summary(output_dir: str, summary: dict[str, object]) -> None:
  """Writes `training_summary.json` into the output folder, atomically."""
  files.write_json(os.path.join(output_dir, "training_summary.json"), summary)
