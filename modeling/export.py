"""Export of a trained task model: a SavedModel, and optionally TFLite models and a Hugging Face folder.

The SavedModel's signatures:
  serving_default  `text` -> outputs, the tokenizer in the graph;
  serve_pair       `text_a`, `text_b` -> outputs, for sentence-pair tasks;
  serve_ids        `input_word_ids`, `input_mask`, `input_type_ids` ([batch, max_seq_length] int32) -> outputs.
The raw-string signatures exist only for a tokenizer TensorFlow Text runs in a graph (WordPiece, SentencePiece);
without a vocab, or with a byte-level BPE vocab (RoBERTa), `serving_default` is `serve_ids`.
The outputs are `probabilities` ([batch, num_labels], softmax of the logits) or, for regression, `score` ([batch]).
TFLite models (`modeling.tflite`) take the three token-id inputs of shape [1, max_seq_length].
"""

import os
import shutil

import tensorflow as tf
from absl import logging

from modeling import files, hf_export, records, tflite
from modeling.config import ModelConfig
from modeling.errors import UserError
from modeling.models import TaskModel
from modeling.tokenization import Tokenizer, tokenizer_for_data

MERGES_NAME = "merges.txt"
HF_DEFAULT_DIR = "hf_model"
_TRUE = ("true", "1", "yes")


def merges_for(vocab: str | None, merges_file: str | None, meta: dict) -> str | None:
  """The merges.txt that goes with a byte-level BPE `vocab` (vocab.json): `merges_file`, else the one beside it.

  Checked against the data's `merges_sha256` when it records one; None for any other vocab.

  Raises:
    UserError: naming --merges_file when it is missing, given for a non-BPE vocab, or not the data's merges.
  """
  if merges_file and not os.path.isfile(merges_file):
    raise UserError(f"--merges_file: not found: {merges_file}")
  if not vocab or not vocab.endswith(".json"):
    if merges_file:
      raise UserError(f"--merges_file goes with a BPE vocab.json, but the vocab is {vocab or 'not known'}")
    return None
  merges = merges_file or os.path.join(os.path.dirname(vocab), MERGES_NAME)
  if not os.path.isfile(merges):
    raise UserError(f"--merges_file: the BPE vocab {vocab} needs its merges.txt; none beside it, give --merges_file")
  if meta.get("merges_sha256") and records.sha256_file(merges) != meta["merges_sha256"]:
    raise UserError(f"--merges_file {merges} is not the merges.txt the data was prepared with")
  return merges


def hf_dir_for(export_hf: str | None, output_dir: str) -> str | None:
  """The folder of `--export_hf`: output_dir/hf_model for 'true' (or '1', 'yes'), else the path; None when unset."""
  if not export_hf or export_hf.lower() in ("false", "0", "no"):
    return None
  return os.path.join(output_dir, HF_DEFAULT_DIR) if export_hf.lower() in _TRUE else export_hf


def check_hf_export(hf_dir: str, config: ModelConfig, meta: dict) -> None:
  """Refuses, before any training, a Hugging Face export of a family or labels it cannot write, or a foreign folder."""
  try:
    hf_export.hf_config(config, meta["num_labels"], meta.get("label_list"), meta["task_type"])
    hf_export.check_output_dir(hf_dir)
  except UserError as e:
    raise UserError(f"--export_hf: {e}") from None


def _outputs(logits: tf.Tensor, regression: bool) -> dict[str, tf.Tensor]:
  return {"score": logits[:, 0]} if regression else {"probabilities": tf.nn.softmax(logits, axis=-1)}


