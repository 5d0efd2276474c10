"""The MPNet family: a NumPy reference forward pass, Hugging Face import, TF2 round trip, and the real
all-mpnet-base-v2 teacher against a PyTorch + transformers reference (tests/fixtures/mpnet_reference.npz, made once
by tests/fixtures/make_mpnet_reference.py)."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file

import modeling
from modeling import assets
from modeling.checkpoints import restore_encoder
from modeling.config import config_from_dict, load_config
from modeling.encoders import build_encoder
from modeling.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "mpnet_reference.npz")

# Eight buckets put every distance from 2 on in the logarithmic buckets, so short sequences exercise them.
TINY = {"model_type": "mpnet", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 24, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 14, "initializer_range": 0.02,
        "layer_norm_eps": 1e-5, "pad_token_id": 1, "relative_attention_num_buckets": 8}
WORD_IDS = np.array([[0, 5, 9, 13, 7, 22, 30, 11, 3, 2], [0, 17, 4, 2, 1, 1, 1, 1, 1, 1]], np.int32)
MASK = (WORD_IDS != 1).astype(np.int32)


def _inputs(word_ids=WORD_IDS, mask=MASK, type_ids=None):
  return {"input_word_ids": tf.constant(word_ids), "input_mask": tf.constant(mask),
          "input_type_ids": tf.constant(np.zeros_like(word_ids) if type_ids is None else type_ids)}


# ---------------------------------------------------------------------------------------------------------------
# Independent NumPy reference (float64), written from the MPNet paper's and Hugging Face's description.


def _bucket(relative, num_buckets, max_distance=128):
  """T5's bidirectional bucket of `relative` = key position - query position."""
  half = num_buckets // 2
  exact = half // 2
  distance = np.abs(relative)
  logarithmic = exact + (np.log(np.maximum(distance, 1) / exact) / math.log(max_distance / exact)
                         * (half - exact)).astype(np.int64)
  return np.where(relative > 0, half, 0) + np.where(distance < exact, distance, np.minimum(logarithmic, half - 1))


def _layer_norm(x, weight, bias, eps):
  mean = x.mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps) * weight + bias


def _linear(t, name, x):
  return x @ t[name + ".weight"].astype(np.float64).T + t[name + ".bias"]


def reference_forward(t, word_ids, mask, heads, num_buckets, eps=1e-5, pad=1, prefix=""):
  """Hidden states, attention logits (with the position bias, before masking) and pooled output."""
  t = {k[len(prefix):]: v.astype(np.float64) for k, v in t.items() if k.startswith(prefix)}
  positions = np.cumsum(mask, axis=1) * mask + pad
  x = t["embeddings.word_embeddings.weight"][word_ids] + t["embeddings.position_embeddings.weight"][positions]
  x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
  seq = word_ids.shape[1]
  relative = np.arange(seq)[None, :] - np.arange(seq)[:, None]
  bias = t["encoder.relative_attention_bias.weight"][_bucket(relative, num_buckets)].transpose(2, 0, 1)[None]
  hidden, all_logits = [x], []
  batch, _, width = x.shape
  size = width // heads
  for i in range(sum(1 for k in t if k.endswith("attention.attn.q.weight"))):
    p = f"encoder.layer.{i}."

    def split(y):
      return y.reshape(batch, seq, heads, size).transpose(0, 2, 1, 3)

    q, k, v = (split(_linear(t, p + f"attention.attn.{n}", x)) for n in "qkv")
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + bias
    all_logits.append(logits)
    scores = np.where(mask[:, None, None, :] == 1, logits, -np.inf)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, width)
    x = _layer_norm(_linear(t, p + "attention.attn.o", context) + x, t[p + "attention.LayerNorm.weight"],
                    t[p + "attention.LayerNorm.bias"], eps)
    inner = _linear(t, p + "intermediate.dense", x)
    inner = 0.5 * inner * (1.0 + np.vectorize(math.erf)(inner / math.sqrt(2.0)))
    x = _layer_norm(_linear(t, p + "output.dense", inner) + x, t[p + "output.LayerNorm.weight"],
                    t[p + "output.LayerNorm.bias"], eps)
    hidden.append(x)
  pooled = np.tanh(_linear(t, "pooler.dense", x[:, 0])) if "pooler.dense.weight" in t else None
  return hidden, all_logits, pooled


