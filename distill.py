r"""Distils a teacher into a small student on your own task, in one command.

  python3 distill.py \
    --teacher /path/to/hf_model_or_finetuned_output \
    --task_name csv --data_dir /path/to/csv_folder --text_column text --label_column label \
    --output_dir /path/to/output

runs the documented commands, each printed before it runs:
  1. prepare_dataset/create_finetuning_data.py with the teacher's vocab   -> output_dir/data/
  2. run_finetuning.py without a teacher, when the teacher has no head   -> output_dir/teacher/
  3. run_finetuning.py with the teacher (intermediate, then prediction)  -> output_dir/student/ (SavedModel, TFLite)
and ends with a table of dev (and labelled test) metric, encoder parameters, batch-1 latency and speed-up of teacher
and student, also written to output_dir/distill_results.md and .json.

The teacher is a Hugging Face folder (config.json, model.safetensors and its vocab) or an output folder of
run_finetuning.py; one whose checkpoint has a task head is used as it is. The student config defaults to TinyBERT4
(4 layers, 312 wide, 12 heads) in the teacher's family: configs/mpnet_4l_312.json for an MPNet teacher,
configs/tinybert_4l_312.json otherwise, with the teacher's vocab size. Run the same command again to resume: a step
whose output is complete is skipped, and the training steps continue from their checkpoints.
"""

import dataclasses
import os
import types

from absl import flags, logging

from modeling import cli, files, pipeline, tflite, training
from modeling.config import ModelConfig, load_config, save_config
from modeling.errors import UserError, run_script
from prepare_dataset import create_finetuning_data, dataset_processors

FLAGS = flags.FLAGS

# create_finetuning_data.py's task flags, defined here by its own definitions and passed on when given.
DATA_FLAGS = ("task_name", "data_dir", "max_examples", "sample_examples", "skip_bad_rows", "do_lower_case",
              *create_finetuning_data.GENERIC_FLAGS)
DEFAULT_STUDENTS = {"mpnet": "configs/mpnet_4l_312.json"}
DEFAULT_STUDENT = "configs/tinybert_4l_312.json"
# Vocab files a teacher folder may ship, with the data script's flag for each.
_VOCABS = (("vocab.txt", "vocab_path"), ("vocab.json", "vocab_path"), ("spiece.model", "spm_model_file"),
           ("sentencepiece.model", "spm_model_file"))
