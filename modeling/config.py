"""Model configs: one JSON file per model, in this project's format, Hugging Face's `config.json`, or Google's
`bert_config.json`.

All three share the standard BERT keys. `model_type` picks the family (`bert`, `roberta`, `albert`, `tinybert`,
`mobilebert`, `mpnet`); a file without it is read as a Google `bert_config.json`, which is a plain BERT.
Family-specific keys are ALBERT's `embedding_size`, MobileBERT's bottleneck sizes and MPNet's
`relative_attention_num_buckets`. MPNet has no token types, so its `type_vocab_size` may be absent (it is then 1).
"""

import dataclasses
import json
import os
from typing import Any

from modeling import files
from modeling.errors import UserError

MODEL_TYPES = ("bert", "roberta", "albert", "tinybert", "mobilebert", "mpnet")

# How a task model reads one vector from the last layer: BERT's pooler on the first token, or the mean over the
# real tokens (sentence-transformers' pooling), which a student trained from a random start needs (README, Limits).
POOLINGS = ("first_token", "mean")

# `gelu` is the exact erf GELU that BERT checkpoints were trained with; these names mean the tanh approximation.
APPROXIMATE_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
ACTIVATIONS = ("gelu", "relu", "tanh", "swish", "silu") + APPROXIMATE_GELU

REQUIRED_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                 "type_vocab_size", "initializer_range")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """One model's shape, as read from its JSON file.

  Args:
    model_type: the family, one of `MODEL_TYPES`.
    vocab_size ... initializer_range: the standard BERT keys.
    layer_norm_eps: LayerNorm epsilon (BERT 1e-12, RoBERTa 1e-5).
    pad_token_id: padding id; RoBERTa's and MPNet's positions start after it.
    embedding_size: ALBERT's and MobileBERT's word-embedding width (None means `hidden_size`).
    intra_bottleneck_size, true_hidden_size, num_feedforward_networks, use_bottleneck_attention,
      key_query_shared_bottleneck, normalization_type: MobileBERT's bottleneck settings.
    relative_attention_num_buckets: MPNet's relative position buckets.
    pooling: what a task model's head reads, one of `POOLINGS`: `first_token` (the pooler, dense + tanh, on the
      first token, as BERT) or `mean` (the mean of the last layer over the real tokens; the pooler is unused).
      None (the file does not say) means `first_token`; see `head_pooling`.
    source: the file the config was read from, for error messages.
  """
  model_type: str
  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  hidden_act: str
  hidden_dropout_prob: float
  attention_probs_dropout_prob: float
  max_position_embeddings: int
  type_vocab_size: int
  initializer_range: float
  layer_norm_eps: float = 1e-12
  pad_token_id: int = 0
  embedding_size: int | None = None
  intra_bottleneck_size: int = 128
  true_hidden_size: int = 128
  num_feedforward_networks: int = 4
  use_bottleneck_attention: bool = False
  key_query_shared_bottleneck: bool = True
  normalization_type: str = "no_norm"
  relative_attention_num_buckets: int = 32
  pooling: str | None = None
  source: str = "<dict>"

  @property
  def attention_width(self) -> int:
    """The width that attention heads split: MobileBERT attends inside its bottleneck."""
    return self.true_hidden_size if self.model_type == "mobilebert" else self.hidden_size

  @property
  def head_pooling(self) -> str:
    """What a task model of this config pools: `pooling`, or `first_token` when the file does not say."""
    return self.pooling or POOLINGS[0]

  @property
  def max_sequence_length(self) -> int:
    """Usable positions. RoBERTa and MPNet reserve the rows up to and including their padding id."""
    if self.model_type in ("roberta", "mpnet"):
      return self.max_position_embeddings - self.pad_token_id - 1
    return self.max_position_embeddings

  def to_dict(self) -> dict[str, Any]:
    """The project JSON form (what `save_config` writes and `load_config` reads back)."""
    d = dataclasses.asdict(self)
    d.pop("source")
    return d

  def replace(self, **changes) -> "ModelConfig":
    return dataclasses.replace(self, **changes)


_FIELD_KINDS = {
    **{name: int for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                              "intermediate_size", "max_position_embeddings", "type_vocab_size", "pad_token_id",
                              "embedding_size", "intra_bottleneck_size", "true_hidden_size",
                              "num_feedforward_networks", "relative_attention_num_buckets")},
    **{name: float for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
                                "layer_norm_eps")},
    **{name: bool for name in ("use_bottleneck_attention", "key_query_shared_bottleneck")},
    **{name: str for name in ("hidden_act", "normalization_type", "pooling")},
}