def _hf_tensors(config=TINY, seed=0, pooler=True):
  rng = np.random.default_rng(seed)
  h, inner, buckets = config["hidden_size"], config["intermediate_size"], config["relative_attention_num_buckets"]

  def r(*shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)

  t = {"embeddings.word_embeddings.weight": r(config["vocab_size"], h),
       "embeddings.position_embeddings.weight": r(config["max_position_embeddings"], h),
       "embeddings.position_ids": np.arange(config["max_position_embeddings"])[None],
       "embeddings.LayerNorm.weight": 1 + r(h, scale=0.1), "embeddings.LayerNorm.bias": r(h, scale=0.1),
       "encoder.relative_attention_bias.weight": r(buckets, config["num_attention_heads"], scale=1.0)}
  for i in range(config["num_hidden_layers"]):
    p = f"encoder.layer.{i}."
    for name, (out_dim, in_dim) in {"attention.attn.q": (h, h), "attention.attn.k": (h, h),
                                    "attention.attn.v": (h, h), "attention.attn.o": (h, h),
                                    "intermediate.dense": (inner, h), "output.dense": (h, inner)}.items():
      t[p + name + ".weight"], t[p + name + ".bias"] = r(out_dim, in_dim), r(out_dim, scale=0.1)
    for name in ("attention.LayerNorm", "output.LayerNorm"):
      t[p + name + ".weight"], t[p + name + ".bias"] = 1 + r(h, scale=0.1), r(h, scale=0.1)
  if pooler:
    t["pooler.dense.weight"], t["pooler.dense.bias"] = r(h, h), r(h, scale=0.1)
  return t


def _hf_folder(folder, tensors, config=TINY):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump({k: v for k, v in config.items() if k != "type_vocab_size"}, f)
  save_file(tensors, os.path.join(folder, "model.safetensors"))
  return str(folder)


def _assert_matches_reference(outputs, reference, tol=1e-5):
  hidden, logits, pooled = reference
  assert len(outputs["hidden_states"]) == len(hidden) and len(outputs["attention_logits"]) == len(logits)
  for i, (a, b) in enumerate(zip(outputs["hidden_states"], hidden)):
    assert np.abs(a.numpy() - b).max() <= tol, f"hidden state {i}"
  for i, (a, b) in enumerate(zip(outputs["attention_logits"], logits)):
    assert np.abs(a.numpy() - b).max() <= tol, f"attention logits {i}"
  if pooled is not None:
    assert np.abs(outputs["pooled_output"].numpy() - pooled).max() <= tol


# ---------------------------------------------------------------------------------------------------------------
# Config and encoder.


def test_bucket_reference_values():
  relative = np.array([0, 1, -1, 7, -7, 8, -8, 127, -127, 128, -128, 1000])
  # 16 buckets per direction: distances 0-7 exact, then logarithmic up to 128; keys after the query in 16-31.
  np.testing.assert_array_equal(_bucket(relative, 32), [0, 17, 1, 23, 7, 24, 8, 31, 15, 31, 15, 31])


def test_config_without_type_vocab_defaults_and_base_config_loads(tmp_path):
  raw = {k: v for k, v in TINY.items() if k != "pad_token_id"}
  config = config_from_dict(raw)
  assert (config.type_vocab_size, config.pad_token_id, config.relative_attention_num_buckets) == (1, 1, 8)
  assert config.max_sequence_length == 12  # Positions 0 and 1 are the padding id's and below.
  base = load_config(os.path.join(ROOT, "configs", "mpnet_base.json"))
  assert (base.model_type, base.num_hidden_layers, base.hidden_size, base.vocab_size, base.max_sequence_length) == (
      "mpnet", 12, 768, 30527, 512)
  with pytest.raises(UserError, match=r"tiny.json: field 'relative_attention_num_buckets' must be an even number"):
    config_from_dict(dict(TINY, relative_attention_num_buckets=5), source="tiny.json")


def test_encoder_matches_numpy_reference_with_padding_and_ignores_type_ids(tmp_path):
  folder = _hf_folder(tmp_path / "hf", _hf_tensors())
  encoder = modeling.load_encoder(folder, folder)
  outputs = encoder(_inputs(), training=False)
  _assert_matches_reference(outputs, reference_forward(_hf_tensors(), WORD_IDS, MASK, heads=2, num_buckets=8))
  other_types = encoder(_inputs(type_ids=np.ones_like(WORD_IDS)), training=False)
  np.testing.assert_array_equal(outputs["sequence_output"], other_types["sequence_output"])
  assert outputs["pooled_output"].shape == (2, 16)


