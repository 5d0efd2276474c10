"""Restoring an encoder from any checkpoint source: TF2 object checkpoints, Google TF1 BERT, Hugging Face folders.

The source is chosen by what the path holds (`find_checkpoint`):

  tf2: a `tf.train.Checkpoint` whose root has `encoder=<the tf-models network>`, as this project's scripts and TF
       Model Garden write them. The path may be a checkpoint prefix, a folder with a `checkpoint` state file, or an
       output folder of this project (`best/` is preferred over the latest checkpoint in `checkpoints/`).
  tf1: a Google BERT checkpoint (`bert_model.ckpt`, variables `bert/...`), renamed with tf-models'
       `tf1_bert_checkpoint_converter_lib`.
  hf:  a Hugging Face folder with `config.json` and `model.safetensors`, for BERT (MiniLM, TinyBERT), RoBERTa,
       ALBERT, MPNet and MobileBERT, also in their `*ForMaskedLM` / `*ForPreTraining` layouts (the heads are
       ignored; a checkpoint without pooler weights loads with a freshly initialized pooler).

Every source is first matched against the encoder's variables as a whole: a missing tensor, an unused encoder
tensor or a shape mismatch is a `UserError` naming the first offenders, raised before any variable is assigned,
so an encoder is never left half loaded.
"""

import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging
from tensorflow.core.protobuf import trackable_object_graph_pb2

from modeling.config import ModelConfig, load_config
from modeling.encoders import build_encoder
from modeling.errors import UserError

CHECKPOINT_KINDS = ("tf2", "tf1", "hf")
BEST_SUBDIR = "best"
CHECKPOINTS_SUBDIR = "checkpoints"
TF1_BERT_PREFIX = "bert_model.ckpt"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
PYTORCH_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")

_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VARIABLE_ATTRIBUTE = "VARIABLE_VALUE"
_MAX_NAMED_PROBLEMS = 3

# Top-level names of `BertEncoderV2` variables (`<network name>/<these>/...`); a source tensor that maps under one
# of them but fits no variable of the encoder is an unused encoder tensor.
_BERT_ENCODER_SCOPES = ("word_embeddings", "position_embedding", "type_embeddings", "embeddings",
                        "embedding_projection", "transformer", "pooler_transform")


# ---------------------------------------------------------------------------------------------------------------
# Finding the checkpoint.


def _is_tf_prefix(path: str) -> bool:
  return tf.io.gfile.exists(path + ".index")


def _tf_kind(prefix: str) -> str:
  """Tells a TF2 object checkpoint from a TF1 name-based one by its keys."""
  try:
    names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  except (tf.errors.OpError, ValueError) as e:
    raise UserError(f"checkpoint {prefix}: cannot be read ({str(e).splitlines()[0]})") from None
  if _OBJECT_GRAPH_KEY in names:
    return "tf2"
  if any(name.startswith("bert/") for name in names):
    return "tf1"
  raise UserError(f"checkpoint {prefix}: neither a TF2 object checkpoint nor a Google BERT checkpoint "
                  f"(no '{_OBJECT_GRAPH_KEY}' and no 'bert/...' variables)")


def _latest_in(folder: str) -> str | None:
  return tf.train.latest_checkpoint(folder) if tf.io.gfile.isdir(folder) else None


