r"""Where a served TinyBERT4 call spends its time: oneDNN's own timing of every matmul of one SavedModel call.

Saves `modeling.serving.serving_module` of TinyBERT4 (random weights, 2 labels), then, in a fresh process with
`ONEDNN_VERBOSE=1`, warms the `serve_ids` signature up and records one call at [batch, seq]. Every oneDNN primitive
that call executed is grouped by shape, with its time and GFLOP/s; the sum is set against the call's wall time, which
also holds the element-wise ops, TensorFlow's executor and the Python call.

  python3 benchmarks/bench_serving_breakdown.py [--batch 1 --seq_length 128] [--policy bfloat16]
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_distillation_throughput import ROOT, machine_info, save_results

CONFIG = "configs/tinybert_4l_312.json"
_CALL = r"""
import sys, time, numpy as np, tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serve_ids"]
batch, seq = int(sys.argv[2]), int(sys.argv[3])
x = {"input_word_ids": tf.constant(np.random.default_rng(0).integers(1, 30000, (batch, seq)).astype(np.int32)),
     "input_mask": tf.ones([batch, seq], tf.int32), "input_type_ids": tf.zeros([batch, seq], tf.int32)}
for _ in range(20):
  serve(**x)
print("=== CALL ===", flush=True)
start = time.perf_counter()
serve(**x)
print(f"=== END {(time.perf_counter() - start) * 1e3:.3f} ===", flush=True)
"""


def matmul_flops(shape: str) -> float:
  """FLOPs of a oneDNN matmul shape string `AxBxM x K : ... x K x N` (`128x312:312x312`, `1x12x128x26:1x12x26x128`)."""
  source, weights = shape.split(":")
  a = [int(d) for d in source.split("x")]
  b = [int(d) for d in weights.split("x")]
  batch = 1
  for d in a[:-2]:
    batch *= d
  return 2.0 * batch * a[-2] * a[-1] * b[-1]


def parse(log: str) -> tuple[dict, float]:
  """({(kind, shape): [calls, ms]}, wall ms) of the recorded call in an ONEDNN_VERBOSE log."""
  body = log.split("=== CALL ===", 1)[1]
  wall = float(re.search(r"=== END ([0-9.]+) ===", body).group(1))
  groups = collections.defaultdict(lambda: [0, 0.0])
  for line in body.splitlines():
    fields = line.split(",")
    if len(fields) > 4 and fields[0] == "onednn_verbose" and "exec" in fields:
      kind = fields[fields.index("exec") + 2]
      groups[kind, fields[-2]][0] += 1
      groups[kind, fields[-2]][1] += float(fields[-1])
  return dict(groups), wall


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--policy", default="float32", choices=("float32", "bfloat16"),
                      help="Keras dtype policy the model is built under (bfloat16: weights cast to bfloat16)")
  args = parser.parse_args()

  import tensorflow as tf
  import tf_keras

  from modeling import load_config, serving
  from modeling.models import build_task_model
  tf_keras.mixed_precision.set_global_policy(args.policy)
  tf.random.set_seed(0)
  model = build_task_model(load_config(os.path.join(ROOT, CONFIG)), 2)
  tf_keras.mixed_precision.set_global_policy("float32")
  with tempfile.TemporaryDirectory() as workdir:
    path = os.path.join(workdir, "saved_model")
    module, signatures = serving.serving_module(model, args.seq_length)
    tf.saved_model.save(module, path, signatures=signatures)
    env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _CALL, path, str(args.batch), str(args.seq_length)], env=env,
                          capture_output=True, text=True, check=False)
  if done.returncode or "=== CALL ===" not in done.stdout:
    sys.exit(f"error: the timed call failed:\n{done.stderr[-2000:]}")
  groups, wall = parse(done.stdout)
  rows = []
  for (kind, shape), (calls, ms) in sorted(groups.items(), key=lambda item: -item[1][1]):
    gflops = matmul_flops(shape) * calls / (ms * 1e-3) / 1e9 if kind == "matmul" else None
    rows.append({"primitive": kind, "shape": shape, "calls": calls, "ms": round(ms, 3),
                 "gflop_per_s": None if gflops is None else round(gflops, 1)})
    rate = "" if gflops is None else f"  {gflops:6.1f} GFLOP/s"
    print(f"{kind:10s} {shape:28s} x{calls:<3d} {ms:7.3f} ms{rate}")
  onednn = sum(r["ms"] for r in rows)
  print(f"oneDNN primitives {onednn:.2f} ms of a {wall:.2f} ms call ({onednn / wall:.0%}); the rest is element-wise "
        f"ops, the executor and the Python call")
  result = machine_info()
  result.update(batch=args.batch, seq_length=args.seq_length, policy=args.policy, wall_ms=wall,
                onednn_ms=round(onednn, 3), primitives=rows,
                command="python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]))
  save_results(f"serving_breakdown_{args.policy}", result)


if __name__ == "__main__":
  main()
