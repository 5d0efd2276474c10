"""Start a narrower student from the teacher's embeddings, projected onto their top principal directions.

TinyBERT starts general distillation from a random student and relies on billions of words to teach it every
token's embedding. With a few million words of text, most of the 30k vocabulary is never seen, and the student
has nothing to go on for those tokens in the task. This module gives the student the teacher's lexical knowledge
at step 0:

  U = the top-k right singular vectors of the teacher's centered token-embedding table (k = student width),
  student token / position / segment embeddings = teacher's tables @ U,
  W_h (the distillation projection, student -> teacher width) = U^T diag(gamma), bias beta, with gamma and beta
    those of the teacher's embedding LayerNorm.

So the student's summed input embedding is the projection of the teacher's onto its k main directions, and W_h
maps its normalised form back through the teacher's LayerNorm scale and shift. On MiniLM -> TinyBERT4 this cuts the
embedding loss at step 0 about 4x against a random start (0.087 vs 0.368 on 16 news sequences). This is an
addition to the TinyBERT recipe (the paper starts from random weights), and it only sets initial values: general
distillation trains everything afterwards as usual.

`init_from_teacher` is the entry point for `--init_from_teacher`: at equal widths it copies the embeddings and
teacher layer g(m) into student layer m (DistilBERT's recipe); for a narrower student it sets the projected
embeddings above and leaves the layers random. Projecting the layer weights through the same directions was
measured and made the initial loss worse (MiniLM -> TinyBERT4, 64 reviews: total 10.53 against 9.85 with the
embeddings only and 10.45 from random; benchmarks/bench_teacher_init.py), so it is not done.
"""

import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from modeling.errors import UserError


def _principal_components(table: np.ndarray, k: int) -> tuple[np.ndarray, float]:
  """The top-`k` principal directions of `table`'s rows ([width, k], orthonormal) and the variance share they keep."""
  centered = table.astype(np.float64) - table.mean(axis=0, dtype=np.float64)
  _, singular, vt = np.linalg.svd(centered, full_matrices=False)
  return vt[:k].T, float(np.sum(singular[:k] ** 2) / np.sum(singular ** 2))


def principal_directions(table: np.ndarray, k: int) -> np.ndarray:
  """The top-`k` principal directions of the rows of `table`, as a [width, k] matrix with orthonormal columns."""
  return _principal_components(table, k)[0]


def _embedding_tables(encoder, role: str) -> tuple[tf.Variable, tf.Variable, tf.Variable | None]:
  """The token, position and token-type tables; the last is None for a family without token types (MPNet)."""
  needed = ("_embedding_layer", "_position_embedding_layer")
  if not all(hasattr(encoder, name) for name in needed):
    raise UserError(f"--init_embeddings_from_teacher: the {role} is a {type(encoder).__name__}; only BERT-family "
                    "encoders (bert, roberta, tinybert, albert, mpnet) have the token/position tables it sets")
  # Each layer owns exactly one variable, its table (tf-models names the position table privately).
  type_layer = getattr(encoder, "_type_embedding_layer", None)
  return (*(getattr(encoder, name).weights[0] for name in needed), type_layer.weights[0] if type_layer else None)


def init_embeddings_from_teacher(student, teacher, distillation=None) -> str:
  """Sets the student's embedding tables (and W_h of `distillation`) from the teacher's, as the module says.

  Args:
    student: a BERT-family encoder from `build_encoder`, to change in place.
    teacher: the BERT-family teacher encoder, already restored.
    distillation: optional `IntermediateDistillation`; its first projection is set from U when the student's
      embedding width is its hidden width (ALBERT's narrower embeddings go through its own projection first).

  Returns:
    A one-line description for the log.

  Raises:
    UserError: different vocabularies, a student wider than the teacher, or a non-BERT-family encoder.
  """
  s_word, s_position, s_type = _embedding_tables(student, "student")
  t_word, t_position, t_type = _embedding_tables(teacher, "teacher")
  # A side without token types (MPNet) has no type table to copy: the student keeps its own, if it has one.
  copy_types = s_type is not None and t_type is not None
  for name, s, t in (("vocab_size", s_word, t_word), ("type_vocab_size", s_type, t_type)):
    if (name == "vocab_size" or copy_types) and s.shape[0] != t.shape[0]:
      raise UserError(f"--init_embeddings_from_teacher needs the same {name}: student {s.shape[0]}, teacher "
                      f"{t.shape[0]}")
  if s_position.shape[0] > t_position.shape[0]:
    raise UserError(f"--init_embeddings_from_teacher: the student has {s_position.shape[0]} positions, the teacher "
                    f"only {t_position.shape[0]}")
  k, width = int(s_word.shape[1]), int(t_word.shape[1])
  if k > width:
    raise UserError(f"--init_embeddings_from_teacher: the student's embeddings ({k}) are wider than the teacher's "
                    f"({width}); it only narrows")
  teacher_word = t_word.numpy()
  directions, kept = (np.eye(width), 1.0) if k == width else _principal_components(teacher_word, k)
  s_word.assign((teacher_word @ directions).astype(s_word.dtype.as_numpy_dtype))
  s_position.assign((t_position.numpy()[:s_position.shape[0]] @ directions).astype(s_position.dtype.as_numpy_dtype))
  if copy_types:
    s_type.assign((t_type.numpy() @ directions).astype(s_type.dtype.as_numpy_dtype))
  message = (f"student embeddings set from the teacher's top {k} of {width} principal directions "
             f"({100 * kept:.1f}% of the token-embedding variance)")
  projections = getattr(distillation, "projections", None)
  hidden = getattr(student, "_config", {}).get("hidden_size")
  if projections and hidden == k:
    norm = teacher._embedding_norm_layer
    projections[0].kernel.assign((directions.T * norm.gamma.numpy()[None, :]).astype(np.float32))
    projections[0].bias.assign(norm.beta.numpy().astype(np.float32))
    message += "; W_h set to their transpose, scaled and shifted as the teacher's embedding LayerNorm"
  return message