def find_checkpoint(path: str) -> tuple[str, str]:
  """Resolves a user-given checkpoint path to its kind and the exact checkpoint to read.

  Args:
    path: a TF checkpoint prefix (`.../ckpt-5`, `.../bert_model.ckpt`, also with `.index` appended), a folder with
      a `checkpoint` state file, an output folder of this project's training scripts (holding `best/` and/or
      `checkpoints/`), a folder holding `bert_model.ckpt`, or a Hugging Face folder (or its `model.safetensors`).

  Returns:
    `(kind, resolved_path)`: kind is one of `CHECKPOINT_KINDS`; resolved_path is a checkpoint prefix for "tf2" and
    "tf1", and the folder for "hf". For an output folder, `best/` is used if it holds a checkpoint, else the
    latest one in `checkpoints/`; the choice is logged.

  Raises:
    UserError: the path does not exist or holds no usable checkpoint; a Hugging Face folder has only PyTorch
      weights.
  """
  if not path:
    raise UserError("checkpoint path is empty")
  path = path.rstrip("/") or path
  for suffix in (".index", ".meta"):
    if path.endswith(suffix) and _is_tf_prefix(path[:-len(suffix)]):
      path = path[:-len(suffix)]
  if re.search(r"\.data-\d+-of-\d+$", path):
    path = re.sub(r"\.data-\d+-of-\d+$", "", path)
  if _is_tf_prefix(path):
    return _tf_kind(path), path
  if not tf.io.gfile.exists(path):
    raise UserError(f"checkpoint not found: {path}")
  if not tf.io.gfile.isdir(path):
    if path.endswith(".safetensors"):
      return "hf", os.path.dirname(path)
    if os.path.basename(path) in PYTORCH_FILES:
      raise UserError(_pytorch_only_message(os.path.dirname(path)))
    raise UserError(f"checkpoint {path}: not a checkpoint (expected a TF checkpoint prefix, a folder, or "
                    f"{SAFETENSORS_FILE})")
  return _find_in_folder(path)


def _find_in_folder(folder: str) -> tuple[str, str]:
  best = _latest_in(os.path.join(folder, BEST_SUBDIR))
  if best:
    logging.info("Checkpoint folder %s: using the best checkpoint %s", folder, best)
    return _tf_kind(best), best
  latest = _latest_in(os.path.join(folder, CHECKPOINTS_SUBDIR))
  if latest:
    logging.info("Checkpoint folder %s: no best checkpoint in %s/, using the latest checkpoint %s", folder,
                 BEST_SUBDIR, latest)
    return _tf_kind(latest), latest
  latest = _latest_in(folder)
  if latest:
    logging.info("Checkpoint folder %s: using the latest checkpoint %s", folder, latest)
    return _tf_kind(latest), latest
  tf1_prefix = os.path.join(folder, TF1_BERT_PREFIX)
  if _is_tf_prefix(tf1_prefix):
    return _tf_kind(tf1_prefix), tf1_prefix
  names = set(tf.io.gfile.listdir(folder))
  if SAFETENSORS_FILE in names or SAFETENSORS_INDEX_FILE in names:
    return "hf", folder
  if names & set(PYTORCH_FILES):
    raise UserError(_pytorch_only_message(folder))
  raise UserError(f"checkpoint folder {folder}: holds no checkpoint (looked for {BEST_SUBDIR}/, "
                  f"{CHECKPOINTS_SUBDIR}/, a 'checkpoint' state file, {TF1_BERT_PREFIX} and {SAFETENSORS_FILE})")


def _pytorch_only_message(folder: str) -> str:
  return (f"checkpoint folder {folder}: has only PyTorch weights (pytorch_model.bin), which this toolkit does not "
          f"read; convert them once where transformers is installed: "
          f"AutoModel.from_pretrained('{folder}').save_pretrained('{folder}', safe_serialization=True)")


# ---------------------------------------------------------------------------------------------------------------
# Matching a source against the encoder: every check happens before the first assignment.


@dataclasses.dataclass
class _Match:
  """Source tensors matched to the encoder's variables, and what did not match."""
  assignments: list[tuple[tf.Variable, Callable[[], np.ndarray]]] = dataclasses.field(default_factory=list)
  problems: list[str] = dataclasses.field(default_factory=list)
  fresh: list[str] = dataclasses.field(default_factory=list)  # Encoder variables kept at their initial values.

  def check(self, source: str, config: ModelConfig) -> None:
    if not self.problems:
      return
    named = "; ".join(self.problems[:_MAX_NAMED_PROBLEMS])
    more = len(self.problems) - _MAX_NAMED_PROBLEMS
    raise UserError(f"checkpoint {source} does not fit the {config.model_type} config {config.source}: {named}"
                    + (f" (and {more} more mismatches)" if more > 0 else ""))

  def assign(self) -> int:
    for variable, value in self.assignments:
      variable.assign(np.asarray(value(), dtype=variable.dtype.as_numpy_dtype))
    return len(self.assignments)


def _shape(shape) -> list[int]:
  return [int(d) for d in shape]


