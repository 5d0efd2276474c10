"""Tests of modeling/records.py: the fast NumPy serializer against `tf.train.Example`."""

import numpy as np
import pytest
import tensorflow as tf

from modeling import records
from modeling.errors import UserError


def test_serialize_examples_equals_tf_train_example():
  rng = np.random.default_rng(0)
  word_ids = rng.integers(0, 30522, size=(50, 16))
  word_ids[0, :6] = [0, 127, 128, 16383, 16384, 2**40]
  mask, type_ids = rng.integers(0, 2, size=(2, 50, 16))
  fast = records.serialize_examples(word_ids, mask, type_ids)
  for row in range(50):
    reference = records.serialize_example(word_ids[row].tolist(), mask[row].tolist(), type_ids[row].tolist())
    assert tf.train.Example.FromString(fast[row]) == tf.train.Example.FromString(reference)


def test_check_meta_refuses_data_of_another_familys_special_tokens(tmp_path):
  roberta_data = {"max_seq_length": 16, "special_tokens": {"scheme": "roberta", "cls_id": 0, "sep_id": 2,
                                                           "pad_id": 1, "unk_id": 3, "mask_id": 4}}
  bert_data = {"max_seq_length": 16, "special_tokens": {"scheme": "bert", "cls_id": 101, "sep_id": 102,
                                                        "pad_id": 0, "unk_id": 100, "mask_id": 103}}
  older_data = {"max_seq_length": 16}  # Written before meta.json recorded the scheme: always BERT's.
  for model_type in ("roberta", "mpnet"):
    records.check_meta(roberta_data, str(tmp_path), model_type=model_type)
  for model_type in ("bert", "tinybert", "albert", "mobilebert"):
    records.check_meta(bert_data, str(tmp_path), model_type=model_type)
    records.check_meta(older_data, str(tmp_path), model_type=model_type)
    with pytest.raises(UserError) as error:
      records.check_meta(roberta_data, str(tmp_path), model_type=model_type)
    assert str(error.value) == (
        f"{tmp_path}/meta.json: data was prepared with roberta special tokens (<s> A </s></s> B </s>) but the "
        f"--config_path model is a {model_type}, which takes [CLS] A [SEP] B [SEP]; prepare the data again with the "
        f"{model_type} model's vocab")
  with pytest.raises(UserError, match=r"prepared with bert special tokens .* --teacher_config_path model is a mpnet"):
    records.check_meta(older_data, str(tmp_path), model_type="mpnet", config_flag="teacher_config_path")
  records.check_meta(roberta_data, str(tmp_path))  # No model type, no check.
