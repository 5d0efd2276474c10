"""Dataset loaders on the real packaged assets, and the split they share with `prepare_dataset`."""

import numpy as np
import pytest

from modeling.errors import UserError
from old_demo import datasets
from prepare_dataset import dataset_processors


def test_mnist_has_5000_images_500_per_class():
  data = datasets.load_mnist()
  labels = np.concatenate([data.train[1], data.valid[1], data.test[1]])
  assert len(labels) == 5000
  assert np.bincount(labels).tolist() == [500] * 10
  assert data.train[0].shape[1:] == (28, 28, 1) and data.train[0].max() <= 1.0
  assert 0.75 < len(data.train[1]) / 5000 < 0.85 and 0.08 < len(data.test[1]) / 5000 < 0.12


def test_rotten_tomatoes_keeps_12808_reviews_and_splits_by_hash():
  data = datasets.load_rotten_tomatoes()
  texts = np.concatenate([data.train[0], data.valid[0], data.test[0]])
  labels = np.concatenate([data.train[1], data.valid[1], data.test[1]])
  assert len(texts) == 12808
  assert np.bincount(labels).tolist() == [5405, 7403]  # rotten = 0, fresh = 1.
  for split, name in ((data.train, "train"), (data.valid, "dev"), (data.test, "test")):
    assert all(dataset_processors.hash_split(text) == name for text in split[0][:200])
  assert data.vocabulary[:2] == ["", "[UNK]"] and len(data.vocabulary) == 20000


def test_bbc_news_has_2225_articles_in_5_topics():
  data = datasets.load_bbc_news()
  assert data.label_names == ["business", "entertainment", "politics", "sports", "tech"]
  assert sum(len(split[1]) for split in (data.train, data.valid, data.test)) == 2225


def test_digits_loads_1797_images():
  data = datasets.load_digits()
  assert sum(len(split[1]) for split in (data.train, data.valid, data.test)) == 1797
  assert data.train[0].shape[1:] == (8, 8, 1)


@pytest.mark.parametrize("task,layout", [("imdb", "aclImdb/train/{pos,neg}/*.txt"),
                                         ("yelp", "yelp_review_polarity_csv/train.csv"),
                                         ("mnli", "MNLI/train.tsv")])
def test_missing_user_downloaded_data_names_the_expected_layout(tmp_path, task, layout):
  with pytest.raises(UserError, match=r"--data_dir: the .* dataset is not bundled") as error:
    datasets.DATASETS[task](str(tmp_path))
  assert layout in str(error.value)


def test_imdb_loads_from_the_aclimdb_layout(tmp_path):
  for split in ("train", "test"):
    for label in ("pos", "neg"):
      folder = tmp_path / "aclImdb" / split / label
      folder.mkdir(parents=True)
      for i in range(10):
        (folder / f"{i}_7.txt").write_text(f"{label} review {split} number {i}")
  data = datasets.load_imdb(str(tmp_path))
  assert len(data.test[1]) == 20 and len(data.train[1]) + len(data.valid[1]) == 20
  assert set(data.test[1]) == {0, 1}


@pytest.mark.parametrize("task", ["rotten_tomatoes", "bbc_news", "imdb_reviews"])
def test_packaged_corpora_have_the_same_splits_as_the_processors(task):
  data = datasets.get_dataset(task)(None)
  processor = dataset_processors.get_processor(task)
  for arrays, split in ((data.train, "train"), (data.valid, "dev"), (data.test, "test")):
    examples = processor.get_examples(None, split)
    assert list(arrays[0]) == [e.text_a for e in examples]
    assert [data.label_names[i] for i in arrays[1]] == [e.label for e in examples]


def test_images_are_split_by_the_same_rule_on_their_pixels():
  data = datasets.load_digits()
  for arrays, split in ((data.train, "train"), (data.valid, "dev"), (data.test, "test")):
    assert {dataset_processors.split_of(image[..., 0].tobytes()) for image in arrays[0]} == {split}


def test_yelp_and_mnli_keep_their_official_test_split(tmp_path):
  yelp = tmp_path / "yelp_review_polarity_csv"
  yelp.mkdir()
  (yelp / "train.csv").write_text("".join(f'"{1 + i % 2}","review number {i}"\n' for i in range(40)))
  (yelp / "test.csv").write_text('"1","Cold food."\n"2","Lovely staff."\n')
  data = datasets.load_yelp(str(tmp_path))
  assert list(data.test[0]) == ["Cold food.", "Lovely staff."] and list(data.test[1]) == [0, 1]
  assert data.label_names == ["negative", "positive"] and len(data.train[1]) + len(data.valid[1]) == 40
  assert all(dataset_processors.hash_split(text) == "dev" for text in data.valid[0])
  mnli = tmp_path / "MNLI"
  mnli.mkdir()
  header = "index\tsentence1\tsentence2\tgold_label\n"
  (mnli / "train.tsv").write_text(header + "0\tA man runs.\tA man moves.\tentailment\n")
  (mnli / "dev_matched.tsv").write_text(header + "0\tIt rains.\tIt is dry.\tcontradiction\n")
  data = datasets.load_mnli(str(tmp_path))
  assert list(data.test[0]) == ["It rains. [SEP] It is dry."] and data.label_names[data.test[1][0]] == "contradiction"
