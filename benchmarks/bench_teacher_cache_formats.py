r"""Bytes and seconds per example of each way to give stage 1 (intermediate distillation) the teacher's outputs.

The teacher is the real MiniLM-L6-H384 encoder (its Hugging Face weights, a random head), the student TinyBERT4
(random), the layer map 2,3,5,6, the data the first `--num_examples` Rotten Tomatoes train reviews at
`--seq_length` 128. Measured, per example:

  recompute      the teacher's forward pass at every step (no cache; what `--cache_teacher_outputs none` does)
  full_float32   the stage-1 outputs as the cache stored them before (all key positions, float32), read from disk
  packed_<dtype> `modeling.teacher_cache` now: attention logits at real keys only, in float32 / float16 / bfloat16

For every cache: the bytes of its files on disk, the seconds to fill it (teacher + write, the first pass) and to read
it (a later pass, streamed from disk, unpacked), and the relative difference of each intermediate loss term from the
live teacher's (a random student; mean over batches). For scale, the student's training step (forward, backward,
update) is timed too.

Usage:
  python3 benchmarks/bench_teacher_cache_formats.py [--num_examples 256] [--batch_size 32] [--seq_length 128] \
      [--workdir /tmp/teacher_cache_bench]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from bench_distillation_throughput import machine_info, minilm_pair, save_results

STUDENT_CONFIG = "configs/tinybert_4l_312.json"


def folder_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path) for f in names)


def _data(num_examples: int, seq_length: int, batch_size: int, vocab_path: str):
  import tensorflow as tf

  from modeling import tokenization
  from prepare_dataset import dataset_processors
  examples = dataset_processors.get_processor("rotten_tomatoes").get_examples(None, "train")[:num_examples]
  tokenizer = tokenization.build_tokenizer(vocab_path)
  packed = [tokenizer.pack(ids, None, seq_length) for ids in tokenizer.tokenize_to_ids([e.text_a for e in examples])]
  features = {name: np.array([p[i] for p in packed], np.int32)
              for i, name in enumerate(("input_word_ids", "input_mask", "input_type_ids"))}
  labels = np.zeros(len(examples), np.int64)
  mean_length = float(features["input_mask"].sum(1).mean())
  return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size, drop_remainder=True), mean_length


def _timed_pass(dataset, consume) -> float:
  start = time.perf_counter()
  for batch in dataset:
    consume(batch)
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_examples", type=int, default=256)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--workdir", default=None, help="Folder for the cache files (default: a temporary one).")
  args = parser.parse_args()
  result = machine_info()
  import tensorflow as tf

  from modeling import restore_encoder, teacher_cache, training
  from modeling.losses import IntermediateDistillation
  from modeling.models import build_task_model

  teacher_dir, teacher_config, student_config, layer_map = minilm_pair()
  tf.random.set_seed(0)
  teacher = build_task_model(teacher_config, 2)
  restore_encoder(teacher.encoder, teacher_config, teacher_dir)
  teacher.trainable = False
  student = build_task_model(student_config, 2)
  live_loss = IntermediateDistillation(student_config.hidden_size, teacher_config.hidden_size, layer_map)
  cached_loss = IntermediateDistillation(student_config.hidden_size, teacher_config.hidden_size,
                                         teacher_cache.cached_layer_map(layer_map))
  cached_loss.set_weights(live_loss.get_weights())
  dataset, mean_length = _data(args.num_examples, args.seq_length, args.batch_size,
                               os.path.join(teacher_dir, "vocab.txt"))
  num_examples = (args.num_examples // args.batch_size) * args.batch_size
  what = ("hidden", "attention")

  teacher_fn = tf.function(lambda features: teacher(features, training=False))
  student_fn = tf.function(lambda features: student(features, training=False))
  live_terms, student_outputs = [], []
  for features, _ in dataset:
    outputs = student_fn(features)
    student_outputs.append(outputs)
    terms = live_loss(outputs, teacher_fn(features), features["input_mask"])
    live_terms.append({k: float(v) for k, v in terms.items()})
  teacher_seconds = min(_timed_pass(dataset, lambda batch: teacher_fn(batch[0])["logits"].numpy()) for _ in range(2))

  optimizer = training.make_optimizer(1e-4, 1000, 0)
  variables = student.encoder.trainable_variables + live_loss.trainable_variables

  @tf.function
  def train_step(features, teacher_outputs):
    with tf.GradientTape() as tape:
      loss = live_loss(student(features, training=True), teacher_outputs, features["input_mask"])["total"]
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  teacher_batches = [(features, teacher_fn(features)) for features, _ in dataset]
  train_step(*teacher_batches[0])
  start = time.perf_counter()
  for features, outputs in teacher_batches:
    train_step(features, outputs).numpy()
  step_seconds = time.perf_counter() - start

  runs = [{"option": "recompute", "bytes_per_example": 0,
           "seconds_per_example": round(teacher_seconds / num_examples, 5)}]
  workdir = args.workdir or tempfile.mkdtemp(prefix="teacher_cache_bench_")
  try:
    options = [("full_float32", tf.float32), ("packed_float32", tf.float32), ("packed_float16", tf.float16),
               ("packed_bfloat16", tf.bfloat16)]
    for name, dtype in options:
      folder = os.path.join(workdir, name)
      os.makedirs(folder, exist_ok=True)
      if name.startswith("full"):  # The format before packing: the selected outputs cached as they are.
        data = dataset.map(lambda f, y, dtype=dtype: (f, y, teacher_cache.select_teacher_outputs(
            teacher(f, training=False), layer_map, what, dtype))).cache(os.path.join(folder, "cache"))
      else:
        data = teacher_cache.cache_teacher_outputs(teacher, dataset, layer_map, what, folder, dtype=dtype)
      fill = _timed_pass(data, lambda batch: batch[2]["hidden_states"][0].numpy())
      read = min(_timed_pass(data, lambda batch: batch[2]["attention_logits"][0].numpy()) for _ in range(2))
      errors = {term: [] for term in ("embedding", "hidden", "attention")}
      for (features, _, outputs), s_outputs, live in zip(data, student_outputs, live_terms):
        terms = cached_loss(s_outputs, outputs, features["input_mask"])
        for term, values in errors.items():
          values.append(abs(float(terms[term]) - live[term]) / max(abs(live[term]), 1e-12))
      runs.append({"option": name, "bytes_per_example": round(folder_bytes(folder) / num_examples),
                   "fill_seconds_per_example": round(fill / num_examples, 5),
                   "seconds_per_example": round(read / num_examples, 5),
                   "loss_relative_error": {term: float(f"{np.mean(v):.2e}") for term, v in errors.items()}})
      print(runs[-1], flush=True)
      shutil.rmtree(folder)
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)
  estimate = teacher_cache.estimate_cache_bytes(
      1, args.seq_length, hidden_size=teacher_config.hidden_size, num_heads=teacher_config.num_attention_heads,
      num_mapped_layers=len(layer_map), what=what, mean_length=mean_length)
  result.update({
      "command": "python3 benchmarks/bench_teacher_cache_formats.py " + " ".join(sys.argv[1:]),
      "teacher": "MiniLM-L6-H384 (real encoder weights)", "student": STUDENT_CONFIG, "layer_map": layer_map,
      "num_examples": num_examples, "batch_size": args.batch_size, "seq_length": args.seq_length,
      "mean_tokens_per_example": round(mean_length, 1), "packed_float16_estimate_bytes_per_example": estimate,
      "student_train_step_seconds_per_example": round(step_seconds / num_examples, 5), "runs": runs})
  save_results("teacher_cache_formats", result)


if __name__ == "__main__":
  main()
