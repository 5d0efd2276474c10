r"""Inference latency of TinyBERT4, the MiniLM-L6 teacher and BERT-base, side by side in one run.

Each model is a `modeling.models.TaskModel` (encoder + 2-label head, random weights: latency does not depend on
them) served four ways, all on token ids of a fixed [batch, seq] shape:
  keras            the Keras model called inside a `tf.function`;
  saved_model      `tf.saved_model.save` of `modeling.serving.serving_module` (the export's `serve_ids` signature),
                   reloaded with `tf.saved_model.load` and called through the signature;
  saved_model_xla  the same with `jit_compile=True` (needs `--xla_cpu_compilation_enabled` under TF Serving);
  saved_model_bf16 the same model built under Keras's `bfloat16` policy (weights cast to bfloat16, LayerNorm and
                   softmax as Keras runs them under that policy), saved and served the same way; only where the
                   CPU has bf16 instructions (AVX512_BF16 or AMX), else the mode is skipped with a message;
  tflite           `tf.lite.TFLiteConverter.from_concrete_functions` on a fixed-shape concrete function (builtins plus
                   select TF ops, as run_finetuning.py's export), run by ai_edge_litert's `Interpreter`
                   (`tf.lite.Interpreter` when ai_edge_litert is missing) with 2 threads.
For each batch size and model, every mode is built and warmed up, then the modes are called in turn, one call
each per round, until `--repeats` rounds or `--max_seconds` (at least `--min_repeats`): the modes of one model
share the machine's load, so `vs_tflite` (a mode's median over TFLite's) holds on a busy machine too. The median,
25th and 90th percentiles are reported. The ratio against BERT-base compares measurements taken minutes apart.
TensorFlow's thread pools can be set with `--intra_op_threads` / `--inter_op_threads` (TF Serving's
`--tensorflow_intra_op_parallelism` / `--tensorflow_inter_op_parallelism`).

Usage:
  python3 benchmarks/bench_inference_latency.py [--batch_sizes 1,32] \
      [--modes keras,saved_model,saved_model_xla,saved_model_bf16,tflite] \
      [--repeats 30] [--max_seconds 8] [--intra_op_threads 2 --inter_op_threads 1]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from bench_distillation_throughput import ROOT, machine_info, save_results

MODELS = {"tinybert4": "configs/tinybert_4l_312.json", "minilm_l6": "configs/minilm_l6_h384.json",
          "bert_base": "configs/bert_base.json"}
BASELINE = "bert_base"
MODES = ("keras", "saved_model", "saved_model_xla", "saved_model_bf16", "tflite")
FEATURES = ("input_word_ids", "input_mask", "input_type_ids")


def make_inputs(batch: int, seq: int, vocab_size: int) -> dict:
  rng = np.random.default_rng(batch)
  return {"input_word_ids": rng.integers(1, vocab_size, (batch, seq)).astype(np.int32),
          "input_mask": np.ones((batch, seq), np.int32), "input_type_ids": np.zeros((batch, seq), np.int32)}


def keras_runner(model, batch, seq, workdir):
  import tensorflow as tf
  predict = tf.function(lambda features: model(features, training=False)["logits"])
  return lambda inputs: predict({k: tf.constant(v) for k, v in inputs.items()}).numpy()


def saved_model_runner(model, batch, seq, workdir, jit_compile=False):
  import tensorflow as tf

  from modeling import serving
  path = os.path.join(workdir, f"saved_model_{model.name}{'_xla' if jit_compile else ''}")
  if not os.path.isdir(path):
    module, signatures = serving.serving_module(model, seq, jit_compile=jit_compile)
    tf.saved_model.save(module, path, signatures=signatures)
  serve = tf.saved_model.load(path).signatures["serve_ids"]
  return lambda inputs: serve(**{k: tf.constant(v) for k, v in inputs.items()})["probabilities"].numpy()


def saved_model_xla_runner(model, batch, seq, workdir):
  return saved_model_runner(model, batch, seq, workdir, jit_compile=True)


def has_bf16_instructions() -> bool:
  """Whether /proc/cpuinfo lists AVX512_BF16 or AMX-BF16 (no emulated bf16 figures are reported)."""
  try:
    with open("/proc/cpuinfo") as f:
      flags = f.read()
  except OSError:
    return False
  return " avx512_bf16" in flags or " amx_bf16" in flags


def saved_model_bf16_runner(model, batch, seq, workdir):
  import tf_keras

  from modeling.models import build_task_model
  tf_keras.mixed_precision.set_global_policy("bfloat16")
  try:
    twin = build_task_model(model.bench_config, model.num_labels)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  twin.set_weights(model.get_weights())
  twin._name = model.name + "_bf16"
  return saved_model_runner(twin, batch, seq, workdir)


def make_interpreter(content: bytes, num_threads: int):
  """ai_edge_litert's Interpreter (tf.lite.Interpreter is deprecated), or TF's when it is not installed."""
  try:
    from ai_edge_litert.interpreter import Interpreter
  except ImportError:
    import tensorflow as tf
    Interpreter = tf.lite.Interpreter
  return Interpreter(model_content=content, num_threads=num_threads)


def tflite_runner(model, batch, seq, workdir):
  import tensorflow as tf
  specs = [tf.TensorSpec([batch, seq], tf.int32, name=k) for k in FEATURES]

  from modeling import serving
  concrete = tf.function(
      lambda w, m, t: serving.task_outputs(model(dict(zip(FEATURES, (w, m, t))), training=False)["logits"], False),
      input_signature=specs).get_concrete_function()
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
  content = converter.convert()
  interpreter = make_interpreter(content, num_threads=2)
  interpreter.allocate_tensors()
  inputs_by_name = {}
  for detail in interpreter.get_input_details():
    name = next((f for f in FEATURES if f in detail["name"]), None)
    if name is None:  # Positional names (w, m, t) when the converter drops the spec names.
      name = FEATURES["wmt".index(detail["name"].split("_")[-1].split(":")[0][-1])]
    inputs_by_name[name] = detail["index"]
  output_index = interpreter.get_output_details()[0]["index"]
  runner_info = {"tflite_bytes": len(content), "interpreter": type(interpreter).__module__}

  def run(inputs):
    for name, index in inputs_by_name.items():
      interpreter.set_tensor(index, inputs[name])
    interpreter.invoke()
    return interpreter.get_tensor(output_index)
  run.info = runner_info
  return run


RUNNERS = {"keras": keras_runner, "saved_model": saved_model_runner, "saved_model_xla": saved_model_xla_runner,
           "saved_model_bf16": saved_model_bf16_runner, "tflite": tflite_runner}


def time_interleaved(runs: dict, inputs, warmup: int, repeats: int, min_repeats: int, max_seconds: float) -> dict:
  """Calls every runner once per round, rotating the order, and returns each one's latency statistics."""
  names = list(runs)
  for name in names:
    for _ in range(warmup):
      runs[name](inputs)
  times = {name: [] for name in names}
  start = time.perf_counter()
  rounds = 0
  while rounds < repeats and (rounds < min_repeats or time.perf_counter() - start < max_seconds * len(names)):
    for name in names[rounds % len(names):] + names[:rounds % len(names)]:
      call_start = time.perf_counter()
      runs[name](inputs)
      times[name].append(time.perf_counter() - call_start)
    rounds += 1
  return {name: {"median_ms": round(float(np.median(t)) * 1e3, 2), "p25_ms": round(float(np.percentile(t, 25)) * 1e3, 2),
                 "p90_ms": round(float(np.percentile(t, 90)) * 1e3, 2), "calls": len(t)}
          for name, t in times.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch_sizes", default="1,32")
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--modes", default=",".join(MODES))
  parser.add_argument("--models", default=",".join(MODELS),
                      help=f"Comma-separated; speed-ups against {BASELINE} when it is among them.")
  parser.add_argument("--repeats", type=int, default=30, help="Most timed calls per cell.")
  parser.add_argument("--min_repeats", type=int, default=3, help="Fewest timed calls per cell.")
  parser.add_argument("--max_seconds", type=float, default=8.0, help="Stop timing a cell after this (>= min_repeats).")
  parser.add_argument("--warmup", type=int, default=2, help="Untimed calls per cell.")
  parser.add_argument("--intra_op_threads", type=int, default=0, help="TensorFlow intra-op threads; 0: default.")
  parser.add_argument("--inter_op_threads", type=int, default=0, help="TensorFlow inter-op threads; 0: default.")
  args = parser.parse_args()
  try:
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
  except ValueError:
    sys.exit(f"error: --batch_sizes={args.batch_sizes!r} is not a comma-separated list of integers")
  modes, models = args.modes.split(","), args.models.split(",")
  if any(m not in MODES for m in modes) or any(m not in MODELS for m in models):
    sys.exit(f"error: --modes from {', '.join(MODES)}; --models from {', '.join(MODELS)}")
  if min(batch_sizes + [args.seq_length, args.repeats, args.min_repeats]) <= 0:
    sys.exit("error: --batch_sizes, --seq_length, --repeats and --min_repeats must be positive")
  if "saved_model_bf16" in modes and not has_bf16_instructions():
    print("# saved_model_bf16 skipped: this CPU has no bf16 instructions (AVX512_BF16 or AMX)", file=sys.stderr)
    modes.remove("saved_model_bf16")

  import tensorflow as tf

  from modeling import training
  training.set_threads(args.intra_op_threads, args.inter_op_threads)
  result = machine_info()

  from modeling import load_config
  from modeling.models import build_task_model
  result.update(seq_length=args.seq_length, num_threads_tflite=2, baseline=BASELINE,
                intra_op_threads=args.intra_op_threads, inter_op_threads=args.inter_op_threads,
                command="python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]))
  built, parameters = {}, {}
  for name in models:
    tf.random.set_seed(0)
    config = load_config(os.path.join(ROOT, MODELS[name]))
    built[name] = build_task_model(config, num_labels=2)
    built[name]._name = name  # Names the SavedModel folders.
    built[name].bench_config = config
    parameters[name] = int(sum(np.prod(v.shape) for v in built[name].weights))
  result["parameters"] = parameters
  cells = []
  with tempfile.TemporaryDirectory() as workdir:
    for batch in batch_sizes:
      inputs = make_inputs(batch, args.seq_length, 30522)
      row = {}
      for name in models:
        runs = {mode: RUNNERS[mode](built[name], batch, args.seq_length, workdir) for mode in modes}
        timings = time_interleaved(runs, inputs, args.warmup, args.repeats, args.min_repeats, args.max_seconds)
        load = round(os.getloadavg()[0], 2)
        for mode in modes:
          cell = dict(model=name, mode=mode, batch_size=batch, **getattr(runs[mode], "info", {}), **timings[mode],
                      load_average_1min=load)
          if "tflite" in timings:
            cell["vs_tflite"] = round(timings[mode]["median_ms"] / timings["tflite"]["median_ms"], 3)
            cell["vs_tflite_p25"] = round(timings[mode]["p25_ms"] / timings["tflite"]["p25_ms"], 3)
          row[name, mode] = cell
          versus = f"  {cell['vs_tflite']:.2f}x TFLite" if "vs_tflite" in cell else ""
          print(f"# batch {batch} {mode:15s} {name:10s} median {cell['median_ms']:9.2f} ms  p25 {cell['p25_ms']:9.2f}"
                f"  p90 {cell['p90_ms']:9.2f} ms ({cell['calls']} calls){versus}  load {load}", file=sys.stderr,
                flush=True)
      for (name, mode), cell in row.items():
        if BASELINE in models:
          cell["speedup_vs_bert_base"] = round(row[BASELINE, mode]["median_ms"] / cell["median_ms"], 2)
      cells.extend(row.values())
  result["cells"] = cells
  tiny = [c for c in cells if c["model"] == "tinybert4"]
  result["goals"] = {
      "tinybert4_min_speedup_vs_bert_base": min((c["speedup_vs_bert_base"] for c in tiny
                                                 if "speedup_vs_bert_base" in c), default=None),
      "tinybert4_best_batch1_median_ms": min((c["median_ms"] for c in tiny if c["batch_size"] == 1), default=None),
      "tinybert4_batch1_saved_model_vs_tflite": {c["mode"]: c["vs_tflite"] for c in tiny
                                                 if c["batch_size"] == 1 and "vs_tflite" in c}}
  save_results("inference_latency", result)
  summary = ", ".join(f"{c['mode']} b{c['batch_size']} {c['median_ms']:.1f} ms"
                      + (f" ({c['speedup_vs_bert_base']:.1f}x BERT-base)" if "speedup_vs_bert_base" in c else "")
                      + (f" ({c['vs_tflite']:.2f}x TFLite)" if "vs_tflite" in c else "") for c in tiny)
  print(f"TinyBERT4 latency (seq {args.seq_length}): {summary}; load "
        f"{result['load_average_start'][0]}")


if __name__ == "__main__":
  main()
