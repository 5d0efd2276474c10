"""What the two training scripts share at the command line: the flags they both add to the seed's, the checks on
them, and the start of the runtime those flags describe (threads, seed, strategy, dtype).

Importing this module defines no flags; the scripts call `define_runtime_flags` and `define_distillation_flags`.
"""

import dataclasses
import os

import tensorflow as tf
from absl import flags

from modeling import config as config_lib
from modeling import losses, records, relation_losses, training
from modeling.errors import UserError
from modeling.models import head_size_in


def define_runtime_flags(default_steps_per_loop: int = 100) -> None:
  """Flags for devices, precision, reproducibility and checkpointing; `runtime_from_flags` reads them."""
  flags.DEFINE_enum("distribution_strategy", "one_device", training.STRATEGIES,
                    "How to spread training over devices: one_device, mirrored (all local GPUs, or --cpu_devices "
                    "logical CPUs), multi_worker_mirrored (cluster from TF_CONFIG) or tpu (with --tpu).")
  flags.DEFINE_string("tpu", None, "TPU name or grpc:// address, for --distribution_strategy=tpu.")
  flags.DEFINE_integer("cpu_devices", 0, "With no GPU, split the CPU into this many logical devices for "
                       "--distribution_strategy=mirrored (0: leave devices alone).")
  flags.DEFINE_enum("dtype", "float32", training.DTYPES,
                    "Compute dtype: float32, bfloat16 (mixed) or float16 (mixed, with dynamic loss scaling).")
  flags.DEFINE_integer("intra_op_threads", 0, "Threads inside one op (0: TensorFlow's default). On a small CPU, "
                       "the number of cores with --inter_op_threads=1 can be much faster (see README, Benchmarks).")
  flags.DEFINE_integer("inter_op_threads", 0, "Ops run in parallel (0: TensorFlow's default).")
  flags.DEFINE_integer("seed", None, "Random seed; with it a CPU run repeats exactly, also across a resume.")
  flags.DEFINE_integer("save_checkpoint_steps", 1000, "Save a checkpoint about this often (in whole loops).")
  flags.DEFINE_integer("keep_checkpoint_max", 3, "How many recent checkpoints to keep in output_dir/checkpoints.")
  if "steps_per_loop" not in flags.FLAGS:
    flags.DEFINE_integer("steps_per_loop", default_steps_per_loop,
                         "Steps run inside one tf.function call between progress lines.")


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


def define_distillation_flags() -> None:
  """Flags for TinyBERT's intermediate-layer losses."""
  flags.DEFINE_string("layer_map", "uniform", "Teacher layer for each student layer: 'uniform' (g(m)=m*N/M) or a "
                      "comma-separated list of M teacher layers, 1-based, e.g. '3,6,9,12'.")
  flags.DEFINE_enum("attention_loss", "logits_mse", losses.ATTENTION_LOSSES,
                    "Attention term: MSE on pre-softmax logits (TinyBERT), MSE on probabilities, or KL.")
  flags.DEFINE_enum("projection", "shared", losses.PROJECTIONS,
                    "Width projection W_h: one shared by all layers (TinyBERT) or one per layer.")
  flags.DEFINE_string("loss_weights", "", "Weights of the terms, e.g. 'embedding=1,hidden=1,attention=1' (tinybert), "
                      "'attention=1,value_relation=1' (minilm), 'query_relation=1,key_relation=1,value_relation=1' "
                      "(minilmv2).")
  flags.DEFINE_enum("intermediate_loss", "tinybert", relation_losses.INTERMEDIATE_LOSSES,
                    "The intermediate-layer loss: tinybert (embedding, hidden and attention over --layer_map; head "
                    "counts must match), minilm (MiniLM: last-layer attention and value-relation KL; head counts "
                    "must match, widths may differ) or minilmv2 (MiniLMv2: query, key and value relation KL over "
                    "--relation_heads; any head count and width).")
  flags.DEFINE_integer("relation_heads", 0, "minilmv2: the number R of relation heads; must divide both models' "
                       "attention widths (0: the teacher's attention head count).")
  flags.DEFINE_integer("minilm_teacher_layer", 0, "minilm, minilmv2: the 1-based teacher layer that the student's "
                       "last layer learns from (0: the teacher's last layer).")
  flags.DEFINE_bool("init_from_teacher", False,
                    "Start the student from the teacher (modeling/teacher_init.py): at equal width the embeddings, "
                    "pooler and the teacher layers of --layer_map are copied (DistilBERT; run_finetuning.py also "
                    "copies the task head), a narrower student gets the teacher's embeddings projected onto their "
                    "top principal directions. BERT-family models; not with --ckpt_path.")


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
  """The vocab for the export: `--vocab_file`, else one shipped in `folders`; it must be the data's vocab."""
  if vocab_file:
    check_path("vocab_file", vocab_file)
  vocab = vocab_file or find_vocab(*folders)
  if vocab and records.sha256_file(vocab) != meta.get("vocab_sha256"):
    raise UserError(f"--vocab_file {vocab} is not the vocab the data was prepared with")
  return vocab


def check_vocab_matches(meta: dict, data_dir: str, ckpt_path: str, flag: str) -> None:
  """Refuses data tokenized with another vocab than the one shipped beside a checkpoint (when one is)."""
  vocab = find_vocab(ckpt_path) if ckpt_path and os.path.isdir(ckpt_path) else None
  if vocab and meta.get("vocab_sha256") and records.sha256_file(vocab) != meta["vocab_sha256"]:
    raise UserError(f"--data_dir {data_dir} was prepared with another vocab than {vocab} (--{flag}); "
                    f"prepare the data again with that vocab")
