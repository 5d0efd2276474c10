"""Tests of modeling/hf_export.py: tiny random students of every family, exported and read back.

Three references: this project's own Hugging Face importer (round trip within 1e-5), transformers itself when torch
and transformers can be imported (skipped in the project venv), and logits that transformers computed on the same
seeded exports, recorded by tests/fixtures/make_hf_export_reference.py in tests/fixtures/hf_export_reference.npz.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file

from modeling.checkpoints import hf_variable_rules, load_encoder, restore_hf_task_model
from modeling.config import ModelConfig, config_from_dict, load_config
from modeling.encoders import build_encoder
from modeling.errors import UserError
from modeling.hf_export import EXPORT_MARKER, export_hf, hf_config
from modeling.models import build_task_model
from tests import hf_tiny

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                       "hf_export_reference.npz")

FAMILIES = {
    "bert": hf_tiny.BERT,
    "tinybert": dict(hf_tiny.BERT, model_type="tinybert"),
    "roberta": hf_tiny.ROBERTA,
    "albert": dict(hf_tiny.BERT, model_type="albert", embedding_size=8, hidden_act="gelu_new"),
    "mpnet": {k: v for k, v in dict(hf_tiny.ROBERTA, model_type="mpnet", relative_attention_num_buckets=32).items()
              if k != "type_vocab_size"},
    "mobilebert": hf_tiny.MOBILEBERT,
    "mobilebert_layer_norm": dict(hf_tiny.MOBILEBERT, normalization_type="layer_norm"),
}
LABELS = ["negative", "neutral", "positive"]
# (case, family, task type): every family as a 3-class classifier, and the two head layouts as regressors.
CASES = [(family, family, "classification") for family in FAMILIES] + [
    ("bert_regression", "bert", "regression"), ("roberta_regression", "roberta", "regression")]
HF_ARCHITECTURES = {"bert": "Bert", "tinybert": "Bert", "roberta": "Roberta", "albert": "Albert", "mpnet": "MPNet",
                    "mobilebert": "MobileBert", "mobilebert_layer_norm": "MobileBert"}
WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s", ",", ".",
                   "a", "dog", "ran", "##ning", "fast", "!"]
TEXTS = ["The cats sat on the MAT.", "A dog, running fast!", "the cat ran on a mat"]


def config_of(family: str) -> ModelConfig:
  return config_from_dict(FAMILIES[family], source=f"<tiny {family}>")


def randomize(encoder, config, head=None, seed=0) -> None:
  """Every variable drawn from a seeded NumPy generator at a scale that keeps activations near 1.

  Tiny initial weights would make every logit nearly 0, and any export agree with any other within 1e-5.
  """
  rng = np.random.default_rng(seed)
  for name, (variable, rule) in sorted(hf_variable_rules(encoder, config, head).items()):
    shape = [int(d) for d in variable.shape]
    if rule.kind == "linear":
      value = rng.standard_normal(shape) * np.prod(shape[:rule.in_dims]) ** -0.5
    elif name.endswith("gamma"):
      value = 1 + 0.2 * rng.standard_normal(shape)
    elif name.endswith(("beta", "bias")):
      value = 0.1 * rng.standard_normal(shape)
    else:  # Embedding tables.
      value = 0.5 * rng.standard_normal(shape)
    variable.assign(value.astype(np.float32))


def tiny_task_model(case: str):
  """(model, config, label list, task type) of one case, with seeded random weights."""
  family, task_type = next((f, t) for c, f, t in CASES if c == case)
  config = config_of(family)
  labels = LABELS if task_type == "classification" else None
  model = build_task_model(config, len(labels) if labels else 1)
  randomize(model.encoder, config, model.head, seed=len(case))
  return model, config, labels, task_type


def inputs(config: ModelConfig) -> dict[str, np.ndarray]:
  """The test batch of hf_tiny (the second row padded with the config's pad id), token types where there are two."""
  word_ids = np.where(hf_tiny.MASK == 1, hf_tiny.WORD_IDS, config.pad_token_id).astype(np.int32)
  type_ids = np.zeros_like(word_ids)
  if config.type_vocab_size > 1:
    type_ids[0, 4:] = 1
  return {"input_word_ids": word_ids, "input_mask": hf_tiny.MASK.astype(np.int32), "input_type_ids": type_ids}


def run(model, config) -> dict[str, np.ndarray]:
  outputs = model({k: tf.constant(v) for k, v in inputs(config).items()}, training=False)
  return {k: outputs[k].numpy() for k in ("logits", "pooled_output", "sequence_output") if k in outputs}


@pytest.mark.parametrize("case", [c for c, _, _ in CASES])
def test_round_trip_through_the_importer_reproduces_the_logits(tmp_path, case):
  model, config, labels, task_type = tiny_task_model(case)
  expected = run(model, config)["logits"]
  folder = export_hf(model, config, str(tmp_path / "hf"), label_list=labels, task_type=task_type)

  loaded = load_config(folder)
  back = build_task_model(loaded, expected.shape[1])
  before = run(back, loaded)["logits"]
  restore_hf_task_model(back, loaded, folder)
  got = run(back, loaded)["logits"]
  assert np.abs(expected).max() > 0.1 and np.abs(before - expected).max() > 0.05  # Agreement is not a given.
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
  assert loaded.model_type == ("bert" if config.model_type == "tinybert" else config.model_type)


@pytest.mark.parametrize("case", ["bert", "albert", "roberta", "mpnet", "mobilebert", "bert_regression"])
def test_config_and_tensor_layouts(tmp_path, case):
  model, config, labels, task_type = tiny_task_model(case)
  family = next(f for c, f, _ in CASES if c == case)
  folder = export_hf(model, config, str(tmp_path / "hf"), label_list=labels, task_type=task_type)
  with open(os.path.join(folder, "config.json")) as f:
    raw = json.load(f)
  assert raw["architectures"] == [HF_ARCHITECTURES[family] + "ForSequenceClassification"]
  assert raw[EXPORT_MARKER[0]] == EXPORT_MARKER[1]
  if task_type == "regression":
    assert (raw["problem_type"], raw["id2label"], raw["label2id"]) == ("regression", {"0": "LABEL_0"}, {"LABEL_0": 0})
  else:
    assert raw["problem_type"] == "single_label_classification"
    assert raw["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert raw["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
  tensors = load_file(os.path.join(folder, "model.safetensors"))
  kernel, bias = model.head.kernel.numpy(), model.head.bias.numpy()
  ours = {name: variable.numpy() for name, (variable, _) in hf_variable_rules(model.encoder, config).items()}
  prefix = {"bert": "bert.", "albert": "albert.", "roberta": "roberta.", "mpnet": "mpnet.",
            "mobilebert": "mobilebert."}[family]
  assert all(name.startswith((prefix, "classifier.")) for name in tensors)
  if family in ("roberta", "mpnet"):  # dense + tanh on <s>, then out_proj: our pooler and our head.
    np.testing.assert_array_equal(tensors["classifier.out_proj.weight"], kernel.T)
    np.testing.assert_array_equal(tensors["classifier.out_proj.bias"], bias)
    np.testing.assert_array_equal(tensors["classifier.dense.weight"], ours["pooler_transform/kernel"].T)
    assert not any("pooler" in name for name in tensors)
  else:
    np.testing.assert_array_equal(tensors["classifier.weight"], kernel.T)
    np.testing.assert_array_equal(tensors["classifier.bias"], bias)
    assert any(name.startswith(prefix + "pooler") for name in tensors)
  if family == "roberta":  # Positions are numbered after pad id 1: rows 0 and 1 are never used.
    table = tensors["roberta.embeddings.position_embeddings.weight"]
    assert table.shape == (config.max_position_embeddings, config.hidden_size)
    np.testing.assert_array_equal(table[2:], ours["position_embedding/embeddings"])
    assert not table[:2].any()
  if family == "bert":  # A query kernel [hidden, heads, head size] becomes a Linear weight [out, in].
    query = ours["transformer/layer_1/self_attention/query/kernel"]
    assert query.shape == (16, 2, 8)
    np.testing.assert_array_equal(tensors["bert.encoder.layer.1.attention.self.query.weight"],
                                  query.reshape(config.hidden_size, -1).T)


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "mpnet", "mobilebert"])
def test_encoder_alone_exports_as_model_and_reloads(tmp_path, family):
  config = config_of(family)
  encoder = build_encoder(config)
  randomize(encoder, config, seed=3)
  expected = run(encoder, config)
  folder = export_hf(encoder, config, str(tmp_path / "hf"))
  with open(os.path.join(folder, "config.json")) as f:
    raw = json.load(f)
  assert raw["architectures"] == [HF_ARCHITECTURES[family] + "Model"] and "id2label" not in raw
  assert "embeddings.word_embeddings.weight" in load_file(os.path.join(folder, "model.safetensors"))
  back = load_encoder(folder, folder)
  got = run(back, load_config(folder))
  for key in ("sequence_output", "pooled_output"):
    np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=1e-5)