_RESULTS = "distill_results"


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """Defines the flags: the data script's task flags, then the teacher, student and training ones."""
  data_flags = flags.FlagValues()
  create_finetuning_data.define_flags(data_flags)
  for name in DATA_FLAGS:
    flags.DEFINE_flag(data_flags[name], flag_values)

  def string(name, default, help_text):
    flags.DEFINE_string(name, default, help_text, flag_values=flag_values)

  def integer(name, default, help_text, lower_bound=1):
    flags.DEFINE_integer(name, default, help_text, lower_bound=lower_bound, flag_values=flag_values)

  def real(name, default, help_text):
    flags.DEFINE_float(name, default, help_text, lower_bound=0, flag_values=flag_values)

  string("teacher", None, "The teacher: a Hugging Face folder (config.json, model.safetensors, vocab) or an output "
         "folder of run_finetuning.py. A teacher with a task head is used as is; any other is fine-tuned first.")
  string("student_config", None, f"The student's config; default: {DEFAULT_STUDENTS['mpnet']} for an MPNet "
         f"teacher, else {DEFAULT_STUDENT}, with the teacher's vocab size.")
  string("general_student", None, "A general-distilled student (an output folder of run_pretraining.py) to start "
         "task distillation from; default: the student starts from the teacher (--init_from_teacher), or from "
         "random weights with --init_from_teacher=false.")
  string("output_dir", None, "Folder for data/, teacher/, student/ and distill_results.md/.json (created if needed).")
  integer("max_seq_length", 128, "Sequence length of the data, the training and the export.", lower_bound=4)
  integer("batch_size", 32, "Training batch size of every phase.")
  integer("teacher_epochs", 3, "Epochs of teacher fine-tuning.")
  real("teacher_learning_rate", 5e-5, "Peak learning rate of teacher fine-tuning.")
  integer("intermediate_epochs", 10, "Epochs of task distillation stage 1 (hidden states and attention).")
  real("intermediate_learning_rate", 5e-4, "Peak learning rate of stage 1.")
  integer("prediction_epochs", 3, "Epochs of task distillation stage 2 (the teacher's soft labels).")
  real("prediction_learning_rate", 5e-4, "Peak learning rate of stage 2.")
  string("layer_map", "auto", "Teacher layer for each student layer, e.g. '3,6,9,12'; auto: ceil(m*N/M), which is "
         "TinyBERT's uniform map when M divides N and spans the whole teacher otherwise (6 onto 4: 2,3,5,6).")
  flags.DEFINE_bool("init_from_teacher", True, "Without --general_student: start the student from the teacher, as "
                    "run_finetuning.py --init_from_teacher does (the teacher's embeddings, projected when narrower).",
                    flag_values=flag_values)
  tflite.define_export_tflite_flag(default="fp32", flag_values=flag_values)
  flags.DEFINE_enum("dtype", "float32", training.DTYPES, "Compute dtype of every training phase (teacher "
                    "fine-tuning, both distillation stages), passed on as run_finetuning.py --dtype: float32, bfloat16 "
                    "(mixed) or float16 (mixed, with dynamic loss scaling).", flag_values=flag_values)
  integer("seed", 1, "Random seed of every training phase.", lower_bound=0)
  integer("steps_per_loop", 50, "Training steps between progress lines.")
  integer("intra_op_threads", 0, "Passed to the training scripts (0: TensorFlow's default).", lower_bound=0)
  integer("inter_op_threads", 0, "Passed to the training scripts (0: TensorFlow's default).", lower_bound=0)


@dataclasses.dataclass(frozen=True)
class Teacher:
  """The teacher as found on disk."""
  folder: str
  config: ModelConfig
  vocab_flag: str  # vocab_path or spm_model_file, for the data script
  vocab: str
  has_head: bool


@dataclasses.dataclass(frozen=True)
class Settings:
  """The validated flags."""
  teacher: Teacher
  student_config: ModelConfig
  student_config_path: str  # the file given, or output_dir/student_config.json written from the default
  general_student: str | None
  output_dir: str
  layer_map: str
  data_args: dict
  training_args: dict
  teacher_args: dict
  student_args: dict
  init_from_teacher: bool


def find_teacher_vocab(folder: str) -> tuple[str, str]:
  """The vocab shipped in a teacher folder and the data script's flag for it; raises `UserError` naming --teacher."""
  for name, flag in _VOCABS:
    if os.path.isfile(os.path.join(folder, name)):
      return flag, os.path.join(folder, name)
  raise UserError(f"--teacher {folder}: no vocab in the folder (looked for {', '.join(n for n, _ in _VOCABS)}); "
                  "the data must be tokenized with the teacher's own vocab")


def _load_teacher(folder: str | None, num_labels: int | None) -> Teacher:
  if not folder:
    raise UserError("--teacher is required: a Hugging Face folder or an output folder of run_finetuning.py")
  if not os.path.isdir(folder):
    raise UserError(f"--teacher: folder not found: {folder}")
  config = cli.load_config_flag("teacher", os.path.join(folder, "config.json"))
  vocab_flag, vocab = find_teacher_vocab(folder)
  try:
    from modeling.models import head_size_in
    head = head_size_in(folder)
  except UserError as e:
    raise UserError(f"--teacher: {e}") from None
  if head is not None and num_labels is not None and head != num_labels:
    raise UserError(f"--teacher {folder} has a task head with {head} outputs, but the task has {num_labels} "
                    "labels; give the teacher's base model instead, to fine-tune it on this task")
  return Teacher(os.path.abspath(folder), config, vocab_flag, os.path.abspath(vocab), head is not None)


