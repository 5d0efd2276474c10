"""A BERT masked language model from a Hugging Face `BertForMaskedLM` folder, for word-replacement candidates.

The encoder is this project's `build_encoder` restored by the Hugging Face importer (tensor names with the `bert.`
prefix); the head is BERT's `cls.predictions`: dense + activation + LayerNorm, then the decoder tied to the word
embeddings plus a per-token bias. TinyBERT's data augmentation asks it for the K most likely words at a `[MASK]`.
Only the head's logits at the masked positions are computed, so a batch costs one encoder pass plus a
`[batch, hidden] x [hidden, vocab]` product.
"""

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from modeling import checkpoints, encoders, tokenization
from modeling.config import load_config
from modeling.errors import UserError

_HEAD = "cls.predictions."


class MaskedLmHead(tf_keras.layers.Layer):
  """BERT's masked-LM head on hidden states: LayerNorm(act(h W + b)) E^T + bias, with E the word embeddings.

  Args:
    vocab_size: number of output tokens.
    hidden_size: width of the encoder's hidden states.
    activation: the encoder's `hidden_act` name.
    norm_epsilon: the LayerNorm epsilon.
  """

  def __init__(self, vocab_size: int, hidden_size: int, activation: str = "gelu", norm_epsilon: float = 1e-12,
               **kwargs):
    super().__init__(**kwargs)
    self._config = {"vocab_size": vocab_size, "hidden_size": hidden_size, "activation": activation,
                    "norm_epsilon": norm_epsilon}
    self.transform = tf_keras.layers.Dense(hidden_size, activation=encoders._activation(activation),
                                           name="transform")
    self.layer_norm = tf_keras.layers.LayerNormalization(epsilon=norm_epsilon, name="layer_norm")
    self.transform.build([None, hidden_size])
    self.layer_norm.build([None, hidden_size])
    self.decoder = self.add_weight("decoder", [vocab_size, hidden_size], initializer="zeros")
    self.output_bias = self.add_weight("output_bias", [vocab_size], initializer="zeros")

  def call(self, hidden: tf.Tensor) -> tf.Tensor:
    """Logits `[..., vocab_size]` of hidden states `[..., hidden_size]`."""
    x = self.layer_norm(self.transform(hidden))
    return tf.matmul(x, self.decoder, transpose_b=True) + self.output_bias

  def get_config(self):
    return dict(super().get_config(), **self._config)


class MaskedLanguageModel:
  """An encoder, its masked-LM head and the WordPiece tokenizer of its vocab; build it with `load_masked_lm`.

  Attributes:
    encoder: the encoder (`modeling.build_encoder`).
    head: its `MaskedLmHead`.
    tokenizer: the `modeling.tokenization.Tokenizer` of the folder's vocab.txt.
    vocab: the WordPiece tokens in id order.
    mask_id: the id of `[MASK]`.
    max_seq_length: the encoder's number of positions.
  """

  def __init__(self, encoder: tf_keras.Model, head: MaskedLmHead, tokenizer: tokenization.Tokenizer,
               vocab: Sequence[str], max_seq_length: int):
    self.encoder, self.head, self.tokenizer = encoder, head, tokenizer
    self.vocab = list(vocab)
    self.mask_id = self.vocab.index("[MASK]")
    self.max_seq_length = max_seq_length
    self._logits_fn = tf.function(self._logits_at, reduce_retracing=True, input_signature=[
        tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)])

  def _logits_at(self, word_ids, input_mask, positions):
    outputs = self.encoder({"input_word_ids": word_ids, "input_mask": input_mask,
                            "input_type_ids": tf.zeros_like(word_ids)}, training=False)
    hidden = tf.gather(outputs["sequence_output"], positions, batch_dims=1)
    return self.head(tf.cast(hidden, tf.float32))

  def logits_at(self, word_ids: np.ndarray, input_mask: np.ndarray, positions: np.ndarray) -> tf.Tensor:
    """The head's logits `[batch, vocab]` at one position of each sequence (`[batch, seq]` ids and mask)."""
    return self._logits_fn(tf.constant(word_ids, tf.int32), tf.constant(input_mask, tf.int32),
                           tf.constant(positions, tf.int32))


