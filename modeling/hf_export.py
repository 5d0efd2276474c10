"""Exporting a student (or any encoder of this project) as a Hugging Face folder that `transformers` loads.

The folder holds:

  config.json             the family's Hugging Face config (`model_type`, `architectures`), plus `id2label`,
                          `label2id` and `problem_type` when a task head is exported;
  model.safetensors       the weights under Hugging Face names, PyTorch layouts (`Linear` weights [out, in]);
  tokenizer files         vocab.txt (WordPiece, `BertTokenizer`; `MPNetTokenizer` for MPNet's vocab, which starts
                          `<s> <pad> </s> <unk>`), spiece.model (SentencePiece, `AlbertTokenizer`) or vocab.json +
                          merges.txt (byte-level BPE, `RobertaTokenizer`), with tokenizer_config.json and
                          special_tokens_map.json.

BERT and TinyBERT export as `bert`, RoBERTa as `roberta`, ALBERT as `albert`, MPNet as `mpnet` and MobileBERT as
`mobilebert`; a task model as `*ForSequenceClassification`, an encoder alone as `*Model`. Names and layouts come
from the Hugging Face import's table (`modeling.checkpoints.hf_variable_rules`), so the folder imports back
through `load_encoder` / `restore_hf_task_model` to the same numbers.

The tokenizer's class follows the vocab the data was prepared with, not the model family, as the data preparation
did: a vocab.txt packs `[CLS] A [SEP] B [SEP]` (`BertTokenizer`) unless it is MPNet's, which packs
`<s> A </s></s> B </s>` (`MPNetTokenizer`, with all-mpnet-base-v2's special tokens).
"""

import os
import shutil
from collections.abc import Sequence

import numpy as np
import tf_keras

from modeling import files
from modeling.checkpoints import SAFETENSORS_FILE, hf_variable_rules
from modeling.config import ModelConfig
from modeling.errors import UserError
from modeling.tokenization import _ROBERTA_STYLE_WORDPIECE_HEAD

# Family -> (Hugging Face model_type, class name stem).
HF_FAMILIES = {"bert": ("bert", "Bert"), "tinybert": ("bert", "Bert"), "roberta": ("roberta", "Roberta"),
               "albert": ("albert", "Albert"), "mpnet": ("mpnet", "MPNet"), "mobilebert": ("mobilebert", "MobileBert")}
TASK_TYPES = ("classification", "regression")
# Written into config.json, where transformers keeps it as an attribute; it marks a folder as ours to replace.
EXPORT_MARKER = ("exported_by", "modeling.hf_export")

_SPECIAL_TOKENS = {
    "wordpiece": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]",
                  "mask_token": "[MASK]"},
    "sentencepiece": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "<pad>", "unk_token": "<unk>",
                      "mask_token": "[MASK]"},
    "bpe": {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>",
            "unk_token": "<unk>", "mask_token": "<mask>"},
    # all-mpnet-base-v2's special tokens (its tokenizer_config.json); unknown words are [UNK], as in tokenization.
    "mpnet_wordpiece": {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                        "unk_token": "[UNK]", "pad_token": "<pad>", "mask_token": "<mask>"},
}
_TOKENIZER_CLASSES = {"wordpiece": "BertTokenizer", "sentencepiece": "AlbertTokenizer", "bpe": "RobertaTokenizer",
                      "mpnet_wordpiece": "MPNetTokenizer"}
_TOKENIZER_FILE_NAMES = ("vocab.txt", "spiece.model", "vocab.json", "merges.txt", "tokenizer_config.json",
                         "special_tokens_map.json")
_EXPORT_FILE_NAMES = ("config.json", SAFETENSORS_FILE) + _TOKENIZER_FILE_NAMES


