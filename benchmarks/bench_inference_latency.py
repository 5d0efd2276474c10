r"""Inference latency of TinyBERT4, the MiniLM-L6 teacher and BERT-base, side by side in one run.

Each model is a `modeling.models.TaskModel` (encoder + 2-label head, random weights: latency does not depend on
them) served three ways, all on token ids of a fixed [batch, seq] shape:
  keras        the Keras model called inside a `tf.function`;
  saved_model  `tf.saved_model.save` of a `tf.Module` with a token-id signature (as run_finetuning.py's `serve_ids`),
               reloaded with `tf.saved_model.load` and called through the signature;
  tflite       `tf.lite.TFLiteConverter.from_concrete_functions` on a fixed-shape concrete function (builtins plus
               select TF ops, as run_finetuning.py's export), run by `tf.lite.Interpreter(num_threads=2)`.
Every cell is warmed up, then called until `--repeats` calls or `--max_seconds` (at least `--min_repeats`); the
median and 90th percentile are reported. Cells run batch by batch and mode by mode with the three models back to
back, so each ratio against BERT-base compares measurements taken minutes apart at most.

Usage:
  python3 benchmarks/bench_inference_latency.py [--batch_sizes 1,32] [--modes keras,saved_model,tflite] \
      [--repeats 30] [--max_seconds 8]
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
MODES = ("keras", "saved_model", "tflite")
FEATURES = ("input_word_ids", "input_mask", "input_type_ids")


def make_inputs(batch: int, seq: int, vocab_size: int) -> dict:
  rng = np.random.default_rng(batch)
  return {"input_word_ids": rng.integers(1, vocab_size, (batch, seq)).astype(np.int32),
          "input_mask": np.ones((batch, seq), np.int32), "input_type_ids": np.zeros((batch, seq), np.int32)}


def keras_runner(model, batch, seq, workdir):
  import tensorflow as tf
  predict = tf.function(lambda features: model(features, training=False)["logits"])
  return lambda inputs: predict({k: tf.constant(v) for k, v in inputs.items()}).numpy()


def saved_model_runner(model, batch, seq, workdir):
  import tensorflow as tf
  module = tf.Module()
  module.model = model
  spec = {k: tf.TensorSpec([None, seq], tf.int32, name=k) for k in FEATURES}
  module.serve_ids = tf.function(lambda features: {"logits": model(features, training=False)["logits"]},
                                 input_signature=[spec])
  path = os.path.join(workdir, f"saved_model_{model.name}")
  if not os.path.isdir(path):
    tf.saved_model.save(module, path, signatures={"serve_ids": module.serve_ids})
  serve = tf.saved_model.load(path).signatures["serve_ids"]
  return lambda inputs: serve(**{k: tf.constant(v) for k, v in inputs.items()})["logits"].numpy()


def tflite_runner(model, batch, seq, workdir):
  import tensorflow as tf
  specs = [tf.TensorSpec([batch, seq], tf.int32, name=k) for k in FEATURES]
  concrete = tf.function(lambda w, m, t: model(dict(zip(FEATURES, (w, m, t))), training=False)["logits"],
                         input_signature=specs).get_concrete_function()
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
  content = converter.convert()
  interpreter = tf.lite.Interpreter(model_content=content, num_threads=2)
  interpreter.allocate_tensors()
  inputs_by_name = {}
  for detail in interpreter.get_input_details():
    name = next((f for f in FEATURES if f in detail["name"]), None)
    if name is None:  # Positional names (w, m, t) when the converter drops the spec names.
      name = FEATURES["wmt".index(detail["name"].split("_")[-1].split(":")[0][-1])]
    inputs_by_name[name] = detail["index"]
  output_index = interpreter.get_output_details()[0]["index"]
  runner_info = {"tflite_bytes": len(content)}

  def run(inputs):
    for name, index in inputs_by_name.items():
      interpreter.set_tensor(index, inputs[name])
    interpreter.invoke()
    return interpreter.get_tensor(output_index)
  run.info = runner_info
  return run


RUNNERS = {"keras": keras_runner, "saved_model": saved_model_runner, "tflite": tflite_runner}


def time_calls(run, inputs, warmup: int, repeats: int, min_repeats: int, max_seconds: float) -> dict:
  for _ in range(warmup):
    run(inputs)
  times, start = [], time.perf_counter()
  while len(times) < repeats and (len(times) < min_repeats or time.perf_counter() - start < max_seconds):
    call_start = time.perf_counter()
    run(inputs)
    times.append(time.perf_counter() - call_start)
  return {"median_ms": round(float(np.median(times)) * 1e3, 2), "p90_ms": round(float(np.percentile(times, 90)) * 1e3, 2),
          "calls": len(times)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch_sizes", default="1,32")
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--modes", default=",".join(MODES))
  parser.add_argument("--models", default=",".join(MODELS), help=f"Comma-separated; must include {BASELINE}.")
  parser.add_argument("--repeats", type=int, default=30, help="Most timed calls per cell.")
  parser.add_argument("--min_repeats", type=int, default=3, help="Fewest timed calls per cell.")
  parser.add_argument("--max_seconds", type=float, default=8.0, help="Stop timing a cell after this (>= min_repeats).")
  parser.add_argument("--warmup", type=int, default=2, help="Untimed calls per cell.")
  args = parser.parse_args()
  try:
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
  except ValueError:
    sys.exit(f"error: --batch_sizes={args.batch_sizes!r} is not a comma-separated list of integers")
  modes, models = args.modes.split(","), args.models.split(",")
  if any(m not in MODES for m in modes) or any(m not in MODELS for m in models) or BASELINE not in models:
    sys.exit(f"error: --modes from {', '.join(MODES)}; --models from {', '.join(MODELS)} including {BASELINE}")
  if min(batch_sizes + [args.seq_length, args.repeats, args.min_repeats]) <= 0:
    sys.exit("error: --batch_sizes, --seq_length, --repeats and --min_repeats must be positive")

  result = machine_info()
  import tensorflow as tf

  from modeling import load_config
  from modeling.models import build_task_model
  result.update(seq_length=args.seq_length, num_threads_tflite=2, baseline=BASELINE,
                command="python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]))
  built, parameters = {}, {}
  for name in models:
    tf.random.set_seed(0)
    built[name] = build_task_model(load_config(os.path.join(ROOT, MODELS[name])), num_labels=2)
    built[name]._name = name  # Names the SavedModel folders.
    parameters[name] = int(sum(np.prod(v.shape) for v in built[name].weights))
  result["parameters"] = parameters
  cells = []
  with tempfile.TemporaryDirectory() as workdir:
    for batch in batch_sizes:
      inputs = make_inputs(batch, args.seq_length, 30522)
      for mode in modes:
        row = {}
        for name in models:
          run = RUNNERS[mode](built[name], batch, args.seq_length, workdir)
          cell = dict(model=name, mode=mode, batch_size=batch, **getattr(run, "info", {}),
                      **time_calls(run, inputs, args.warmup, args.repeats, args.min_repeats, args.max_seconds))
          cell["load_average_1min"] = round(os.getloadavg()[0], 2)
          row[name] = cell
          print(f"# batch {batch} {mode:11s} {name:10s} median {cell['median_ms']:9.2f} ms  p90 "
                f"{cell['p90_ms']:9.2f} ms ({cell['calls']} calls)", file=sys.stderr, flush=True)
        for cell in row.values():
          cell["speedup_vs_bert_base"] = round(row[BASELINE]["median_ms"] / cell["median_ms"], 2)
        cells.extend(row.values())
  result["cells"] = cells
  tiny = [c for c in cells if c["model"] == "tinybert4"]
  result["goals"] = {
      "tinybert4_min_speedup_vs_bert_base": min((c["speedup_vs_bert_base"] for c in tiny), default=None),
      "tinybert4_best_batch1_median_ms": min((c["median_ms"] for c in tiny if c["batch_size"] == 1), default=None)}
  save_results("inference_latency", result)
  summary = ", ".join(f"{c['mode']} b{c['batch_size']} {c['median_ms']:.1f} ms ({c['speedup_vs_bert_base']:.1f}x)"
                      for c in tiny)
  print(f"TinyBERT4 latency vs BERT-base (seq {args.seq_length}): {summary}; load "
        f"{result['load_average_start'][0]}")


if __name__ == "__main__":
  main()
