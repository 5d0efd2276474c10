"""Tiny checkpoints with Hugging Face tensor names and layouts, built with NumPy alone.

They are the checkpoints users have, shrunk: `BertForMaskedLM` (`bert.` prefix, `cls.*` head, no pooler),
`RobertaForMaskedLM` (`roberta.`, `lm_head.*`, no pooler) and `MobileBertForPreTraining` as google/mobilebert-uncased
ships it (`mobilebert.`, `cls.*`, no pooler). tests/fixtures/make_hf_tiny_reference.py loads the same tensors into
transformers' models (in a throwaway venv, once) and records their outputs in tests/fixtures/hf_tiny_reference.npz;
this module must therefore need nothing but NumPy. Tied output weights (`*.decoder.weight`/`.bias`) are left out, as
`save_pretrained` leaves them out.
"""

import numpy as np

# Batch of two; the second row is padded (pad id 0, RoBERTa's 1).
WORD_IDS = np.array([[2, 7, 9, 11, 5, 8, 3], [2, 13, 4, 3, 0, 0, 0]], np.int32)
MASK = (np.arange(7)[None, :] < np.array([[7], [4]])).astype(np.int32)

BERT = {"model_type": "bert", "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 24, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 12, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0}
ROBERTA = dict(BERT, model_type="roberta", max_position_embeddings=14, type_vocab_size=1, pad_token_id=1,
               layer_norm_eps=1e-5)
MOBILEBERT = {"model_type": "mobilebert", "vocab_size": 40, "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 2, "intermediate_size": 24, "hidden_act": "relu", "hidden_dropout_prob": 0.0,
              "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 12, "type_vocab_size": 2,
              "initializer_range": 0.02, "embedding_size": 8, "intra_bottleneck_size": 16, "true_hidden_size": 16,
              "num_feedforward_networks": 3, "use_bottleneck": True, "use_bottleneck_attention": False,
              "key_query_shared_bottleneck": True, "normalization_type": "no_norm", "trigram_input": True,
              "classifier_activation": False, "pad_token_id": 0}


class _Maker:
  def __init__(self, seed):
    self.rng = np.random.default_rng(seed)
    self.tensors = {}

  def normal(self, *shape, scale=0.5):
    return (self.rng.standard_normal(shape) * scale).astype(np.float32)

  def linear(self, name, out_dim, in_dim, bias=True):
    # Unit-variance outputs keep MobileBERT's un-normalized (NoNorm) activations near 1, where float32 compares well.
    self.tensors[name + ".weight"] = self.normal(out_dim, in_dim, scale=in_dim ** -0.5)
    if bias:
      self.tensors[name + ".bias"] = self.normal(out_dim, scale=0.1)

  def norm(self, name, dim):
    self.tensors[name + ".weight"] = 1 + self.normal(dim, scale=0.2)
    self.tensors[name + ".bias"] = self.normal(dim, scale=0.1)

  def table(self, name, rows, dim):
    self.tensors[name + ".weight"] = self.normal(rows, dim)


def _bert_family(config, prefix, seed):
  m = _Maker(seed)
  h, inner = config["hidden_size"], config["intermediate_size"]
  m.table(prefix + "embeddings.word_embeddings", config["vocab_size"], h)
  m.table(prefix + "embeddings.position_embeddings", config["max_position_embeddings"], h)
  m.table(prefix + "embeddings.token_type_embeddings", config["type_vocab_size"], h)
  m.norm(prefix + "embeddings.LayerNorm", h)
  for i in range(config["num_hidden_layers"]):
    p = f"{prefix}encoder.layer.{i}."
    for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
      m.linear(p + name, h, h)
    m.norm(p + "attention.output.LayerNorm", h)
    m.linear(p + "intermediate.dense", inner, h)
    m.linear(p + "output.dense", h, inner)
    m.norm(p + "output.LayerNorm", h)
  return m


def bert_masked_lm(seed=0):
  """(HF config dict, tensors) of a `BertForMaskedLM`: no pooler, an MLM head under `cls.`."""
  m = _bert_family(BERT, "bert.", seed)
  m.linear("cls.predictions.transform.dense", 16, 16)
  m.norm("cls.predictions.transform.LayerNorm", 16)
  m.tensors["cls.predictions.bias"] = m.normal(BERT["vocab_size"], scale=0.1)
  return dict(BERT, architectures=["BertForMaskedLM"]), m.tensors


def roberta_masked_lm(seed=1):
  """(HF config dict, tensors) of a `RobertaForMaskedLM`, like roberta-base: no pooler, an MLM head `lm_head.`."""
  m = _bert_family(ROBERTA, "roberta.", seed)
  m.linear("lm_head.dense", 16, 16)
  m.norm("lm_head.layer_norm", 16)
  m.tensors["lm_head.bias"] = m.normal(ROBERTA["vocab_size"], scale=0.1)
  return dict(ROBERTA, architectures=["RobertaForMaskedLM"]), m.tensors


def mobilebert_for_pretraining(seed=2):
  """(HF config dict, tensors) of a `MobileBertForPreTraining` laid out as google/mobilebert-uncased: NoNorm,
  trigram embeddings, a shared key/query bottleneck, several feed-forward networks, no pooler weights."""
  c = MOBILEBERT
  m = _Maker(seed)
  h, true_h, inner, emb = c["hidden_size"], c["true_hidden_size"], c["intermediate_size"], c["embedding_size"]
  p = "mobilebert."
  m.table(p + "embeddings.word_embeddings", c["vocab_size"], emb)
  m.table(p + "embeddings.position_embeddings", c["max_position_embeddings"], h)
  m.table(p + "embeddings.token_type_embeddings", c["type_vocab_size"], h)
  m.linear(p + "embeddings.embedding_transformation", h, 3 * emb)
  m.norm(p + "embeddings.LayerNorm", h)
  for i in range(c["num_hidden_layers"]):
    q = f"{p}encoder.layer.{i}."
    m.linear(q + "attention.self.query", true_h, true_h)
    m.linear(q + "attention.self.key", true_h, true_h)
    m.linear(q + "attention.self.value", true_h, h)
    m.linear(q + "attention.output.dense", true_h, true_h)
    m.norm(q + "attention.output.LayerNorm", true_h)
    for j in range(c["num_feedforward_networks"] - 1):
      m.linear(q + f"ffn.{j}.intermediate.dense", inner, true_h)
      m.linear(q + f"ffn.{j}.output.dense", true_h, inner)
      m.norm(q + f"ffn.{j}.output.LayerNorm", true_h)
    m.linear(q + "intermediate.dense", inner, true_h)
    m.linear(q + "output.dense", true_h, inner)
    m.norm(q + "output.LayerNorm", true_h)
    m.linear(q + "output.bottleneck.dense", h, true_h)
    m.norm(q + "output.bottleneck.LayerNorm", h)
    m.linear(q + "bottleneck.input.dense", true_h, h)
    m.norm(q + "bottleneck.input.LayerNorm", true_h)
    m.linear(q + "bottleneck.attention.dense", true_h, h)
    m.norm(q + "bottleneck.attention.LayerNorm", true_h)
  m.linear("cls.predictions.transform.dense", h, h)
  m.norm("cls.predictions.transform.LayerNorm", h)
  m.linear("cls.predictions.dense", h - emb, c["vocab_size"], bias=False)
  m.tensors["cls.predictions.bias"] = m.normal(c["vocab_size"], scale=0.1)
  m.linear("cls.seq_relationship", 2, h)
  return dict(c, architectures=["MobileBertForPreTraining"]), m.tensors


CHECKPOINTS = {"bert_mlm": bert_masked_lm, "roberta_mlm": roberta_masked_lm, "mobilebert": mobilebert_for_pretraining}


def word_ids(name):
  """The test batch, padded with the family's pad id."""
  pad = CHECKPOINTS[name]()[0]["pad_token_id"]
  return np.where(MASK == 1, WORD_IDS, pad).astype(np.int32)


def folder_digest(folder):
  """sha256 over a Hugging Face folder's config.json and every tensor's name, shape and bytes (any file order).

  tests/fixtures/make_hf_export_reference.py records it for the exports that transformers checked, so a test can
  tell that today's export is still exactly what transformers was given.
  """
  import hashlib
  import json
  import os

  from safetensors.numpy import load_file
  digest = hashlib.sha256()
  with open(os.path.join(folder, "config.json")) as f:
    digest.update(json.dumps(json.load(f), sort_keys=True).encode())
  tensors = load_file(os.path.join(folder, "model.safetensors"))
  for name in sorted(tensors):
    tensor = np.ascontiguousarray(tensors[name], np.float32)
    digest.update(f"{name}{list(tensor.shape)}".encode())
    digest.update(tensor.tobytes())
  return digest.hexdigest()