def _check_representable(config: ModelConfig) -> None:
  """Refuses a config that no Hugging Face class computes the same way."""
  where = f"config {config.source}"
  if config.model_type not in HF_FAMILIES:
    raise UserError(f"{where}: Hugging Face has no class for model_type {config.model_type!r}; exportable: "
                    f"{', '.join(HF_FAMILIES)}")
  if config.model_type == "albert" and (config.embedding_size or config.hidden_size) == config.hidden_size:
    raise UserError(f"{where}: an ALBERT whose embedding_size equals hidden_size has no embedding projection, which "
                    f"Hugging Face's AlbertModel always has; it cannot be exported")
  if config.model_type == "mpnet" and config.pad_token_id != 1:
    raise UserError(f"{where}: field 'pad_token_id' is {config.pad_token_id}, but Hugging Face's MPNet numbers "
                    f"positions after id 1 whatever its config says; it cannot be exported")
  if config.model_type == "mpnet" and config.relative_attention_num_buckets != 32:
    raise UserError(f"{where}: field 'relative_attention_num_buckets' is {config.relative_attention_num_buckets}, but "
                    f"Hugging Face's MPNet buckets relative positions into 32 whatever its config says; it cannot be "
                    f"exported")
  if config.model_type == "mobilebert" and config.normalization_type not in ("no_norm", "layer_norm"):
    raise UserError(f"{where}: field 'normalization_type' is {config.normalization_type!r}; Hugging Face's "
                    f"MobileBERT has only 'no_norm' and 'layer_norm'")


def hf_config(config: ModelConfig, num_labels: int | None = None, label_list: Sequence[str] | None = None,
              task_type: str = "classification") -> dict:
  """The Hugging Face `config.json` of `config`'s model, with a sequence-classification head of `num_labels`.

  Args:
    config: the project config.
    num_labels: outputs of the head, or None for the encoder alone (`*Model`).
    label_list: the task's labels in id order (`id2label`); None names them `LABEL_<i>`.
    task_type: "classification" or "regression" (`problem_type`).

  Returns:
    The JSON object.
  """
  _check_representable(config)
  if num_labels and config.head_pooling != "first_token":
    raise UserError(f"config {config.source}: field 'pooling' is {config.pooling!r}, but Hugging Face's "
                    f"*ForSequenceClassification heads read the first token; export the encoder alone "
                    f"(its mean over the real tokens is the sentence vector) or train with first-token pooling")
  hf_type, stem = HF_FAMILIES[config.model_type]
  raw = {"model_type": hf_type,
         "architectures": [f"{stem}ForSequenceClassification" if num_labels else f"{stem}Model"],
         "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
         "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
         "intermediate_size": config.intermediate_size, "hidden_act": config.hidden_act,
         "hidden_dropout_prob": config.hidden_dropout_prob,
         "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
         "max_position_embeddings": config.max_position_embeddings, "type_vocab_size": config.type_vocab_size,
         "initializer_range": config.initializer_range, "layer_norm_eps": config.layer_norm_eps,
         "pad_token_id": config.pad_token_id, "torch_dtype": "float32", EXPORT_MARKER[0]: EXPORT_MARKER[1]}
  if hf_type == "albert":
    raw.update(embedding_size=config.embedding_size, num_hidden_groups=1, inner_group_num=1)
  elif hf_type == "mpnet":
    del raw["type_vocab_size"]  # MPNet has no token types.
    raw["relative_attention_num_buckets"] = config.relative_attention_num_buckets
  elif hf_type == "mobilebert":
    # What tf-models' MobileBERTEncoder computes: trigram embeddings, bottlenecks whose width is also the attention
    # width (Hugging Face derives true_hidden_size from intra_bottleneck_size), LayerNorm epsilon 1e-12, a pooler.
    raw.update(embedding_size=config.embedding_size or 128, trigram_input=True, use_bottleneck=True,
               intra_bottleneck_size=config.intra_bottleneck_size,
               use_bottleneck_attention=config.use_bottleneck_attention,
               key_query_shared_bottleneck=config.key_query_shared_bottleneck,
               num_feedforward_networks=config.num_feedforward_networks,
               normalization_type=config.normalization_type, classifier_activation=True, layer_norm_eps=1e-12)
  if num_labels:
    if task_type not in TASK_TYPES:
      raise UserError(f"task_type is {task_type!r}; expected one of {', '.join(TASK_TYPES)}")
    if task_type == "regression" and num_labels != 1:
      raise UserError(f"a regression head has 1 output, but this one has {num_labels}")
    labels = list(label_list) if label_list and task_type == "classification" else [
        f"LABEL_{i}" for i in range(num_labels)]
    if len(labels) != num_labels:
      raise UserError(f"the label list has {len(labels)} labels ({', '.join(map(str, labels))}), but the head has "
                      f"{num_labels} outputs")
    if len(set(map(str, labels))) != len(labels):
      raise UserError(f"the label list repeats a label: {', '.join(map(str, labels))}")
    raw.update(id2label={str(i): str(label) for i, label in enumerate(labels)},
               label2id={str(label): i for i, label in enumerate(labels)},
               problem_type="regression" if task_type == "regression" else "single_label_classification")
  return raw