def _variable_names(network: tf_keras.Model) -> dict[str, tf.Variable]:
  """The network's variables by name below the network's own scope: `transformer/layer_0/.../kernel`."""
  scope = network.name + "/"
  by_name = {}
  for variable in network.variables:
    name = variable.name.removesuffix(":0")
    by_name[name[name.find(scope) + len(scope):] if scope in name else name] = variable
  return by_name


# ---------------------------------------------------------------------------------------------------------------
# TF2 object checkpoints: walk the saved object graph alongside the live one, as `tf.train.Checkpoint` does.


def _match_tf2(network: tf_keras.Model, prefix: str) -> _Match:
  reader = tf.train.load_checkpoint(prefix)
  shapes = reader.get_variable_to_shape_map()
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor(_OBJECT_GRAPH_KEY))
  root_children = {child.local_name: child.node_id for child in graph.nodes[0].children}
  if "encoder" not in root_children:
    raise UserError(f"checkpoint {prefix}: has no 'encoder' object (its root holds: "
                    f"{', '.join(sorted(root_children)) or 'nothing'})")

  match = _Match()
  matched_nodes, matched_variables, visited = set(), set(), set()
  short_names = {id(variable): name for name, variable in _variable_names(network).items()}

  def walk(live, node_id: int) -> None:
    if id(live) in visited:
      return
    visited.add(id(live))
    node = graph.nodes[node_id]
    if isinstance(live, tf.Variable):
      keys = [a.checkpoint_key for a in node.attributes if a.name == _VARIABLE_ATTRIBUTE]
      if not keys:
        return
      matched_nodes.add(node_id)
      matched_variables.add(id(live))
      key = keys[0]
      if _shape(shapes[key]) != _shape(live.shape):
        match.problems.append(f"shape mismatch: {_tf2_name(key)} is {_shape(shapes[key])} but the encoder's "
                              f"{short_names[id(live)]} is {_shape(live.shape)}")
      else:
        match.assignments.append((live, lambda key=key: reader.get_tensor(key)))
      return
    saved_children = {child.local_name: child.node_id for child in node.children}
    for name, child in tf.train.TrackableView.children(live).items():
      if name in saved_children:
        walk(child, saved_children[name])

  walk(network, root_children["encoder"])
  for variable in network.variables:
    if id(variable) not in matched_variables:
      match.problems.append(f"missing: {short_names[id(variable)]}")
  for node_id in _subtree(graph, root_children["encoder"]):
    if node_id not in matched_nodes:
      for attribute in graph.nodes[node_id].attributes:
        if attribute.name == _VARIABLE_ATTRIBUTE:
          match.problems.append(f"unused: {_tf2_name(attribute.checkpoint_key)}")
  return match


def _subtree(graph, node_id: int) -> list[int]:
  order, seen = [node_id], {node_id}
  for current in order:
    for child in graph.nodes[current].children:
      if child.node_id not in seen:
        seen.add(child.node_id)
        order.append(child.node_id)
  return order


def _tf2_name(checkpoint_key: str) -> str:
  return checkpoint_key.replace("/.ATTRIBUTES/" + _VARIABLE_ATTRIBUTE, "")


# ---------------------------------------------------------------------------------------------------------------
# Named tensors (TF1 after renaming, Hugging Face): a rule maps each encoder variable to one source tensor.


@dataclasses.dataclass(frozen=True)
class _Rule:
  """How one encoder variable is made from one source tensor.

  Args:
    source: the source tensor's name.
    kind: "copy" (same shape); "linear" (a PyTorch `Linear` weight `[out, in]`, transposed and reshaped into a
      kernel whose first `in_dims` dims are the input); "reshape" (a bias, reshaped to per-head form);
      "rows" (a position table whose first `offset` rows are skipped).
  """
  source: str
  kind: str = "copy"
  in_dims: int = 1
  offset: int = 0

  def source_shape(self, target: list[int]) -> list[int]:
    if self.kind == "linear":
      return [int(np.prod(target[self.in_dims:])), int(np.prod(target[:self.in_dims]))]
    if self.kind == "reshape":
      return [int(np.prod(target))]
    if self.kind == "rows":
      return [target[0] + self.offset] + target[1:]
    return list(target)

  def convert(self, tensor: np.ndarray, target: list[int]) -> np.ndarray:
    if self.kind == "linear":
      return np.ascontiguousarray(tensor.T).reshape(target)
    if self.kind == "reshape":
      return tensor.reshape(target)
    if self.kind == "rows":
      return tensor[self.offset:]
    return tensor

  def export(self, value: np.ndarray) -> np.ndarray:
    """The inverse of `convert`: the source tensor that converts to `value` (skipped position rows are zeros)."""
    target = list(value.shape)
    if self.kind == "linear":
      return np.ascontiguousarray(value.reshape(self.source_shape(target)[::-1]).T)
    if self.kind == "reshape":
      return value.reshape(self.source_shape(target))
    if self.kind == "rows":
      return np.concatenate([np.zeros([self.offset] + target[1:], value.dtype), value])
    return value


