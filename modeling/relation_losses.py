"""MiniLM's self-attention distillation (v1, arXiv 2002.10957; v2, arXiv 2012.15828), and the one choice between
it and TinyBERT's layer-mapped losses (`--intermediate_loss`).

Only one student layer learns, the last, from one teacher layer, the last by default. Every term is a KL(p_T‖p_S)
between row-wise softmaxes of [seq, seq] relations, with the padded key positions left out of both softmaxes and
the padded query rows left out of the mean (`losses.masked_kl`):

  minilm    attention       KL between the attention distributions, head by head (head counts must match)
            value_relation  KL between softmax(V·Vᵀ/√d_head), head by head
  minilmv2  query_relation, key_relation, value_relation: for X in Q, K, V, the heads' vectors are concatenated
            and split again into R relation heads of width w/R (w = heads·d_head, each model its own), and the
            KL is between softmax(X_r·X_rᵀ/√(w/R)) over the R relation heads

Relations are [seq, seq] whatever the width, so v1 frees the student's width and v2 its width and head count too.
The encoders expose queries, keys and values as `attention_qkv` when built with `expose_qkv=True`
(`modeling.encoders.set_expose_qkv`).
"""

import dataclasses
import math

import tensorflow as tf
import tf_keras

from modeling import losses
from modeling.config import ModelConfig
from modeling.errors import UserError

INTERMEDIATE_LOSSES = ("tinybert", "minilm", "minilmv2")
TERMS = {"tinybert": losses.INTERMEDIATE_TERMS,
         "minilm": ("attention", "value_relation"),
         "minilmv2": ("query_relation", "key_relation", "value_relation")}