def hf_tensors(encoder: tf_keras.Model, config: ModelConfig, head: tf_keras.layers.Layer | None = None
               ) -> dict[str, np.ndarray]:
  """The encoder's (and head's) weights under Hugging Face names and layouts, as float32 arrays.

  Args:
    encoder: a model from `modeling.build_encoder(config)`.
    config: its config.
    head: a `TaskModel`'s head for a `*ForSequenceClassification` layout, or None for `*Model`.

  Returns:
    `{tensor name: array}`.

  Raises:
    UserError: a variable has no Hugging Face counterpart.
  """
  _check_representable(config)
  tensors = {}
  for name, (variable, rule) in hf_variable_rules(encoder, config, head).items():
    if rule is None:
      raise UserError(f"config {config.source}: the {config.model_type} variable {name} has no Hugging Face "
                      f"counterpart; this model cannot be exported")
    if rule.source in tensors:
      raise UserError(f"config {config.source}: two variables map to the Hugging Face tensor {rule.source}")
    tensors[rule.source] = np.ascontiguousarray(rule.export(np.asarray(variable.numpy(), np.float32)))
  return tensors


def _tokenizer_kind(paths: Sequence[str]) -> str:
  names = sorted(os.path.basename(p) for p in paths)
  if len(paths) == 1 and names[0].endswith(".model"):
    return "sentencepiece"
  if len(paths) == 1:
    with open(paths[0], encoding="utf-8") as f:
      head = [f.readline().strip() for _ in range(len(_ROBERTA_STYLE_WORDPIECE_HEAD))]
    return "mpnet_wordpiece" if head == _ROBERTA_STYLE_WORDPIECE_HEAD else "wordpiece"
  if names == ["merges.txt", "vocab.json"]:
    return "bpe"
  raise UserError(f"tokenizer files {', '.join(paths)}: expected one vocab.txt (WordPiece), one .model "
                  f"(SentencePiece) or vocab.json with merges.txt (byte-level BPE)")


def _tokenizer_files(paths: Sequence[str], do_lower_case: bool | None, model_max_length: int) -> dict[str, object]:
  """`{file name in the export: source path or JSON object}` for the tokenizer."""
  for path in paths:
    if not os.path.isfile(path):
      raise UserError(f"tokenizer file not found: {path}")
  kind = _tokenizer_kind(paths)
  if kind == "sentencepiece":
    copies = {"spiece.model": paths[0]}
  elif kind in ("wordpiece", "mpnet_wordpiece"):
    copies = {"vocab.txt": paths[0]}
  else:
    copies = {os.path.basename(p): p for p in paths}
  special = _SPECIAL_TOKENS[kind]
  tokenizer_config = dict(special, tokenizer_class=_TOKENIZER_CLASSES[kind], model_max_length=model_max_length)
  if kind != "bpe":
    if do_lower_case is None:
      raise UserError("do_lower_case is needed to export a WordPiece or SentencePiece tokenizer")
    # The project's tokenizers strip accents when lower-casing WordPiece and never for SentencePiece.
    tokenizer_config["do_lower_case"] = bool(do_lower_case)
    if kind == "sentencepiece":
      tokenizer_config.update(keep_accents=True, remove_space=True)
  return dict(copies, **{"tokenizer_config.json": tokenizer_config, "special_tokens_map.json": special})