def test_attention_logits_include_the_bias_and_give_the_layer_probabilities():
  config = config_from_dict(TINY)
  encoder = build_encoder(config)
  outputs = encoder(_inputs(), training=False)
  bias = encoder._relative_position_bias(outputs["hidden_states"][0], outputs["hidden_states"][0]).numpy()
  block = encoder._transformer_layers[0]
  x, additive = outputs["hidden_states"][0], outputs["attention_logits"][0] * 0  # Zero bias: raw scores.
  _, raw = block._attention_layer(x, x, attention_mask=additive, return_attention_scores=True)
  np.testing.assert_allclose(outputs["attention_logits"][0].numpy(), raw.numpy() + bias, atol=1e-6)
  # The block's output, recomputed from the softmax of the returned logits under the mask, is the next state.
  logits = np.where(MASK[:, None, None, :] == 1, outputs["attention_logits"][0].numpy(), -np.inf)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  value = block._attention_layer._value_dense(x).numpy()  # [batch, seq, heads, size]
  context = np.einsum("bhqk,bkhd->bqhd", probs, value)
  attention_output = block._attention_layer._output_dense(tf.constant(context, tf.float32))
  after_attention = block._attention_layer_norm(x + attention_output)
  inner = block._intermediate_activation_layer(block._intermediate_dense(after_attention))
  expected = block._output_layer_norm(block._output_dense(inner) + after_attention)
  np.testing.assert_allclose(outputs["hidden_states"][1].numpy(), expected.numpy(), atol=1e-5)


def test_every_variable_trains_under_tf_function():
  encoder = build_encoder(config_from_dict(TINY))

  @tf.function
  def gradients():
    with tf.GradientTape() as tape:
      outputs = encoder(_inputs(), training=True)
      loss = tf.reduce_sum(outputs["pooled_output"] ** 2) + tf.reduce_sum(outputs["attention_logits"][-1] ** 2)
    return tape.gradient(loss, encoder.trainable_variables)

  grads = gradients()
  assert len(grads) == len(encoder.trainable_variables) == 5 + 2 * 16 + 2
  for variable, grad in zip(encoder.trainable_variables, grads):
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0, variable.name


