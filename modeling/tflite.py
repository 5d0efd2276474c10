"""TFLite export of task models in fp32, dynamic-range int8 and full-integer int8, their runtime, and the int8 gate.

A task model becomes a batch-1 TFLite model on token ids: int32 inputs `input_word_ids`, `input_mask` and
`input_type_ids` of shape `[1, max_seq_length]`, and one float32 output, `probabilities` `[1, num_labels]` for
classification or `score` `[1]` for regression. Three modes:

- `fp32`: float weights and activations.
- `dynamic`: dynamic-range quantization; weights of the large layers are stored as int8 and the matrix products run
  on int8 with activations quantized on the fly, everything else is float.
- `int8`: full-integer quantization; weights and activations are int8, with activation ranges calibrated on a
  representative dataset of real training examples. The id inputs stay int32 (ids are indices, not values to
  quantize): the embedding lookups read int8 tables, the mask is cast and quantized once, and the output is
  dequantized to float32 so callers read probabilities as in the other modes. Masked attention keys get a score of
  `INT8_MASK_NEGATIVE` instead of -1e9, which int8 cannot hold next to real scores.

Models run with LiteRT (`ai_edge_litert.interpreter.Interpreter`, what deployments install), falling back to
`tf.lite.Interpreter` only when `ai_edge_litert` is missing. `quantize_and_gate` writes all three models, scores
each on dev, and ships as `model.tflite` the first of dynamic-range and full-integer whose dev score stays within
`max_drop` of fp32's, or else fp32.
"""

import contextlib
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from unittest import mock

import numpy as np
import tensorflow as tf
import tf_keras
from absl import flags, logging

from modeling import files, metrics, progress, records
from modeling.errors import UserError

MODES = ("fp32", "dynamic", "int8")
INPUT_NAMES = records.FEATURES  # input_word_ids, input_mask, input_type_ids
SHIPPED_FILE = "model.tflite"
# Every mode's own file; `quantize_and_gate` also copies the one it ships to SHIPPED_FILE.
MODE_FILES = {"fp32": "model_fp32.tflite", "dynamic": "model_int8_dynamic.tflite", "int8": "model_int8.tflite"}
# Preference when several models pass the gate. Dynamic-range first: it is as small as full-integer and, on CPUs
# (XNNPACK), the fastest of the three, while full-integer runs several ops on slower reference int8 kernels; the
# full-integer model is for integer-only accelerators, and ships when dynamic-range fails the gate and it passes.
SHIP_ORDER = ("dynamic", "int8")

RepresentativeDataset = Callable[[], Iterator[dict[str, np.ndarray]]]


# What a masked attention key adds to its score in the full-integer model, in place of Keras' -1e9. The sum of scores
# and mask is quantized to int8 over its calibrated range: with -1e9 in that range every real score rounds to the
# same value and attention becomes uniform. -30 keeps a masked key's weight below e^-30 of the largest (far below
# the int8 softmax's step of 1/256) while widening the range by only 30.
INT8_MASK_NEGATIVE = -30.0


@contextlib.contextmanager
def _quantizable_attention_mask() -> Iterator[None]:
  """While tracing, Keras' and tf-models' masked softmax add `INT8_MASK_NEGATIVE` to masked scores."""
  from official.nlp.modeling.layers import masked_softmax
  from tf_keras.src.layers.activation import softmax

  def large_negative(dtype):
    return tf.constant(INT8_MASK_NEGATIVE, dtype)

  with mock.patch.object(softmax, "_large_compatible_negative", large_negative), \
       mock.patch.object(masked_softmax, "_large_compatible_negative", large_negative):
    yield


def _quiet_convert(converter: tf.lite.TFLiteConverter) -> bytes:
  # Calibration runs the model in tf.lite.Interpreter inside the converter, whose deprecation warning is not the
  # user's to act on.
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
    return converter.convert()