def check_output_dir(output_dir: str) -> None:
  """Refuses an output folder that holds something else than an earlier export (which `export_hf` replaces).

  Scripts call it while validating their flags, before any training; `export_hf` calls it again before writing.

  Args:
    output_dir: the export folder; it may be missing, empty, or an earlier export (only export files, and
      `EXPORT_MARKER` in its config.json).

  Raises:
    UserError: the path is a file, or a folder holding anything else.
  """
  if not os.path.exists(output_dir):
    return
  if not os.path.isdir(output_dir):
    raise UserError(f"Hugging Face export folder {output_dir} is a file; nothing was overwritten")
  entries = sorted(os.listdir(output_dir))
  if not entries:
    return
  foreign = [name for name in entries if name not in _EXPORT_FILE_NAMES]
  config_path = os.path.join(output_dir, "config.json")
  marked = False
  if os.path.isfile(config_path):
    try:
      raw = files.read_json(config_path)
      marked = isinstance(raw, dict) and raw.get(EXPORT_MARKER[0]) == EXPORT_MARKER[1]
    except UserError:
      marked = False
  if foreign or not marked:
    held = ", ".join(foreign[:3] or entries[:3]) + (" ..." if len(entries) > 3 else "")
    raise UserError(f"Hugging Face export folder {output_dir} already holds something else ({held}); give an "
                    f"empty or new folder; nothing was overwritten")


def export_hf(model: tf_keras.Model, config: ModelConfig, output_dir: str, *, tokenizer_files: Sequence[str] = (),
              do_lower_case: bool | None = None, label_list: Sequence[str] | None = None,
              task_type: str = "classification", model_max_length: int | None = None) -> str:
  """Writes `model` as a Hugging Face folder that `transformers` loads (`AutoModelFor...` / `AutoTokenizer`).

  Everything is checked and computed before the first file is written; the folder is written under a temporary
  name and renamed into place, so an interrupted export leaves no folder that looks finished.

  Args:
    model: a `modeling.models.TaskModel` (exported as `*ForSequenceClassification`) or an encoder from
      `modeling.build_encoder` (exported as `*Model`).
    config: the config the model was built from.
    output_dir: the folder to write; it must not exist, be empty, or hold an earlier export (which is replaced).
    tokenizer_files: the vocab the data was prepared with: a WordPiece vocab.txt, a SentencePiece .model, or
      vocab.json and merges.txt; empty for weights and config only.
    do_lower_case: whether the tokenizer lower-cases (the data sidecar's `do_lower_case`); needed with a vocab.txt
      or a .model.
    label_list: the task's labels in id order (the sidecar's `label_list`), for `id2label` / `label2id`.
    task_type: "classification" or "regression" (`problem_type`).
    model_max_length: the tokenizer's `model_max_length`; default the model's usable positions.

  Returns:
    `output_dir`.

  Raises:
    UserError: a family or config Hugging Face cannot represent, labels that do not fit the head, a missing or
      unrecognised tokenizer file, or an output folder that holds something else. Nothing is written then.
  """
  head = getattr(model, "head", None)
  encoder = model.encoder if head is not None else model
  raw_config = hf_config(config, int(head.units) if head is not None else None, label_list, task_type)
  tensors = hf_tensors(encoder, config, head)
  tokenizer = _tokenizer_files(list(tokenizer_files), do_lower_case,
                               model_max_length or config.max_sequence_length) if tokenizer_files else {}
  check_output_dir(output_dir)
  from safetensors import numpy as safetensors_numpy  # Only the export needs it.

  parent = os.path.dirname(os.path.abspath(output_dir))
  os.makedirs(parent, exist_ok=True)
  with files.atomic_path(output_dir) as tmp:
    os.makedirs(tmp)
    files.write_json(os.path.join(tmp, "config.json"), raw_config)
    safetensors_numpy.save_file(tensors, os.path.join(tmp, SAFETENSORS_FILE), metadata={"format": "pt"})
    for name, content in tokenizer.items():
      if isinstance(content, str):
        shutil.copyfile(content, os.path.join(tmp, name))
      else:
        files.write_json(os.path.join(tmp, name), content)
  return output_dir
