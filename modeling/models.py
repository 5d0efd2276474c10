"""Task models: an encoder with a classification or regression head on its pooled output."""


import tensorflow as tf
import tf_keras

from modeling.config import ModelConfig
from modeling.encoders import build_encoder


class TaskModel(tf_keras.Model):
  """An encoder with dropout and a dense head on `pooled_output`, as BERT's sentence classifiers.

  Its output is the encoder's dict (`hidden_states`, `attention_logits`, ...) plus `logits` of shape
  [batch, num_labels]; a regression task has `num_labels=1`, and its one logit is the prediction.

  Args:
    encoder: a model from `modeling.build_encoder`.
    num_labels: classes, or 1 for regression.
    dropout_rate: dropout on the pooled output before the head.
    initializer_range: stddev of the head's initializer.
  """

  def __init__(self, encoder: tf_keras.Model, num_labels: int, dropout_rate: float = 0.1,
               initializer_range: float = 0.02, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.num_labels = num_labels
    self.dropout = tf_keras.layers.Dropout(dropout_rate)
    self.head = tf_keras.layers.Dense(
        num_labels, name="head", dtype=tf.float32,
        kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=initializer_range))

  def call(self, inputs, training=None) -> dict[str, object]:
    outputs = dict(self.encoder(inputs, training=training))
    pooled = self.dropout(outputs["pooled_output"], training=training)
    outputs["logits"] = self.head(tf.cast(pooled, tf.float32))
    return outputs


def build_task_model(config: ModelConfig, num_labels: int) -> TaskModel:
  """Builds `config`'s encoder with a fresh head of `num_labels` outputs; all variables exist on return."""
  model = TaskModel(build_encoder(config), num_labels, dropout_rate=config.hidden_dropout_prob,
                    initializer_range=config.initializer_range)
  ones = tf.ones([1, 4], tf.int32)
  model({"input_word_ids": ones, "input_mask": ones, "input_type_ids": tf.zeros_like(ones)})
  return model
