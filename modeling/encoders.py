"""Encoders for every supported family, with the one output interface that distillation needs.

Each family is built on `official.nlp.modeling.networks` (BERT-style families on `BertEncoderV2`, MobileBERT on
`MobileBERTEncoder`), or on its layers (MPNet: `TransformerEncoderBlock` and `RelativePositionBias`). The only
change is in attention: Keras' `MultiHeadAttention` returns softmax probabilities, while TinyBERT's attention loss
uses the scores *before* softmax, so every attention layer is switched to `AttentionWithLogits`, which returns the
raw scaled scores instead. The output dict of every encoder is:

  hidden_states:    L+1 tensors [batch, seq, hidden]; index 0 is the embedding output.
  attention_logits: L tensors [batch, heads, seq, seq], before softmax and before masking; the masked key
                    positions are those where `input_mask` is 0. MPNet's include its relative position bias.
  sequence_output:  hidden_states[-1].
  pooled_output:    the pooler's output on the first token.

Only when asked (`build_encoder(config, expose_qkv=True)`, or `set_expose_qkv(model)` on a built model), the dict also
has what MiniLM's relation losses read:

  attention_qkv:    L tuples (query, key, value), each [batch, heads, seq, head_dim]: the projections (bias
                    included) before the 1/sqrt(head_dim) scaling, in the order the heads concatenate.
"""

import math

import tensorflow as tf
import tf_keras
from official.modeling import activations as tfm_activations
from official.modeling import tf_utils
from official.nlp.modeling import layers as tfm_layers
from official.nlp.modeling import networks
from official.nlp.modeling.layers import masked_softmax

from modeling.config import APPROXIMATE_GELU, ModelConfig

EncoderOutputs = dict[str, object]


class AttentionWithLogits(tf_keras.layers.MultiHeadAttention):
  """`MultiHeadAttention` that returns the pre-softmax scores in place of the probabilities.

  The attention output is unchanged. When called with `return_attention_scores=True`, the second output is the
  scaled dot product `q·k/sqrt(d)` of shape [batch, heads, query, key], before the mask is applied: the softmax
  of these logits under the mask equals the probabilities the parent class would return.

  With `expose_qkv` set (see `set_expose_qkv`), the second output is instead the tuple `(logits, query, key, value)`,
  the last three [batch, heads, seq, head_dim]; the blocks and encoders of tf-models pass it through untouched, and
  `split_attention_scores` takes it apart.
  """

  expose_qkv = False  # A class default, so that a layer whose class is swapped in has it too.

  def _compute_attention(self, query, key, value, attention_mask=None, training=None):
    scaled_query = tf.multiply(query, 1.0 / math.sqrt(float(self._key_dim)))
    logits = tf.einsum(self._dot_product_equation, key, scaled_query)
    probs = self._masked_softmax(logits, attention_mask)
    probs = self._dropout_layer(probs, training=training)
    output = tf.einsum(self._combine_equation, probs, value)
    if not self.expose_qkv:
      return output, logits
    heads_first = [tf.transpose(x, [0, 2, 1, 3]) for x in (query, key, value)]  # [batch, seq, heads, dim] in.
    return output, (logits, *heads_first)


def split_attention_scores(scores) -> tuple[list, list | None]:
  """Takes the per-layer attention outputs of an encoder apart into (attention_logits, attention_qkv or None).

  Args:
    scores: one entry per layer, each the logits or, from an `AttentionWithLogits` with `expose_qkv`, the tuple
      (logits, query, key, value).
  """
  scores = list(scores)
  if not scores or not isinstance(scores[0], (tuple, list)):
    return scores, None
  return [entry[0] for entry in scores], [tuple(entry[1:]) for entry in scores]


