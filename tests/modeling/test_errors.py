"""The scripts' entry point: one error line for bad input and unreadable records, other errors untouched."""

import sys

import pytest
import tensorflow as tf

from modeling import losses, records
from modeling.errors import UserError, run_script


def test_user_error_is_a_value_error():
  with pytest.raises(ValueError, match="--layer_map='x'"):
    losses.parse_layer_map("x", 4, 2)


def _run(main, monkeypatch, *argv):
  monkeypatch.setattr(sys, "argv", ["script.py", *argv])
  run_script(main)


def _exit_line(main, monkeypatch, capsys, *argv):
  with pytest.raises(SystemExit) as raised:
    _run(main, monkeypatch, *argv)
  assert raised.value.code == 1
  return capsys.readouterr().err.strip().splitlines()[-1]


def _read_records(path, max_seq_length):
  return next(iter(records.make_dataset([path], max_seq_length, 2, label_dtype=tf.int64)))


def test_user_error_and_stray_arguments_give_one_line(monkeypatch, capsys):
  def bad_flag():
    raise UserError("--batch_size must be positive, got 0")
  assert _exit_line(bad_flag, monkeypatch, capsys) == "error: --batch_size must be positive, got 0"
  assert _exit_line(lambda: None, monkeypatch, capsys, "stray", "words") == "error: unexpected arguments: stray words"


def test_records_that_do_not_fit_the_schema_say_prepare_again(tmp_path, monkeypatch, capsys):
  path = str(tmp_path / "train.tfrecord")
  with records.RecordWriter(path) as writer:
    writer.write(records.serialize_example([2, 5, 3, 0], [1, 1, 1, 0], [0] * 4, 1))
  line = _exit_line(lambda: _read_records(path, 16), monkeypatch, capsys)  # Written with length 4, read with 16.
  assert line.startswith("error: could not read the input records (InvalidArgumentError")
  assert line.endswith("prepare the data again")


def test_corrupt_records_say_prepare_again(tmp_path, monkeypatch, capsys):
  path = tmp_path / "train.tfrecord"
  path.write_bytes(b"\x00" * 40)
  line = _exit_line(lambda: _read_records(str(path), 4), monkeypatch, capsys)
  assert line.startswith("error: could not read the input records (DataLossError")


def test_other_invalid_argument_errors_keep_their_message(monkeypatch, capsys):
  def shape_mismatch():
    tf.reshape(tf.zeros([6]), [4, 4])
  with pytest.raises(tf.errors.InvalidArgumentError, match="reshape"):
    _run(shape_mismatch, monkeypatch)
  assert "prepare the data again" not in capsys.readouterr().err


def test_a_locked_cache_names_the_lockfile(tmp_path, monkeypatch, capsys):
  """A second run on the same cache files (or a stale lock of a killed run): one line naming the lockfile."""
  prefix = str(tmp_path / "teacher_outputs-x")
  lock = tmp_path / "teacher_outputs-x_0.lockfile"
  lock.write_text("")

  def read_cache():
    list(tf.data.Dataset.range(3).cache(prefix))

  line = _exit_line(read_cache, monkeypatch, capsys)
  assert line == (f"error: another run is writing the same teacher-output cache, or a run that was killed left its "
                  f"lock {lock}: wait for that run to finish, or delete the lockfile if none is running")