def _read_head(folder: str, vocab_size: int, hidden_size: int) -> dict[str, np.ndarray]:
  tensors = checkpoints._read_safetensors(folder)
  names = {"transform": "transform.dense.weight", "transform_bias": "transform.dense.bias",
           "gamma": "transform.LayerNorm.weight", "beta": "transform.LayerNorm.bias"}
  found = {key: tensors.get(_HEAD + name) for key, name in names.items()}
  found["bias"] = tensors.get(_HEAD + "bias", tensors.get(_HEAD + "decoder.bias"))
  missing = [_HEAD + names.get(key, "bias") for key, value in found.items() if value is None]
  if missing:
    raise UserError(f"--mlm_path {folder}: no masked-LM head ({', '.join(missing)} missing); it must be a "
                    "BertForMaskedLM (or BertForPreTraining) checkpoint")
  # HF ties the decoder to the word embeddings and usually leaves it out of the file.
  decoder = tensors.get(_HEAD + "decoder.weight")
  if decoder is None:
    decoder = next(tensors[name] for name in ("bert.embeddings.word_embeddings.weight",
                                              "embeddings.word_embeddings.weight") if name in tensors)
  found["decoder"] = decoder
  expected = {"transform": [hidden_size, hidden_size], "decoder": [vocab_size, hidden_size], "bias": [vocab_size]}
  for key, shape in expected.items():
    if list(found[key].shape) != shape:
      raise UserError(f"--mlm_path {folder}: masked-LM head tensor {key} is {list(found[key].shape)}, the config "
                      f"needs {shape}")
  return found


def load_masked_lm(folder: str) -> MaskedLanguageModel:
  """Loads a Hugging Face `BertForMaskedLM` folder: config.json, model.safetensors and vocab.txt.

  The encoder must be a BERT-style model (`model_type` bert); its tensors may carry the `bert.` prefix and may lack
  the pooler, which a masked LM does not have (the encoder's pooler is then left at its random start and unused).

  Raises:
    UserError: a missing file, a model without the `cls.predictions` head, or tensors that do not fit the config.
  """
  for name in ("config.json", checkpoints.SAFETENSORS_FILE, "vocab.txt"):
    if not os.path.isfile(os.path.join(folder, name)):
      raise UserError(f"--mlm_path {folder}: {name} not found; expected a Hugging Face BertForMaskedLM folder "
                      "(config.json, model.safetensors, vocab.txt)")
  config = load_config(os.path.join(folder, "config.json"))
  if config.model_type not in ("bert", "tinybert"):
    raise UserError(f"--mlm_path {folder}: model_type {config.model_type!r}; only BERT masked LMs are read")
  tokenizer = tokenization.build_tokenizer(os.path.join(folder, "vocab.txt"), vocab_flag="mlm_path")
  with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:
    vocab = tokenization.wordpiece_tokens(f.read())
  if "[MASK]" not in vocab:
    raise UserError(f"--mlm_path {folder}: vocab.txt has no [MASK] token")
  if len(vocab) != config.vocab_size:
    raise UserError(f"--mlm_path {folder}: vocab.txt has {len(vocab)} tokens, config.json says vocab_size "
                    f"{config.vocab_size}")
  head_tensors = _read_head(folder, config.vocab_size, config.hidden_size)
  encoder = encoders.build_encoder(config)
  match = checkpoints._match_hf(encoder.garden_network, config, folder)
  match.problems = [problem for problem in match.problems if "pooler" not in problem]
  match.check(folder, config)
  match.assign()
  head = MaskedLmHead(config.vocab_size, config.hidden_size, config.hidden_act, config.layer_norm_eps)
  head.transform.kernel.assign(head_tensors["transform"].T)
  head.transform.bias.assign(head_tensors["transform_bias"])
  head.layer_norm.gamma.assign(head_tensors["gamma"])
  head.layer_norm.beta.assign(head_tensors["beta"])
  head.decoder.assign(head_tensors["decoder"])
  head.output_bias.assign(head_tensors["bias"])
  return MaskedLanguageModel(encoder, head, tokenizer, vocab, config.max_sequence_length)
