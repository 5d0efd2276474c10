"""modeling/cli.py: the export vocab chosen among the checkpoints' vocabs."""

import pytest

from modeling import cli, records
from modeling.errors import UserError


@pytest.fixture
def folders(tmp_path):
  """A student folder and a teacher folder, each shipping its own vocab.txt, and the student data's meta."""
  paths = {}
  for name, words in (("student", "hello world"), ("teacher", "bonjour monde")):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n" + words.replace(" ", "\n") + "\n")
    paths[name] = str(folder)
  meta = {"vocab_sha256": records.sha256_file(str(tmp_path / "student" / "vocab.txt"))}
  return paths, meta


def test_export_vocab_is_the_first_shipped_vocab_of_the_data(folders, logged):
  paths, meta = folders
  student_vocab = paths["student"] + "/vocab.txt"
  assert cli.export_vocab(None, meta, paths["student"], paths["teacher"]) == student_vocab
  # A teacher on another vocabulary, searched first (a student without --ckpt_path): its vocab is passed over.
  assert cli.export_vocab(None, meta, None, paths["teacher"], paths["student"]) == student_vocab
  assert not logged("the vocab beside the checkpoints")


def test_no_shipped_vocab_of_the_data_means_an_export_of_token_ids(folders, logged):
  paths, meta = folders
  assert cli.export_vocab(None, meta, None, paths["teacher"]) is None
  want = (f"the vocab beside the checkpoints ({paths['teacher']}/vocab.txt) is not the one the data was prepared "
          "with; give --vocab_file for an export that takes text")
  assert logged("the vocab beside the checkpoints") == [want]
  assert cli.export_vocab(None, meta, None) is None


def test_a_given_vocab_file_must_be_the_datas(folders):
  paths, meta = folders
  assert cli.export_vocab(paths["student"] + "/vocab.txt", meta) == paths["student"] + "/vocab.txt"
  with pytest.raises(UserError, match=f"^--vocab_file {paths['teacher']}/vocab.txt is not the vocab the data was "
                                      "prepared with$"):
    cli.export_vocab(paths["teacher"] + "/vocab.txt", meta, paths["student"])
  with pytest.raises(UserError, match="^--vocab_file: not found: /nonexistent/vocab.txt$"):
    cli.export_vocab("/nonexistent/vocab.txt", meta)
