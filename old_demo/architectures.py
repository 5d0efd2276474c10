"""Model builders of the classic distillation demo, in the `ARCHITECTURES` registry.

A builder is `(data: TaskData, **config) -> tf_keras.Model` and returns a model that outputs logits. Adding an
architecture takes one function and one line in the registry:

  def build_wide_mlp(data, units=1024):
    ...
  ARCHITECTURES["wide_mlp"] = build_wide_mlp

Text models take a batch of raw strings (`tf.string`, shape `[batch]`) and tokenize inside the model, so a teacher
and a student with different tokenizers still read the same `x`. Images are float32 `[batch, height, width, 1]` in
[0, 1].
"""

import inspect
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf
import tf_keras

from modeling.errors import UserError
from old_demo.datasets import TaskData


def _require_modality(data: TaskData, modality: str, architecture: str) -> None:
  if data.modality != modality:
    raise UserError(f"architecture {architecture!r} is for {modality} data, but task {data.name!r} is "
                    f"{data.modality}")


def _output_units(data: TaskData) -> int:
  return 1 if data.task_type == "binary" else data.num_classes


def _image_input(data: TaskData) -> tf_keras.Input:
  _require_modality(data, "image", "image model")
  return tf_keras.Input(shape=data.train[0].shape[1:], dtype=tf.float32, name="image")


def build_mlp(data: TaskData, hidden_units: Sequence[int] = (128,), dropout: float = 0.2) -> tf_keras.Model:
  """A multi-layer perceptron over the flattened image."""
  _require_modality(data, "image", "mlp")
  inputs = _image_input(data)
  hidden = tf_keras.layers.Flatten()(inputs)
  for units in hidden_units:
    hidden = tf_keras.layers.Dense(units, activation="relu")(hidden)
    hidden = tf_keras.layers.Dropout(dropout)(hidden)
  return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(hidden), name="mlp")


def build_cnn(data: TaskData, filters: Sequence[int] = (32, 64), kernel_size: int = 3, dense_units: int = 128,
              dropout: float = 0.3, random_shift: float = 0.0) -> tf_keras.Model:
  """A small CNN: per entry of `filters`, a same-padded ReLU convolution and 2x2 max pooling; then a dense layer.

  `random_shift` > 0 moves each training image by up to that fraction of its height and width (zero fill), a
  cheap augmentation for a teacher trained on few images; inference never shifts.
  """
  _require_modality(data, "image", "cnn")
  inputs = _image_input(data)
  hidden = inputs
  if random_shift:
    hidden = tf_keras.layers.RandomTranslation(random_shift, random_shift, fill_mode="constant")(hidden)
  for count in filters:
    hidden = tf_keras.layers.Conv2D(count, kernel_size, padding="same", activation="relu")(hidden)
    hidden = tf_keras.layers.MaxPooling2D(padding="same")(hidden)
  hidden = tf_keras.layers.Flatten()(hidden)
  hidden = tf_keras.layers.Dropout(dropout)(tf_keras.layers.Dense(dense_units, activation="relu")(hidden))
  return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(hidden), name="cnn")


def _word_ids(data: TaskData, architecture: str, sequence_length: int | None):
  """String input and its word ids `[batch, sequence_length]` (0 = padding) from the train-split vocabulary."""
  _require_modality(data, "text", architecture)
  inputs = tf_keras.Input(shape=(), dtype=tf.string, name="text")
  vectorizer = tf_keras.layers.TextVectorization(vocabulary=data.vocabulary,
                                                 output_sequence_length=sequence_length or data.sequence_length)
  return inputs, vectorizer(inputs)


def _recurrent(layer_class, name: str):
  def build(data: TaskData, embedding_dim: int = 64, units: int = 64, dropout: float = 0.2,
            sequence_length: int | None = None) -> tf_keras.Model:
    inputs, ids = _word_ids(data, name, sequence_length)
    embedded = tf_keras.layers.Embedding(len(data.vocabulary), embedding_dim, mask_zero=True)(ids)
    hidden = tf_keras.layers.Bidirectional(layer_class(units))(embedded)
    hidden = tf_keras.layers.Dropout(dropout)(hidden)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(hidden), name=name)

  build.__name__ = f"build_{name}"
  build.__doc__ = (f"Word embeddings, a bidirectional {layer_class.__name__} over the padded words, and a dense "
                   "output layer.")
  return build


build_bilstm = _recurrent(tf_keras.layers.LSTM, "bilstm")
build_bigru = _recurrent(tf_keras.layers.GRU, "bigru")