def export_saved_model(model: TaskModel, export_dir: str, max_seq_length: int, tokenizer: Tokenizer | None = None,
                       regression: bool = False) -> str:
  """Writes the SavedModel described in the module docstring to `export_dir`, atomically; returns `export_dir`."""
  outputs = lambda logits: _outputs(logits, regression)
  module = tf.Module()
  module.model = model
  ids_spec = {k: tf.TensorSpec([None, max_seq_length], tf.int32, name=k) for k in records.FEATURES}
  module.serve_ids = tf.function(lambda features: outputs(model(features, training=False)["logits"]),
                                 input_signature=[ids_spec])
  signatures = {"serve_ids": module.serve_ids}
  if tokenizer is not None and tokenizer.has_keras_preprocessor:
    module.preprocessor = tokenizer.keras_preprocessor(max_seq_length)
    module.serve_text = tf.function(
        lambda text: outputs(model(module.preprocessor(text), training=False)["logits"]),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    module.serve_pair = tf.function(
        lambda text_a, text_b: outputs(model(module.preprocessor([text_a, text_b]), training=False)["logits"]),
        input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                         tf.TensorSpec([None], tf.string, name="text_b")])
    signatures.update(serving_default=module.serve_text, serve_pair=module.serve_pair)
  elif tokenizer is not None:
    signatures["serving_default"] = module.serve_ids
    logging.info("%s tokenization has no in-graph TensorFlow Text op (byte-level BPE); the SavedModel takes token "
                 "ids (serving_default = serve_ids)", tokenizer.kind)
  else:
    signatures["serving_default"] = module.serve_ids
    logging.warning("no vocab known (--vocab_file); the export takes token ids only")
  with files.atomic_path(export_dir) as tmp:
    tf.saved_model.save(module, tmp, signatures=signatures)
  logging.info("exported SavedModel to %s (signatures: %s)", export_dir, ", ".join(sorted(signatures)))
  return export_dir


def export_task_model(model: TaskModel, config: ModelConfig, meta: dict, split_files: dict[str, str],
                      output_dir: str, *, vocab: str | None = None, merges: str | None = None,
                      export_dir: str | None = None, export_tflite: str = "false", hf_dir: str | None = None,
                      max_int8_accuracy_drop: float = 0.01, int8_calibration_examples: int = 100) -> dict:
  """Everything run_finetuning.py ships after training, from the model holding its best weights.

  Copies the vocab (and a BPE vocab's merges.txt) into `output_dir`, then writes what was asked for: the SavedModel
  in `export_dir`, `model.tflite` (fp32; with "int8" also the dynamic-range and full-integer models, gated on dev by
  `tflite.quantize_and_gate`), and the Hugging Face folder `hf_dir`.

  Args:
    model: the trained task model.
    config: its config.
    meta: the data's meta.json.
    split_files: {split: TFRecord file} of the data.
    output_dir: the run's output folder.
    vocab: the data's vocab (None: the SavedModel takes token ids, the Hugging Face folder has no tokenizer).
    merges: a BPE vocab's merges.txt (`merges_for`).
    export_dir: the SavedModel folder, or None for none.
    export_tflite: "false", "fp32" or "int8".
    hf_dir: the Hugging Face folder, or None for none.
    max_int8_accuracy_drop: the int8 gate's largest accepted drop of the dev primary metric.
    int8_calibration_examples: training examples that calibrate the full-integer model.

  Returns:
    {"export_dir", "tflite" (the gate's record for "int8", else the path or None), "hf_dir"}.
  """
  regression = meta["task_type"] == "regression"
  seq = meta["max_seq_length"]
  for path in (vocab, merges):
    copy = path and os.path.join(output_dir, os.path.basename(path))
    if path and not (os.path.exists(copy) and os.path.samefile(path, copy)):  # The vocab may live in output_dir.
      shutil.copyfile(path, copy)
  result = {"export_dir": export_dir, "tflite": None, "hf_dir": hf_dir}
  if export_dir:
    tokenizer = tokenizer_for_data(meta, vocab, merges) if vocab else None
    export_saved_model(model, export_dir, seq, tokenizer, regression)
  if export_tflite == "fp32":
    path = os.path.join(output_dir, tflite.SHIPPED_FILE)
    result["tflite"] = tflite.write_tflite(path, tflite.convert_tflite(model, seq, "fp32", regression=regression))
    logging.info("exported TFLite model to %s", path)
  elif export_tflite == "int8":
    result["tflite"] = tflite.quantize_and_gate(model, output_dir, meta, split_files["train"], split_files["dev"],
                                                max_drop=max_int8_accuracy_drop,
                                                num_calibration_examples=int8_calibration_examples)
  if hf_dir:
    tokenizer_files = [p for p in (vocab, merges) if p]
    hf_export.export_hf(model, config, hf_dir, tokenizer_files=tokenizer_files, do_lower_case=meta.get("do_lower_case"),
                        label_list=meta.get("label_list"), task_type=meta["task_type"])
    logging.info("exported Hugging Face folder to %s", hf_dir)
  return result