def _rename_io_tensors(content: bytes, output_name: str) -> bytes:
  """Renames the model's input tensors to their signature names and its output tensor to `output_name`.

  The converter names tensors after the signature (`serving_default_input_word_ids:0`); users read them by name
  through `get_input_details()`, so the tensors carry the plain feature names.
  """
  from tensorflow.lite.tools import flatbuffer_utils
  model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
  subgraph = model.subgraphs[0]
  signature = model.signatureDefs[0]
  for tensor_map in signature.inputs:
    subgraph.tensors[tensor_map.tensorIndex].name = tensor_map.name
  for tensor_map in signature.outputs:
    tensor_map.name = output_name.encode() if isinstance(tensor_map.name, bytes) else output_name
    subgraph.tensors[tensor_map.tensorIndex].name = tensor_map.name
  return flatbuffer_utils.convert_object_to_bytearray(model)


def convert_tflite(task_model: tf_keras.Model, max_seq_length: int, mode: str = "fp32",
                   representative_dataset: RepresentativeDataset | None = None, regression: bool = False) -> bytes:
  """Converts a task model to a batch-1 TFLite flatbuffer on token ids.

  Args:
    task_model: a `modeling.models.TaskModel` (any model taking the three id features and returning `logits`).
    max_seq_length: the fixed sequence length of the inputs.
    mode: "fp32", "dynamic" (int8 weights, float activations) or "int8" (int8 weights and activations).
    representative_dataset: for "int8", a callable returning an iterator of feature dicts of int32 `[1, seq]`
      arrays, used to calibrate activation ranges (see `representative_dataset`).
    regression: output `score` (the one logit) instead of `probabilities` (softmax of the logits).

  Returns:
    The TFLite model as bytes.
  """
  if mode not in MODES:
    raise UserError(f"--export_tflite: unknown TFLite mode {mode!r}; known: {', '.join(MODES)}")
  if mode == "int8" and representative_dataset is None:
    raise ValueError("full-integer conversion needs a representative_dataset")
  output_name = "score" if regression else "probabilities"

  def serve(input_word_ids, input_mask, input_type_ids):
    logits = task_model({"input_word_ids": input_word_ids, "input_mask": input_mask,
                         "input_type_ids": input_type_ids}, training=False)["logits"]
    return {output_name: logits[:, 0] if regression else tf.nn.softmax(logits, axis=-1)}

  # A plain module holds the model: the converter walks the trackable it is given for variables only.
  holder = tf.Module()
  holder.model = task_model
  holder.serve = tf.function(serve, input_signature=[tf.TensorSpec([1, max_seq_length], tf.int32, name=name)
                                                     for name in INPUT_NAMES])
  start = time.monotonic()
  logging.info("converting to TFLite (%s)%s", mode, ", calibrating on the representative dataset" if mode == "int8"
               else "")
  with _quantizable_attention_mask() if mode == "int8" else contextlib.nullcontext():
    concrete = holder.serve.get_concrete_function()
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if mode != "fp32":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if mode == "int8":
    converter.representative_dataset = representative_dataset
    # Every op of the supported families has an int8 kernel; ids stay int32 inputs and the output stays float.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  content = _rename_io_tensors(_quiet_convert(converter), output_name)
  logging.info("converted to TFLite (%s) in %.1fs: %.1f MB", mode, time.monotonic() - start, len(content) / 1e6)
  return content


def representative_dataset(train_files: Sequence[str], max_seq_length: int,
                           num_examples: int = 100, seed: int = 0) -> RepresentativeDataset:
  """Calibration data for full-integer conversion: `num_examples` shuffled training examples, one per batch.

  Shuffled so that a training file written in label order still calibrates on every label's examples.

  Args:
    train_files: the task's training TFRecords.
    max_seq_length: their sequence length.
    num_examples: how many examples to calibrate on (fewer if the files hold fewer).
    seed: the shuffle seed, so a conversion is repeatable.

  Returns:
    A callable returning a fresh iterator of feature dicts of int32 `[1, max_seq_length]` arrays.
  """
  def examples():
    dataset = records.make_dataset(train_files, max_seq_length, 1, shuffle=True, seed=seed,
                                   shuffle_buffer=max(10 * num_examples, 1000))
    # The converter runs the model on each example as it is drawn, so this is the progress of calibration.
    for features in progress.progress(dataset.take(num_examples), "calibrating int8", total=num_examples):
      yield {name: features[name].numpy() for name in INPUT_NAMES}
  return examples


