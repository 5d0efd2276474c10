"""Tests of modeling/serving.py: saved, reloaded signatures against the model itself and a NumPy softmax."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from modeling import load_config, serving, tokenization
from modeling.models import build_task_model
from tests.tiny import write_config

SEQ = 12
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "##s", "a", "."]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  tf.random.set_seed(0)
  # One layer: the signatures wrap the model whatever its depth, and each export traces it once per signature.
  path = write_config(tmp_path_factory.mktemp("config") / "tiny.json", num_hidden_layers=1)
  return build_task_model(load_config(path), num_labels=3)


def _ids(rows):
  word_ids = np.zeros((len(rows), SEQ), np.int32)
  mask = np.zeros((len(rows), SEQ), np.int32)
  for i, row in enumerate(rows):
    word_ids[i, :len(row)], mask[i, :len(row)] = row, 1
  return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": np.zeros_like(word_ids)}


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _xla_functions(path):
  proto = saved_model_pb2.SavedModel()
  with open(f"{path}/saved_model.pb", "rb") as f:
    proto.ParseFromString(f.read())
  library = proto.meta_graphs[0].graph_def.library
  return [f.signature.name for f in library.function if f.attr["_XlaMustCompile"].b]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_serve_ids_matches_softmax_of_model_logits(model, tmp_path, jit_compile):
  module, signatures = serving.serving_module(model, SEQ, jit_compile=jit_compile)
  assert sorted(signatures) == ["serve_ids", "serving_default"]
  tf.saved_model.save(module, str(tmp_path), signatures=signatures)
  inputs = _ids([[2, 5, 6, 7, 3], [2, 10, 11, 8, 5, 9, 3, 12, 13]])
  served = tf.saved_model.load(str(tmp_path)).signatures["serving_default"](
      **{k: tf.constant(v) for k, v in inputs.items()})["probabilities"].numpy()
  logits = model(inputs, training=False)["logits"].numpy()
  np.testing.assert_allclose(served, _softmax(logits), atol=1e-5)
  assert bool(_xla_functions(str(tmp_path))) == jit_compile


def test_regression_serves_the_first_logit_as_score(model, tmp_path):
  module, signatures = serving.serving_module(model, SEQ, regression=True)
  tf.saved_model.save(module, str(tmp_path), signatures=signatures)
  inputs = _ids([[2, 5, 3], [2, 6, 7, 3], [2, 9, 3]])
  score = tf.saved_model.load(str(tmp_path)).signatures["serve_ids"](
      **{k: tf.constant(v) for k, v in inputs.items()})["score"].numpy()
  np.testing.assert_allclose(score, model(inputs, training=False)["logits"].numpy()[:, 0], atol=1e-5)


def test_text_signatures_equal_serve_ids_on_the_tokenizers_ids(model, tmp_path):
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("\n".join(VOCAB) + "\n")
  tokenizer = tokenization.build_tokenizer(vocab_file=str(vocab_file))
  module, signatures = serving.serving_module(model, SEQ, preprocessor=tokenizer.keras_preprocessor(SEQ),
                                              jit_compile=True)
  assert sorted(signatures) == ["serve_ids", "serve_pair", "serving_default"]
  export = tmp_path / "export"
  tf.saved_model.save(module, str(export), signatures=signatures)
  loaded = tf.saved_model.load(str(export))
  texts_a, texts_b = ["the cats sat on a mat.", "a dog"], ["the mat", "cats on the dog sat"]
  packed = [tokenizer.pack(a, max_seq_length=SEQ) for a in tokenizer.tokenize_to_ids(texts_a)]
  pairs = [tokenizer.pack(a, b, max_seq_length=SEQ)
           for a, b in zip(tokenizer.tokenize_to_ids(texts_a), tokenizer.tokenize_to_ids(texts_b))]
  for got, rows in ((loaded.signatures["serving_default"](text=tf.constant(texts_a)), packed),
                    (loaded.signatures["serve_pair"](text_a=tf.constant(texts_a), text_b=tf.constant(texts_b)), pairs)):
    inputs = {k: np.array([row[i] for row in rows], np.int32) for i, k in enumerate(
        ("input_word_ids", "input_mask", "input_type_ids"))}
    expected = _softmax(model(inputs, training=False)["logits"].numpy())
    np.testing.assert_allclose(got["probabilities"].numpy(), expected, atol=1e-5)
