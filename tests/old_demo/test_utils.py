"""Dataset loaders on the real packaged assets, the architecture registry and the command-line scripts."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest

from modeling.errors import UserError
from old_demo import distillation, utils

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_mnist_has_5000_images_500_per_class():
  data = utils.load_mnist()
  labels = np.concatenate([data.train[1], data.valid[1], data.test[1]])
  assert len(labels) == 5000
  assert np.bincount(labels).tolist() == [500] * 10
  assert data.train[0].shape[1:] == (28, 28, 1) and data.train[0].max() <= 1.0
  assert 0.75 < len(data.train[1]) / 5000 < 0.85 and 0.08 < len(data.test[1]) / 5000 < 0.12


def test_rotten_tomatoes_keeps_12808_reviews_and_splits_by_hash():
  data = utils.load_rotten_tomatoes()
  texts = np.concatenate([data.train[0], data.valid[0], data.test[0]])
  labels = np.concatenate([data.train[1], data.valid[1], data.test[1]])
  assert len(texts) == 12808
  assert np.bincount(labels).tolist() == [5405, 7403]  # rotten = 0, fresh = 1.
  for split, bucket_ok in ((data.train, lambda b: b >= 2), (data.valid, lambda b: b == 1),
                           (data.test, lambda b: b == 0)):
    assert all(bucket_ok(utils.split_bucket(text.encode("utf-8"))) for text in split[0][:200])
  assert data.vocabulary[:2] == ["", "[UNK]"] and len(data.vocabulary) == 20000


def test_bbc_news_has_2225_articles_in_5_topics():
  data = utils.load_bbc_news()
  assert data.label_names == ["business", "entertainment", "politics", "sports", "tech"]
  assert sum(len(split[1]) for split in (data.train, data.valid, data.test)) == 2225


def test_digits_loads_1797_images():
  data = utils.load_digits()
  assert sum(len(split[1]) for split in (data.train, data.valid, data.test)) == 1797
  assert data.train[0].shape[1:] == (8, 8, 1)


@pytest.mark.parametrize("task,layout", [("imdb", "aclImdb/train/{pos,neg}/*.txt"),
                                         ("yelp", "yelp_review_polarity_csv/train.csv"),
                                         ("mnli", "MNLI/train.tsv")])
def test_missing_user_downloaded_data_names_the_expected_layout(tmp_path, task, layout):
  with pytest.raises(UserError, match=r"--data_dir: the .* dataset is not bundled") as error:
    utils.DATASETS[task](str(tmp_path))
  assert layout in str(error.value)


def test_imdb_loads_from_the_aclimdb_layout(tmp_path):
  for split in ("train", "test"):
    for label in ("pos", "neg"):
      folder = tmp_path / "aclImdb" / split / label
      folder.mkdir(parents=True)
      for i in range(10):
        (folder / f"{i}_7.txt").write_text(f"{label} review {split} number {i}")
  data = utils.load_imdb(str(tmp_path))
  assert len(data.test[1]) == 20 and len(data.train[1]) + len(data.valid[1]) == 20
  assert set(data.test[1]) == {0, 1}


@pytest.mark.parametrize("architecture", ["bilstm", "bigru", "attention", "transformer"])
def test_text_architectures_read_raw_strings(architecture):
  data = utils.TaskData("toy", "text", "multiclass", ["a", "b", "c"], (None, None), (None, None), (None, None),
                        vocabulary=["", "[UNK]", "good", "bad"], sequence_length=6)
  model = utils.build_model(architecture, utils.ARCHITECTURES[architecture], data, {"embedding_dim": 8})
  logits = model(np.array(["good bad film", "bad", ""], dtype=object))
  assert logits.shape == (3, 3) and np.all(np.isfinite(logits.numpy()))


def test_registry_errors_name_the_choices():
  with pytest.raises(UserError, match="--task: unknown dataset 'cifar'; choose one of bbc_news, digits"):
    utils.get_dataset("cifar")
  data = utils.load_digits()
  with pytest.raises(UserError, match=r"unknown config key\(s\) \['width'\] for architecture 'mlp'"):
    utils.build_model("mlp", utils.build_mlp, data, {"width": 3})
  with pytest.raises(UserError, match="architecture 'bilstm' is for text data, but task 'digits' is image"):
    utils.build_bilstm(data)


def _script(name, *args):
  return subprocess.run([sys.executable, os.path.join("old_demo", name), *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600, check=False)


def test_command_line_trains_teacher_then_distils_and_writes_results(tmp_path):
  weights = str(tmp_path / "kd")
  trained = _script("run_model.py", "--arch", "cnn", "--task", "digits", "--weights_dir", weights, "--epochs", "3",
                    "--config", '{"filters": [8]}')
  assert trained.returncode == 0, trained.stderr[-2000:]
  assert "teacher (cnn on digits) test accuracy" in trained.stdout
  result = _script("distillation.py", "--teacher", "cnn", "--student", "mlp", "--task", "digits", "--weights_dir",
                   weights, "--teacher_config", '{"filters": [8]}', "--student_config", '{"hidden_units": [32]}',
                   "--temp", "2", "--a", "0.3", "--b", "0.7", "--epochs", "3", "--seed", "1")
  assert result.returncode == 0, result.stderr[-2000:]
  with open(os.path.join(weights, "results.md")) as f:
    table = f.read()
  assert table == result.stdout
  assert "| teacher (cnn) |" in table and "| student alone (mlp) |" in table
  assert "| student distilled (mlp, T=2, a=0.3, b=0.7) |" in table
  assert os.path.isfile(os.path.join(weights, "student.h5"))


def test_command_line_refuses_bad_flags_with_one_line(tmp_path):
  result = _script("distillation.py", "--teacher", "cnn", "--student", "mlp", "--task", "digits", "--weights_dir",
                   str(tmp_path), "--temp", "0")
  assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == "error: temp must be > 0, got 0.0"
  assert "Traceback" not in result.stderr


def test_missing_teacher_weights_are_reported_before_any_training(tmp_path):
  flag_values = types.SimpleNamespace(teacher="cnn", student="mlp", task="digits", teacher_config=None,
                                      student_config=None, temp=1.0, a=0.5, b=0.5, epochs=1, batch_size=32,
                                      weights_dir=str(tmp_path), train_teacher=False)
  with pytest.raises(UserError, match=r"--weights_dir: .*teacher.h5 not found; train one with old_demo/run_model.py"):
    distillation.run(flag_values)
