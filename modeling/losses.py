"""TinyBERT's layer-mapped distillation losses (arXiv 1909.10351) and the prediction-layer loss.

Notation: a teacher with N layers, a student with M. Student layer m (1..M) learns from teacher layer g(m), and
g(0) = 0 is the embeddings. With W_h projecting the student's width onto the teacher's:

  embedding  MSE(E_S·W_h, E_T)
  hidden     Σ_m MSE(H_S^m·W_h, H_T^g(m))
  attention  Σ_m MSE(A_S^m, A_T^g(m)), on logits with the masked key positions zeroed on both sides
             (or on probabilities, or KL(p_T‖p_S), by `attention_loss`)
  prediction −softmax(z_T/t)·log_softmax(z_S/t), averaged over the batch; MSE(z_S, z_T) for regression

Every MSE is the mean over all elements of its tensors, as in the reference implementation, so the attention
term's mean over heads is included. Losses are computed in float32 whatever the compute dtype.
"""

import itertools
from collections.abc import Sequence

import tensorflow as tf
import tf_keras

from modeling.errors import UserError

ATTENTION_LOSSES = ("logits_mse", "probs_mse", "kl")
PROJECTIONS = ("shared", "per_layer")
INTERMEDIATE_TERMS = ("embedding", "hidden", "attention")


def uniform_layer_map(teacher_layers: int, student_layers: int) -> list[int]:
  """g(m) = m·N/M for m = 1..M; needs N % M == 0."""
  if student_layers <= 0 or teacher_layers % student_layers:
    raise UserError(f"--layer_map: a uniform map needs the teacher's {teacher_layers} layers to be a multiple of "
                    f"the student's {student_layers}; pass an explicit list such as --layer_map=" +
                    ",".join(str(max(1, round((m + 1) * teacher_layers / max(student_layers, 1))))
                             for m in range(max(student_layers, 1))))
  step = teacher_layers // student_layers
  return [m * step for m in range(1, student_layers + 1)]


def parse_layer_map(spec: str | None, teacher_layers: int, student_layers: int) -> list[int]:
  """The teacher layer g(m) for each student layer m = 1..M.

  Args:
    spec: None, "" or "uniform" for the uniform map, or a comma-separated list of M teacher layers (1-based,
      non-decreasing, each in 1..N), e.g. "3,6,9,12".
    teacher_layers: N.
    student_layers: M.

  Raises:
    UserError: for a map that does not fit the layer counts.
  """
  if not spec or spec == "uniform":
    return uniform_layer_map(teacher_layers, student_layers)
  try:
    layer_map = [int(x) for x in str(spec).split(",")]
  except ValueError:
    raise UserError(f"--layer_map={spec!r}: expected 'uniform' or a comma-separated list of integers") from None
  if len(layer_map) != student_layers:
    raise UserError(f"--layer_map={spec!r} has {len(layer_map)} entries; the student has {student_layers} layers")
  if any(not 1 <= g <= teacher_layers for g in layer_map):
    raise UserError(f"--layer_map={spec!r}: entries must be teacher layers 1..{teacher_layers}")
  if any(b < a for a, b in itertools.pairwise(layer_map)):
    raise UserError(f"--layer_map={spec!r}: entries must not decrease")
  return layer_map


def parse_loss_weights(spec: str | None, terms: Sequence[str] = INTERMEDIATE_TERMS) -> dict[str, float]:
  """Parses "embedding=1,hidden=1,attention=1" (any subset; missing terms weigh 1)."""
  weights = {term: 1.0 for term in terms}
  for item in filter(None, (spec or "").split(",")):
    name, _, value = item.partition("=")
    if name.strip() not in weights:
      raise UserError(f"--loss_weights: unknown term {name.strip()!r}; terms: {', '.join(terms)}")
    try:
      weights[name.strip()] = float(value)
    except ValueError:
      raise UserError(f"--loss_weights: {item!r} is not name=number") from None
    if weights[name.strip()] < 0:
      raise UserError(f"--loss_weights: {item!r} is negative")
  return weights