class AdditiveAttentionPooling(tf_keras.layers.Layer):
  """Pools `[batch, seq, dim]` to `[batch, dim]` with additive attention (Bahdanau et al., 2015).

  Each position gets the score `v . tanh(W h + c)`; padded positions (the Keras mask) get no weight.

  Args:
    units: width of the scoring layer.
  """

  def __init__(self, units: int = 64, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.supports_masking = True
    self.project = tf_keras.layers.Dense(units, activation="tanh")
    self.score = tf_keras.layers.Dense(1, use_bias=False)

  def call(self, inputs, mask=None):
    scores = tf.squeeze(self.score(self.project(inputs)), -1)
    if mask is not None:
      scores += (1.0 - tf.cast(mask, scores.dtype)) * -1e9
    weights = tf.nn.softmax(scores, axis=-1)
    return tf.reduce_sum(inputs * weights[..., None], axis=1)

  def compute_mask(self, inputs, mask=None):
    return None

  def get_config(self):
    return {**super().get_config(), "units": self.units}


def build_attention(data: TaskData, embedding_dim: int = 64, attention_units: int = 64, dropout: float = 0.2,
                    sequence_length: int | None = None) -> tf_keras.Model:
  """Word embeddings pooled by additive attention, then a dense output layer."""
  inputs, ids = _word_ids(data, "attention", sequence_length)
  embedded = tf_keras.layers.Embedding(len(data.vocabulary), embedding_dim, mask_zero=True)(ids)
  pooled = tf_keras.layers.Dropout(dropout)(AdditiveAttentionPooling(attention_units)(embedded))
  return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(pooled), name="attention")


def build_transformer(data: TaskData, embedding_dim: int = 64, num_layers: int = 1, num_heads: int = 2,
                      inner_dim: int = 128, dropout: float = 0.1,
                      sequence_length: int | None = None) -> tf_keras.Model:
  """A small Transformer encoder (tf-models' `TransformerEncoderBlock`) over word and position embeddings, then the
  mean over the words and a dense output layer."""
  from official.nlp.modeling import layers

  from modeling.models import MaskedMean
  length = sequence_length or data.sequence_length
  inputs, ids = _word_ids(data, "transformer", length)
  mask = tf_keras.layers.Lambda(lambda word_ids: tf.cast(word_ids > 0, tf.int32))(ids)
  embedded = tf_keras.layers.Embedding(len(data.vocabulary), embedding_dim)(ids)
  hidden = embedded + layers.PositionEmbedding(max_length=length)(embedded)
  attention_mask = layers.SelfAttentionMask()(hidden, mask)
  for _ in range(num_layers):
    hidden = layers.TransformerEncoderBlock(num_heads, inner_dim, "relu", output_dropout=dropout,
                                            attention_dropout=dropout)([hidden, attention_mask])
  pooled = MaskedMean()(hidden, mask)
  return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(pooled), name="transformer")


class _BertClassifier(tf_keras.Model):
  """Raw strings -> tokenizer ids -> a `modeling` encoder -> pooling -> dropout -> dense logits (float32)."""

  def __init__(self, preprocessor: tf_keras.layers.Layer, encoder: tf_keras.Model, num_outputs: int, dropout: float,
               pooling: str, **kwargs):
    super().__init__(**kwargs)
    self.preprocessor = preprocessor
    self.encoder = encoder
    self.pooling = pooling
    # float32 after the encoder, so that a bfloat16 encoder still gives float32 means and logits.
    from modeling.models import MaskedMean
    self.mean = MaskedMean(dtype=tf.float32)
    self.dropout = tf_keras.layers.Dropout(dropout, dtype=tf.float32)
    self.classifier = tf_keras.layers.Dense(num_outputs, dtype=tf.float32)

  def call(self, texts, training=False):
    inputs = self.preprocessor(texts)
    outputs = self.encoder(inputs, training=training)
    if self.pooling == "mean":
      pooled = self.mean(tf.cast(outputs["sequence_output"], tf.float32), inputs["input_mask"])
    else:
      pooled = tf.cast(outputs["pooled_output"], tf.float32)
    return self.classifier(self.dropout(pooled, training=training))


POOLINGS = ("pooled", "mean")
PRECISIONS = ("float32", "bfloat16")


