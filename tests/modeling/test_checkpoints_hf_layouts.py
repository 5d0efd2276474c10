"""Hugging Face checkpoints as users have them: `*ForMaskedLM` / `*ForPreTraining` layouts without pooler weights,
and MobileBERT. The tiny checkpoints are built with NumPy (tests/hf_tiny.py); their reference outputs come from
transformers itself (tests/fixtures/hf_tiny_reference.npz, made once by tests/fixtures/make_hf_tiny_reference.py)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file

import modeling
from modeling.checkpoints import restore_encoder
from modeling.config import load_config
from modeling.encoders import build_encoder
from modeling.errors import UserError
from tests import hf_tiny

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                       "hf_tiny_reference.npz")
FRESH_POOLER = "it has no pooler, so the pooler ({}) keeps its fresh initialization"


@pytest.fixture(scope="module")
def reference():
  return dict(np.load(FIXTURE))


def _folder(path, config, tensors):
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config, f)
  save_file(tensors, os.path.join(path, "model.safetensors"))
  return str(path)


def _run(encoder, name):
  word_ids = hf_tiny.word_ids(name)
  return encoder({"input_word_ids": tf.constant(word_ids), "input_mask": tf.constant(hf_tiny.MASK),
                  "input_type_ids": tf.zeros_like(word_ids)}, training=False)


def _masked_softmax(logits):
  z = np.where(hf_tiny.MASK[:, None, None, :] == 1, logits.astype(np.float64), -np.inf)
  probs = np.exp(z - z.max(-1, keepdims=True))
  return probs / probs.sum(-1, keepdims=True)


@pytest.mark.parametrize("name, pooler", [("bert_mlm", "pooler_transform/kernel, pooler_transform/bias"),
                                          ("roberta_mlm", "pooler_transform/kernel, pooler_transform/bias"),
                                          ("mobilebert", "pooler/kernel, pooler/bias")])
def test_pooler_less_checkpoint_matches_transformers_with_a_fresh_pooler(tmp_path, reference, name, pooler):
  config_dict, tensors = hf_tiny.CHECKPOINTS[name]()
  folder = _folder(tmp_path / name, config_dict, tensors)
  config = load_config(folder)
  encoder = build_encoder(config)
  fresh = [v.numpy() for v in encoder.garden_network.variables if "pooler" in v.name]
  description = restore_encoder(encoder, config, folder)
  assert description.endswith(FRESH_POOLER.format(pooler))
  assert len(fresh) == 2
  for before, after in zip(fresh, [v for v in encoder.garden_network.variables if "pooler" in v.name]):
    np.testing.assert_array_equal(before, after.numpy())
  outputs = _run(encoder, name)
  hidden, probs = reference[f"{name}/hidden_states"], reference[f"{name}/attention_probs"]
  # RoBERTa's padding tokens sit at Hugging Face's padding position, which this encoder does not reproduce (it
  # numbers every token): only the real tokens' rows are compared there, and they cannot see the padding.
  rows = hf_tiny.MASK == 1 if name == "roberta_mlm" else np.ones_like(hf_tiny.MASK, bool)
  assert len(outputs["hidden_states"]) == len(hidden) == config.num_hidden_layers + 1
  for layer, (ours, theirs) in enumerate(zip(outputs["hidden_states"], hidden)):
    assert np.abs(ours.numpy()[rows] - theirs[rows]).max() <= 1e-4, f"hidden state {layer}"
  for layer, (ours, theirs) in enumerate(zip(outputs["attention_logits"], probs)):
    diff = np.abs(_masked_softmax(ours.numpy()) - theirs).transpose(0, 2, 1, 3)  # [batch, query, heads, key]
    assert diff[rows].max() <= 1e-5, f"attention layer {layer}"


def test_mobilebert_with_pooler_weights_loads_them(tmp_path, reference):
  config_dict, tensors = hf_tiny.mobilebert_for_pretraining()
  rng = np.random.default_rng(7)
  tensors["mobilebert.pooler.dense.weight"] = rng.standard_normal((32, 32)).astype(np.float32) * 0.3
  tensors["mobilebert.pooler.dense.bias"] = rng.standard_normal(32).astype(np.float32) * 0.1
  folder = _folder(tmp_path / "mb", dict(config_dict, classifier_activation=True), tensors)
  encoder = modeling.load_encoder(folder, folder)
  last = reference["mobilebert/hidden_states"][-1].astype(np.float64)
  expected = np.tanh(last[:, 0] @ tensors["mobilebert.pooler.dense.weight"].T + tensors["mobilebert.pooler.dense.bias"])
  np.testing.assert_allclose(_run(encoder, "mobilebert")["pooled_output"].numpy(), expected, atol=1e-4)


def _error(folder):
  config = load_config(folder)
  encoder = build_encoder(config)
  before = [v.numpy() for v in encoder.variables]
  with pytest.raises(UserError) as raised:
    restore_encoder(encoder, config, folder)
  for a, b in zip(before, encoder.variables):
    np.testing.assert_array_equal(a, b.numpy())
  assert "\n" not in str(raised.value)
  return str(raised.value)


def test_other_missing_tensors_are_still_refused(tmp_path):
  config_dict, tensors = hf_tiny.bert_masked_lm()
  del tensors["bert.encoder.layer.1.output.LayerNorm.bias"]
  message = _error(_folder(tmp_path / "no_ln", config_dict, tensors))
  assert message.endswith("missing: bert.encoder.layer.1.output.LayerNorm.bias (for the encoder's "
                          "transformer/layer_1/output_layer_norm/beta)")

  config_dict, tensors = hf_tiny.bert_masked_lm()
  tensors["bert.pooler.dense.weight"] = np.zeros((16, 16), np.float32)  # Half a pooler is a broken checkpoint.
  message = _error(_folder(tmp_path / "half_pooler", config_dict, tensors))
  assert message.endswith("missing: bert.pooler.dense.bias (for the encoder's pooler_transform/bias)")

  config_dict, tensors = hf_tiny.mobilebert_for_pretraining()
  del tensors["mobilebert.encoder.layer.1.ffn.0.output.LayerNorm.weight"]
  message = _error(_folder(tmp_path / "mb", config_dict, tensors))
  assert message.endswith("missing: mobilebert.encoder.layer.1.ffn.0.output.LayerNorm.weight (for the encoder's "
                          "transformer_layer_1/ffn_layer_0/norm/gamma)")


def test_mobilebert_layouts_tf_models_cannot_run_are_refused(tmp_path):
  config_dict, tensors = hf_tiny.mobilebert_for_pretraining()
  folder = _folder(tmp_path / "mb", dict(config_dict, trigram_input=False), tensors)
  with pytest.raises(UserError, match=r"config\.json has trigram_input=false, but tf-models' MobileBERTEncoder "
                                      r"always uses trigram input"):
    modeling.load_encoder(folder, folder)