def split_relation_heads(x: tf.Tensor, relation_heads: int) -> tf.Tensor:
  """[batch, heads, seq, head_dim] → [batch, R, seq, heads·head_dim/R]: concatenate the heads, split into R."""
  width = x.shape[1] * x.shape[3]  # Heads and head width are static: they come from the projection's kernel.
  if width % relation_heads:
    raise ValueError(f"{relation_heads} relation heads do not divide the attention width {width}")
  batch, seq = tf.shape(x)[0], tf.shape(x)[2]
  concatenated = tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [batch, seq, relation_heads, width // relation_heads])
  return tf.transpose(concatenated, [0, 2, 1, 3])


def relation_logits(x: tf.Tensor, relation_heads: int | None = None) -> tf.Tensor:
  """X·Xᵀ/√d per head: [batch, heads, seq, d] → [batch, heads, seq, seq], before softmax.

  Args:
    x: queries, keys or values of one layer, [batch, heads, seq, head_dim].
    relation_heads: None to relate within the attention heads (MiniLM v1), or R to regroup first (v2).
  """
  x = tf.cast(x, tf.float32)
  if relation_heads:
    x = split_relation_heads(x, relation_heads)
  return tf.einsum("bhqd,bhkd->bhqk", x, x) / math.sqrt(x.shape[-1])


def relation_term(student_x: tf.Tensor, teacher_x: tf.Tensor, input_mask: tf.Tensor,
                  relation_heads: int | None = None) -> tf.Tensor:
  """KL(teacher relation ‖ student relation) of one kind (Q-Q, K-K or V-V), under the padding mask.

  Args:
    student_x, teacher_x: [batch, heads, seq, head_dim] of the student and the teacher; with `relation_heads`
      None the head counts must be equal, otherwise only R must divide both widths.
    input_mask: [batch, seq], 1 for real tokens.
    relation_heads: R, or None for v1's per-attention-head relations.
  """
  if relation_heads is None and student_x.shape[1] != teacher_x.shape[1]:
    raise ValueError(f"per-head relations need equal head counts, got student {student_x.shape[1]} and "
                     f"teacher {teacher_x.shape[1]}")
  return losses.masked_kl(relation_logits(teacher_x, relation_heads), relation_logits(student_x, relation_heads),
                          input_mask)


class MiniLMDistillation(tf_keras.layers.Layer):
  """MiniLM's last-layer self-attention distillation, v1 or v2 (see the module docstring).

  It has no variables: relations are [seq, seq] for any width. The student's last layer learns from the
  teacher's layer `teacher_layer`.

  Args:
    version: `minilm` (v1: attention + value relation) or `minilmv2` (Q-Q, K-K, V-V relations).
    teacher_layer: 1-based teacher layer.
    relation_heads: R, for `minilmv2`.
    loss_weights: weight of each term of `TERMS[version]` in the total.
  """

  def __init__(self, version: str, teacher_layer: int, relation_heads: int | None = None,
               loss_weights: dict[str, float] | None = None, **kwargs):
    super().__init__(**kwargs)
    if version not in ("minilm", "minilmv2"):
      raise ValueError(f"unknown MiniLM version {version!r}")
    if version == "minilmv2" and not relation_heads:
      raise ValueError("minilmv2 needs relation_heads")
    self.version = version
    self.teacher_layer = teacher_layer
    self.relation_heads = relation_heads if version == "minilmv2" else None
    self.loss_weights = dict(loss_weights or {term: 1.0 for term in TERMS[version]})

  def call(self, student_outputs, teacher_outputs, input_mask) -> dict[str, tf.Tensor]:
    """Returns the dict of `TERMS[version]` and their weighted sum `total`; both outputs need `attention_qkv`."""
    for name, outputs in (("student", student_outputs), ("teacher", teacher_outputs)):
      if "attention_qkv" not in outputs:
        raise ValueError(f"the {name}'s outputs have no attention_qkv; build it with expose_qkv=True")
    s_q, s_k, s_v = student_outputs["attention_qkv"][-1]
    t_q, t_k, t_v = teacher_outputs["attention_qkv"][self.teacher_layer - 1]
    if self.version == "minilm":
      terms = {"attention": losses.attention_term(student_outputs["attention_logits"][-1],
                                                  teacher_outputs["attention_logits"][self.teacher_layer - 1],
                                                  input_mask, "kl"),
               "value_relation": relation_term(s_v, t_v, input_mask)}
    else:
      terms = {f"{kind}_relation": relation_term(s, t, input_mask, self.relation_heads)
               for kind, s, t in (("query", s_q, t_q), ("key", s_k, t_k), ("value", s_v, t_v))}
    terms["total"] = tf.add_n([self.loss_weights[name] * terms[name] for name in TERMS[self.version]])
    return terms


@dataclasses.dataclass(frozen=True)
class IntermediateLoss:
  """The checked choice of intermediate loss, from `parse_intermediate_loss`; build it with `build`.

  Args:
    kind: one of `INTERMEDIATE_LOSSES`.
    loss_weights: weight of each of `TERMS[kind]`.
    layer_map: g(m) for m = 1..M (`tinybert` only).
    attention_loss, projection: TinyBERT's options (`tinybert` only).
    teacher_layer: the 1-based teacher layer the student's last layer learns from (MiniLM only).
    relation_heads: R (`minilmv2` only).
  """
  kind: str
  loss_weights: dict[str, float]
  layer_map: list[int] | None = None
  attention_loss: str = "logits_mse"
  projection: str = "shared"
  teacher_layer: int | None = None
  relation_heads: int | None = None

  @property
  def terms(self) -> tuple[str, ...]:
    return TERMS[self.kind]

  @property
  def needs_qkv(self) -> bool:
    """Whether student and teacher must be built with `expose_qkv=True`."""
    return self.kind != "tinybert"

  def build(self, student: ModelConfig, teacher: ModelConfig) -> tf_keras.layers.Layer:
    """The loss layer, called as `layer(student_outputs, teacher_outputs, input_mask) -> {term: loss, total}`.

    TinyBERT's has the variables of W_h, so build it in the distribution strategy's scope.
    """
    if self.kind == "tinybert":
      return losses.IntermediateDistillation(student.hidden_size, teacher.hidden_size, self.layer_map,
                                             self.attention_loss, self.projection, self.loss_weights,
                                             initializer_range=student.initializer_range)
    return MiniLMDistillation(self.kind, self.teacher_layer, self.relation_heads, self.loss_weights)


def parse_intermediate_loss(kind: str, student: ModelConfig, teacher: ModelConfig, *, layer_map: str | None = None,
                            attention_loss: str = "logits_mse", projection: str = "shared",
                            loss_weights: str | None = None, relation_heads: int | None = None,
                            teacher_layer: int | None = None) -> IntermediateLoss:
  """Checks the flags of the intermediate loss against the two configs, before any model is built.

  Args:
    kind: `--intermediate_loss`, one of `INTERMEDIATE_LOSSES`.
    student, teacher: the two model configs.
    layer_map, attention_loss, projection: `--layer_map`, `--attention_loss`, `--projection` (TinyBERT).
    loss_weights: `--loss_weights`, over the terms of `kind` (see `TERMS`).
    relation_heads: `--relation_heads` R for `minilmv2`; None or 0 means the teacher's attention head count.
    teacher_layer: `--minilm_teacher_layer`, 1-based; None or 0 means the teacher's last layer.

  Raises:
    UserError: naming the flag, for an unknown kind, head counts TinyBERT or MiniLM v1 cannot compare, an R that
      does not divide both attention widths, or a teacher layer out of range.
  """
  if kind not in INTERMEDIATE_LOSSES:
    raise UserError(f"--intermediate_loss={kind!r}; choose one of {', '.join(INTERMEDIATE_LOSSES)}")
  weights = losses.parse_loss_weights(loss_weights, TERMS[kind])
  heads = (student.num_attention_heads, teacher.num_attention_heads)
  if kind in ("tinybert", "minilm") and heads[0] != heads[1]:
    raise UserError(f"--intermediate_loss={kind} compares attention heads one to one, but the student has "
                    f"{heads[0]} heads ({student.source}) and the teacher {heads[1]} ({teacher.source}); "
                    f"--intermediate_loss=minilmv2 works with any head count")
  if kind == "tinybert":
    return IntermediateLoss(kind, weights, layer_map=losses.parse_layer_map(
        layer_map, teacher.num_hidden_layers, student.num_hidden_layers), attention_loss=attention_loss,
                            projection=projection)
  layers = teacher.num_hidden_layers
  teacher_layer = teacher_layer or layers
  if not 1 <= teacher_layer <= layers:
    raise UserError(f"--minilm_teacher_layer={teacher_layer} is out of range: the teacher ({teacher.source}) has "
                    f"layers 1..{layers}")
  if kind == "minilm":
    return IntermediateLoss(kind, weights, teacher_layer=teacher_layer)
  relation_heads = relation_heads or teacher.num_attention_heads
  if relation_heads < 0:
    raise UserError(f"--relation_heads={relation_heads} must be positive")
  for name, config in (("student", student), ("teacher", teacher)):
    if config.attention_width % relation_heads:
      raise UserError(f"--relation_heads={relation_heads} does not divide the {name}'s attention width "
                      f"{config.attention_width} ({config.source}); R must divide both "
                      f"{student.attention_width} and {teacher.attention_width}")
  return IntermediateLoss(kind, weights, teacher_layer=teacher_layer, relation_heads=relation_heads)