def _model_type(raw: dict[str, Any], source: str) -> str:
  if "model_type" not in raw:
    return "bert"  # Google's bert_config.json carries no model_type.
  model_type = str(raw["model_type"]).lower()
  if model_type not in MODEL_TYPES:
    raise UserError(f"{source}: field 'model_type' is {raw['model_type']!r}; known types: {', '.join(MODEL_TYPES)}")
  return model_type


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> ModelConfig:
  """Validates a config dict and returns a `ModelConfig`; errors name `source` and the field."""
  model_type = _model_type(raw, source)
  missing = [k for k in REQUIRED_KEYS if k not in raw]
  if model_type == "mobilebert":
    missing = [k for k in missing if k not in ("intermediate_size",)]
  if model_type == "mpnet":
    missing = [k for k in missing if k not in ("type_vocab_size",)]
  if missing:
    raise UserError(f"{source}: missing field '{missing[0]}'" + (f" (and {len(missing) - 1} more)"
                                                                  if len(missing) > 1 else ""))
  values = {"model_type": model_type, "source": source}
  if "layer_norm_epsilon" in raw and "layer_norm_eps" not in raw:
    raw = dict(raw, layer_norm_eps=raw["layer_norm_epsilon"])
  for name, kind in _FIELD_KINDS.items():
    if name not in raw or raw[name] is None:
      continue
    value = raw[name]
    if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < (name != "pad_token_id")):
      raise UserError(f"{source}: field '{name}' must be a positive integer, got {value!r}")
    if kind is float and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
      raise UserError(f"{source}: field '{name}' must be a non-negative number, got {value!r}")
    if kind is str and not isinstance(value, str):
      raise UserError(f"{source}: field '{name}' must be a string, got {value!r}")
    values[name] = kind(value)
  values.setdefault("intermediate_size", 512)
  values.setdefault("type_vocab_size", 1)
  if model_type == "mobilebert" and "intra_bottleneck_size" in values:
    values.setdefault("true_hidden_size", values["intra_bottleneck_size"])  # As Hugging Face derives it.
  if model_type == "mpnet":
    values.setdefault("pad_token_id", 1)  # Hugging Face's MPNet numbers positions after 1 whatever the config.
  config = ModelConfig(**values)
  _check_shapes(config)
  return config


def _check_shapes(config: ModelConfig) -> None:
  src = config.source
  if config.pooling is not None and config.pooling not in POOLINGS:
    raise UserError(f"{src}: field 'pooling' is {config.pooling!r}; known: {', '.join(POOLINGS)}")
  if config.hidden_act not in ACTIVATIONS:
    raise UserError(f"{src}: field 'hidden_act' is {config.hidden_act!r}; known: {', '.join(ACTIVATIONS)}")
  width = config.attention_width
  if width % config.num_attention_heads:
    field = "true_hidden_size" if config.model_type == "mobilebert" else "hidden_size"
    raise UserError(f"{src}: field '{field}' ({width}) is not divisible by num_attention_heads "
                    f"({config.num_attention_heads})")
  if config.max_sequence_length <= 0:
    raise UserError(f"{src}: field 'max_position_embeddings' ({config.max_position_embeddings}) leaves no "
                    f"positions after pad_token_id {config.pad_token_id}")
  buckets = config.relative_attention_num_buckets
  if buckets < 4 or buckets % 2:
    raise UserError(f"{src}: field 'relative_attention_num_buckets' must be an even number of at least 4, got {buckets}")
  for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
    if getattr(config, name) >= 1:
      raise UserError(f"{src}: field '{name}' must be below 1, got {getattr(config, name)}")


def load_config(path: str) -> ModelConfig:
  """Reads a model config from a project JSON, a Hugging Face `config.json` or a Google `bert_config.json`.

  Args:
    path: the JSON file, or a folder holding `config.json` (a Hugging Face folder or an output folder of this
      project's scripts).

  Returns:
    The validated `ModelConfig`.

  Raises:
    UserError: naming the file and the field, for a missing file, invalid JSON, an unknown `model_type`, a
      missing key or an impossible shape.
  """
  if os.path.isdir(path):
    path = os.path.join(path, "config.json")
  if not os.path.isfile(path):
    raise UserError(f"config file not found: {path}")
  try:
    with open(path) as f:
      raw = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f"{path}: not valid JSON ({e})") from None
  if not isinstance(raw, dict):
    raise UserError(f"{path}: expected a JSON object of model fields")
  return config_from_dict(raw, source=path)


def save_config(config: ModelConfig, path: str) -> None:
  """Writes `config` as project JSON, atomically."""
  files.write_json(path, config.to_dict())