def test_tokenizer_files(tmp_path):
  model, config, labels, _ = tiny_task_model("bert")
  vocab = tmp_path / "my_vocab.txt"
  vocab.write_text("\n".join(WORDPIECE_VOCAB) + "\n")
  folder = export_hf(model, config, str(tmp_path / "hf"), tokenizer_files=[str(vocab)], do_lower_case=True,
                     label_list=labels)
  assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors", "special_tokens_map.json",
                                        "tokenizer_config.json", "vocab.txt"]
  assert (tmp_path / "hf" / "vocab.txt").read_bytes() == vocab.read_bytes()
  with open(os.path.join(folder, "tokenizer_config.json")) as f:
    tokenizer_config = json.load(f)
  assert tokenizer_config["tokenizer_class"] == "BertTokenizer" and tokenizer_config["do_lower_case"] is True
  assert tokenizer_config["model_max_length"] == config.max_sequence_length == 12
  assert (tokenizer_config["cls_token"], tokenizer_config["pad_token"]) == ("[CLS]", "[PAD]")

  spm = tmp_path / "albert.model"
  spm.write_bytes(b"not parsed by the export")
  folder = export_hf(model, config, str(tmp_path / "hf_spm"), tokenizer_files=[str(spm)], do_lower_case=False,
                     label_list=labels, model_max_length=8)
  with open(os.path.join(folder, "tokenizer_config.json")) as f:
    tokenizer_config = json.load(f)
  assert os.path.isfile(os.path.join(folder, "spiece.model"))
  assert (tokenizer_config["tokenizer_class"], tokenizer_config["do_lower_case"],
          tokenizer_config["model_max_length"]) == ("AlbertTokenizer", False, 8)