def build_bert(data: TaskData, config_path: str | None = None, ckpt_path: str | None = None,
               vocab_file: str | None = None, hf_dir: str | None = None, do_lower_case: bool = True,
               max_seq_length: int = 128, dropout: float = 0.1, pooling: str = "pooled",
               precision: str = "float32") -> tf_keras.Model:
  """A BERT-family classifier built by `modeling` (any `model_type` it builds: bert, mpnet, ...).

  The tokenizer comes from the vocabulary, so an MPNet vocab gets MPNet's `<s> A </s>` layout and a BERT vocab
  BERT's `[CLS] A [SEP]` (`modeling.tokenization.build_tokenizer`).

  Args:
    data: a text task.
    config_path: a project, Hugging Face or Google BERT config JSON (`modeling.load_config`).
    ckpt_path: optional checkpoint to restore the encoder from (`modeling.load_encoder`).
    vocab_file: the WordPiece vocabulary matching the config.
    hf_dir: a Hugging Face folder (config.json, model.safetensors, vocab.txt) such as `modeling.assets.minilm_dir()`
      or `modeling.assets.mpnet_dir()`; it stands for the three arguments above, which must then be left out.
    do_lower_case: lower-case before WordPiece.
    max_seq_length: tokens per example, special tokens included.
    dropout: dropout before the classifier.
    pooling: "pooled" (the encoder's pooler on the first token, as BERT's classifiers) or "mean" (the mean of the
      last hidden states over the real tokens, as sentence-transformers trained MiniLM and MPNet).
    precision: "float32", or "bfloat16" for mixed precision (bfloat16 compute, float32 variables and logits); worth
      it only on CPUs with bfloat16 instructions (AVX512_BF16, AMX).
  """
  _require_modality(data, "text", "bert")
  if hf_dir:
    if config_path or ckpt_path or vocab_file:
      raise UserError("the bert architecture takes either hf_dir or config_path/ckpt_path/vocab_file, not both")
    config_path, ckpt_path, vocab_file = (os.path.join(hf_dir, "config.json"), hf_dir,
                                          os.path.join(hf_dir, "vocab.txt"))
  if not config_path or not vocab_file:
    raise UserError("the bert architecture needs hf_dir, or config_path and vocab_file, in its JSON config, e.g. "
                    "--teacher_config '{\"config_path\": \".../config.json\", \"vocab_file\": \".../vocab.txt\"}'")
  if pooling not in POOLINGS:
    raise UserError(f"bert config: pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
  if precision not in PRECISIONS:
    raise UserError(f"bert config: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
  import modeling
  from modeling import tokenization

  tokenizer = tokenization.build_tokenizer(vocab_file=vocab_file, do_lower_case=do_lower_case)
  previous_policy = tf_keras.mixed_precision.global_policy()
  # Layers take the global policy when they are made, so it is set only while this model is built.
  tf_keras.mixed_precision.set_global_policy("float32" if precision == "float32" else "mixed_bfloat16")
  try:
    if ckpt_path:
      encoder = modeling.load_encoder(config_path, ckpt_path)
    else:
      encoder = modeling.build_encoder(modeling.load_config(config_path))
    return _BertClassifier(tokenizer.keras_preprocessor(max_seq_length), encoder, _output_units(data), dropout,
                           pooling, name="bert")
  finally:
    tf_keras.mixed_precision.set_global_policy(previous_policy)


ARCHITECTURES: dict[str, Callable[..., tf_keras.Model]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "bilstm": build_bilstm,
    "bigru": build_bigru,
    "attention": build_attention,
    "transformer": build_transformer,
    "bert": build_bert,
}


def get_architecture(name: str, flag: str = "arch") -> Callable[..., tf_keras.Model]:
  """The builder registered as `name`; a `UserError` naming `--flag` and the choices otherwise."""
  if name not in ARCHITECTURES:
    raise UserError(f"--{flag}: unknown architecture {name!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
  return ARCHITECTURES[name]


def parse_config(text: str | None, flag: str) -> dict[str, Any]:
  """Parses a `--*_config` flag: a JSON object, or the path of a JSON file holding one."""
  if not text:
    return {}
  if os.path.isfile(text):
    with open(text) as f:
      text = f.read()
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    raise UserError(f"--{flag} is neither a JSON object nor a JSON file: {e}") from None
  if not isinstance(config, dict):
    raise UserError(f"--{flag} must be a JSON object, got {type(config).__name__}")
  return config


def build_model(name: str, builder: Callable[..., tf_keras.Model], data: TaskData,
                config: dict[str, Any]) -> tf_keras.Model:
  """Calls `builder(data, **config)`, turning unknown config keys into a `UserError` that lists the known ones."""
  known = [parameter for parameter in inspect.signature(builder).parameters if parameter != "data"]
  unknown = sorted(set(config) - set(known))
  if unknown:
    raise UserError(f"unknown config key(s) {unknown} for architecture {name!r}; known: {known}")
  return builder(data, **config)