def _match_named(variables: dict[str, tf.Variable], tensor_shapes: dict[str, list[int]],
                 read_tensor: Callable[[str], np.ndarray], rule_for: Callable[[str], _Rule | None],
                 is_encoder_tensor: Callable[[str], bool], may_stay_fresh: Callable[[str], bool] = lambda _: False
                 ) -> _Match:
  match, used = _Match(), set()
  for name, variable in variables.items():
    rule = rule_for(name)
    target = _shape(variable.shape)
    if rule is not None and rule.source not in tensor_shapes and may_stay_fresh(name):
      match.fresh.append(name)
      continue
    if rule is None or rule.source not in tensor_shapes:
      match.problems.append(f"missing: {rule.source if rule else name} (for the encoder's {name})")
      continue
    used.add(rule.source)
    expected = rule.source_shape(target)
    if tensor_shapes[rule.source] != expected:
      match.problems.append(f"shape mismatch: {rule.source} is {tensor_shapes[rule.source]} but the encoder's "
                            f"{name} {target} needs {expected}")
      continue
    match.assignments.append((variable, lambda rule=rule, target=target: rule.convert(read_tensor(rule.source),
                                                                                       target)))
  for source in sorted(tensor_shapes):
    if source not in used and is_encoder_tensor(source):
      match.problems.append(f"unused: {source}")
  return match


# TF1: tf-models' converter renames Google's variables to `BertEncoderV2` names and splits the heads, so the
# renamed tensors are copied as they are.


def _match_tf1(network: tf_keras.Model, config: ModelConfig, prefix: str, workdir: str) -> _Match:
  from official.nlp.tools import tf1_bert_checkpoint_converter_lib as converter  # Imports TF1 symbols; keep lazy.
  if config.model_type not in ("bert", "tinybert"):
    raise UserError(f"checkpoint {prefix}: Google TF1 checkpoints are read for BERT-style models only, but "
                    f"config {config.source} is {config.model_type}")
  renamed = os.path.join(workdir, "renamed.ckpt")
  try:
    converter.convert(prefix, renamed, num_heads=config.num_attention_heads,
                      name_replacements=converter.BERT_V2_NAME_REPLACEMENTS,
                      permutations=converter.BERT_V2_PERMUTATIONS, exclude_patterns=["adam", "Adam"])
  except ValueError as e:  # A hidden size that the heads do not divide cannot be split.
    raise UserError(f"checkpoint {prefix} does not fit config {config.source}: {e}") from None
  reader = tf.train.load_checkpoint(renamed)
  shapes = {name: _shape(shape) for name, shape in reader.get_variable_to_shape_map().items()}
  return _match_named(_variable_names(network), shapes, reader.get_tensor, _Rule,
                      lambda name: name.split("/")[0] in _BERT_ENCODER_SCOPES)


# Hugging Face: PyTorch module names, `Linear` weights stored [out, in].

_HF_BERT_LAYER = {"self_attention/query": "attention.self.query", "self_attention/key": "attention.self.key",
                  "self_attention/value": "attention.self.value",
                  "self_attention/attention_output": "attention.output.dense",
                  "self_attention_layer_norm": "attention.output.LayerNorm", "intermediate": "intermediate.dense",
                  "output": "output.dense", "output_layer_norm": "output.LayerNorm"}
_HF_ALBERT_LAYER = {"self_attention/query": "attention.query", "self_attention/key": "attention.key",
                    "self_attention/value": "attention.value", "self_attention/attention_output": "attention.dense",
                    "self_attention_layer_norm": "attention.LayerNorm", "intermediate": "ffn",
                    "output": "ffn_output", "output_layer_norm": "full_layer_layer_norm"}
