r"""Where stage 2 of `--cache_teacher_outputs all` gets the teacher's logits: stage 1's files, or a teacher pass.

With a cache folder, stage 1 stores the teacher's logits beside the mapped hidden states and attention logits, and
stage 2 (`modeling.task_distillation.train_dataset`) reads them from those files instead of running the teacher over
the training set again. This times stage 2's first epoch (the pass that builds its logits table) both ways, in one
process, on the real training datasets of run_finetuning.py: synthetic records (random ids, lengths from a quarter
of the sequence to all of it), a teacher with random weights (speed does not depend on either), TinyBERT4's layer
map. Each way runs `--rounds` times in alternation; the medians are compared.

Usage:
  python3 benchmarks/bench_stage_two_logits.py [--teacher_config configs/mpnet_base.json] [--num_examples 256] \
      [--seq_length 128] [--batch_size 32] [--rounds 3]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from bench_distillation_throughput import ROOT, machine_info, save_results

STUDENT_LAYERS = 4


def write_records(path: str, num_examples: int, seq_length: int, vocab_size: int) -> None:
  from modeling import records
  rng = np.random.default_rng(0)
  with records.RecordWriter(path) as writer:
    for _ in range(num_examples):
      length = int(rng.integers(seq_length // 4, seq_length + 1))
      ids = [int(i) for i in rng.integers(5, vocab_size, length)] + [0] * (seq_length - length)
      writer.write(records.serialize_example(ids, [1] * length + [0] * (seq_length - length), [0] * seq_length,
                                             int(rng.integers(0, 2))))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--teacher_config", default="configs/mpnet_base.json")
  parser.add_argument("--num_examples", type=int, default=256)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  if min(args.num_examples // max(args.batch_size, 1), args.seq_length, args.rounds) <= 0:
    sys.exit("error: need --num_examples >= --batch_size > 0, --seq_length > 0 and --rounds > 0")

  result = machine_info()
  import tensorflow as tf

  from modeling import load_config, task_distillation
  from modeling.losses import parse_layer_map
  from modeling.models import build_task_model
  config = load_config(os.path.join(ROOT, args.teacher_config))
  layer_map = parse_layer_map(None, config.num_hidden_layers, STUDENT_LAYERS) if \
      config.num_hidden_layers % STUDENT_LAYERS == 0 else parse_layer_map("2,3,5,6", config.num_hidden_layers, 4)
  tf.random.set_seed(0)
  teacher = build_task_model(config, 2)
  teacher.trainable = False
  work = tempfile.mkdtemp(prefix="bench_stage_two_")
  train_file = os.path.join(work, "train.tfrecord")
  write_records(train_file, args.num_examples, args.seq_length, config.vocab_size)
  num_batches = -(-args.num_examples // args.batch_size)

  def epoch(stage, cache, cache_dir):
    dataset, _ = task_distillation.train_dataset(
        train_file, stage, max_seq_length=args.seq_length, batch_size=args.batch_size, label_dtype=tf.int64,
        num_examples=args.num_examples, seed=1, teacher=teacher, teacher_config=config, layer_map=layer_map,
        cache=cache, cache_dir=cache_dir)
    start = time.perf_counter()
    for _ in dataset.take(num_batches):
      pass
    return time.perf_counter() - start

  try:
    stage_one_dir = os.path.join(work, "stage_one")
    stage_one_seconds = epoch("intermediate", "all", stage_one_dir)  # Fills stage 1's files: teacher pass + writing.
    if not any(name.endswith(".index") for name in os.listdir(stage_one_dir)):
      sys.exit("error: stage 1's pass did not complete its cache files")
    cache_bytes = sum(os.path.getsize(os.path.join(stage_one_dir, f)) for f in os.listdir(stage_one_dir))
    from_files, from_teacher = [], []
    for _ in range(args.rounds):
      from_files.append(epoch("prediction", "all", stage_one_dir))
      fresh = os.path.join(work, "logits_only")
      from_teacher.append(epoch("prediction", "logits", fresh))
      shutil.rmtree(fresh)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  files_s, teacher_s = statistics.median(from_files), statistics.median(from_teacher)
  result.update(command="python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
                teacher=args.teacher_config, layer_map=layer_map, num_examples=args.num_examples,
                seq_length=args.seq_length, batch_size=args.batch_size, rounds=args.rounds,
                stage_one_epoch_seconds=round(stage_one_seconds, 2), stage_one_cache_bytes=cache_bytes,
                stage_two_first_epoch_seconds={"from_stage_one_files": [round(s, 2) for s in from_files],
                                               "teacher_pass": [round(s, 2) for s in from_teacher]},
                speedup=round(teacher_s / files_s, 2))
  name = os.path.splitext(os.path.basename(args.teacher_config))[0]
  save_results(f"stage_two_logits_{name}_seq{args.seq_length}", result)
  print(f"stage 2's first epoch ({args.num_examples} examples, seq {args.seq_length}, {args.teacher_config}): "
        f"{files_s:.2f} s from stage 1's files ({cache_bytes / args.num_examples / 2**20:.2f} MiB an example) against "
        f"{teacher_s:.2f} s for a teacher pass: {teacher_s / files_s:.1f}x; load {result['load_average_start'][0]}")


if __name__ == "__main__":
  main()
