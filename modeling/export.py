"""Export of a trained task model: a SavedModel that serves raw strings, and optionally a TFLite model.

The SavedModel's signatures:
  serving_default  `text` -> outputs, the tokenizer in the graph (token ids only when no vocab is known);
  serve_pair       `text_a`, `text_b` -> outputs, for sentence-pair tasks;
  serve_ids        `input_word_ids`, `input_mask`, `input_type_ids` ([batch, max_seq_length] int32) -> outputs.
The outputs are `probabilities` ([batch, num_labels], softmax of the logits) or, for regression, `score` ([batch]).
The TFLite model takes the three token-id inputs of shape [1, max_seq_length] (with select TF ops).
"""

import tensorflow as tf
from absl import logging

from modeling import files, records
from modeling.models import TaskModel
from modeling.tokenization import Tokenizer, build_tokenizer


def tokenizer_for_vocab(vocab: str | None, do_lower_case: bool | None) -> Tokenizer | None:
  """The tokenizer of a vocab.txt or a SentencePiece `.model` file; None when there is no vocab."""
  if not vocab:
    return None
  kind = "spm_model_file" if vocab.endswith(".model") else "vocab_file"
  return build_tokenizer(**{kind: vocab}, do_lower_case=do_lower_case)


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
  if tokenizer is not None:
    module.preprocessor = tokenizer.keras_preprocessor(max_seq_length)
    module.serve_text = tf.function(
        lambda text: outputs(model(module.preprocessor(text), training=False)["logits"]),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    module.serve_pair = tf.function(
        lambda text_a, text_b: outputs(model(module.preprocessor([text_a, text_b]), training=False)["logits"]),
        input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                         tf.TensorSpec([None], tf.string, name="text_b")])
    signatures.update(serving_default=module.serve_text, serve_pair=module.serve_pair)
  else:
    signatures["serving_default"] = module.serve_ids
    logging.warning("no vocab known (--vocab_file); the export takes token ids only")
  with files.atomic_path(export_dir) as tmp:
    tf.saved_model.save(module, tmp, signatures=signatures)
  logging.info("exported SavedModel to %s (signatures: %s)", export_dir, ", ".join(sorted(signatures)))
  return export_dir


def export_tflite(model: TaskModel, path: str, max_seq_length: int, regression: bool = False) -> str:
  """Writes a TFLite model on token ids (batch 1, select TF ops allowed) to `path`, atomically; returns `path`."""
  concrete = tf.function(
      lambda w, m, t: _outputs(model({"input_word_ids": w, "input_mask": m, "input_type_ids": t},
                                     training=False)["logits"], regression),
      input_signature=[tf.TensorSpec([1, max_seq_length], tf.int32)] * 3).get_concrete_function()
  converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
  with files.atomic_path(path) as tmp, open(tmp, "wb") as f:
    f.write(converter.convert())
  logging.info("exported TFLite model to %s", path)
  return path
