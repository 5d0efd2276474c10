"""distill.py --dtype: checked like the training scripts' flag, and passed on to every training command it runs."""

import pytest
from absl import flags

import distill
from modeling import pipeline, training
from tests.scripts.test_distill import _args, setup  # noqa: F401  (the tiny teacher, csv task and student)


class _StopAfterTraining(Exception):
  pass


def _commands(setup, tmp_path, monkeypatch, *extra):  # noqa: F811
  """The command lines distill.py prints and would run, without running them."""
  flag_values = flags.FlagValues()
  distill.define_flags(flag_values)
  flag_values(["distill.py", *_args(setup, output_dir=str(tmp_path / "out")), *extra])
  commands = []

  def record(title, script, args, done_file):
    commands.append(pipeline.command_line(script, args))
    if script == "run_finetuning.py" and "teacher_ckpt_path" in args:
      raise _StopAfterTraining  # The last command; what follows reads its results.
    return True

  monkeypatch.setattr(pipeline, "run_step", record)
  with pytest.raises(_StopAfterTraining):
    distill.run(distill._validate(flag_values))
  return commands


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_dtype_reaches_teacher_finetuning_and_both_distillation_stages(setup, tmp_path, monkeypatch, dtype):  # noqa: F811
  data, teacher, student = _commands(setup, tmp_path, monkeypatch, f"--dtype={dtype}")
  assert data[1].endswith("create_finetuning_data.py") and not [a for a in data if a.startswith("--dtype")]
  # The teacher has no head, so it is fine-tuned first; then one run_finetuning.py runs stages 1 and 2.
  assert "--ckpt_path=" + setup["teacher"] in teacher and not [a for a in teacher if a.startswith("--teacher_")]
  assert [a for a in student if a.startswith("--teacher_ckpt_path")]
  for command in (teacher, student):
    assert command[1].endswith("run_finetuning.py")
    assert [a for a in command if a.startswith("--dtype")] == [f"--dtype={dtype}"]


def test_default_is_float32(setup, tmp_path, monkeypatch):  # noqa: F811
  _, teacher, student = _commands(setup, tmp_path, monkeypatch)
  assert "--dtype=float32" in teacher and "--dtype=float32" in student


def test_choices_are_the_training_scripts(setup, tmp_path):  # noqa: F811
  flag_values = flags.FlagValues()
  distill.define_flags(flag_values)
  assert tuple(flag_values["dtype"].parser.enum_values) == training.DTYPES == ("float32", "bfloat16", "float16")
  with pytest.raises(flags.IllegalFlagValueError, match="float64"):
    flag_values(["distill.py", *_args(setup, output_dir=str(tmp_path / "out")), "--dtype=float64"])


def test_student_starts_from_the_teacher_without_a_general_student(setup, tmp_path, monkeypatch):  # noqa: F811
  _, _, student = _commands(setup, tmp_path, monkeypatch)
  assert "--init_from_teacher=true" in student
  _, _, student = _commands(setup, tmp_path, monkeypatch, "--init_from_teacher=false")
  assert not [a for a in student if a.startswith("--init_from_teacher")]