def _student_config(path: str | None, teacher: ModelConfig, output_dir: str) -> tuple[ModelConfig, str]:
  """The student config, and the path to give the training script (the default one is fitted to the teacher)."""
  if path:
    return cli.load_config_flag("student_config", path), os.path.abspath(path)
  default = os.path.join(pipeline.ROOT, DEFAULT_STUDENTS.get(teacher.model_type, DEFAULT_STUDENT))
  config = load_config(default)
  if config.vocab_size == teacher.vocab_size:
    return config, default
  fitted = dataclasses.replace(config, vocab_size=teacher.vocab_size, source=os.path.join(output_dir,
                                                                                          "student_config.json"))
  return fitted, fitted.source


def _num_labels(processor) -> int | None:
  if processor.name in dataset_processors.GENERIC_TASKS:
    return None  # A csv/tsv task learns its labels from the data; run_finetuning.py checks the head against them.
  if processor.task_type == dataset_processors.REGRESSION:
    return 1
  return len(processor.get_labels())


def _validate(f: flags.FlagValues) -> Settings:
  """Checks every flag, the teacher folder and the configs before anything runs."""
  if not f.output_dir:
    raise UserError("--output_dir is required")
  if not f.task_name:
    raise UserError(f"--task_name is required; known tasks: {', '.join(dataset_processors.known_tasks())}")
  processor = create_finetuning_data._processor_from_flags(f)
  if f.data_dir is None and not processor.data_dir_optional:
    raise UserError(f"--data_dir is required for {processor.name}: {processor.layout}")
  if f.data_dir is not None and not os.path.isdir(f.data_dir):
    raise UserError(f"--data_dir: folder not found: {f.data_dir}; {processor.name} expects {processor.layout}")
  teacher = _load_teacher(f.teacher, _num_labels(processor))
  student, student_path = _student_config(f.student_config, teacher.config, os.path.abspath(f.output_dir))
  layer_map = f.layer_map
  if layer_map == "auto":
    layer_map = ",".join(map(str, pipeline.spread_layer_map(teacher.config.num_hidden_layers,
                                                            student.num_hidden_layers)))
  # The same check run_finetuning.py makes with TinyBERT's losses (the intermediate loss distill.py asks for).
  check_flags = types.SimpleNamespace(intermediate_loss="tinybert", layer_map=layer_map, attention_loss="logits_mse",
                                      projection="shared", loss_weights="", relation_heads=0, minilm_teacher_layer=0)
  cli.check_pair(student, teacher.config, f.max_seq_length, check_flags)
  if f.general_student:
    cli.check_path("general_student", f.general_student)
  files.ensure_writable_dir(f.output_dir, "output_dir")
  out = os.path.abspath(f.output_dir)

  data_args = {"task_name": f.task_name, teacher.vocab_flag: teacher.vocab, "output_dir": os.path.join(out, "data"),
               "max_seq_length": f.max_seq_length}
  data_args.update({name: f[name].value for name in DATA_FLAGS if f[name].present and name not in data_args})
  if data_args.get("data_dir"):
    data_args["data_dir"] = os.path.abspath(data_args["data_dir"])
  training_args = {"task_name": processor.name, "data_dir": data_args["output_dir"], "max_seq_length": f.max_seq_length,
                   "batch_size": f.batch_size, "dtype": f.dtype, "seed": f.seed, "steps_per_loop": f.steps_per_loop,
                   "vocab_file": teacher.vocab, "intra_op_threads": f.intra_op_threads or None,
                   "inter_op_threads": f.inter_op_threads or None}
  teacher_args = {"epochs": f.teacher_epochs, "learning_rate": f.teacher_learning_rate}
  student_args = {"intermediate_epochs": f.intermediate_epochs, "prediction_epochs": f.prediction_epochs,
                  "intermediate_learning_rate": f.intermediate_learning_rate,
                  "learning_rate": f.prediction_learning_rate, "layer_map": layer_map,
                  "export_tflite": None if f.export_tflite == "false" else
                  ("true" if f.export_tflite == "fp32" else f.export_tflite)}
  cli.check_positive(teacher_learning_rate=f.teacher_learning_rate,
                     intermediate_learning_rate=f.intermediate_learning_rate,
                     prediction_learning_rate=f.prediction_learning_rate)
  init = not f.general_student and f.init_from_teacher
  return Settings(teacher=teacher, student_config=student, student_config_path=student_path,
                  general_student=os.path.abspath(f.general_student) if f.general_student else None,
                  output_dir=out, layer_map=layer_map, data_args=data_args, training_args=training_args,
                  teacher_args=teacher_args, student_args=student_args, init_from_teacher=init)