_HF_MPNET_LAYER = {"self_attention/query": "attention.attn.q", "self_attention/key": "attention.attn.k",
                   "self_attention/value": "attention.attn.v", "self_attention/attention_output": "attention.attn.o",
                   "self_attention_layer_norm": "attention.LayerNorm", "intermediate": "intermediate.dense",
                   "output": "output.dense", "output_layer_norm": "output.LayerNorm"}
_HF_PARAMETER = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias", "embeddings": "weight",
                 "rel_embedding": "weight"}
_HF_ENCODER_PARTS = ("embeddings.", "encoder.", "pooler.")


def _hf_rule(name: str, config: ModelConfig, prefix: str) -> _Rule | None:
  """The Hugging Face tensor and conversion for one `BertEncoderV2` variable name."""
  albert, mpnet = config.model_type == "albert", config.model_type == "mpnet"
  module, _, parameter = name.rpartition("/")
  hf_parameter = _HF_PARAMETER.get(parameter)
  if hf_parameter is None:
    return None
  kind = {"kernel": "linear", "bias": "reshape"}.get(parameter, "copy")
  in_dims = 1
  if module == "word_embeddings":
    source = "embeddings.word_embeddings"
  elif module == "type_embeddings":
    source = "embeddings.token_type_embeddings"
  elif module == "position_embedding" and mpnet:
    source = "embeddings.position_embeddings"  # MPNet's encoder keeps the whole table: pads use the padding row.
  elif module == "relative_attention_bias":
    source = "encoder.relative_attention_bias"
  elif module == "position_embedding":
    # RoBERTa numbers positions from pad_token_id + 1 (rows up to the padding id are never used).
    offset = config.pad_token_id + 1 if config.model_type == "roberta" else 0
    return _Rule(f"{prefix}embeddings.position_embeddings.weight", kind="rows", offset=offset)
  elif module == "embeddings/layer_norm":
    source = "embeddings.LayerNorm"
  elif module == "embedding_projection" and albert:
    source = "encoder.embedding_hidden_mapping_in"
  elif module == "pooler_transform":
    source = "pooler" if albert else "pooler.dense"
  else:
    found = re.fullmatch(r"transformer/layer_(\d+)/(.+)", module)
    layer_names = _HF_ALBERT_LAYER if albert else _HF_MPNET_LAYER if mpnet else _HF_BERT_LAYER
    if not found or found.group(2) not in layer_names:
      return None
    layer = "encoder.albert_layer_groups.0.albert_layers.0" if albert else f"encoder.layer.{found.group(1)}"
    source = f"{layer}.{layer_names[found.group(2)]}"
    in_dims = 2 if found.group(2) == "self_attention/attention_output" else 1
  return _Rule(f"{prefix}{source}.{hf_parameter}", kind=kind, in_dims=in_dims)


# MobileBERT: tf-models' `MobileBERTTransformer` sub-layers (per layer) to Hugging Face's `MobileBertLayer` modules.
_HF_MOBILEBERT_LAYER = {"attention/query": "attention.self.query", "attention/key": "attention.self.key",
                        "attention/value": "attention.self.value",
                        "attention/attention_output": "attention.output.dense",
                        "attention/norm": "attention.output.LayerNorm", "bottleneck_input/dense": "bottleneck.input.dense",
                        "bottleneck_input/norm": "bottleneck.input.LayerNorm",
                        "kq_shared_bottleneck/dense": "bottleneck.attention.dense",
                        "kq_shared_bottleneck/norm": "bottleneck.attention.LayerNorm",
                        "bottleneck_output/dense": "output.bottleneck.dense",
                        "bottleneck_output/norm": "output.bottleneck.LayerNorm"}
_HF_MOBILEBERT_EMBEDDINGS = {"word_embedding": "word_embeddings", "type_embedding": "token_type_embeddings",
                             "position_embedding": "position_embeddings",
                             "embedding_projection": "embedding_transformation", "embedding_norm": "LayerNorm"}
_HF_MOBILEBERT_FFN = {"intermediate_dense": "intermediate.dense", "output_dense": "output.dense",
                      "norm": "output.LayerNorm"}


