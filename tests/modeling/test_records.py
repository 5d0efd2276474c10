"""Tests of modeling/records.py: the fast NumPy serializer against `tf.train.Example`."""

import numpy as np
import tensorflow as tf

from modeling import records


def test_serialize_examples_equals_tf_train_example():
  rng = np.random.default_rng(0)
  word_ids = rng.integers(0, 30522, size=(50, 16))
  word_ids[0, :6] = [0, 127, 128, 16383, 16384, 2**40]
  mask, type_ids = rng.integers(0, 2, size=(2, 50, 16))
  fast = records.serialize_examples(word_ids, mask, type_ids)
  for row in range(50):
    reference = records.serialize_example(word_ids[row].tolist(), mask[row].tolist(), type_ids[row].tolist())
    assert tf.train.Example.FromString(fast[row]) == tf.train.Example.FromString(reference)
