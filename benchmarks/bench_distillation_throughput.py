r"""General-distillation training throughput: MiniLM-L6 (frozen teacher) → TinyBERT4, side by side in one run.

Each configuration runs the project's own training step, `modeling.training.TrainLoop` over the loss that
run_pretraining.py builds (teacher forward, student forward/backward, `IntermediateDistillation`, AdamW from
`make_optimizer`), on a constant synthetic batch (random weights and ids: speed does not depend on them). Thread
settings must be fixed before TensorFlow starts, so every configuration runs in a fresh subprocess; the first one
listed is the baseline that the others are compared with. Each subprocess first measures the float32 matmul peak
with its own thread settings (a tf.function of chained 2048×2048 float32 matmuls, best of several calls), so the
fraction of peak is taken against what the machine delivers at that moment.

FLOP count (multiply-add = 2 FLOPs), per token and per transformer layer of width h, FFN width i, sequence s:
  matmuls    2·(4·h² + 2·h·i)   Q, K, V and output projections (4·h²) and the two FFN matmuls (2·h·i)
  attention  2·2·s·h            scores Q·Kᵀ and context P·V over all heads
  per step   tokens · [1 · L_T·f(h_T, i_T) + 3 · L_S·f(h_S, i_S)]
The teacher only runs forward (×1); the student runs forward and backward (×3: the backward pass costs two forward
passes). Not counted: embeddings, the pooler, the W_h projection (312→384), softmax, GELU, LayerNorm, dropout,
the losses and the optimizer update. At batch 32, seq 128 this is 211.5 GFLOP per step
(teacher 91.8 GFLOP, student 3 × 39.9 GFLOP).

Configurations (`CONFIGS`) set the dtype, the teacher's dtype, XLA on the step or on the teacher's forward only, a
fused-QKV prototype, thread pools and environment variables (e.g. `TF_ENABLE_ONEDNN_OPTS`); `build_loop` builds the
step for one of them, and bench_step_variants.py / bench_vs_pytorch.py reuse it.

Usage:
  python3 benchmarks/bench_distillation_throughput.py [--steps 2] [--loops 2] [--batch_size 32] \
      [--configs fp32,fp32_xla,bf16,fp32_intra2_inter1] [--profile]
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")
TEACHER_CONFIG = os.path.join(ROOT, "configs", "minilm_l6_h384.json")
STUDENT_CONFIG = os.path.join(ROOT, "configs", "tinybert_4l_312.json")

# name -> options; any option left out takes its value from DEFAULT_OPTIONS. dtype is the Keras policy of the
# student (and of the teacher unless teacher_dtype says otherwise); jit_compile is XLA on the whole step (TrainLoop's
# own flag); teacher_jit is XLA on the teacher's forward only; fused_qkv computes Q, K and V with one matmul (see
# `fuse_qkv`); intra/inter are the thread pools (0 leaves TF's default); env is set before TensorFlow starts.
DEFAULT_OPTIONS = {"dtype": "float32", "teacher_dtype": None, "jit_compile": False, "teacher_jit": False,
                   "fused_qkv": False, "intra": 0, "inter": 0, "env": {}}
_T21 = {"intra": 2, "inter": 1}
CONFIGS = {
    "fp32": {},
    "fp32_xla": {"jit_compile": True},
    "bf16": {"dtype": "bfloat16"},
    "bf16_xla": {"dtype": "bfloat16", "jit_compile": True},
    "fp32_intra1": {"intra": 1, "inter": 1},
    "fp32_intra2_inter1": dict(_T21),
    "fp32_xla_intra2_inter1": dict(_T21, jit_compile=True),
    "bf16_intra2_inter1": dict(_T21, dtype="bfloat16"),
    "bf16_xla_intra2_inter1": dict(_T21, dtype="bfloat16", jit_compile=True),
    # Item-2 prototypes (issue 14): what each would give if wired into the library.
    "fp32_teacher_bf16_intra2_inter1": dict(_T21, teacher_dtype="bfloat16"),
    "fp32_teacher_xla_intra2_inter1": dict(_T21, teacher_jit=True),
    "fp32_fused_qkv_intra2_inter1": dict(_T21, fused_qkv=True),
    "bf16_fused_qkv_intra2_inter1": dict(_T21, dtype="bfloat16", fused_qkv=True),
    "bf16_teacher_xla_intra2_inter1": dict(_T21, dtype="bfloat16", teacher_jit=True),
    "fp32_no_onednn_intra2_inter1": dict(_T21, env={"TF_ENABLE_ONEDNN_OPTS": "0"}),
    "bf16_no_onednn_intra2_inter1": dict(_T21, dtype="bfloat16", env={"TF_ENABLE_ONEDNN_OPTS": "0"}),
}


def config_options(name: str) -> dict:
  return dict(DEFAULT_OPTIONS, **CONFIGS[name])


LAYER_MAP = "2,3,5,6"  # 6 teacher layers onto 4 (no uniform map exists), as the demo and the experiments use.
DEFAULT_CONFIGS = "fp32,fp32_xla,bf16,fp32_intra2_inter1"


def minilm_pair():
  """(teacher folder, teacher config, student config, layer map) of the MiniLM-L6 → TinyBERT4 pair measured here."""
  from modeling import assets, load_config
  from modeling.losses import parse_layer_map
  teacher_dir = assets.minilm_dir()
  teacher_config = load_config(os.path.join(teacher_dir, "config.json"))
  student_config = load_config(STUDENT_CONFIG)
  layer_map = parse_layer_map(LAYER_MAP, teacher_config.num_hidden_layers, student_config.num_hidden_layers)
  return teacher_dir, teacher_config, student_config, layer_map


def machine_info() -> dict:
  """CPU model, core count, TF version, date and the 1/5/15-minute load averages, for every results file."""
  import tensorflow as tf

  from modeling import runtime_env
  return {"cpu_model": runtime_env.cpu_model(), "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
          "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
          "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def save_results(name: str, result: dict) -> str:
  """Adds the end-of-run load average, prints the JSON and writes benchmarks/results/<name>.json atomically."""
  from modeling import files
  result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
  os.makedirs(RESULTS_DIR, exist_ok=True)
  path = os.path.join(RESULTS_DIR, f"{name}.json")
  files.write_json(path, result)
  print(json.dumps(result, indent=2, sort_keys=True))
  return path


def layer_flops(hidden: int, intermediate: int, seq: int) -> int:
  """Forward FLOPs of one transformer layer per token: 2·(4·h² + 2·h·i) + 2·2·s·h."""
  return 2 * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * 2 * seq * hidden


def step_flops(teacher, student, batch: int, seq: int) -> dict:
  """FLOPs of one distillation step as counted in the module docstring."""
  tokens = batch * seq
  teacher_flops = tokens * teacher.num_hidden_layers * layer_flops(teacher.hidden_size, teacher.intermediate_size, seq)
  student_forward = tokens * student.num_hidden_layers * layer_flops(student.hidden_size, student.intermediate_size,
                                                                     seq)
  return {"teacher_forward": teacher_flops, "student_forward": student_forward,
          "total": teacher_flops + 3 * student_forward}


def matmul_peak(size: int = 2048, chain: int = 8, repeats: int = 5) -> float:
  """Best float32 matmul rate in FLOP/s: `chain` dependent [size, size] matmuls in one tf.function."""
  import tensorflow as tf
  a = tf.random.normal([size, size])
  b = tf.random.normal([size, size]) / size

  @tf.function
  def chained(x, y):
    for _ in range(chain):
      x = tf.matmul(x, y)
    return x

  chained(a, b).numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    chained(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return chain * 2 * size ** 3 / best


def fuse_qkv(encoder) -> int:
  """Prototype: every self-attention layer of `encoder` computes Q, K and V with one einsum; returns how many.

  The three [h, heads, head_size] kernels (and biases) are concatenated on the heads axis at each call, so the
  variables and checkpoints stay those of Keras' `MultiHeadAttention`; the concat costs one small copy per layer.
  """
  from modeling.encoders import AttentionWithLogits

  class FusedQKVAttention(AttentionWithLogits):
    def call(self, query, value, key=None, attention_mask=None, return_attention_scores=False, training=None,
             use_causal_mask=False):
      if query is not value or (key is not None and key is not value) or not self._built_from_signature:
        return super().call(query, value, key=key, attention_mask=attention_mask, training=training,
                            return_attention_scores=return_attention_scores, use_causal_mask=use_causal_mask)
      import tensorflow as tf
      attention_mask = self._compute_attention_mask(query, value, attention_mask=attention_mask,
                                                    use_causal_mask=use_causal_mask)
      dense = (self._query_dense, self._key_dense, self._value_dense)
      kernel = tf.cast(tf.concat([d.kernel for d in dense], axis=1), query.dtype)
      bias = tf.cast(tf.concat([d.bias for d in dense], axis=0), query.dtype)
      q, k, v = tf.split(tf.einsum("abc,cde->abde", query, kernel) + bias, 3, axis=2)
      output, scores = self._compute_attention(q, k, v, attention_mask, training)
      output = self._output_dense(output)
      return (output, scores) if return_attention_scores else output

  count = 0
  for layer in encoder.submodules:
    if type(layer) is AttentionWithLogits:
      layer.__class__ = FusedQKVAttention
      count += 1
  return count


def build_loop(options: dict, batch: int, seq: int, total_steps: int, output_dir: str, name: str):
  """The project's distillation `TrainLoop` for one set of options (threads and env must already be in place).

  Returns:
    (loop, info): the loop over a constant synthetic batch, and a dict of what was built (teacher dtype, how many
    attention layers were fused, the step's FLOPs).
  """
  import tensorflow as tf

  from modeling import load_config, training
  from modeling.encoders import build_encoder
  from modeling.losses import IntermediateDistillation, parse_layer_map
  dtype = options["dtype"]
  teacher_dtype = options["teacher_dtype"] or dtype
  training.configure_determinism(0)
  teacher_config, student_config = load_config(TEACHER_CONFIG), load_config(STUDENT_CONFIG)
  strategy = training.make_strategy("one_device")
  layer_map = parse_layer_map(LAYER_MAP, teacher_config.num_hidden_layers, student_config.num_hidden_layers)
  with strategy.scope():
    training.set_dtype(teacher_dtype)
    teacher = build_encoder(teacher_config)
    teacher.trainable = False
    training.set_dtype(dtype)
    student = build_encoder(student_config)
    distillation = IntermediateDistillation(student_config.hidden_size, teacher_config.hidden_size, layer_map,
                                            initializer_range=student_config.initializer_range)
    optimizer = training.make_optimizer(5e-5, total_steps, 0, dtype)
  fused = fuse_qkv(teacher) + fuse_qkv(student) if options["fused_qkv"] else 0

  def teacher_forward(features):
    return teacher(features, training=False)
  if options["teacher_jit"]:
    teacher_forward = tf.function(teacher_forward, jit_compile=True)

  def loss_fn(features, is_training):  # The loss of run_pretraining.py.
    teacher_outputs = teacher_forward(features)
    student_outputs = student(features, training=is_training)
    return distillation(student_outputs, teacher_outputs, features["input_mask"])

  rng = tf.random.Generator.from_seed(0)
  features = {"input_word_ids": rng.uniform([batch, seq], 0, teacher_config.vocab_size, tf.int32),
              "input_mask": tf.ones([batch, seq], tf.int32), "input_type_ids": tf.zeros([batch, seq], tf.int32)}
  dataset = tf.data.Dataset.from_tensors(features).repeat()
  loop = training.TrainLoop(
      strategy=strategy, loss_fn=loss_fn,
      variables_fn=lambda: student.trainable_variables + distillation.trainable_variables,
      optimizer=optimizer, dataset=dataset, checkpoint_objects={"encoder": student, "projection": distillation},
      output_dir=output_dir, global_batch_size=batch, steps_per_loop=total_steps, save_checkpoint_steps=10 ** 9,
      models=[student], name=name, jit_compile=options["jit_compile"])
  info = {"dtype": dtype, "teacher_dtype": teacher_dtype, "jit_compile": options["jit_compile"],
          "teacher_jit": options["teacher_jit"], "fused_qkv_layers": fused, "env": options["env"],
          "flops": step_flops(teacher_config, student_config, batch, seq)}
  return loop, info


def measure(name: str, batch: int, seq: int, steps: int, loops: int, profile: bool = False) -> dict:
  """Runs one configuration in this process; returns its measurements (with `profile`, also its op profile)."""
  options = config_options(name)
  import tensorflow as tf

  from modeling import training
  training.set_threads(options["intra"], options["inter"])
  peak = matmul_peak()
  total_steps = steps * (loops + 1)
  with tempfile.TemporaryDirectory() as output_dir:
    loop, info = build_loop(options, batch, seq, total_steps, output_dir, name)
    loop.steps_per_loop = steps
    start = time.perf_counter()
    loop.run(steps)  # Traces (and with XLA compiles) the step; not timed.
    warmup_seconds = time.perf_counter() - start
    loop.run(total_steps)
    rates = [h["examples_per_second"] for h in loop.history[1:]]
    final_loss = loop.history[-1]["total"]
    op_profile = None
    if profile:  # One more loop under the TF profiler, after the timed ones, so the timing is not disturbed.
      tf.profiler.experimental.start(os.path.join(output_dir, "profile"))
      loop.run(total_steps + steps)
      tf.profiler.experimental.stop()
      op_profile = summarize_op_profile(os.path.join(output_dir, "profile"))
  flops = info.pop("flops")
  examples_per_second = max(rates)
  achieved = examples_per_second / batch * flops["total"]
  return {"config": name, **info,
          "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
          "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
          "examples_per_second": round(examples_per_second, 3),
          "examples_per_second_per_loop": [round(r, 3) for r in rates],
          "seconds_per_step": round(batch / examples_per_second, 3),
          "achieved_gflops": round(achieved / 1e9, 2), "matmul_peak_gflops": round(peak / 1e9, 2),
          "fraction_of_peak": round(achieved / peak, 3), "warmup_seconds": round(warmup_seconds, 1),
          "final_loss": round(final_loss, 4), "load_average_after": [round(x, 2) for x in os.getloadavg()],
          **({"op_profile": op_profile} if op_profile else {})}


def run_worker(name: str, args, profile: bool = False) -> dict:
  command = [sys.executable, os.path.abspath(__file__), "--worker", name, "--batch_size", str(args.batch_size),
             "--seq_length", str(args.seq_length), "--steps", str(args.steps), "--loops", str(args.loops)]
  if profile:
    command.append("--profile")
  env = dict(os.environ, **config_options(name)["env"])
  completed = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
  lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
  if completed.returncode or not lines:
    print(f"# {name} failed:\n{completed.stderr[-3000:]}", file=sys.stderr)
    return {"config": name, "error": completed.stderr.strip().splitlines()[-1][:500] if completed.stderr else "no output"}
  return json.loads(lines[-1][len("RESULT "):])


def summarize_op_profile(log_dir: str, top: int = 12) -> dict:
  """Self time by TensorFlow op type from a TF-profiler trace (its `framework_op_stats` tool), as shares."""
  import glob

  from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as profiler_plugin
  traces = sorted(glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True))
  if not traces:
    return {"error": f"no profiler trace under {log_dir}"}
  data, ok = profiler_plugin.xspace_to_tools_data([traces[-1]], "framework_op_stats", {})
  if not ok:
    return {"error": data.decode(errors="replace")[:300]}
  table = json.loads(data)[0]
  column = {c["id"]: i for i, c in enumerate(table["cols"])}
  by_type, total = {}, 0.0
  for row in table["rows"]:
    cells = row["c"]
    seconds = float(cells[column["total_self_time"]]["v"]) / 1e6
    op_type = cells[column["type"]]["v"]
    by_type[op_type] = by_type.get(op_type, 0.0) + seconds
    total += seconds
  ranked = sorted(by_type.items(), key=lambda kv: -kv[1])
  return {"op_self_seconds": round(total, 3),
          "share_by_op_type": {k: round(v / max(total, 1e-9), 3) for k, v in ranked[:top]}}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--steps", type=int, default=2, help="Steps per timed tf.function call (one loop).")
  parser.add_argument("--loops", type=int, default=2, help="Timed loops per configuration; the best counts.")
  parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                      help=f"Comma-separated, baseline first; known: {', '.join(CONFIGS)}.")
  parser.add_argument("--profile", action="store_true",
                      help="Also profile the baseline and the fastest configuration with the TF profiler: self "
                           "time by op type, in the JSON under op_profile.")
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print("RESULT " + json.dumps(measure(args.worker, args.batch_size, args.seq_length, args.steps, args.loops,
                                         args.profile)))
    return
  names = [n for n in args.configs.split(",") if n]
  unknown = [n for n in names if n not in CONFIGS]
  if unknown or not names:
    sys.exit(f"error: --configs: unknown {unknown}; known: {', '.join(CONFIGS)}")
  if min(args.batch_size, args.seq_length, args.steps, args.loops) <= 0:
    sys.exit("error: --batch_size, --seq_length, --steps and --loops must be positive")

  from modeling import load_config
  result = machine_info()
  result.update(batch_size=args.batch_size, seq_length=args.seq_length, steps_per_loop=args.steps,
                loops=args.loops, teacher=os.path.relpath(TEACHER_CONFIG, ROOT),
                student=os.path.relpath(STUDENT_CONFIG, ROOT),
                flops_per_step=step_flops(load_config(TEACHER_CONFIG), load_config(STUDENT_CONFIG),
                                          args.batch_size, args.seq_length),
                command="python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]))
  runs = []
  for name in names:
    runs.append(run_worker(name, args))
    if "error" in runs[-1]:
      continue
    print(f"# {name}: {runs[-1]['examples_per_second']:.2f} examples/s, "
          f"{runs[-1]['fraction_of_peak']:.0%} of the {runs[-1]['matmul_peak_gflops']:.0f} GFLOP/s matmul peak",
          file=sys.stderr, flush=True)
  if "error" in runs[0]:
    sys.exit(f"error: the baseline {names[0]} failed: {runs[0]['error']}")
  baseline = runs[0]["examples_per_second"]
  for run in runs:
    if "error" not in run:
      run["speedup_vs_baseline"] = round(run["examples_per_second"] / baseline, 3)
  result["baseline"] = names[0]
  result["runs"] = runs
  if args.profile:
    best = max(runs, key=lambda r: r.get("examples_per_second", 0))["config"]
    result["profiles"] = {}
    for name in dict.fromkeys([names[0], best]):
      result["profiles"][name] = run_worker(name, args, profile=True).get("op_profile")
      print(f"# profile of {name}: {json.dumps(result['profiles'][name])}", file=sys.stderr, flush=True)
  save_results("distillation_throughput", result)
  best = max(runs, key=lambda r: r.get("examples_per_second", 0))
  print(f"distillation throughput (batch {args.batch_size}, seq {args.seq_length}): baseline {names[0]} "
        f"{baseline:.2f} ex/s ({runs[0]['fraction_of_peak']:.0%} of matmul peak); best {best['config']} "
        f"{best['examples_per_second']:.2f} ex/s = {best['speedup_vs_baseline']:.2f}x, "
        f"{best['achieved_gflops']:.1f} GFLOP/s = {best['fraction_of_peak']:.0%} of the "
        f"{best['matmul_peak_gflops']:.0f} GFLOP/s fp32 matmul peak; load {result['load_average_start'][0]}")


if __name__ == "__main__":
  main()
