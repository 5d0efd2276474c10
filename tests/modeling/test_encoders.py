"""Every family's encoder: output lengths and shapes, and attention logits that are the layer's pre-softmax scores."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from modeling import build_encoder
from modeling.config import config_from_dict
from modeling.encoders import AttentionWithLogits, set_expose_qkv

BASE = {"vocab_size": 60, "hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 24,
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 40,
            "type_vocab_size": 2, "initializer_range": 0.02}
FAMILIES = {
    "bert": {},
    "tinybert": {},
    "roberta": {"type_vocab_size": 1, "pad_token_id": 1, "max_position_embeddings": 42, "layer_norm_eps": 1e-5},
    "albert": {"embedding_size": 8, "hidden_act": "gelu_new"},
    "mobilebert": {"hidden_size": 32, "true_hidden_size": 16, "intra_bottleneck_size": 16, "embedding_size": 8,
                       "num_feedforward_networks": 2, "hidden_act": "relu"},
}


def _inputs(batch=2, seq=9, type_ids=True):
  rng = np.random.default_rng(0)
  ids = rng.integers(2, 60, (batch, seq))
  mask = np.ones((batch, seq), np.int32)
  mask[1, 5:] = 0
  types = np.zeros((batch, seq), np.int32)
  if type_ids:
    types[:, 4:] = 1
  return {"input_word_ids": tf.constant(ids, tf.int32), "input_mask": tf.constant(mask),
              "input_type_ids": tf.constant(types)}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
  config = config_from_dict(dict(BASE, model_type=request.param, **FAMILIES[request.param]))
  return request.param, config, build_encoder(config)


def test_output_lengths_and_shapes(family):
  _, config, encoder = family
  inputs = _inputs(type_ids=config.type_vocab_size > 1)
  outputs = encoder(inputs, training=False)
  width = config.hidden_size
  assert len(outputs["hidden_states"]) == config.num_hidden_layers + 1
  assert len(outputs["attention_logits"]) == config.num_hidden_layers
  for hidden in outputs["hidden_states"]:
    assert hidden.shape == (2, 9, width)
  for logits in outputs["attention_logits"]:
    assert logits.shape == (2, config.num_attention_heads, 9, 9)
  np.testing.assert_array_equal(outputs["sequence_output"], outputs["hidden_states"][-1])
  assert outputs["pooled_output"].shape == (2, width)


def _attention_layers(encoder):
  return [layer for layer in encoder.submodules if isinstance(layer, AttentionWithLogits)]


def test_softmax_of_logits_under_mask_equals_layer_probabilities(family):
  _, config, encoder = family
  inputs = _inputs(type_ids=config.type_vocab_size > 1)
  logits = encoder(inputs, training=False)["attention_logits"]
  layers = _attention_layers(encoder)
  assert layers, "no attention layer returns logits"
  for layer in layers:  # The stock Keras layer returns softmax probabilities from the same call.
    layer.__class__ = tf_keras.layers.MultiHeadAttention
  try:
    probabilities = encoder(inputs, training=False)["attention_logits"]
  finally:
    for layer in layers:
      layer.__class__ = AttentionWithLogits
  key_mask = inputs["input_mask"].numpy()[:, None, None, :].astype(bool)
  for z, p in zip(logits, probabilities):
    z = np.where(key_mask, z.numpy().astype(np.float64), -np.inf)
    expected = np.exp(z - z.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(p.numpy(), expected, atol=1e-6)
    assert not np.allclose(p.numpy(), np.where(key_mask, z, 0))  # Logits are not probabilities.


def test_albert_shares_one_block_across_depth():
  config = config_from_dict(dict(BASE, model_type="albert", embedding_size=8))
  encoder = build_encoder(config)
  blocks = encoder._transformer_layers
  assert len(blocks) == 3 and all(block is blocks[0] for block in blocks)
  bert = build_encoder(config_from_dict(dict(BASE, model_type="bert")))
  assert len(encoder.trainable_variables) < len(bert.trainable_variables)


def test_exact_and_approximate_gelu_differ():
  exact = build_encoder(config_from_dict(dict(BASE, model_type="bert")))
  approx = build_encoder(config_from_dict(dict(BASE, model_type="bert", hidden_act="gelu_new")))
  approx.set_weights(exact.get_weights())
  inputs = _inputs()
  a = exact(inputs, training=False)["sequence_output"].numpy()
  b = approx(inputs, training=False)["sequence_output"].numpy()
  assert 0 < np.abs(a - b).max() < 1e-2


def test_exposed_queries_keys_values_leave_the_other_outputs_unchanged(family):
  name, config, encoder = family
  inputs = _inputs(type_ids=config.type_vocab_size > 1)
  plain = encoder(inputs, training=False)
  assert "attention_qkv" not in plain
  set_expose_qkv(encoder)
  try:
    exposed = encoder(inputs, training=False)
  finally:
    set_expose_qkv(encoder, False)
  assert sorted(exposed) == sorted([*plain, "attention_qkv"])
  for key in plain:
    for a, b in zip(tf.nest.flatten(plain[key]), tf.nest.flatten(exposed[key])):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
  qkv = exposed["attention_qkv"]
  assert len(qkv) == config.num_hidden_layers
  heads = config.num_attention_heads
  head_dim = (16 if name == "mobilebert" else config.hidden_size) // heads  # MobileBERT attends in its bottleneck.
  for layer, (q, k, v) in enumerate(qkv):
    for x in (q, k, v):
      assert x.shape == (2, heads, 9, head_dim)
    # The logits are the scaled dot products of exactly these queries and keys.
    expected = np.einsum("bhqd,bhkd->bhqk", q.numpy(), k.numpy()) / np.sqrt(head_dim)
    np.testing.assert_allclose(plain["attention_logits"][layer].numpy(), expected, rtol=1e-5, atol=1e-5)
    if name != "mobilebert":  # The block's input is the previous hidden state; MobileBERT's is a bottleneck of it.
      attention = encoder._transformer_layers[layer]._attention_layer
      previous = plain["hidden_states"][layer]
      for x, dense in ((q, attention._query_dense), (k, attention._key_dense), (v, attention._value_dense)):
        np.testing.assert_allclose(x.numpy(), np.transpose(dense(previous).numpy(), [0, 2, 1, 3]), rtol=1e-5,
                                   atol=1e-6)


def test_build_encoder_exposes_qkv_inside_a_tf_function():
  encoder = build_encoder(config_from_dict(dict(BASE, model_type="albert", embedding_size=8)), expose_qkv=True)
  values = tf.function(lambda inputs: [v for _, _, v in encoder(inputs)["attention_qkv"]])(_inputs())
  assert len(values) == 3 and values[0].shape == (2, 4, 9, 4)
  assert not np.allclose(values[0].numpy(), values[1].numpy())  # ALBERT's shared block, called once per layer.