def _encoder_outputs(hidden_states, scores, pooled_output) -> EncoderOutputs:
  attention_logits, attention_qkv = split_attention_scores(scores)
  outputs = {"hidden_states": hidden_states, "attention_logits": attention_logits,
             "sequence_output": hidden_states[-1], "pooled_output": pooled_output}
  if attention_qkv is not None:
    outputs["attention_qkv"] = attention_qkv
  return outputs


def set_expose_qkv(model: tf_keras.Model, enabled: bool = True) -> tf_keras.Model:
  """Makes every encoder inside `model` add `attention_qkv` to its outputs (or stop, with `enabled=False`).

  The other outputs are unchanged. Call it before the model is traced into a `tf.function`: a function already
  traced keeps the outputs it was traced with.

  Args:
    model: an encoder from `build_encoder`, or any model holding one (e.g. a `modeling.models.TaskModel`).
    enabled: whether to add the output.

  Returns:
    `model`, for chaining.

  Raises:
    ValueError: when `model` holds no `AttentionWithLogits` layer.
  """
  layers = [layer for layer in model.submodules if isinstance(layer, AttentionWithLogits)]
  if not layers:
    raise ValueError(f"{model.name} has no AttentionWithLogits layer; build it with modeling.build_encoder")
  for layer in layers:
    layer.expose_qkv = enabled
  return model


def _return_logits(attention_layer: tf_keras.layers.MultiHeadAttention) -> None:
  # Swapping the class keeps the layer's name, variables and checkpoint dependencies exactly as tf-models built
  # them; only `_compute_attention` changes.
  if type(attention_layer) is not tf_keras.layers.MultiHeadAttention:
    raise TypeError(f"expected a Keras MultiHeadAttention, got {type(attention_layer).__name__}")
  attention_layer.__class__ = AttentionWithLogits


class _LogitsTransformerBlock(tfm_layers.TransformerEncoderBlock):
  """A `TransformerEncoderBlock` whose attention scores are logits (see `AttentionWithLogits`)."""

  def build(self, input_shape):
    super().build(input_shape)
    _return_logits(self._attention_layer)


def _activation(name: str):
  if name in APPROXIMATE_GELU:
    return tfm_activations.gelu  # The tanh approximation, registered for serialization.
  return {"silu": "swish"}.get(name, name)  # "gelu" is tf_keras' exact erf GELU.


class BertFamilyEncoder(networks.BertEncoderV2):
  """`BertEncoderV2` that outputs every hidden state and every layer's attention logits.

  Serves BERT, RoBERTa, TinyBERT and (with `share_layers=True` and an `embedding_width`) ALBERT. Its variables and
  attribute names are those of `BertEncoderV2`, so TF Model Garden checkpoints of `BertEncoderV2` restore into it.

  Args:
    share_layers: use one transformer block for every layer, as ALBERT does.
    norm_epsilon: the LayerNorm epsilon of the embeddings and every block.
    **kwargs: `BertEncoderV2` arguments.
  """

  def __init__(self, *, share_layers: bool = False, norm_epsilon: float = 1e-12, **kwargs):
    kwargs.pop("return_attention_scores", None)
    kwargs.pop("return_word_embeddings", None)
    super().__init__(return_attention_scores=True, return_word_embeddings=True, **kwargs)
    blocks = []
    for block in self._transformer_layers:
      if share_layers and blocks:
        blocks.append(blocks[0])
        continue
      block_config = dict(block.get_config(), norm_epsilon=norm_epsilon, return_attention_scores=True)
      blocks.append(_LogitsTransformerBlock.from_config(block_config))
    self._transformer_layers = blocks
    self._embedding_norm_layer.epsilon = norm_epsilon
    self._config.update(share_layers=share_layers, norm_epsilon=norm_epsilon)

  def call(self, inputs) -> EncoderOutputs:
    outputs = super().call(inputs)
    return _encoder_outputs([outputs["word_embeddings"]] + list(outputs["encoder_outputs"]),
                            outputs["attention_scores"], outputs["pooled_output"])

  @property
  def garden_network(self) -> tf_keras.Model:
    """The tf-models network whose object graph TF Model Garden checkpoints follow."""
    return self