def test_previous_export_is_replaced_and_anything_else_is_refused(tmp_path):
  model, config, labels, _ = tiny_task_model("bert")
  target = tmp_path / "hf"
  export_hf(model, config, str(target), label_list=labels)
  export_hf(model, config, str(target), label_list=["a", "b", "c"])  # An earlier export is ours to replace.
  with open(target / "config.json") as f:
    assert json.load(f)["id2label"] == {"0": "a", "1": "b", "2": "c"}

  (target / "notes.txt").write_text("mine")
  with pytest.raises(UserError, match=r"^Hugging Face export folder .*hf already holds something else \(notes.txt\);"):
    export_hf(model, config, str(target), label_list=labels)
  assert (target / "notes.txt").read_text() == "mine"

  teacher = tmp_path / "teacher"  # A Hugging Face folder that is not our export (no marker) is not overwritten.
  teacher.mkdir()
  (teacher / "config.json").write_text(json.dumps(hf_tiny.BERT))
  with pytest.raises(UserError, match="already holds something else"):
    export_hf(model, config, str(teacher), label_list=labels)
  assert sorted(os.listdir(teacher)) == ["config.json"]
  assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # No temporary folder left behind.


@pytest.mark.parametrize("family, overrides, message", [
    ("albert", {"embedding_size": 16}, "an ALBERT whose embedding_size equals hidden_size has no embedding projection"),
    ("mpnet", {"pad_token_id": 0}, "field 'pad_token_id' is 0, but Hugging Face's MPNet numbers positions after id 1"),
    ("mpnet", {"relative_attention_num_buckets": 8},
     "field 'relative_attention_num_buckets' is 8, but Hugging Face's MPNet buckets relative positions into 32"),
    ("bert", {"pooling": "mean"}, "field 'pooling' is 'mean', but Hugging Face's \\*ForSequenceClassification heads"),
])
def test_configs_hugging_face_cannot_represent_are_refused(tmp_path, family, overrides, message):
  config = config_from_dict(dict(FAMILIES[family], **overrides), source="student.json")
  model = build_task_model(config, 2)
  with pytest.raises(UserError, match=r"^config student\.json: " + message):
    export_hf(model, config, str(tmp_path / "hf"), label_list=["a", "b"])
  assert not os.listdir(tmp_path)