def _hf_mobilebert_rule(name: str, config: ModelConfig, prefix: str) -> _Rule | None:
  """The Hugging Face tensor and conversion for one variable of tf-models' `MobileBERTEncoder`.

  tf-models runs `num_feedforward_networks` FFNs `ffn_layer_0..N-1`; Hugging Face keeps the first N-1 in `ffn.K`
  and the last as the layer's own `intermediate` / `output`.
  """
  module, _, parameter = name.rpartition("/")
  hf_parameter = _HF_PARAMETER.get(parameter)
  if hf_parameter is None:
    return None
  kind = {"kernel": "linear", "bias": "reshape"}.get(parameter, "copy")
  found = re.fullmatch(r"mobile_bert_embedding(?:_\d+)?/(\w+)", module)  # Keras numbers later instances.
  if found:
    if found.group(1) not in _HF_MOBILEBERT_EMBEDDINGS:
      return None
    return _Rule(f"{prefix}embeddings.{_HF_MOBILEBERT_EMBEDDINGS[found.group(1)]}.{hf_parameter}", kind=kind)
  if module == "pooler":
    return _Rule(f"{prefix}pooler.dense.{hf_parameter}", kind=kind)
  found = re.fullmatch(r"transformer_layer_(\d+)/(.+)", module)
  if not found:
    return None
  layer, sub = f"{prefix}encoder.layer.{found.group(1)}", found.group(2)
  ffn = re.fullmatch(r"ffn_layer_(\d+)/(\w+)", sub)
  if ffn and ffn.group(2) in _HF_MOBILEBERT_FFN:
    index = int(ffn.group(1))
    owner = layer if index == config.num_feedforward_networks - 1 else f"{layer}.ffn.{index}"
    source = f"{owner}.{_HF_MOBILEBERT_FFN[ffn.group(2)]}"
  elif sub in _HF_MOBILEBERT_LAYER:
    source = f"{layer}.{_HF_MOBILEBERT_LAYER[sub]}"
  else:
    return None
  return _Rule(f"{source}.{hf_parameter}", kind=kind, in_dims=2 if sub == "attention/attention_output" else 1)


def _check_hf_mobilebert_layout(folder: str) -> None:
  """tf-models' MobileBERT always has trigram embeddings and bottlenecks; refuse a checkpoint without them."""
  path = os.path.join(folder, "config.json")
  if not os.path.isfile(path):
    return
  with open(path) as f:
    raw = json.load(f)
  for key in ("trigram_input", "use_bottleneck"):
    if raw.get(key, True) is False:
      raise UserError(f"checkpoint {folder}: config.json has {key}=false, but tf-models' MobileBERTEncoder always "
                      f"uses {key.replace('_', ' ')}; this MobileBERT cannot be loaded")


def _read_safetensors(folder: str) -> dict[str, np.ndarray]:
  import safetensors  # Only Hugging Face folders need it.
  from safetensors import numpy as safetensors_numpy
  index_path = os.path.join(folder, SAFETENSORS_INDEX_FILE)
  if os.path.isfile(index_path):
    with open(index_path) as f:
      files = sorted(set(json.load(f).get("weight_map", {}).values()))
  else:
    files = [SAFETENSORS_FILE]
  tensors = {}
  for filename in files:
    try:
      tensors.update(safetensors_numpy.load_file(os.path.join(folder, filename)))
    except (safetensors.SafetensorError, OSError, ValueError) as e:
      raise UserError(f"checkpoint {os.path.join(folder, filename)}: cannot be read ({e})") from None
  # Older checkpoints name LayerNorm parameters gamma/beta.
  return {re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)):
          tensor for name, tensor in tensors.items()}


# The module prefix of each family's `*For...` classes in Hugging Face (TinyBERT is a BERT there).
HF_PREFIXES = {"bert": "bert.", "tinybert": "bert.", "roberta": "roberta.", "albert": "albert.", "mpnet": "mpnet.",
               "mobilebert": "mobilebert."}

# `TaskModel`'s head variables are named `head/kernel` and `head/bias` next to the encoder's. Hugging Face's
# `*ForSequenceClassification` for BERT, ALBERT and MobileBERT puts one `classifier` Linear on the pooled output, as
# `TaskModel` does. RoBERTa's and MPNet's have no pooler: their head is dense + tanh on the first token, then
# `out_proj`, which is `TaskModel`'s pooler and head, so the pooler lives in `classifier.dense` there.
TASK_HEAD_SCOPE = "head/"
_HF_FIRST_TOKEN_HEAD_FAMILIES = ("roberta", "mpnet")