def mse(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  return tf.reduce_mean(tf.math.squared_difference(tf.cast(a, tf.float32), tf.cast(b, tf.float32)))


def _key_mask(input_mask: tf.Tensor) -> tf.Tensor:
  """[batch, 1, 1, seq] float mask of the key positions that attention may use."""
  return tf.cast(input_mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]


def attention_term(student_logits: tf.Tensor, teacher_logits: tf.Tensor, input_mask: tf.Tensor,
                   kind: str = "logits_mse") -> tf.Tensor:
  """One layer's attention loss between [batch, heads, seq, seq] pre-softmax scores.

  Args:
    student_logits, teacher_logits: attention logits of one student layer and its teacher layer.
    input_mask: [batch, seq], 1 for real tokens.
    kind: `logits_mse` (MSE on logits, masked keys zeroed on both sides), `probs_mse` (MSE on the masked
      softmax) or `kl` (KL(p_T‖p_S) summed over keys, averaged over batch, heads and real query positions).
  """
  key_mask = _key_mask(input_mask)
  s = tf.cast(student_logits, tf.float32)
  t = tf.cast(teacher_logits, tf.float32)
  if kind == "logits_mse":
    return mse(s * key_mask, t * key_mask)
  if kind == "probs_mse":
    return mse(tf.exp(_masked_log_softmax(s, key_mask)) * key_mask, tf.exp(_masked_log_softmax(t, key_mask)) * key_mask)
  if kind == "kl":
    return masked_kl(t, s, input_mask)
  raise UserError(f"--attention_loss={kind!r}; choose one of {', '.join(ATTENTION_LOSSES)}")


def _masked_log_softmax(logits: tf.Tensor, key_mask: tf.Tensor) -> tf.Tensor:
  return tf.nn.log_softmax(logits + (1.0 - key_mask) * -1e9, axis=-1)


def masked_kl(teacher_logits: tf.Tensor, student_logits: tf.Tensor, input_mask: tf.Tensor) -> tf.Tensor:
  """KL(p_T‖p_S) between row-wise softmaxes of [batch, heads, seq, seq] scores, under a padding mask.

  The masked key positions are left out of both softmaxes, and the rows of masked query positions are left out
  of the mean: the result is the KL summed over keys, averaged over batch, heads and real query positions. This
  is TinyBERT's `kl` attention option and every MiniLM term.

  Args:
    teacher_logits, student_logits: pre-softmax scores with the same shape (any head count, both the same).
    input_mask: [batch, seq], 1 for real tokens.
  """
  key_mask = _key_mask(input_mask)
  log_p_s = _masked_log_softmax(tf.cast(student_logits, tf.float32), key_mask)
  log_p_t = _masked_log_softmax(tf.cast(teacher_logits, tf.float32), key_mask)
  per_row = tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s) * key_mask, axis=-1)  # [batch, heads, query]
  query_mask = tf.cast(input_mask, tf.float32)[:, tf.newaxis, :] * tf.ones_like(per_row)
  return tf.reduce_sum(per_row * query_mask) / tf.maximum(tf.reduce_sum(query_mask), 1.0)


def prediction_loss(student_logits: tf.Tensor, teacher_logits: tf.Tensor, temperature: float = 1.0,
                    regression: bool = False) -> tf.Tensor:
  """Soft cross-entropy −softmax(z_T/t)·log_softmax(z_S/t), batch mean; MSE(z_S, z_T) for regression."""
  t = tf.cast(teacher_logits, tf.float32)
  targets = t if regression else tf.nn.softmax(t / temperature, axis=-1)
  return soft_target_loss(student_logits, targets, temperature, regression)


def soft_target_loss(student_logits: tf.Tensor, targets: tf.Tensor, temperature: float | tf.Tensor = 1.0,
                     regression: bool = False) -> tf.Tensor:
  """−targets·log_softmax(z_S/t), batch mean, against given soft targets; MSE(z_S, targets) for regression.

  Args:
    student_logits: [batch, classes] (or [batch, 1] for regression).
    targets: probabilities [batch, classes], e.g. from `average_soft_targets`; for regression, the target values
      with the logits' shape.
    temperature: a number or a scalar tensor (a schedule's value at the current step).
    regression: use MSE.
  """
  s = tf.cast(student_logits, tf.float32)
  targets = tf.cast(targets, tf.float32)
  if regression:
    return mse(s, targets)
  temperature = tf.cast(temperature, tf.float32)
  return tf.reduce_mean(-tf.reduce_sum(targets * tf.nn.log_softmax(s / temperature, axis=-1), axis=-1))


