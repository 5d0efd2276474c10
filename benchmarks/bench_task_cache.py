r"""Task-distillation epoch time with and without the teacher-output cache (`modeling.teacher_cache`), one run.

The teacher (MiniLM-L6 by default) and the student (TinyBERT4) are `TaskModel`s with random weights; the task data
is synthetic token ids with labels (speed does not depend on either). Both stages of run_finetuning.py's task
distillation are timed with the project's `TrainLoop`, one `tf.function` call per epoch:
  prediction    soft cross-entropy on logits; the cache holds the teacher's logits;
  intermediate  embedding + hidden + attention losses; the cache holds hidden states and attention logits of the
                mapped layers (the size is reported; `--cache_dtype bfloat16` halves it).
"live" runs the teacher at every step, "cache" fills the cache in epoch 1 and reads it from epoch 2 on. Epoch 1
includes tracing the step for both. Teacher compute per example at seq 128: MiniLM-L6 forward 22.4 MFLOP/token,
TinyBERT4 forward+backward 29.2 MFLOP/token, so with this pair the cache can save at most ~43% of a step (1.77×);
with `--teacher_config configs/bert_base.json` (174 MFLOP/token) the ceiling is ~7×.

Usage:
  python3 benchmarks/bench_task_cache.py [--num_examples 96] [--epochs 3] [--batch_size 32] [--seq_length 128] \
      [--teacher_config configs/minilm_l6_h384.json] [--storage memory|DIR] [--cache_dtype float32]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from bench_distillation_throughput import LAYER_MAP, ROOT, machine_info, save_results

STUDENT_CONFIG = "configs/tinybert_4l_312.json"
NUM_LABELS = 2


def folder_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path) for f in names)


def run_mode(stage: str, cached: bool, args, teacher, teacher_config, student_config, dataset, layer_map) -> dict:
  """Trains a fresh student for `args.epochs` epochs of one stage; returns per-epoch seconds."""
  import tensorflow as tf

  from modeling import teacher_cache, training
  from modeling.losses import IntermediateDistillation, prediction_loss
  from modeling.models import build_task_model
  tf.random.set_seed(1)
  strategy = training.make_strategy("one_device")
  steps_per_epoch = args.num_examples // args.batch_size
  what = ("logits",) if stage == "prediction" else ("hidden", "attention")
  with strategy.scope():
    student = build_task_model(student_config, NUM_LABELS)
    loss_layer_map = teacher_cache.cached_layer_map(layer_map) if cached else layer_map
    distillation = IntermediateDistillation(student_config.hidden_size, teacher_config.hidden_size, loss_layer_map)
    optimizer = training.make_optimizer(5e-5, steps_per_epoch * args.epochs, 0)

  def loss_fn(batch, is_training):  # run_finetuning.py's distillation losses.
    features, teacher_outputs = batch[0], (batch[2] if cached else teacher(batch[0], training=False))
    outputs = student(features, training=is_training)
    if stage == "intermediate":
      return distillation(outputs, teacher_outputs, features["input_mask"])
    loss = prediction_loss(outputs["logits"], teacher_outputs["logits"])
    return {"total": loss, "prediction": loss}

  with tempfile.TemporaryDirectory() as workdir:
    storage = "memory" if args.storage == "memory" else os.path.join(args.storage, f"{stage}-{time.time_ns()}")
    data = dataset
    if cached:
      data = teacher_cache.cache_teacher_outputs(teacher, dataset, layer_map, what, storage,
                                                 dtype=tf.as_dtype(args.cache_dtype))
    data = data.repeat().prefetch(2)
    variables = (lambda: student.encoder.trainable_variables + distillation.trainable_variables) \
        if stage == "intermediate" else (lambda: student.trainable_variables)
    loop = training.TrainLoop(strategy=strategy, loss_fn=loss_fn, variables_fn=variables, optimizer=optimizer,
                              dataset=data, checkpoint_objects={"student": student}, output_dir=workdir,
                              global_batch_size=args.batch_size, steps_per_loop=steps_per_epoch,
                              save_checkpoint_steps=10 ** 9, models=[student], name=f"{stage}_{cached}")
    loop.run(steps_per_epoch * args.epochs)  # One history entry per epoch, timed without the checkpoint save.
    seconds = [round(steps_per_epoch * args.batch_size / h["examples_per_second"], 2) for h in loop.history]
    cache_bytes = None
    if cached:
      cache_bytes = teacher_cache.estimate_cache_bytes(
          steps_per_epoch * args.batch_size, args.seq_length, num_labels=NUM_LABELS,
          hidden_size=teacher_config.hidden_size, num_heads=teacher_config.num_attention_heads,
          num_mapped_layers=len(layer_map), what=what, dtype=tf.as_dtype(args.cache_dtype))
    result = {"stage": stage, "cache": cached, "epoch_seconds": seconds, "cache_bytes": cache_bytes,
              "load_average_1min": round(os.getloadavg()[0], 2)}
    if cached and args.storage != "memory":
      result["cache_folder_bytes"] = folder_bytes(storage)
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_examples", type=int, default=96)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--teacher_config", default="configs/minilm_l6_h384.json")
  parser.add_argument("--storage", default="memory", help="'memory' or a folder for the cache files.")
  parser.add_argument("--cache_dtype", default="float32", choices=["float32", "bfloat16", "float16"])
  parser.add_argument("--stages", default="prediction,intermediate")
  args = parser.parse_args()
  if min(args.num_examples // max(args.batch_size, 1), args.seq_length, args.epochs - 1) <= 0:
    sys.exit("error: need --num_examples >= --batch_size > 0, --seq_length > 0 and --epochs >= 2")
  stages = args.stages.split(",")
  if any(s not in ("prediction", "intermediate") for s in stages):
    sys.exit(f"error: --stages={args.stages!r}; choose from prediction, intermediate")
  if args.storage != "memory":
    os.makedirs(args.storage, exist_ok=True)

  result = machine_info()
  import tensorflow as tf

  from modeling import load_config
  from modeling.losses import parse_layer_map
  from modeling.models import build_task_model
  teacher_config = load_config(os.path.join(ROOT, args.teacher_config))
  student_config = load_config(os.path.join(ROOT, STUDENT_CONFIG))
  layer_map = parse_layer_map(LAYER_MAP if teacher_config.num_hidden_layers == 6 else None,
                              teacher_config.num_hidden_layers, student_config.num_hidden_layers)
  tf.random.set_seed(0)
  teacher = build_task_model(teacher_config, NUM_LABELS)
  teacher.trainable = False
  rng = np.random.default_rng(0)
  lengths = rng.integers(args.seq_length // 4, args.seq_length + 1, args.num_examples)
  mask = (np.arange(args.seq_length)[None, :] < lengths[:, None]).astype(np.int32)
  features = {"input_word_ids": rng.integers(1, 30522, mask.shape).astype(np.int32) * mask, "input_mask": mask,
              "input_type_ids": np.zeros_like(mask)}
  labels = rng.integers(0, NUM_LABELS, args.num_examples).astype(np.int32)
  dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(args.batch_size, drop_remainder=True)
  result.update(command="python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
                teacher=args.teacher_config, student=STUDENT_CONFIG, layer_map=layer_map,
                num_examples=args.num_examples, batch_size=args.batch_size, seq_length=args.seq_length,
                epochs=args.epochs, storage=args.storage, cache_dtype=args.cache_dtype)
  runs = []
  for stage in stages:
    pair = [run_mode(stage, cached, args, teacher, teacher_config, student_config, dataset, layer_map)
            for cached in (False, True)]
    live, cached = pair
    cached["speedup_per_epoch"] = [round(a / b, 2) for a, b in zip(live["epoch_seconds"], cached["epoch_seconds"])]
    cached["min_speedup_after_first_epoch"] = min(cached["speedup_per_epoch"][1:])
    for run in pair:
      print(f"# {stage} {'cache' if run['cache'] else 'live '}: epochs {run['epoch_seconds']} s", file=sys.stderr,
            flush=True)
    runs.extend(pair)
  result["runs"] = runs
  save_results("task_cache", result)
  print("teacher-output cache, epoch 2+ speedup: " + ", ".join(
      f"{r['stage']} {r['min_speedup_after_first_epoch']:.2f}x (cache {r['cache_bytes'] / 2**20:.1f} MiB)"
      for r in runs if r["cache"]) + f"; teacher {args.teacher_config}, load {result['load_average_start'][0]}")


if __name__ == "__main__":
  main()