def write_tflite(path: str, content: bytes) -> str:
  """Writes a TFLite model atomically; returns `path`."""
  with files.atomic_path(path) as tmp, open(tmp, "wb") as f:
    f.write(content)
  return path


def interpreter_class():
  """LiteRT's `Interpreter`, or `tf.lite.Interpreter` where `ai_edge_litert` is not installed."""
  try:
    from ai_edge_litert.interpreter import Interpreter
  except ImportError:
    Interpreter = tf.lite.Interpreter
  return Interpreter


class TFLiteClassifier:
  """Runs a TFLite task model from `convert_tflite` on batches of token ids.

  A batch-1 model is run one example at a time; a model with a dynamic batch dimension is resized to the batch.

  Args:
    model_path: the `.tflite` file.
    num_threads: interpreter threads (None: the runtime's default).
  """

  def __init__(self, model_path: str, num_threads: int | None = None):
    if not os.path.isfile(model_path):
      raise UserError(f"TFLite model not found: {model_path}")
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
      self.interpreter = interpreter_class()(model_path=model_path, num_threads=num_threads)
    self.interpreter.allocate_tensors()
    details = {d["name"]: d for d in self.interpreter.get_input_details()}
    missing = [name for name in INPUT_NAMES if name not in details]
    if missing:
      raise UserError(f"{model_path}: no input named {', '.join(missing)}; export it again with convert_tflite")
    self._inputs = {name: details[name]["index"] for name in INPUT_NAMES}
    self.max_seq_length = int(details["input_word_ids"]["shape"][1])
    self.fixed_batch = int(details["input_word_ids"]["shape_signature"][0]) == 1
    output = self.interpreter.get_output_details()[0]
    self.output_name, self._output = output["name"], output["index"]
    self.regression = self.output_name == "score"

  def _run(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
    for name, index in self._inputs.items():
      self.interpreter.set_tensor(index, np.asarray(features[name], np.int32))
    self.interpreter.invoke()
    return self.interpreter.get_tensor(self._output)

  def predict(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
    """The model's output for a batch: probabilities `[batch, num_labels]`, or scores `[batch]` for regression.

    Args:
      features: int `[batch, max_seq_length]` arrays under the names `input_word_ids`, `input_mask`,
        `input_type_ids`.
    """
    batch = len(features["input_word_ids"])
    if self.fixed_batch:
      return np.concatenate([self._run({k: v[i:i + 1] for k, v in features.items()}) for i in range(batch)])
    for index in self._inputs.values():
      self.interpreter.resize_tensor_input(index, [batch, self.max_seq_length])
    self.interpreter.allocate_tensors()
    return self._run(features)


def score_tflite(model_path: str, records_file: str, meta: Mapping[str, Any], batch_size: int = 32,
                 num_threads: int | None = None) -> dict[str, float]:
  """The task's metrics for a TFLite model on one split, as the training script's evaluator computes them.

  Args:
    model_path: a `.tflite` file from `convert_tflite`.
    records_file: the split's TFRecord file (with gold labels).
    meta: the data folder's `meta.json` (task type, metric, `max_seq_length`).
    batch_size: examples read per step (the model itself may run them one by one).
    num_threads: interpreter threads.

  Returns:
    A dict of metric name to float, e.g. {"accuracy": 0.91}.
  """
  classifier = TFLiteClassifier(model_path, num_threads=num_threads)
  label_dtype = tf.float32 if meta["task_type"] == "regression" else tf.int64
  predictions, labels = [], []
  dataset = records.make_dataset([records_file], meta["max_seq_length"], batch_size, label_dtype=label_dtype)
  split = os.path.basename(records_file).split(".")[0]
  for features, batch_labels in progress.progress(dataset, f"TFLite {os.path.basename(model_path)} on {split}",
                                                  total=meta.get("num_examples", {}).get(split),
                                                  sizes=lambda batch: len(batch[1])):
    predictions.append(classifier.predict({k: v.numpy() for k, v in features.items()}))
    labels.append(batch_labels.numpy())
  return metrics.compute_metrics(meta.get("metric") or meta["task_type"], np.concatenate(predictions),
                                 np.concatenate(labels))


def tflite_latency_ms(path: str, seq: int | None = None, repeats: int = 50, num_threads: int | None = None,
                      warmup: int = 5, seed: int = 0) -> float:
  """Median batch-1 latency of a TFLite model in milliseconds, on random ids of full length `seq`.

  Args:
    path: the `.tflite` file.
    seq: the sequence length (default: the model's).
    repeats: timed runs.
    num_threads: interpreter threads (None: the runtime's default).
    warmup: untimed runs first.
    seed: seed of the random ids.
  """
  classifier = TFLiteClassifier(path, num_threads=num_threads)
  seq = seq or classifier.max_seq_length
  if seq != classifier.max_seq_length:
    raise UserError(f"{path} takes sequences of {classifier.max_seq_length} tokens, not {seq}")
  rng = np.random.default_rng(seed)
  features = {"input_word_ids": rng.integers(1, 100, [1, seq]).astype(np.int32),
              "input_mask": np.ones([1, seq], np.int32), "input_type_ids": np.zeros([1, seq], np.int32)}
  for _ in range(warmup):
    classifier.predict(features)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    classifier.predict(features)
    times.append(time.perf_counter() - start)
  return float(np.median(times) * 1000.0)


def check_int8_gate_data(meta: Mapping[str, Any], data_dir: str) -> None:
  """Refuses int8 export for task data whose dev split has no gold labels (the gate scores int8 against fp32 there).

  Called by the training script's flag validation, before any model is built.
  """
  has_dev = bool(meta.get("record_files", {}).get("dev")) and bool(meta.get("num_examples", {}).get("dev"))
  if not has_dev or meta.get("dev_has_labels") is False:
    raise UserError(f"--export_tflite=int8 scores the int8 models against fp32 on labelled dev data, but "
                    f"{os.path.join(data_dir, records.META_FILE)} has no labelled dev split; use "
                    f"--export_tflite=fp32 or prepare the data with a labelled dev set")


def _gate(scores: Mapping[str, float], metric_name: str, max_drop: float) -> tuple[str, str]:
  """Picks the model to ship and says why, in one line."""
  baseline = scores["fp32"]
  drops = {mode: baseline - scores[mode] for mode in SHIP_ORDER}
  described = "; ".join(f"{mode} {scores[mode]:.4f} ({'-' if drops[mode] >= 0 else '+'}{abs(drops[mode]):.4f})"
                        for mode in SHIP_ORDER)
  for mode in SHIP_ORDER:
    if drops[mode] <= max_drop:
      return mode, (f"{SHIPPED_FILE} is {mode}: its dev {metric_name} is within {max_drop:.4f} of fp32's "
                    f"{baseline:.4f} ({described})")
  return "fp32", (f"{SHIPPED_FILE} is fp32: both int8 models lose more than {max_drop:.4f} dev {metric_name} "
                  f"against fp32's {baseline:.4f} ({described})")


def quantize_and_gate(task_model: tf_keras.Model, output_dir: str, meta: Mapping[str, Any], train_file: str,
                      dev_file: str, fp32_score: float | None = None, max_drop: float = 0.01,
                      num_calibration_examples: int = 100, scores: Mapping[str, float] | None = None,
                      ) -> dict[str, Any]:
  """Writes fp32, dynamic-range and full-integer TFLite models, scores them on dev, and ships the best that passes.

  Files in `output_dir`: `model_fp32.tflite`, `model_int8_dynamic.tflite`, `model_int8.tflite`, and
  `model.tflite`, a copy of the shipped one: dynamic-range int8 if its dev score is at most `max_drop` below fp32's,
  else full-integer int8 under the same rule, else fp32 (see `SHIP_ORDER`). The decision is logged in one line.

  Args:
    task_model: the trained task model.
    output_dir: where the models go.
    meta: the data folder's `meta.json`; its primary metric decides.
    train_file: training TFRecords, from which the full-integer model's calibration examples are drawn.
    dev_file: dev TFRecords with gold labels.
    fp32_score: the fp32 baseline's primary metric (default: the fp32 TFLite model's dev score).
    max_drop: the largest drop of the primary metric accepted (0.01 is one point of accuracy).
    num_calibration_examples: training examples used to calibrate the full-integer model.
    scores: precomputed dev scores by mode, skipping scoring of those modes (for tests).

  Returns:
    The dict for `eval_results.json`'s `tflite` entry: {"metric", "fp32", "dynamic", "int8", "max_drop", "kept",
    "reason", "files"}.
  """
  check_int8_gate_data(meta, os.path.dirname(dev_file))
  seq = meta["max_seq_length"]
  regression = meta["task_type"] == "regression"
  primary = meta.get("primary_metric") or metrics.primary_metric(meta["task_name"], meta["task_type"])
  calibration = representative_dataset([train_file], seq, num_calibration_examples)
  scores = dict(scores or {})
  paths = {}
  for mode in MODES:
    paths[mode] = write_tflite(os.path.join(output_dir, MODE_FILES[mode]),
                               convert_tflite(task_model, seq, mode, calibration, regression=regression))
    if mode not in scores:
      if mode == "fp32" and fp32_score is not None:
        scores[mode] = float(fp32_score)
      else:
        scores[mode] = score_tflite(paths[mode], dev_file, meta)[primary]
    logging.info("TFLite %s: %s (%.1f MB), dev %s %.4f", mode, paths[mode], os.path.getsize(paths[mode]) / 1e6,
                 primary, scores[mode])
  kept, reason = _gate(scores, primary, max_drop)
  with files.atomic_path(os.path.join(output_dir, SHIPPED_FILE)) as tmp:
    shutil.copyfile(paths[kept], tmp)
  logging.info("%s", reason)
  return {"metric": primary, **{mode: scores[mode] for mode in MODES}, "max_drop": max_drop, "kept": kept,
          "reason": reason, "files": {mode: os.path.basename(path) for mode, path in paths.items()}}


_TRUE = ("true", "t", "1", "yes", "fp32")
_FALSE = ("false", "f", "0", "no", "")


class ExportTFLiteParser(flags.ArgumentParser):
  """Parses `--export_tflite`: false, true (= fp32), fp32 or int8, to "false", "fp32" or "int8"."""

  def parse(self, argument):
    if isinstance(argument, bool):
      return "fp32" if argument else "false"
    value = str(argument).strip().lower()
    if value in _TRUE:
      return "fp32"
    if value in _FALSE:
      return "false"
    if value == "int8":
      return "int8"
    raise ValueError(f"must be false, true, fp32 or int8, got {argument!r}")

  def flag_type(self):
    return "string"


class ExportTFLiteFlag(flags.Flag):
  """A string flag that keeps the boolean spellings: `--export_tflite` is fp32, `--noexport_tflite` is false.

  Values with `=` only (`--export_tflite=int8`): a boolean flag takes no separate argument.
  """

  def __init__(self, name, default, help_string, **kwargs):
    super().__init__(ExportTFLiteParser(), flags.ArgumentSerializer(), name, default, help_string, boolean=True,
                     **kwargs)

  def _serialize(self, value):
    return f"--{self.name}={value}"


def define_export_tflite_flag(name: str = "export_tflite", default: str = "false",
                              flag_values: flags.FlagValues = flags.FLAGS) -> flags.FlagHolder:
  """Defines the `--export_tflite` flag (see `ExportTFLiteFlag`); its value is "false", "fp32" or "int8"."""
  help_string = ("TFLite export on token ids: false; true or fp32 writes model.tflite; int8 also writes "
                 f"{MODE_FILES['dynamic']} and {MODE_FILES['int8']}, scores all three on dev and ships as "
                 "model.tflite the smallest within --max_int8_accuracy_drop of fp32. --export_tflite alone means "
                 "fp32, --noexport_tflite false.")
  return flags.DEFINE_flag(ExportTFLiteFlag(name, default, help_string), flag_values)