def average_soft_targets(teacher_logits: Sequence[tf.Tensor], weights: Sequence[float] | None = None,
                         temperature: float | tf.Tensor = 1.0, regression: bool = False) -> tf.Tensor:
  """The weighted mean of several teachers' soft targets softmax(z_T/t), for multi-teacher distillation.

  The weights are normalised to sum to 1, so they only say how much each teacher counts relative to the others.
  For regression the teachers' predictions (their logits) are averaged instead.

  Args:
    teacher_logits: one [batch, classes] tensor per teacher, columns in the same label order.
    weights: one non-negative weight per teacher (None: equal weights).
    temperature: a number or a scalar tensor.
    regression: average the logits themselves.

  Returns:
    [batch, classes] targets for `soft_target_loss`.
  """
  if not teacher_logits:
    raise ValueError("average_soft_targets needs at least one teacher")
  weights = [1.0] * len(teacher_logits) if weights is None else [float(w) for w in weights]
  if len(weights) != len(teacher_logits) or min(weights) < 0 or sum(weights) <= 0:
    raise ValueError(f"average_soft_targets: weights {weights} for {len(teacher_logits)} teachers")
  temperature = tf.cast(temperature, tf.float32)
  targets = [tf.cast(z, tf.float32) if regression else tf.nn.softmax(tf.cast(z, tf.float32) / temperature, axis=-1)
             for z in teacher_logits]
  return tf.add_n([w / sum(weights) * p for w, p in zip(weights, targets)])


class IntermediateDistillation(tf_keras.layers.Layer):
  """TinyBERT's embedding + hidden + attention losses, with the learnable width projection W_h.

  Args:
    student_width: the student's hidden width.
    teacher_width: the teacher's hidden width.
    layer_map: g(m) for m = 1..M, from `parse_layer_map`.
    attention_loss: one of `ATTENTION_LOSSES`.
    projection: `shared` (one W_h for the embeddings and every layer, as the reference) or `per_layer` (one for
      the embeddings and one per student layer). Identity when the widths match.
    loss_weights: weight of each term in the total, from `parse_loss_weights`.
    initializer_range: stddev of W_h's initializer.
  """

  def __init__(self, student_width: int, teacher_width: int, layer_map: Sequence[int],
               attention_loss: str = "logits_mse", projection: str = "shared",
               loss_weights: dict[str, float] | None = None, initializer_range: float = 0.02, **kwargs):
    super().__init__(**kwargs)
    if attention_loss not in ATTENTION_LOSSES:
      raise UserError(f"--attention_loss={attention_loss!r}; choose one of {', '.join(ATTENTION_LOSSES)}")
    if projection not in PROJECTIONS:
      raise UserError(f"--projection={projection!r}; choose one of {', '.join(PROJECTIONS)}")
    self.layer_map = list(layer_map)
    self.attention_loss = attention_loss
    self.loss_weights = dict(loss_weights or parse_loss_weights(None))
    self.projections = []
    if student_width != teacher_width:
      count = 1 if projection == "shared" else len(self.layer_map) + 1
      self.projections = [
          tf_keras.layers.Dense(teacher_width, dtype=tf.float32, name=f"projection_{i}",
                                kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=initializer_range))
          for i in range(count)]
      for dense in self.projections:
        dense.build([None, None, student_width])

  def _project(self, hidden: tf.Tensor, index: int) -> tf.Tensor:
    hidden = tf.cast(hidden, tf.float32)
    if not self.projections:
      return hidden
    return self.projections[min(index, len(self.projections) - 1)](hidden)

  def call(self, student_outputs, teacher_outputs, input_mask,
           teacher_layers: Sequence[int] | None = None) -> dict[str, tf.Tensor]:
    """Returns the dict of terms `embedding`, `hidden`, `attention` and their weighted sum `total`.

    `teacher_layers` gives, for student layer m = 1..M, the index of its teacher layer in `teacher_outputs`; the
    default is `layer_map`. Teacher outputs read from `modeling.teacher_cache` hold only the mapped layers and come
    with their own map (`teacher_cache.cached_layer_map`).
    """
    teacher_layers = self.layer_map if teacher_layers is None else list(teacher_layers)
    if len(teacher_layers) != len(self.layer_map):
      raise ValueError(f"{len(teacher_layers)} teacher layers for a layer map of {len(self.layer_map)}")
    s_hidden, t_hidden = student_outputs["hidden_states"], teacher_outputs["hidden_states"]
    s_attention, t_attention = student_outputs["attention_logits"], teacher_outputs["attention_logits"]
    terms = {"embedding": mse(self._project(s_hidden[0], 0), t_hidden[0])}
    terms["hidden"] = tf.add_n([mse(self._project(s_hidden[m], m), t_hidden[g])
                                for m, g in enumerate(teacher_layers, start=1)])
    terms["attention"] = tf.add_n([attention_term(s_attention[m - 1], t_attention[g - 1], input_mask,
                                                  self.attention_loss)
                                   for m, g in enumerate(teacher_layers, start=1)])
    terms["total"] = tf.add_n([self.loss_weights[name] * terms[name] for name in INTERMEDIATE_TERMS])
    return terms