def _hf_prefix(tensors: dict[str, np.ndarray], folder: str) -> str:
  for prefix in [""] + sorted(set(HF_PREFIXES.values())):
    if f"{prefix}embeddings.word_embeddings.weight" in tensors:
      return prefix
  raise UserError(f"checkpoint {folder}: no 'embeddings.word_embeddings.weight' tensor (with or without a "
                  f"bert./roberta./albert./mpnet./mobilebert. prefix); not a BERT, RoBERTa, ALBERT, MPNet or "
                  f"MobileBERT model")


def _hf_pooler_scope(config: ModelConfig) -> str:
  return "pooler/" if config.model_type == "mobilebert" else "pooler_transform/"


def _hf_rule_for(config: ModelConfig, prefix: str, with_head: bool) -> Callable[[str], _Rule | None]:
  """The rule for each variable name of an encoder, or of a `TaskModel` (encoder plus `head/...`) when `with_head`."""
  encoder_rule = _hf_mobilebert_rule if config.model_type == "mobilebert" else _hf_rule
  first_token_head = with_head and config.model_type in _HF_FIRST_TOKEN_HEAD_FAMILIES

  def rule(name: str) -> _Rule | None:
    is_head = with_head and name.startswith(TASK_HEAD_SCOPE)
    if is_head or (first_token_head and name.startswith(_hf_pooler_scope(config))):
      module = ("classifier.out_proj" if first_token_head else "classifier") if is_head else "classifier.dense"
      parameter = name.rpartition("/")[2]
      kind = {"kernel": "linear", "bias": "reshape"}.get(parameter)
      return _Rule(f"{module}.{_HF_PARAMETER[parameter]}", kind=kind) if kind else None
    return encoder_rule(name, config, prefix)
  return rule


def _task_variables(encoder: tf_keras.Model, head: tf_keras.layers.Layer | None) -> dict[str, tf.Variable]:
  variables = _variable_names(encoder.garden_network)
  if head is not None:
    variables.update({TASK_HEAD_SCOPE + "kernel": head.kernel, TASK_HEAD_SCOPE + "bias": head.bias})
  return variables


def hf_variable_rules(encoder: tf_keras.Model, config: ModelConfig, head: tf_keras.layers.Layer | None = None
                      ) -> dict[str, tuple[tf.Variable, _Rule | None]]:
  """Every variable of an encoder (and of a `TaskModel`'s head) with the Hugging Face tensor it is read from.

  This is the one name and layout table of the Hugging Face import; `modeling.hf_export` writes through it too
  (`rule.export(value)` is the inverse of the import's conversion), so the two directions cannot drift apart.

  Args:
    encoder: a model from `modeling.build_encoder(config)`.
    config: its config.
    head: a `TaskModel`'s dense head, or None for the encoder alone (then tensor names carry no prefix, as in
      `BertModel`; with a head they carry the family's prefix, as in `BertForSequenceClassification`).

  Returns:
    `{variable name: (variable, rule)}`; rule is None for a variable Hugging Face has no tensor for.
  """
  rule_for = _hf_rule_for(config, HF_PREFIXES[config.model_type] if head is not None else "", head is not None)
  return {name: (variable, rule_for(name)) for name, variable in _task_variables(encoder, head).items()}


def _match_hf(encoder: tf_keras.Model, config: ModelConfig, folder: str,
              head: tf_keras.layers.Layer | None = None) -> _Match:
  mobilebert = config.model_type == "mobilebert"
  if mobilebert:
    _check_hf_mobilebert_layout(folder)
  tensors = _read_safetensors(folder)
  prefix = _hf_prefix(tensors, folder)
  tensors = {name: tensor for name, tensor in tensors.items() if not name.endswith("position_ids")}
  shapes = {name: list(tensor.shape) for name, tensor in tensors.items()}
  encoder_parts = tuple(prefix + part for part in _HF_ENCODER_PARTS) + (("classifier.",) if head is not None else ())
  # `*ForMaskedLM` checkpoints and roberta-base have no pooler: it keeps its fresh initialization, but only when
  # the checkpoint has no pooler tensor at all (half a pooler is a broken checkpoint). A RoBERTa or MPNet head
  # brings the pooler in `classifier.dense`.
  no_pooler = not any(name.startswith(prefix + "pooler") for name in tensors) and not (
      head is not None and config.model_type in _HF_FIRST_TOKEN_HEAD_FAMILIES)
  return _match_named(_task_variables(encoder, head), shapes, tensors.__getitem__,
                      _hf_rule_for(config, prefix, head is not None), lambda name: name.startswith(encoder_parts),
                      may_stay_fresh=lambda name: no_pooler and name.startswith(_hf_pooler_scope(config)))