def _row(name: str, folder: str, config_path: str, metric: str, seq: int) -> pipeline.ModelRow:
  """A table row from a run_finetuning.py output folder (its eval_results.json and SavedModel, where present)."""
  results_path = os.path.join(folder, "eval_results.json")
  results = files.read_json(results_path, "eval results") if os.path.isfile(results_path) else {}
  latency = None
  saved_model = os.path.join(folder, "saved_model")
  if os.path.isdir(saved_model):
    try:
      latency = pipeline.latency_ms(saved_model, seq)
    except (ValueError, TypeError) as e:  # a teacher exported at another sequence length
      logging.warning("no latency for %s: %s", saved_model, str(e).splitlines()[0])
  return pipeline.ModelRow(name=name, dev=results.get("final_dev", {}).get(metric),
                           test=results.get("test", {}).get(metric), params=pipeline.encoder_params(config_path),
                           latency_ms=latency)


def main():
  run(_validate(FLAGS))


def run(s: Settings) -> str:
  """Runs the steps that are not done yet, then measures both models; returns the results table."""
  out = s.output_dir
  if s.student_config_path == os.path.join(out, "student_config.json"):
    save_config(s.student_config, s.student_config_path)
  print(f"teacher: {s.teacher.folder} ({s.teacher.config.model_type}, {s.teacher.config.num_hidden_layers} layers, "
        f"{'with' if s.teacher.has_head else 'without'} a task head)\nstudent: {s.student_config_path}", flush=True)
  data = s.data_args["output_dir"]
  pipeline.run_step("prepare the task data with the teacher's vocab", "prepare_dataset/create_finetuning_data.py",
                    s.data_args, os.path.join(data, "meta.json"))
  teacher = s.teacher.folder
  teacher_config = os.path.join(teacher, "config.json")
  if not s.teacher.has_head:
    teacher = os.path.join(out, "teacher")
    pipeline.run_step("fine-tune the teacher on the task (run_finetuning.py without a teacher)", "run_finetuning.py",
                      {**s.training_args, "output_dir": teacher, "config_path": teacher_config,
                       "ckpt_path": s.teacher.folder, **s.teacher_args},
                      os.path.join(teacher, "training_summary.json"))
    teacher_config = os.path.join(teacher, "config.json")
  student = os.path.join(out, "student")
  start = ({"ckpt_path": s.general_student} if s.general_student else
           {"init_from_teacher": True} if s.init_from_teacher else {})
  pipeline.run_step("distil the student on the task (intermediate, then prediction) and export it",
                    "run_finetuning.py",
                    {**s.training_args, "output_dir": student, "config_path": s.student_config_path,
                     "teacher_config_path": teacher_config, "teacher_ckpt_path": teacher, **start, **s.student_args},
                    os.path.join(student, "training_summary.json"))

  meta = files.read_json(os.path.join(data, "meta.json"), "data meta")
  metric, seq = meta.get("primary_metric") or "accuracy", s.training_args["max_seq_length"]
  print("\n=== teacher and student: dev metric, size and batch-1 latency", flush=True)
  rows = [_row(f"teacher {s.teacher.config.model_type} {s.teacher.config.num_hidden_layers}L-"
               f"{s.teacher.config.hidden_size}", teacher, teacher_config, metric, seq),
          _row(f"student {s.student_config.model_type} {s.student_config.num_hidden_layers}L-"
               f"{s.student_config.hidden_size}", student, s.student_config_path, metric, seq)]
  table = pipeline.write_results(out, _RESULTS, rows, metric, seq, task_name=meta["task_name"], teacher=teacher,
                                 student=student, general_student=s.general_student)
  print("\n" + table, flush=True)
  return table


if __name__ == "__main__":
  define_flags()
  run_script(main)