def test_bad_labels_tokenizer_and_family_are_refused(tmp_path):
  model, config, _, _ = tiny_task_model("bert")
  with pytest.raises(UserError, match=r"^the label list has 2 labels \(a, b\), but the head has 3 outputs$"):
    export_hf(model, config, str(tmp_path / "hf"), label_list=["a", "b"])
  with pytest.raises(UserError, match="^task_type is 'ranking'"):
    export_hf(model, config, str(tmp_path / "hf"), label_list=LABELS, task_type="ranking")
  with pytest.raises(UserError, match="^tokenizer file not found: .*missing.txt$"):
    export_hf(model, config, str(tmp_path / "hf"), label_list=LABELS, tokenizer_files=[str(tmp_path / "missing.txt")],
              do_lower_case=True)
  with pytest.raises(UserError, match=r"^config <dict>: Hugging Face has no class for model_type 'xlnet'"):
    hf_config(config.replace(model_type="xlnet", source="<dict>"), 2)
  assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Against transformers.


def test_export_matches_logits_recorded_from_transformers(tmp_path):
  """tests/fixtures/make_hf_export_reference.py loaded these same seeded exports into transformers' own
  `AutoModelForSequenceClassification` and recorded its logits and a digest of the folder: today's export must be
  that same folder, and the TF model must compute those logits."""
  reference = np.load(FIXTURE)
  for case, _, task_type in CASES:
    model, config, labels, _ = tiny_task_model(case)
    folder = export_hf(model, config, str(tmp_path / case), label_list=labels, task_type=task_type)
    assert hf_tiny.folder_digest(folder) == str(reference[f"{case}/digest"]), case
    np.testing.assert_array_equal(reference[f"{case}/input_word_ids"], inputs(config)["input_word_ids"])
    np.testing.assert_allclose(run(model, config)["logits"], reference[f"{case}/logits"], rtol=0, atol=1e-4,
                               err_msg=case)


def test_transformers_loads_the_export(tmp_path):
  """Runs only where torch and transformers import (not in the project venv)."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  for case, _, task_type in CASES:
    model, config, labels, task_type = tiny_task_model(case)
    folder = export_hf(model, config, str(tmp_path / case), label_list=labels, task_type=task_type)
    hf_model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
        folder, output_loading_info=True, attn_implementation="eager")
    assert not any(info.values()), (case, info)
    feed = inputs(config)
    kwargs = {"input_ids": torch.from_numpy(feed["input_word_ids"]).long(),
              "attention_mask": torch.from_numpy(feed["input_mask"]).long()}
    if config.model_type != "mpnet":
      kwargs["token_type_ids"] = torch.from_numpy(feed["input_type_ids"]).long()
    with torch.no_grad():
      logits = hf_model.eval()(**kwargs).logits.numpy()
    np.testing.assert_allclose(logits, run(model, config)["logits"], rtol=0, atol=1e-4, err_msg=case)