def test_tf2_round_trip_is_bit_identical(tmp_path):
  config = config_from_dict(TINY)
  saved, loaded = build_encoder(config), build_encoder(config)
  tf.train.Checkpoint(encoder=saved.garden_network).write(str(tmp_path / "ckpt"))
  restore_encoder(loaded, config, str(tmp_path / "ckpt"))
  for a, b in zip(saved.variables, loaded.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  a, b = saved(_inputs(), training=False), loaded(_inputs(), training=False)
  np.testing.assert_array_equal(a["pooled_output"], b["pooled_output"])


def test_hf_folder_missing_a_tensor_names_it_and_assigns_nothing(tmp_path):
  tensors = _hf_tensors()
  del tensors["encoder.layer.1.attention.attn.k.bias"]
  folder = _hf_folder(tmp_path / "hf", tensors)
  config = load_config(folder)
  encoder = build_encoder(config)
  before = [v.numpy() for v in encoder.variables]
  with pytest.raises(UserError, match=r"does not fit the mpnet config .*missing: "
                                      r"encoder\.layer\.1\.attention\.attn\.k\.bias \(for the encoder's "
                                      r"transformer/layer_1/self_attention/key/bias\)$"):
    restore_encoder(encoder, config, folder)
  for a, b in zip(before, encoder.variables):
    np.testing.assert_array_equal(a, b.numpy())


def test_hf_masked_lm_layout_loads_with_a_fresh_pooler(tmp_path):
  tensors = {"mpnet." + k: v for k, v in _hf_tensors(pooler=False).items()}
  tensors["lm_head.dense.weight"] = np.zeros((16, 16), np.float32)
  tensors["lm_head.bias"] = np.zeros(40, np.float32)
  folder = _hf_folder(tmp_path / "hf", tensors)
  config = load_config(folder)
  encoder = build_encoder(config)
  fresh_pooler = encoder._pooler_layer.kernel.numpy()
  description = restore_encoder(encoder, config, folder)
  assert description.endswith("it has no pooler, so the pooler (pooler_transform/kernel, pooler_transform/bias) "
                              "keeps its fresh initialization")
  np.testing.assert_array_equal(encoder._pooler_layer.kernel.numpy(), fresh_pooler)
  hidden, logits, _ = reference_forward(tensors, WORD_IDS, MASK, heads=2, num_buckets=8, prefix="mpnet.")
  _assert_matches_reference(encoder(_inputs(), training=False), (hidden, logits, None))


# ---------------------------------------------------------------------------------------------------------------
# The real teacher against PyTorch + transformers.


@pytest.fixture(scope="module")
def real_mpnet():
  reference = dict(np.load(FIXTURE))
  folder = assets.mpnet_dir()
  encoder = modeling.load_encoder(folder, folder)
  outputs = encoder(_inputs(reference["input_ids"], reference["attention_mask"]), training=False)
  return reference, {"hidden_states": [h.numpy() for h in outputs["hidden_states"]],
                     "attention_logits": [a.numpy() for a in outputs["attention_logits"]],
                     "sequence_output": outputs["sequence_output"].numpy(),
                     "pooled_output": outputs["pooled_output"].numpy()}


def test_real_teacher_hidden_states_and_pooled_output_match_transformers(real_mpnet):
  reference, ours = real_mpnet
  assert reference["attention_mask"].min() == 0  # The batch is padded.
  assert len(ours["hidden_states"]) == 13
  for layer in reference["hidden_layers"]:
    assert np.abs(ours["hidden_states"][layer] - reference[f"hidden_{layer}"]).max() <= 1e-4, f"layer {layer}"
  assert np.abs(ours["pooled_output"] - reference["pooled_output"]).max() <= 1e-4


def test_real_teacher_attention_logits_give_transformers_probabilities(real_mpnet):
  reference, ours = real_mpnet
  key_mask = reference["attention_mask"][:, None, None, :] == 1
  for layer, (logits, probs) in enumerate(zip(ours["attention_logits"], reference["attention_probs"])):
    z = np.where(key_mask, logits.astype(np.float64), -np.inf)
    ours_probs = np.exp(z - z.max(-1, keepdims=True))
    ours_probs /= ours_probs.sum(-1, keepdims=True)
    assert np.abs(ours_probs - probs).max() <= 1e-5, f"layer {layer}"


def test_real_teacher_sentence_similarity(real_mpnet):
  reference, ours = real_mpnet
  mask = reference["attention_mask"][..., None]
  pooled = (ours["sequence_output"] * mask).sum(1) / mask.sum(1)
  pooled /= np.linalg.norm(pooled, axis=-1, keepdims=True)
  assert float(pooled[0] @ pooled[1]) == pytest.approx(0.660, abs=0.005)
  assert float(pooled[0] @ pooled[2]) < 0.3  # "The new movie is awesome." is unrelated.


def test_mpnet_exposes_qkv_without_changing_other_outputs():
  from modeling.config import config_from_dict
  from modeling.encoders import set_expose_qkv
  from tests.tiny import TINY_MPNET
  tf.keras.utils.set_random_seed(3)
  encoder = modeling.build_encoder(config_from_dict(TINY_MPNET))
  ids = tf.constant([[0, 5, 6, 7, 2, 1], [0, 8, 2, 1, 1, 1]], tf.int32)
  inputs = {"input_word_ids": ids, "input_mask": tf.cast(ids != 1, tf.int32), "input_type_ids": tf.zeros_like(ids)}
  plain = encoder(inputs)
  exposed = set_expose_qkv(encoder)(inputs)
  heads = TINY_MPNET["num_attention_heads"]
  assert len(exposed["attention_qkv"]) == TINY_MPNET["num_hidden_layers"]
  for a, b in zip(plain["attention_logits"] + plain["hidden_states"], exposed["attention_logits"] +
                  exposed["hidden_states"]):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
  q, k, _ = exposed["attention_qkv"][0]
  assert q.shape == (2, heads, 6, TINY_MPNET["hidden_size"] // heads)
  # The exposed logits are q·k/sqrt(d) plus the relative position bias: without the bias they are q·k/sqrt(d).
  bias = exposed["attention_logits"][0] - tf.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(q.shape[-1])
  np.testing.assert_allclose(bias.numpy()[0], bias.numpy()[1], atol=1e-5)  # The bias does not depend on the input.