# ---------------------------------------------------------------------------------------------------------------
# Public entry points.


def restore_encoder(encoder: tf_keras.Model, config: ModelConfig, ckpt_path: str) -> str:
  """Restores all of `encoder`'s variables from a checkpoint of any supported source.

  Args:
    encoder: an encoder from `modeling.build_encoder(config)`.
    config: the config the encoder was built from (used for head splitting, RoBERTa's position offset and
      error messages).
    ckpt_path: any path `find_checkpoint` accepts.

  A Hugging Face checkpoint without any pooler tensor (`*ForMaskedLM`, roberta-base) loads with the pooler left
  as initialized, and the description says so; any other missing tensor is refused.

  Returns:
    A one-line description of what was loaded (also logged).

  Raises:
    UserError: the path holds no usable checkpoint, or the checkpoint does not fit `config` (the message names the
      first mismatching variables; no variable has been changed).
  """
  kind, resolved = find_checkpoint(ckpt_path)
  network = encoder.garden_network
  with tempfile.TemporaryDirectory(prefix="tf1_bert_") as workdir:  # Holds the renamed copy of a TF1 checkpoint.
    if kind == "tf2":
      match = _match_tf2(network, resolved)
    elif kind == "hf":
      match = _match_hf(encoder, config, resolved)
    else:
      match = _match_tf1(network, config, resolved, workdir)
    match.check(resolved, config)
    count = match.assign()
  description = f"restored {count} encoder variables from the {kind} checkpoint {resolved}"
  if match.fresh:
    description += (f"; it has no pooler, so the pooler ({', '.join(match.fresh)}) keeps its fresh "
                    f"initialization")
  logging.info("%s", description)
  return description


def restore_hf_task_model(model: tf_keras.Model, config: ModelConfig, folder: str) -> str:
  """Restores a `TaskModel` (encoder and head) from a Hugging Face `*ForSequenceClassification` folder.

  The head is read from `classifier` (BERT, ALBERT, MobileBERT) or, for RoBERTa and MPNet, from
  `classifier.out_proj`, with the pooler from `classifier.dense` (see `TASK_HEAD_SCOPE`).

  Args:
    model: a `modeling.models.TaskModel` built from `config` with as many outputs as the checkpoint's labels.
    config: the config the model was built from.
    folder: the Hugging Face folder (or its `model.safetensors`).

  Returns:
    A one-line description of what was loaded (also logged).

  Raises:
    UserError: not a Hugging Face checkpoint, or one that does not fit the model (a missing classifier or a
      different number of labels included); no variable has been changed.
  """
  kind, resolved = find_checkpoint(folder)
  if kind != "hf":
    raise UserError(f"checkpoint {folder}: expected a Hugging Face folder with {SAFETENSORS_FILE}, found a {kind} "
                    f"checkpoint")
  match = _match_hf(model.encoder, config, resolved, head=model.head)
  match.check(resolved, config)
  description = f"restored {match.assign()} encoder and head variables from the hf checkpoint {resolved}"
  logging.info("%s", description)
  return description


def load_encoder(config_path: str, ckpt_path: str | None = None) -> tf_keras.Model:
  """Builds the encoder of a config file and restores it from a checkpoint.

  Args:
    config_path: a project JSON, Hugging Face `config.json` or Google `bert_config.json` (or a folder holding
      `config.json`).
    ckpt_path: any checkpoint path `find_checkpoint` accepts, or None for fresh weights.

  Returns:
    The encoder (see `modeling.build_encoder`).
  """
  config = load_config(config_path)
  encoder = build_encoder(config)
  if ckpt_path:
    restore_encoder(encoder, config, ckpt_path)
  return encoder
