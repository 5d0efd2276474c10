"""What the training scripts share at the command line: the flags they add to the seed's, the checks on them, the
start of the runtime those flags describe (threads, seed, strategy, dtype), and run_finetuning.py's export flags.

Importing this module defines no flags; the scripts call `define_runtime_flags`, `define_distillation_flags` and
`define_export_flags`, each into the `flags.FlagValues` given (absl's global `FLAGS` by default).
"""

import dataclasses
import os

import tensorflow as tf
from absl import flags, logging

from modeling import config as config_lib
from modeling import export, losses, records, relation_losses, tflite, training
from modeling.errors import UserError
from modeling.models import head_size_in


def define_runtime_flags(default_steps_per_loop: int = 100, flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Flags for devices, precision, reproducibility and checkpointing; `runtime_from_flags` reads them."""
  flags.DEFINE_enum("distribution_strategy", "one_device", training.STRATEGIES,
                    "How to spread training over devices: one_device, mirrored (all local GPUs, or --cpu_devices "
                    "logical CPUs), multi_worker_mirrored (cluster from TF_CONFIG) or tpu (with --tpu).",
                    flag_values=flag_values)
  flags.DEFINE_string("tpu", None, "TPU name or grpc:// address, for --distribution_strategy=tpu.",
                      flag_values=flag_values)
  flags.DEFINE_integer("cpu_devices", 0, "With no GPU, split the CPU into this many logical devices for "
                       "--distribution_strategy=mirrored (0: leave devices alone).", flag_values=flag_values)
  flags.DEFINE_enum("dtype", "float32", training.DTYPES,
                    "Compute dtype: float32, bfloat16 (mixed) or float16 (mixed, with dynamic loss scaling).",
                    flag_values=flag_values)
  flags.DEFINE_integer("intra_op_threads", 0, "Threads inside one op (0: TensorFlow's default). On a small CPU, "
                       "the number of cores with --inter_op_threads=1 can be much faster (see README, Benchmarks).",
                       flag_values=flag_values)
  flags.DEFINE_integer("inter_op_threads", 0, "Ops run in parallel (0: TensorFlow's default).",
                       flag_values=flag_values)
  flags.DEFINE_integer("seed", None, "Random seed; with it a CPU run repeats exactly, also across a resume.",
                       flag_values=flag_values)
  flags.DEFINE_integer("save_checkpoint_steps", 1000, "Save a checkpoint about this often (in whole loops).",
                       flag_values=flag_values)
  flags.DEFINE_integer("keep_checkpoint_max", 3, "How many recent checkpoints to keep in output_dir/checkpoints.",
                       flag_values=flag_values)
  if "steps_per_loop" not in flag_values:
    flags.DEFINE_integer("steps_per_loop", default_steps_per_loop,
                         "Steps run inside one tf.function call between progress lines.", flag_values=flag_values)


@dataclasses.dataclass(frozen=True)
class Runtime:
  """The values of the flags from `define_runtime_flags`."""
  distribution_strategy: str
  tpu: str | None
  cpu_devices: int
  dtype: str
  intra_op_threads: int
  inter_op_threads: int
  seed: int | None
  save_checkpoint_steps: int
  keep_checkpoint_max: int
  steps_per_loop: int


def runtime_from_flags(flag_values: flags.FlagValues) -> Runtime:
  return Runtime(**{field.name: flag_values[field.name].value for field in dataclasses.fields(Runtime)})


def start_runtime(runtime: Runtime) -> tf.distribute.Strategy:
  """Sets threads, seeds and the compute dtype, and returns the distribution strategy; runs before the first op."""
  training.set_threads(runtime.intra_op_threads, runtime.inter_op_threads)
  training.configure_determinism(runtime.seed)
  strategy = training.make_strategy(runtime.distribution_strategy, runtime.tpu, runtime.cpu_devices)
  training.set_dtype(runtime.dtype)
  return strategy


def define_distillation_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Flags for TinyBERT's intermediate-layer losses."""
  flags.DEFINE_string("layer_map", "uniform", "Teacher layer for each student layer: 'uniform' (g(m)=m*N/M) or a "
                      "comma-separated list of M teacher layers, 1-based, e.g. '3,6,9,12'.", flag_values=flag_values)
  flags.DEFINE_enum("attention_loss", "logits_mse", losses.ATTENTION_LOSSES,
                    "Attention term: MSE on pre-softmax logits (TinyBERT), MSE on probabilities, or KL.",
                    flag_values=flag_values)
  flags.DEFINE_enum("projection", "shared", losses.PROJECTIONS,
                    "Width projection W_h: one shared by all layers (TinyBERT) or one per layer.",
                    flag_values=flag_values)
  flags.DEFINE_string("loss_weights", "", "Weights of the terms, e.g. 'embedding=1,hidden=1,attention=1' (tinybert), "
                      "'attention=1,value_relation=1' (minilm), 'query_relation=1,key_relation=1,value_relation=1' "
                      "(minilmv2).", flag_values=flag_values)
  flags.DEFINE_enum("intermediate_loss", "tinybert", relation_losses.INTERMEDIATE_LOSSES,
                    "The intermediate-layer loss: tinybert (embedding, hidden and attention over --layer_map; head "
                    "counts must match), minilm (MiniLM: last-layer attention and value-relation KL; head counts "
                    "must match, widths may differ) or minilmv2 (MiniLMv2: query, key and value relation KL over "
                    "--relation_heads; any head count and width).", flag_values=flag_values)
  flags.DEFINE_integer("relation_heads", 0, "minilmv2: the number R of relation heads; must divide both models' "
                       "attention widths (0: the teacher's attention head count).", flag_values=flag_values)
  flags.DEFINE_integer("minilm_teacher_layer", 0, "minilm, minilmv2: the 1-based teacher layer that the student's "
                       "last layer learns from (0: the teacher's last layer).", flag_values=flag_values)
  flags.DEFINE_bool("init_from_teacher", False,
                    "Start the student from the teacher (modeling/teacher_init.py): at equal width the embeddings, "
                    "pooler and the teacher layers of --layer_map are copied (DistilBERT; run_finetuning.py also "
                    "copies the task head), a narrower student gets the teacher's embeddings projected onto their "
                    "top principal directions. BERT-family models; not with --ckpt_path.", flag_values=flag_values)


def define_export_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """run_finetuning.py's flags for what ships after training; `export_from_flags` checks them."""
  flags.DEFINE_string("vocab_file", None, "Vocab (or SentencePiece model) for the exported raw-string signature; "
                      "defaults to the vocab beside --ckpt_path or --teacher_ckpt_path when there is one.",
                      flag_values=flag_values)
  flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (default: output_dir/saved_model; '-' "
                      "skips).", flag_values=flag_values)
  tflite.define_export_tflite_flag(flag_values=flag_values)
  flags.DEFINE_float("max_int8_accuracy_drop", 0.01, "With --export_tflite=int8: the largest drop of the dev primary "
                     "metric (0.01 = one point of accuracy) an int8 model may show against fp32 and still ship.",
                     flag_values=flag_values)
  flags.DEFINE_integer("int8_calibration_examples", 100, "Training examples that calibrate the full-integer model.",
                       flag_values=flag_values)
  flags.DEFINE_string("merges_file", None, "merges.txt of a BPE vocab.json (RoBERTa); default: merges.txt beside the "
                      "vocab. Copied into output_dir and the Hugging Face folder.", flag_values=flag_values)
  flags.DEFINE_string("export_hf", None, "Also write a Hugging Face folder that transformers loads "
                      "(*ForSequenceClassification + tokenizer): a path, or 'true' for output_dir/hf_model.",
                      flag_values=flag_values)


@dataclasses.dataclass(frozen=True)
class Export:
  """The checked values of the flags from `define_export_flags`: the keyword arguments of
  `modeling.export.export_task_model`."""
  vocab: str | None  # --vocab_file, or the vocab found beside a checkpoint.
  merges: str | None  # A BPE vocab's merges.txt.
  export_dir: str | None  # None: no SavedModel.
  export_tflite: str  # "false", "fp32" or "int8".
  hf_dir: str | None  # --export_hf's folder; None: no Hugging Face export.
  max_int8_accuracy_drop: float
  int8_calibration_examples: int


def export_from_flags(flag_values: flags.FlagValues, student: config_lib.ModelConfig, meta: dict, data_dir: str,
                      output_dir: str, vocab_folders: tuple) -> Export:
  """Checks the export flags against the data before any training, so that no run fails at its end.

  Args:
    flag_values: the flags of `define_export_flags`.
    student: the config of the model to export.
    meta, data_dir: the task data's meta.json and folder.
    output_dir: the run's output folder, home of the default SavedModel and Hugging Face folders.
    vocab_folders: checkpoint folders that may ship the vocab, searched in order when --vocab_file is not given.
  """
  f = flag_values
  vocab = export_vocab(f.vocab_file, meta, *vocab_folders)
  merges = export.merges_for(vocab, f.merges_file, meta)
  if f.max_int8_accuracy_drop < 0:
    raise UserError(f"--max_int8_accuracy_drop must not be negative, got {f.max_int8_accuracy_drop}")
  check_positive(int8_calibration_examples=f.int8_calibration_examples)
  if f.export_tflite == "int8":
    tflite.check_int8_gate_data(meta, data_dir)
  hf_dir = export.hf_dir_for(f.export_hf, output_dir)
  if hf_dir:
    export.check_hf_export(hf_dir, student, meta)
  export_dir = None if f.export_dir == "-" else (f.export_dir or os.path.join(output_dir, "saved_model"))
  return Export(vocab=vocab, merges=merges, export_dir=export_dir, export_tflite=f.export_tflite, hf_dir=hf_dir,
                max_int8_accuracy_drop=f.max_int8_accuracy_drop,
                int8_calibration_examples=f.int8_calibration_examples)


def check_positive(**values) -> None:
  for name, value in values.items():
    if value is None or value <= 0:
      raise UserError(f"--{name} must be positive, got {value}")


def check_path(flag: str, path: str) -> str:
  if not path:
    raise UserError(f"--{flag} is required")
  if not os.path.exists(path):
    raise UserError(f"--{flag}: not found: {path}")
  return path


def load_config_flag(flag: str, path: str) -> config_lib.ModelConfig:
  check_path(flag, path)
  try:
    return config_lib.load_config(path)
  except UserError as e:
    raise UserError(f"--{flag}: {e}") from None


def recorded_pooling(ckpt_path: str) -> tuple[str, str] | None:
  """`(pooling, config.json path)` that the run which wrote `ckpt_path` recorded, or None when it recorded none.

  run_finetuning.py writes the pooling it trained with (`--pooling`) into output_dir/config.json, and
  run_pretraining.py writes `mean` for a general student, whose pooler no loss trains. `ckpt_path` is that folder
  or a checkpoint prefix two levels under it (`checkpoints/ckpt-N`, `best/ckpt`).
  """
  folder = ckpt_path if os.path.isdir(ckpt_path) else os.path.dirname(os.path.dirname(ckpt_path))
  recorded_path = os.path.join(folder, "config.json")
  if not os.path.isfile(recorded_path):
    return None
  try:
    recorded = config_lib.load_config(recorded_path).pooling
  except UserError:
    return None  # Not this project's record (the config file's own checks speak for it).
  return None if recorded is None else (recorded, recorded_path)


def with_recorded_pooling(config: config_lib.ModelConfig, ckpt_path: str, flag: str) -> config_lib.ModelConfig:
  """`config` with the head pooling recorded for `ckpt_path` (`recorded_pooling`): a teacher given as a run's
  folder (or a checkpoint under it) with another config file must read its head the same way.

  Raises:
    UserError: `config` names another pooling than the one recorded.
  """
  found = recorded_pooling(ckpt_path)
  if found is None or found[0] == config.pooling:
    return config
  recorded, recorded_path = found
  if config.pooling is not None:
    raise UserError(f"--{flag} {ckpt_path} was trained with pooling {recorded!r} ({recorded_path}), but the config "
                    f"{config.source} says {config.pooling!r}")
  logging.info("%s: the head reads pooling %r, as recorded in %s", ckpt_path, recorded, recorded_path)
  return config.replace(pooling=recorded)


def check_pair(student: config_lib.ModelConfig, teacher: config_lib.ModelConfig, max_seq_length: int,
               flag_values: flags.FlagValues, same_tokens: bool = True,
               intermediate: bool = True) -> relation_losses.IntermediateLoss | None:
  """Refuses a teacher/student pair that cannot be distilled with `--intermediate_loss`; returns that loss, checked.

  Args:
    student, teacher: the two configs.
    max_seq_length: `--max_seq_length`, which both must have positions for.
    flag_values: the flags of `define_distillation_flags`.
    same_tokens: both read the same token ids (False for a teacher with a data folder of its own, stage 2 only).
    intermediate: an intermediate stage runs; without one, None is returned and the loss flags are not read.
  """
  if same_tokens and student.vocab_size != teacher.vocab_size:
    raise UserError(f"student vocab_size {student.vocab_size} ({student.source}) differs from the teacher's "
                    f"{teacher.vocab_size} ({teacher.source}); both must read the same token ids")
  for model in (student, teacher):
    if max_seq_length > model.max_sequence_length:
      raise UserError(f"--max_seq_length={max_seq_length} exceeds {model.source}'s "
                      f"{model.max_sequence_length} positions")
  if not intermediate:
    return None
  f = flag_values
  return relation_losses.parse_intermediate_loss(
      f.intermediate_loss, student, teacher, layer_map=f.layer_map, attention_loss=f.attention_loss,
      projection=f.projection, loss_weights=f.loss_weights, relation_heads=f.relation_heads,
      teacher_layer=f.minilm_teacher_layer)


def init_layer_map(intermediate: relation_losses.IntermediateLoss | None, student: config_lib.ModelConfig,
                   teacher: config_lib.ModelConfig, layer_map_spec: str) -> list[int]:
  """The teacher layers `--init_from_teacher` copies: TinyBERT's layer map, else `--layer_map` read on its own."""
  if intermediate is not None and intermediate.layer_map is not None:
    return intermediate.layer_map
  return losses.parse_layer_map(layer_map_spec, teacher.num_hidden_layers, student.num_hidden_layers)


def read_task_meta(data_dir: str, task_name: str) -> dict:
  """The meta.json of task data prepared for `task_name` by create_finetuning_data.py; refuses any other data."""
  meta = records.read_meta(data_dir)
  if meta.get("kind") != "finetuning":
    raise UserError(f"--data_dir {data_dir} holds {meta.get('kind')!r} data, not task data from "
                    f"create_finetuning_data.py")
  if meta.get("task_name", "").lower() != task_name.lower():
    raise UserError(f"--task_name={task_name} but {data_dir} was prepared for task {meta.get('task_name')!r}")
  return meta


def check_teacher_head(teacher_ckpt_path: str, meta: dict) -> None:
  """Refuses a teacher checkpoint without a task head, or with a head of another label count than the task's."""
  head = head_size_in(teacher_ckpt_path)
  if head is None:
    raise UserError(f"--teacher_ckpt_path {teacher_ckpt_path} has no task head; fine-tune the teacher "
                    f"first with run_finetuning.py without --teacher_config_path")
  if head != meta["num_labels"]:
    raise UserError(f"the teacher's head has {head} outputs but task {meta['task_name']} has "
                    f"{meta['num_labels']} labels")


VOCAB_NAMES = ("vocab.txt", "spiece.model", "sentencepiece.model", "vocab.json")


def find_vocab(*folders):
  """The first vocab (or SentencePiece model) shipped in one of `folders`, or None."""
  for folder in folders:
    for name in VOCAB_NAMES:
      if folder and os.path.isfile(os.path.join(folder, name)):
        return os.path.join(folder, name)
  return None


def export_vocab(vocab_file: str | None, meta: dict, *folders: str | None) -> str | None:
  """The vocab for the export: `--vocab_file`, which must be the data's vocab, else the first vocab shipped in
  `folders` that is the data's (a teacher on another vocabulary ships its own); None when none is."""
  if vocab_file:
    check_path("vocab_file", vocab_file)
    if records.sha256_file(vocab_file) != meta.get("vocab_sha256"):
      raise UserError(f"--vocab_file {vocab_file} is not the vocab the data was prepared with")
    return vocab_file
  shipped = [vocab for vocab in (find_vocab(folder) for folder in folders) if vocab]
  for vocab in shipped:
    if records.sha256_file(vocab) == meta.get("vocab_sha256"):
      return vocab
  if shipped:
    logging.warning("the vocab beside the checkpoints (%s) is not the one the data was prepared with; give "
                    "--vocab_file for an export that takes text", ", ".join(shipped))
  return None


def check_vocab_matches(meta: dict, data_dir: str, ckpt_path: str, flag: str) -> None:
  """Refuses data tokenized with another vocab than the one shipped beside a checkpoint (when one is)."""
  vocab = find_vocab(ckpt_path) if ckpt_path and os.path.isdir(ckpt_path) else None
  if vocab and meta.get("vocab_sha256") and records.sha256_file(vocab) != meta["vocab_sha256"]:
    raise UserError(f"--data_dir {data_dir} was prepared with another vocab than {vocab} (--{flag}); "
                    f"prepare the data again with that vocab")