def _block_variables(block) -> dict[str, tf.Variable]:
  """A transformer block's variables by their name inside the block (`self_attention/query/kernel`, ...)."""
  return {re.sub(r"^.*?layer_\d+/", "", variable.name.split(":")[0]): variable for variable in block.weights}


def init_from_teacher(student, teacher, layer_map: Sequence[int], distillation=None) -> str:
  """Starts a student from the teacher: DistilBERT's layer copy when the widths match, else projected embeddings.

  Same width: the student's token, position and segment tables and embedding LayerNorm are the teacher's, student
  layer m is a copy of teacher layer g(m) (attention, FFN and both LayerNorms), and the pooler is the teacher's.
  Narrower student: `init_embeddings_from_teacher` (the teacher's embeddings on their top principal directions);
  the layers keep their random start, since projecting the teacher's layer weights onto those directions did not
  lower the initial intermediate loss (benchmarks/bench_teacher_init.py).

  Args:
    student: a BERT-family encoder from `build_encoder`, changed in place.
    teacher: the BERT-family teacher encoder, already restored.
    layer_map: g(m) for m = 1..M (`modeling.losses.parse_layer_map`).
    distillation: optional `IntermediateDistillation`, whose W_h the narrower case sets.

  Returns:
    A one-line description for the log.

  Raises:
    UserError: a family other than BERT/RoBERTa/TinyBERT (ALBERT shares one layer, MobileBERT has bottlenecks), a
      student wider than the teacher, equal widths with different head counts or FFN sizes, a different
      vocabulary, more student positions than the teacher has, or a layer map that does not fit.
  """
  for role, encoder in (("student", student), ("teacher", teacher)):
    if (not hasattr(encoder, "_transformer_layers") or encoder._config.get("share_layers")
        or getattr(encoder, "_embedding_projection", None) is not None):
      raise UserError(f"--init_from_teacher: the {role} is not a BERT, RoBERTa or TinyBERT encoder (ALBERT shares "
                      "one layer and MobileBERT has bottlenecks, so their layers cannot be copied)")
  s_layers, t_layers = student._transformer_layers, teacher._transformer_layers
  if len(layer_map) != len(s_layers) or any(not 1 <= g <= len(t_layers) for g in layer_map):
    raise UserError(f"--init_from_teacher: layer map {list(layer_map)} does not map the student's {len(s_layers)} "
                    f"layers onto the teacher's {len(t_layers)}")
  s_width, t_width = student._config["hidden_size"], teacher._config["hidden_size"]
  if s_width > t_width:
    raise UserError(f"--init_from_teacher: the student ({s_width} wide) is wider than the teacher ({t_width})")
  if s_width < t_width:
    return init_embeddings_from_teacher(student, teacher, distillation) + "; layers left at their random start"
  for name in ("num_attention_heads", "inner_dim"):
    if student._config[name] != teacher._config[name]:
      raise UserError(f"--init_from_teacher: equal widths ({s_width}) but the student's {name} is "
                      f"{student._config[name]} and the teacher's {teacher._config[name]}; copying layers needs "
                      "the same block shape")
  s_tables, t_tables = _embedding_tables(student, "student"), _embedding_tables(teacher, "teacher")
  tables = [(name, s, t) for name, s, t in zip(("vocab_size", "max_position_embeddings", "type_vocab_size"),
                                                 s_tables, t_tables) if s is not None and t is not None]
  for name, s, t in tables:
    if s.shape[0] != t.shape[0] and not (name == "max_position_embeddings" and s.shape[0] < t.shape[0]):
      raise UserError(f"--init_from_teacher needs the student's {name} ({s.shape[0]}) to be the teacher's "
                      f"({t.shape[0]})" + (" or fewer" if name == "max_position_embeddings" else ""))
  copies = [(s, t.numpy()[:s.shape[0]]) for _, s, t in tables]
  s_bias, t_bias = (getattr(e, "_relative_position_bias", None) for e in (student, teacher))
  if s_bias is not None and t_bias is not None:  # MPNet's relative position bias, shared by every layer.
    copies += [(s, t.numpy()) for s, t in zip(s_bias.weights, t_bias.weights)]
  copies += [(s, t.numpy()) for s, t in zip(student._embedding_norm_layer.weights, teacher._embedding_norm_layer.weights)]
  copies += [(s, t.numpy()) for s, t in zip(student._pooler_layer.weights, teacher._pooler_layer.weights)]
  for m, g in enumerate(layer_map):
    s_block, t_block = _block_variables(s_layers[m]), _block_variables(t_layers[g - 1])
    if s_block.keys() != t_block.keys():
      raise UserError(f"--init_from_teacher: student layer {m + 1} and teacher layer {g} have different variables "
                      f"({sorted(s_block.keys() ^ t_block.keys())[:3]})")
    copies += [(s_block[name], t_block[name].numpy()) for name in s_block]
  for variable, value in copies:
    if list(variable.shape) != list(value.shape):
      raise UserError(f"--init_from_teacher: {variable.name} is {list(variable.shape)} in the student but "
                      f"{list(value.shape)} in the teacher")
  for variable, value in copies:
    variable.assign(value.astype(variable.dtype.as_numpy_dtype))
  return (f"student initialised from the teacher: embeddings, pooler and teacher layers {list(layer_map)} copied "
          f"into student layers 1..{len(layer_map)}")