class MobileBertFamilyEncoder(tf_keras.Model):
  """tf-models' `MobileBERTEncoder`, run layer by layer so that attention logits come out.

  `MobileBERTEncoder` is a functional model whose graph is fixed when it is built, so this model keeps it as
  `garden_network` (its variables, for checkpoints) and calls its embedding, transformer and pooler layers itself.

  Args:
    **kwargs: `MobileBERTEncoder` arguments.
  """

  def __init__(self, **kwargs):
    super().__init__(name=kwargs.pop("name", "mobile_bert_encoder"))
    self._network = networks.MobileBERTEncoder(**kwargs)
    for layer in self._network.transformer_layers:
      _return_logits(layer.block_layers["attention"][0])
    self._attention_mask_layer = tfm_layers.SelfAttentionMask()
    self._config = dict(kwargs)

  @property
  def garden_network(self) -> tf_keras.Model:
    return self._network

  def call(self, inputs) -> EncoderOutputs:
    word_ids = inputs["input_word_ids"]
    embeddings = self._network.embedding_layer(word_ids, inputs["input_type_ids"])
    attention_mask = self._attention_mask_layer(embeddings, inputs["input_mask"])
    hidden_states, attention_scores = [embeddings], []
    x = embeddings
    for layer in self._network.transformer_layers:
      x, scores = layer(x, attention_mask, return_attention_scores=True)
      hidden_states.append(x)
      attention_scores.append(scores)
    first_token = x[:, 0, :]
    pooler = self._network.pooler_layer
    pooled = pooler(first_token) if pooler is not None else first_token
    return _encoder_outputs(hidden_states, attention_scores, pooled)

  def get_config(self):
    return dict(self._config)


class _RelativeBiasAttention(AttentionWithLogits):
  """`AttentionWithLogits` whose `attention_mask` is an additive float bias, added to the scores before softmax.

  MPNet adds a relative position bias to every head's scores; passing it, together with the padding mask, as one
  additive tensor through the mask argument lets tf-models' `TransformerEncoderBlock` carry it unchanged. The
  returned logits are the scaled dot products without the bias: the encoder adds the bias to them itself.
  """

  def _masked_softmax(self, attention_scores, attention_mask=None):
    if attention_mask is not None:
      attention_scores += tf.cast(attention_mask, attention_scores.dtype)
    return tf.nn.softmax(attention_scores, axis=-1)


class _RelativeBiasTransformerBlock(tfm_layers.TransformerEncoderBlock):
  """A `TransformerEncoderBlock` whose attention mask input is an additive bias (see `_RelativeBiasAttention`)."""

  def build(self, input_shape):
    super().build(input_shape)
    _return_logits(self._attention_layer)
    self._attention_layer.__class__ = _RelativeBiasAttention


