"""modeling.export: signatures per tokenizer kind, the merges.txt and --export_hf checks, the Hugging Face tokenizer of
an MPNet vocab, and the int8 attention-mask value reaching MPNet's encoder."""

import logging
import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tokenizers

from modeling import assets, config, export, files, hf_export, records, tflite, tokenization
from modeling.errors import UserError
from modeling.models import build_task_model
from tests import tiny

WORDS = ["good", "great", "bad", "movie", "plot", "the"]


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
  folder = tmp_path_factory.mktemp("bpe")
  trained = tokenizers.ByteLevelBPETokenizer()
  trained.train_from_iterator([" ".join(WORDS)] * 20, vocab_size=300, min_frequency=1, show_progress=False,
                              special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
  trained.save_model(str(folder))
  return str(folder / "vocab.json"), str(folder / "merges.txt")


def _bpe_meta(vocab, merges):
  meta = tokenization.build_tokenizer(vocab_file=vocab, merges_file=merges).meta()
  assert meta["merges_sha256"] == records.sha256_file(merges)
  return meta


def test_merges_for_finds_checks_and_refuses(bpe_files, tmp_path):
  vocab, merges = bpe_files
  meta = _bpe_meta(vocab, merges)
  assert export.merges_for(vocab, None, meta) == merges  # Beside the vocab.
  assert export.merges_for(vocab, merges, meta) == merges
  assert export.merges_for(str(tmp_path / "vocab.txt"), None, meta) is None
  other = tmp_path / "merges.txt"
  other.write_text("#version: 0.2\nt h\n")
  with pytest.raises(UserError, match="^--merges_file .* is not the merges.txt the data was prepared with"):
    export.merges_for(vocab, str(other), meta)
  with pytest.raises(UserError, match="^--merges_file: not found"):
    export.merges_for(vocab, str(tmp_path / "missing.txt"), meta)
  with pytest.raises(UserError, match="^--merges_file goes with a BPE vocab.json"):
    export.merges_for(str(tmp_path / "vocab.txt"), merges, meta)
  lonely = tmp_path / "alone" / "vocab.json"
  lonely.parent.mkdir()
  lonely.write_text(Path(vocab).read_text())
  with pytest.raises(UserError, match="needs its merges.txt"):
    export.merges_for(str(lonely), None, meta)


def test_hf_dir_for():
  assert export.hf_dir_for(None, "/out") is None and export.hf_dir_for("false", "/out") is None
  assert export.hf_dir_for("true", "/out") == "/out/hf_model" and export.hf_dir_for("/x/hf", "/out") == "/x/hf"


def test_bpe_export_serves_token_ids_and_copies_merges(bpe_files, tmp_path, caplog):
  vocab, merges = bpe_files
  vocab_size = len(files.read_json(vocab))
  cfg = config.load_config(tiny.write_config(tmp_path / "c.json", model_type="roberta", vocab_size=vocab_size,
                                             num_hidden_layers=1, pad_token_id=1, type_vocab_size=1))
  model = build_task_model(cfg, 2)
  meta = dict(_bpe_meta(vocab, merges), task_type="classification", max_seq_length=8, num_labels=2,
              label_list=["no", "yes"], do_lower_case=False)
  out = tmp_path / "out"
  out.mkdir()
  with caplog.at_level(logging.INFO, logger="absl"):
    result = export.export_task_model(model, cfg, meta, {}, str(out), vocab=vocab, merges=merges,
                                      export_dir=str(out / "saved_model"), hf_dir=str(out / "hf_model"))
  assert "no in-graph TensorFlow Text op" in caplog.text
  assert result == {"export_dir": str(out / "saved_model"), "tflite": None, "hf_dir": str(out / "hf_model")}
  for name in ("vocab.json", "merges.txt"):
    assert (out / name).read_text() == (Path(vocab).parent / name).read_text()
    assert os.path.isfile(out / "hf_model" / name)
  assert files.read_json(out / "hf_model" / "tokenizer_config.json")["tokenizer_class"] == "RobertaTokenizer"
  loaded = tf.saved_model.load(str(out / "saved_model"))
  assert sorted(loaded.signatures) == ["serve_ids", "serving_default"]
  ids = tokenization.tokenizer_for_data(meta, vocab).tokenize_to_ids(["good movie"])[0]
  features = {"input_word_ids": tf.constant([[0, *ids, 2] + [1] * (6 - len(ids))]),
              "input_mask": tf.constant([[1] * (len(ids) + 2) + [0] * (6 - len(ids))]),
              "input_type_ids": tf.zeros([1, 8], tf.int32)}
  expected = tf.nn.softmax(model(features, training=False)["logits"]).numpy()
  np.testing.assert_allclose(loaded.signatures["serving_default"](**features)["probabilities"], expected, atol=1e-6)


def test_mpnet_vocab_exports_the_assets_mpnet_tokenizer(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("\n".join(["<s>", "<pad>", "</s>", "<unk>", "[PAD]", "[UNK]", "<mask>", *WORDS]) + "\n")
  cfg = config.load_config(tiny.write_config(tmp_path / "c.json", model_type="mpnet", vocab_size=20,
                                             num_hidden_layers=1, pad_token_id=1, relative_attention_num_buckets=32))
  hf_export.export_hf(build_task_model(cfg, 2), cfg, str(tmp_path / "hf"), tokenizer_files=[str(vocab)],
                      do_lower_case=True, label_list=["a", "b"])
  ours = files.read_json(tmp_path / "hf" / "tokenizer_config.json")
  reference = files.read_json(os.path.join(assets.mpnet_dir(), "tokenizer_config.json"))
  for key in ("tokenizer_class", "bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token",
              "mask_token", "do_lower_case"):
    assert ours[key] == reference[key], key
  special = files.read_json(tmp_path / "hf" / "special_tokens_map.json")
  asset_special = files.read_json(os.path.join(assets.mpnet_dir(), "special_tokens_map.json"))
  assert {k: v if isinstance(v, str) else v["content"] for k, v in asset_special.items()} == special


def test_mpnet_vocab_serves_raw_string_pairs_packed_as_roberta(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("\n".join(["<s>", "<pad>", "</s>", "<unk>", "[PAD]", "[UNK]", "<mask>", *WORDS]) + "\n")
  tokenizer = tokenization.build_tokenizer(str(vocab))
  meta = dict(tokenizer.meta(), task_type="classification", max_seq_length=12, num_labels=2)
  cfg = config.load_config(tiny.write_config(tmp_path / "c.json", model_type="mpnet", vocab_size=20,
                                             num_hidden_layers=1, pad_token_id=1, relative_attention_num_buckets=32))
  model = build_task_model(cfg, 2)
  export.export_task_model(model, cfg, meta, {}, str(tmp_path), vocab=str(vocab), export_dir=str(tmp_path / "sm"))
  loaded = tf.saved_model.load(str(tmp_path / "sm"))
  assert sorted(loaded.signatures) == ["serve_ids", "serve_pair", "serving_default"]
  word_ids, mask, type_ids = tokenizer.pack(tokenizer.tokenize_to_ids(["good movie"])[0],
                                            tokenizer.tokenize_to_ids(["the plot"])[0], 12)
  assert list(word_ids[:9]) == [0, 7, 10, 2, 2, 12, 11, 2, 1]  # <s> A </s></s> B </s> <pad>
  features = {"input_word_ids": tf.constant([word_ids]), "input_mask": tf.constant([mask]),
              "input_type_ids": tf.constant([type_ids])}
  expected = tf.nn.softmax(model(features, training=False)["logits"]).numpy()
  got = loaded.signatures["serve_pair"](text_a=tf.constant(["good movie"]), text_b=tf.constant(["the plot"]))
  np.testing.assert_allclose(got["probabilities"].numpy(), expected, atol=1e-6)


def test_check_hf_export_names_the_flag(tmp_path):
  cfg = config.load_config(tiny.write_config(tmp_path / "c.json"))
  (tmp_path / "busy").mkdir()
  (tmp_path / "busy" / "notes.txt").write_text("mine")
  meta = {"num_labels": 2, "label_list": ["a", "b"], "task_type": "classification"}
  with pytest.raises(UserError, match="^--export_hf: Hugging Face export folder .* already holds something else"):
    export.check_hf_export(str(tmp_path / "busy"), cfg, meta)
  with pytest.raises(UserError, match="^--export_hf: the label list has 3 labels"):
    export.check_hf_export(str(tmp_path / "new"), cfg, dict(meta, label_list=["a", "b", "c"]))


def test_int8_mask_value_reaches_mpnet(tmp_path):
  """MPNet's masked keys take tf-models' large negative: unmasked by a patched 0, same float output as -1e9."""
  from official.nlp.modeling.layers import masked_softmax
  cfg = config.load_config(tiny.write_config(tmp_path / "c.json", model_type="mpnet", vocab_size=20,
                                             num_hidden_layers=1, pad_token_id=1, relative_attention_num_buckets=32,
                                             initializer_range=0.5))
  tf.random.set_seed(0)
  model = build_task_model(cfg, 2)
  features = {"input_word_ids": tf.constant([[0, 7, 8, 2, 9, 10]]), "input_mask": tf.constant([[1, 1, 1, 1, 0, 0]]),
              "input_type_ids": tf.zeros([1, 6], tf.int32)}
  # The real positions' states, which attend to the keys (the logits, behind the pooler's tanh and a head of small
  # weights, can hide the change).
  run = lambda: tf.function(lambda f: model(f, training=False)["sequence_output"][:, :4])(features).numpy()
  plain = run()
  with tflite._quantizable_attention_mask():
    int8_value = run()
  with mock.patch.object(masked_softmax, "_large_compatible_negative", lambda dtype: tf.constant(0.0, dtype)):
    unmasked = run()
  np.testing.assert_allclose(int8_value, plain, rtol=1e-5, atol=1e-5)  # e^-30 is nothing next to the real keys.
  # The padded keys now count: the value came from the function.
  assert np.abs(unmasked - plain).max() > 1e-2 * np.abs(plain).max()
  assert masked_softmax._large_compatible_negative(tf.float32) == -1e9
