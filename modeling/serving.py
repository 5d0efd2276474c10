"""Serving signatures of a task model: token ids, raw text and text pairs, for `tf.saved_model.save`.

Every signature runs the model through one shared id-level function, `serve_ids`; the text signatures tokenize in
the graph first (`Tokenizer.keras_preprocessor`) and then call it. Tokenization stays outside XLA (tensorflow-text
ops have no XLA kernels), so with `jit_compile=True` only the model is compiled, once per batch size.

XLA on the served model is off by default: TensorFlow Serving refuses XLA:CPU functions unless
`tensorflow_model_server` runs with `--xla_cpu_compilation_enabled=true`, and on a 2-core CPU it was worth only a
few per cent at batch 1 (benchmarks/README.md). What matters more there is the server's thread pools: 2 intra-op
and 1 inter-op thread (`--tensorflow_intra_op_parallelism=2 --tensorflow_inter_op_parallelism=1`), as measured by
benchmarks/bench_inference_latency.py.
"""

import tensorflow as tf

from modeling import records


def task_outputs(logits: tf.Tensor, regression: bool) -> dict[str, tf.Tensor]:
  """What a served task model returns: `score` [batch] for regression, else `probabilities` [batch, labels]."""
  return {"score": logits[:, 0]} if regression else {"probabilities": tf.nn.softmax(logits, axis=-1)}


def serving_module(model, seq_length: int, *, regression: bool = False, preprocessor=None,
                   jit_compile: bool = False) -> tuple[tf.Module, dict[str, tf.types.experimental.ConcreteFunction]]:
  """A `tf.Module` holding `model` and its serving functions, and the signatures to save it with.

  Args:
    model: a `modeling.models.TaskModel` (or any model returning a dict with `logits`).
    seq_length: the fixed sequence length of the id inputs (and of the tokenizer's output).
    regression: serve `score` instead of `probabilities`.
    preprocessor: a `Tokenizer.keras_preprocessor(seq_length)` layer; adds `serve_text` (the default signature)
      and `serve_pair`. Without it the default signature is `serve_ids`.
    jit_compile: compile the model's forward pass with XLA (see the module docstring for TF Serving's flag).

  Returns:
    (module, signatures) for `tf.saved_model.save(module, path, signatures=signatures)`.
  """
  module = tf.Module()
  module.model = model
  ids_spec = {k: tf.TensorSpec([None, seq_length], tf.int32, name=k) for k in records.FEATURES}
  module.serve_ids = tf.function(lambda features: task_outputs(model(features, training=False)["logits"], regression),
                                 input_signature=[ids_spec], jit_compile=jit_compile)
  signatures = {"serve_ids": module.serve_ids}
  if preprocessor is None:
    signatures["serving_default"] = module.serve_ids
    return module, signatures

  def ids(packed):
    return {k: tf.ensure_shape(packed[k], [None, seq_length]) for k in records.FEATURES}

  module.preprocessor = preprocessor
  module.serve_text = tf.function(lambda text: module.serve_ids(ids(module.preprocessor(text))),
                                  input_signature=[tf.TensorSpec([None], tf.string, name="text")])
  module.serve_pair = tf.function(
      lambda text_a, text_b: module.serve_ids(ids(module.preprocessor([text_a, text_b]))),
      input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                       tf.TensorSpec([None], tf.string, name="text_b")])
  signatures.update(serving_default=module.serve_text, serve_pair=module.serve_pair)
  return module, signatures