class MPNetFamilyEncoder(tf_keras.Model):
  """MPNet: post-LayerNorm BERT blocks plus a relative position bias shared by every layer, on tf-models layers.

  Embeddings are word + absolute position (no token types; `input_type_ids` is ignored), numbered as RoBERTa
  does: the i-th unmasked token gets position `pad_token_id + i` (from 1), masked tokens get `pad_token_id`. One
  T5-style table of [buckets, heads] biases (tf-models' `RelativePositionBias`, bidirectional buckets of the
  query-to-key distance) is looked up once and added to every layer's scores; `attention_logits` include it.
  Variable names follow `BertEncoderV2` (`word_embeddings`, `position_embedding`, `embeddings/layer_norm`,
  `transformer/layer_N`, `pooler_transform`) plus `relative_attention_bias`.

  Args:
    vocab_size ... initializer: as for `BertEncoderV2`; `max_sequence_length` is the size of the position table.
    pad_token_id: the padding id, after which positions are numbered.
    relative_attention_num_buckets: buckets of the relative position bias.
    relative_attention_max_distance: distances at or beyond it share the last bucket.
    norm_epsilon: the LayerNorm epsilon of the embeddings and every block.
  """

  def __init__(self, *, vocab_size: int, hidden_size: int, num_layers: int, num_attention_heads: int,
               max_sequence_length: int, inner_dim: int, inner_activation, output_dropout: float,
               attention_dropout: float, initializer, pad_token_id: int = 1, relative_attention_num_buckets: int = 32,
               relative_attention_max_distance: int = 128, norm_epsilon: float = 1e-5, name: str = "mpnet_encoder"):
    super().__init__(name=name)
    self._config = {"vocab_size": vocab_size, "hidden_size": hidden_size, "num_layers": num_layers,
                    "num_attention_heads": num_attention_heads, "max_sequence_length": max_sequence_length,
                    "inner_dim": inner_dim, "inner_activation": inner_activation, "output_dropout": output_dropout,
                    "attention_dropout": attention_dropout,
                    "initializer": tf_keras.initializers.serialize(initializer), "pad_token_id": pad_token_id,
                    "relative_attention_num_buckets": relative_attention_num_buckets,
                    "relative_attention_max_distance": relative_attention_max_distance, "norm_epsilon": norm_epsilon}
    self._pad_token_id = pad_token_id

    def init():  # A stateless initializer repeats its values when reused, so every layer gets its own.
      return tf_utils.clone_initializer(initializer)

    self._embedding_layer = tfm_layers.OnDeviceEmbedding(vocab_size, hidden_size, initializer=init(),
                                                         name="word_embeddings")
    self._position_embedding_layer = tfm_layers.OnDeviceEmbedding(max_sequence_length, hidden_size,
                                                                  initializer=init(), name="position_embedding")
    self._embedding_norm_layer = tf_keras.layers.LayerNormalization(axis=-1, epsilon=norm_epsilon,
                                                                    name="embeddings/layer_norm")
    self._embedding_dropout = tf_keras.layers.Dropout(output_dropout, name="embedding_dropout")
    self._relative_position_bias = tfm_layers.RelativePositionBias(
        num_attention_heads, relative_attention_num_buckets, relative_attention_max_distance, bidirectional=True,
        embeddings_initializer=init(), name="relative_attention_bias")
    self._transformer_layers = [
        _RelativeBiasTransformerBlock(
            num_attention_heads=num_attention_heads, inner_dim=inner_dim, inner_activation=inner_activation,
            output_dropout=output_dropout, attention_dropout=attention_dropout, norm_first=False,
            norm_epsilon=norm_epsilon, kernel_initializer=init(), return_attention_scores=True,
            name=f"transformer/layer_{i}")
        for i in range(num_layers)]
    self._pooler_layer = tf_keras.layers.Dense(hidden_size, activation="tanh", kernel_initializer=init(),
                                               name="pooler_transform")

  @property
  def garden_network(self) -> tf_keras.Model:
    return self

  def call(self, inputs, training=None) -> EncoderOutputs:
    word_ids, mask = inputs["input_word_ids"], tf.cast(inputs["input_mask"], tf.int32)
    positions = tf.cumsum(mask, axis=1) * mask + self._pad_token_id
    embeddings = self._embedding_layer(word_ids) + self._position_embedding_layer(positions)
    embeddings = self._embedding_dropout(self._embedding_norm_layer(embeddings), training=training)
    position_bias = self._relative_position_bias(embeddings, embeddings)  # [batch, heads, seq, seq]
    dtype = embeddings.dtype
    # Masked keys get the large negative score tf-models' masked softmax adds (-1e9, or half of float16's minimum),
    # looked up at trace time so that the int8 TFLite conversion's smaller value (modeling.tflite) reaches it too.
    large_negative = (masked_softmax._large_compatible_negative(dtype) if dtype in (tf.float32, tf.float16)
                      else tf.dtypes.as_dtype(dtype).min / 2)
    key_mask = tf.cast(mask[:, tf.newaxis, tf.newaxis, :], dtype)
    additive = tf.cast(position_bias, dtype) + (1.0 - key_mask) * large_negative
    hidden_states, scores = [embeddings], []
    x = embeddings
    for layer in self._transformer_layers:
      x, layer_scores = layer([x, additive], training=training)
      hidden_states.append(x)
      # The layer returns the scaled dot products without the bias (with `expose_qkv`, as the tuple's first item).
      if isinstance(layer_scores, (tuple, list)):
        layer_scores = (layer_scores[0] + tf.cast(position_bias, layer_scores[0].dtype), *layer_scores[1:])
      else:
        layer_scores = layer_scores + tf.cast(position_bias, layer_scores.dtype)
      scores.append(layer_scores)
    return _encoder_outputs(hidden_states, scores, self._pooler_layer(x[:, 0, :]))

  def get_config(self):
    return dict(self._config)


