"""Task models: an encoder with a classification or regression head on its pooled output (or its mean)."""

import tensorflow as tf
import tf_keras

from modeling.checkpoints import find_checkpoint
from modeling.config import POOLINGS, ModelConfig
from modeling.encoders import build_encoder
from modeling.errors import UserError

# The checkpoint keys of a task model; `restore_encoder` reads the `encoder` part of the same layout.
_ENCODER, _HEAD = "encoder", "head"


class MaskedMean(tf_keras.layers.Layer):
  """Mean of `[batch, seq, dim]` over the positions whose `mask` is 1 (zeros for a row without any)."""

  def call(self, inputs, mask):
    mask = tf.cast(mask, inputs.dtype)[..., None]
    return tf.reduce_sum(inputs * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)


class TaskModel(tf_keras.Model):
  """An encoder with dropout and a dense head on `pooled_output`, as BERT's sentence classifiers.

  Its output is the encoder's dict (`hidden_states`, `attention_logits`, ...) plus `logits` of shape
  [batch, num_labels]; a regression task has `num_labels=1`, and its one logit is the prediction. With
  `pooling="mean"`, `pooled_output` is replaced by the mean of the last layer over the tokens of `input_mask`
  (the encoder's pooler is then not used and gets no gradient).

  Args:
    encoder: a model from `modeling.build_encoder`.
    num_labels: classes, or 1 for regression.
    dropout_rate: dropout on the pooled output before the head.
    initializer_range: stddev of the head's initializer.
    pooling: `first_token` or `mean` (`modeling.config.POOLINGS`).
  """

  def __init__(self, encoder: tf_keras.Model, num_labels: int, dropout_rate: float = 0.1,
               initializer_range: float = 0.02, pooling: str = "first_token", **kwargs):
    super().__init__(**kwargs)
    if pooling not in POOLINGS:
      raise UserError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    self.pooling = pooling
    # float32 after the encoder: a bfloat16 sum over 128 positions would lose digits.
    self.mean = MaskedMean(dtype=tf.float32) if pooling == "mean" else None
    self.encoder = encoder
    self.num_labels = num_labels
    self.dropout = tf_keras.layers.Dropout(dropout_rate)
    self.head = tf_keras.layers.Dense(
        num_labels, name="head", dtype=tf.float32,
        kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=initializer_range))

  def call(self, inputs, training=None) -> dict[str, object]:
    outputs = dict(self.encoder(inputs, training=training))
    if self.mean is not None:
      outputs["pooled_output"] = self.mean(tf.cast(outputs["sequence_output"], tf.float32), inputs["input_mask"])
    pooled = self.dropout(outputs["pooled_output"], training=training)
    outputs["logits"] = self.head(tf.cast(pooled, tf.float32))
    return outputs

  def checkpoint_objects(self) -> dict[str, tf.Module]:
    """What a checkpoint of this model holds, by key: the Model Garden encoder network and the head."""
    return {_ENCODER: self.encoder.garden_network, _HEAD: self.head}

  def checkpoint(self) -> tf.train.Checkpoint:
    """A `tf.train.Checkpoint` of the encoder and the head, the layout every task checkpoint of this project has."""
    return tf.train.Checkpoint(**self.checkpoint_objects())

  def restore(self, path: str, what: str) -> str:
    """Restores encoder and head from a task checkpoint; every variable of the model must be matched.

    Args:
      path: a checkpoint prefix, or a folder that `modeling.checkpoints.find_checkpoint` resolves (an output
        folder of run_finetuning.py gives its best checkpoint, else its latest).
      what: how the error message names the checkpoint, e.g. `--teacher_ckpt_path`.

    Returns:
      The checkpoint prefix that was read.

    Raises:
      UserError: the checkpoint does not fit the model (another config, or no head).
    """
    _, prefix = find_checkpoint(path)
    try:
      self.checkpoint().read(prefix).assert_existing_objects_matched().expect_partial()
    except (AssertionError, ValueError) as e:
      raise UserError(f"{what} {prefix} does not fit the model: {str(e).splitlines()[0][:300]}") from None
    return prefix


def head_size_in(path: str) -> int | None:
  """The number of outputs of the task head in the checkpoint at `path`, or None when it has no head."""
  kind, prefix = find_checkpoint(path)
  if kind != "tf2":
    return None
  for name, shape in tf.train.list_variables(prefix):
    if name.startswith(f"{_HEAD}/kernel/"):
      return shape[-1]
  return None


def build_task_model(config: ModelConfig, num_labels: int) -> TaskModel:
  """Builds `config`'s encoder with a fresh head of `num_labels` outputs; all variables exist on return."""
  model = TaskModel(build_encoder(config), num_labels, dropout_rate=config.hidden_dropout_prob,
                    initializer_range=config.initializer_range, pooling=config.head_pooling)
  ones = tf.ones([1, 4], tf.int32)
  model({"input_word_ids": ones, "input_mask": ones, "input_type_ids": tf.zeros_like(ones)})
  return model