def _dummy_inputs(batch: int = 1, seq: int = 4) -> dict[str, tf.Tensor]:
  ones = tf.ones([batch, seq], tf.int32)
  return {"input_word_ids": ones, "input_mask": ones, "input_type_ids": tf.zeros_like(ones)}


def build_encoder(config: ModelConfig, expose_qkv: bool = False) -> tf_keras.Model:
  """Builds the encoder of `config`'s family, with freshly initialized variables.

  Args:
    config: a `ModelConfig` from `modeling.load_config`.
    expose_qkv: also output `attention_qkv` (see `set_expose_qkv`), for MiniLM's relation losses.

  Returns:
    A `tf_keras.Model` taking a dict of int32 [batch, seq] tensors `input_word_ids`, `input_mask` and
    `input_type_ids`, and returning the dict described in this module's docstring. Its variables exist on return.
  """
  initializer = tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range)
  if config.model_type == "mobilebert":
    encoder = MobileBertFamilyEncoder(
        word_vocab_size=config.vocab_size, word_embed_size=config.embedding_size or 128,
        type_vocab_size=config.type_vocab_size, max_sequence_length=config.max_sequence_length,
        num_blocks=config.num_hidden_layers, hidden_size=config.hidden_size,
        num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
        intermediate_act_fn=_activation(config.hidden_act), hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        intra_bottleneck_size=config.intra_bottleneck_size, initializer_range=config.initializer_range,
        use_bottleneck_attention=config.use_bottleneck_attention,
        key_query_shared_bottleneck=config.key_query_shared_bottleneck,
        num_feedforward_networks=config.num_feedforward_networks,
        normalization_type=config.normalization_type, classifier_activation=True)
  elif config.model_type == "mpnet":
    encoder = MPNetFamilyEncoder(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, max_sequence_length=config.max_position_embeddings,
        inner_dim=config.intermediate_size, inner_activation=_activation(config.hidden_act),
        output_dropout=config.hidden_dropout_prob, attention_dropout=config.attention_probs_dropout_prob,
        initializer=initializer, pad_token_id=config.pad_token_id,
        relative_attention_num_buckets=config.relative_attention_num_buckets, norm_epsilon=config.layer_norm_eps)
  else:
    is_albert = config.model_type == "albert"
    encoder = BertFamilyEncoder(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, max_sequence_length=config.max_sequence_length,
        type_vocab_size=config.type_vocab_size, inner_dim=config.intermediate_size,
        inner_activation=_activation(config.hidden_act), output_dropout=config.hidden_dropout_prob,
        attention_dropout=config.attention_probs_dropout_prob, initializer=initializer,
        embedding_width=config.embedding_size if is_albert else None, share_layers=is_albert,
        norm_epsilon=config.layer_norm_eps)
  encoder(_dummy_inputs())  # Builds the variables; tf-models' blocks create their attention layers only now.
  if expose_qkv:
    set_expose_qkv(encoder)
  return encoder
