r"""Turns a task's data into TFRecords and a `meta.json` for run_finetuning.py (step 3 of the README).

  python3 prepare_dataset/create_finetuning_data.py \
    --task_name rotten_tomatoes \
    --vocab_path /path/to/vocab.txt \
    --output_dir /path/to/output_directory \
    --max_seq_length 128

writes `train.tfrecord`, `dev.tfrecord` and `test.tfrecord` (MNLI adds `dev_mismatched.tfrecord` and
`test_mismatched.tfrecord`) in the project schema (`modeling.records`) plus `meta.json`. Test sets without gold labels
(GLUE) are written with label 0 (0.0 for regression), `test_has_labels: false` in meta.json and their example ids, in
record order, in `test_ids.txt`, so predictions can be turned into a submission file.

All examples are read and checked before anything is written. Each file is written atomically, `meta.json` is
removed first and written last, so a folder with a `meta.json` is complete.
"""

import dataclasses
import os
import time

import numpy as np
from absl import flags, logging

from modeling import files, progress, records, tokenization
from modeling.errors import UserError, run_script
from prepare_dataset import dataset_processors

FLAGS = flags.FLAGS

GENERIC_FLAGS = ("text_column", "text_pair_column", "label_column", "delimiter", "has_header", "regression")
# Split files this script may write; stale ones from an earlier run into the same folder are removed.
_OWN_SPLITS = ("train", "dev", "dev_mismatched", "test", "test_mismatched", "train_augmented")
AUGMENTED_SPLIT = "train_augmented"
NO_LABEL = -1  # The record label of an augmented example: it has no gold label (the teacher's logits teach it).
_SAMPLE_SEED = 12345  # --sample_examples: the same subset on every run.
_TOKENIZE_CHUNK = 4096  # Examples tokenized and packed per step; progress is reported between chunks.


def encode_split(examples, tokenizer: tokenization.Tokenizer, label_ids, max_seq_length: int, what: str = "tokenizing"):
  """Tokenizes a split in batches and serializes one record per example, reporting progress over both.

  Args:
    examples: `InputExample`s of one split.
    tokenizer: the `modeling.tokenization.Tokenizer` of the model.
    label_ids: function from an example's label to its record label (int id, float score, or 0 when unlabeled).
    max_seq_length: length of every record.
    what: the progress report's name for this work.

  Returns:
    `(serialized records, number of examples that had to be truncated)`.
  """
  is_pair = any(example.text_b is not None for example in examples)
  serialized, num_truncated = [], 0
  chunks = [examples[i:i + _TOKENIZE_CHUNK] for i in range(0, len(examples), _TOKENIZE_CHUNK)]
  for chunk in progress.progress(chunks, what, total=len(examples), sizes=len):
    ids_a = tokenizer.tokenize_to_ids([example.text_a for example in chunk])
    ids_b = tokenizer.tokenize_to_ids([example.text_b or "" for example in chunk]) if is_pair else None
    for i, example in enumerate(chunk):
      second = ids_b[i] if is_pair and example.text_b is not None else None
      num_special = tokenizer.special_tokens.num_special(second is not None)
      num_truncated += len(ids_a[i]) + len(second or ()) + num_special > max_seq_length
      word_ids, mask, type_ids = tokenizer.pack(ids_a[i], second, max_seq_length)
      serialized.append(records.serialize_example(word_ids, mask, type_ids, label_ids(example.label)))
  return serialized, num_truncated


def _label_function(processor: dataset_processors.TaskProcessor, labeled: bool):
  if processor.task_type == dataset_processors.REGRESSION:
    return (lambda label: float(label)) if labeled else (lambda label: 0.0)
  if not labeled:
    return lambda label: 0
  label_index = {label: i for i, label in enumerate(processor.get_labels())}
  return lambda label: label_index[label]


def _relative_counts(counts: dict, data_dir: str | None) -> dict:
  """Per-file counts keyed by a path relative to the data folder (meta.json must not depend on where it ran)."""
  return {os.path.relpath(path, data_dir) if data_dir else os.path.basename(path): n for path, n in counts.items()}


def _cap(examples: list, max_examples: int | None, sample: bool) -> list:
  """The first `max_examples` examples, or with `sample` a seeded random subset of that size in file order."""
  if not max_examples or len(examples) <= max_examples:
    return examples
  if not sample:
    return examples[:max_examples]
  keep = np.sort(np.random.default_rng(_SAMPLE_SEED).choice(len(examples), max_examples, replace=False))
  return [examples[i] for i in keep]


def _read_augmented(processor: dataset_processors.TaskProcessor, path: str, train: list) -> tuple[list, dict]:
  """The augmented copies in `path` as examples without labels, after checking its originals are `train`; and the
  augment_meta.json beside it ({} when there is none)."""
  from prepare_dataset import augment_data  # It imports this module.
  rows = augment_data.read_augmented_file(path, regression=processor.task_type == dataset_processors.REGRESSION)
  augmented = augment_data.check_matches_train(rows, train, path)
  examples = [dataset_processors.InputExample(guid=f"{AUGMENTED_SPLIT}-{i}", text_a=row.text_a, text_b=row.text_b,
                                              label=None) for i, row in enumerate(augmented)]
  meta_path = os.path.join(os.path.dirname(path), augment_data.META_FILE)
  return examples, (files.read_json(meta_path, "augment meta") if os.path.isfile(meta_path) else {})


def read_task_examples(processor: dataset_processors.TaskProcessor, data_dir: str | None,
                       max_examples: int | None = None, sample_examples: bool = False) -> dict:
  """Reads and checks every split of a task; returns {split: examples} for the splits that have examples.

  With `max_examples`, a cap that keeps only some of the labels a split has (the first rows of a file sorted by
  label) is refused: it would silently train on part of the task. `sample_examples` takes a random subset instead.
  """
  examples_by_split = {}
  for split in processor.splits:
    everything = processor.get_examples(data_dir, split)
    examples = _cap(everything, max_examples, sample_examples)
    if not examples and split in ("train", "dev"):
      raise UserError(f"{processor.name}: the {split} split of {data_dir or 'the packaged data'} has no examples")
    if processor.get_labels() and len(examples) < len(everything):
      labels = lambda chosen: {e.label for e in chosen if e.label is not None}
      dropped = sorted(labels(everything) - labels(examples), key=str)
      if dropped:
        raise UserError(f"{processor.name}: --max_examples={max_examples} keeps none of the {split} examples "
                        f"labelled {', '.join(map(str, dropped))} (the first rows of this split are sorted by "
                        "label); add --sample_examples to keep a random subset of that size instead")
    if examples:
      examples_by_split[split] = examples
  return examples_by_split


def create_finetuning_data(processor: dataset_processors.TaskProcessor, tokenizer: tokenization.Tokenizer,
                           data_dir: str | None, output_dir: str, max_seq_length: int,
                           max_examples: int | None = None, sample_examples: bool = False,
                           augmented_file: str | None = None) -> dict:
  """Reads every split of a task, checks it, then writes `<split>.tfrecord` files and `meta.json`.

  Nothing is written (and `output_dir` is not created) when the data has a problem.

  Args:
    processor: the task's processor from `dataset_processors.get_processor`.
    tokenizer: the tokenizer of the model to fine-tune.
    data_dir: the task's data folder (None for the packaged tasks' default data).
    output_dir: folder to write into; created if needed.
    max_seq_length: length of every record.
    max_examples: if set, keep only the first `max_examples` examples of each split.
    sample_examples: with `max_examples`, keep a seeded random subset (in file order) instead of the first ones.
    augmented_file: a `train_augmented.tsv` from prepare_dataset/augment_data.py for this train split; its copies
      become `train_augmented.tfrecord` with label -1 (no gold label), and the augment_meta.json beside it goes
      into meta.json's `augmentation`.

  Returns:
    The meta dict written to `meta.json`.
  """
  examples_by_split = read_task_examples(processor, data_dir, max_examples, sample_examples)
  augmentation = None
  if augmented_file:
    examples_by_split[AUGMENTED_SPLIT], augmentation = _read_augmented(processor, augmented_file,
                                                                       examples_by_split["train"])
  is_pair = any(e.text_b is not None for examples in examples_by_split.values() for e in examples)
  if max_seq_length <= tokenizer.special_tokens.num_special(is_pair):
    raise UserError(f"--max_seq_length={max_seq_length} leaves no room for text next to the "
                    f"{tokenizer.special_tokens.num_special(is_pair)} special tokens of {processor.name}'s examples")
  files.ensure_writable_dir(output_dir, flag="output_dir")
  label_list = processor.get_labels()
  logging.info("%s: %s examples; labels %s", processor.name,
               ", ".join(f"{split} {len(e)}" for split, e in examples_by_split.items()), label_list or "(regression)")

  meta_path = os.path.join(output_dir, records.META_FILE)
  if os.path.exists(meta_path):
    os.remove(meta_path)  # the folder is incomplete until the new meta.json is written
  for split in _OWN_SPLITS:
    for stale in (f"{split}.tfrecord", f"{split}_ids.txt"):
      if split not in examples_by_split and os.path.exists(os.path.join(output_dir, stale)):
        os.remove(os.path.join(output_dir, stale))

  num_examples, num_truncated, record_files = {}, {}, {}
  for split, examples in examples_by_split.items():
    start = time.time()
    labeled = processor.is_labeled(split)
    if split == AUGMENTED_SPLIT:
      labeled = True  # Written with NO_LABEL, needs no ids file.
      no_label = float(NO_LABEL) if processor.task_type == dataset_processors.REGRESSION else NO_LABEL
      label_ids = lambda _, no_label=no_label: no_label
    else:
      label_ids = _label_function(processor, labeled)
    serialized, num_truncated[split] = encode_split(examples, tokenizer, label_ids, max_seq_length,
                                                    what=f"tokenizing {split}")
    record_files[split] = f"{split}.tfrecord"
    with records.RecordWriter(os.path.join(output_dir, record_files[split])) as writer:
      for record in serialized:
        writer.write(record)
    if not labeled:
      with files.atomic_path(os.path.join(output_dir, f"{split}_ids.txt")) as tmp, open(tmp, "w") as f:
        f.writelines(f"{example.example_id if example.example_id is not None else example.guid}\n"
                     for example in examples)
    num_examples[split] = len(examples)
    seconds = time.time() - start
    logging.info("%s: wrote %d records to %s in %.1fs (%.0f examples/s), %d truncated to %d tokens", split,
                 len(examples), record_files[split], seconds, len(examples) / max(seconds, 1e-9),
                 num_truncated[split], max_seq_length)

  meta = {
      "kind": "finetuning",
      "task_name": processor.name,
      "task_type": processor.task_type,
      "label_list": label_list,
      "num_labels": len(label_list) if label_list else 1,
      "metric": processor.metric,
      "primary_metric": processor.primary_metric,
      "num_examples": num_examples,
      "num_truncated": num_truncated,
      "record_files": record_files,
      "test_has_labels": processor.has_test_labels,
      "max_seq_length": max_seq_length,
      "max_examples": max_examples,
      "sample_examples": bool(max_examples and sample_examples),
      **tokenizer.meta(),
      "skipped_rows": sum(processor.skipped_rows.values()),
      "skipped_rows_by_file": _relative_counts(processor.skipped_rows, data_dir),
      "dropped_rows_by_file": _relative_counts(processor.dropped_rows, data_dir),
  }
  if augmentation is not None:
    meta["augmentation"] = augmentation
  records.write_meta(output_dir, meta)
  return meta


def _processor_from_flags(flag_values: flags.FlagValues) -> dataset_processors.TaskProcessor:
  task_name = flag_values.task_name.lower()
  options = {"skip_bad_rows": flag_values.skip_bad_rows}
  if task_name in dataset_processors.GENERIC_TASKS:
    # A shell cannot easily pass a tab, so "\\t" and "tab" stand for one.
    delimiter = {"\\t": "\t", "tab": "\t"}.get(flag_values.delimiter, flag_values.delimiter)
    if delimiter is not None and len(delimiter) != 1:
      raise UserError(f"--delimiter must be one character (or \\t), not {flag_values.delimiter!r}")
    options.update(text_column=flag_values.text_column, text_pair_column=flag_values.text_pair_column,
                   label_column=flag_values.label_column, delimiter=delimiter, has_header=flag_values.has_header,
                   regression=flag_values.regression)
  elif task_name in dataset_processors.TASKS:
    given = [f"--{name}" for name in GENERIC_FLAGS if flag_values[name].present]
    if given:
      raise UserError(f"{', '.join(given)} only apply to the tsv and csv tasks, not to --task_name={task_name}")
  return dataset_processors.get_processor(task_name, **options)


@dataclasses.dataclass(frozen=True)
class Settings:
  """The validated flags."""
  processor: dataset_processors.TaskProcessor
  data_dir: str | None
  output_dir: str
  vocab_path: str | None
  spm_model_file: str | None
  merges_file: str | None
  special_tokens: str | None
  do_lower_case: bool | None
  max_seq_length: int
  max_examples: int | None
  sample_examples: bool
  augmented_file: str | None


def _validate(f: flags.FlagValues) -> Settings:
  """Checks the flags and the data folder, and picks the task's processor."""
  if not f.task_name:
    raise UserError(f"--task_name is required; known tasks: {', '.join(dataset_processors.known_tasks())}")
  if not f.output_dir:
    raise UserError("--output_dir is required")
  processor = _processor_from_flags(f)
  data_dir = f.data_dir
  if data_dir is None and not processor.data_dir_optional:
    raise UserError(f"--data_dir is required for {processor.name}: {processor.layout}")
  if data_dir is not None and not os.path.isdir(data_dir):
    raise UserError(f"--data_dir: folder not found: {data_dir}; {processor.name} expects {processor.layout}")
  return Settings(processor=processor, data_dir=data_dir, output_dir=f.output_dir, vocab_path=f.vocab_path,
                  spm_model_file=f.spm_model_file, merges_file=f.merges_file, special_tokens=f.special_tokens,
                  do_lower_case=f.do_lower_case, max_seq_length=f.max_seq_length,
                  max_examples=f.max_examples, sample_examples=f.sample_examples,
                  augmented_file=f.augmented_file)


def run(s: Settings) -> dict:
  """Builds the tokenizer and prepares the data; returns the meta dict."""
  tokenizer = tokenization.build_tokenizer(s.vocab_path, s.spm_model_file, s.do_lower_case, merges_file=s.merges_file,
                                           special_tokens=s.special_tokens, vocab_flag="vocab_path")
  return create_finetuning_data(s.processor, tokenizer, s.data_dir, s.output_dir, s.max_seq_length, s.max_examples,
                                s.sample_examples, s.augmented_file)


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """Defines the flags; called only when run as a script, so that tests can import this module next to others."""
  def string(name, default, help_text):
    flags.DEFINE_string(name, default, help_text, flag_values=flag_values)

  def boolean(name, default, help_text):
    flags.DEFINE_boolean(name, default, help_text, flag_values=flag_values)

  def integer(name, default, help_text, lower_bound):
    flags.DEFINE_integer(name, default, help_text, lower_bound=lower_bound, flag_values=flag_values)

  string("task_name", None, f"Task to prepare; one of: {', '.join(dataset_processors.known_tasks())}.")
  string("data_dir", None, "Folder with the task's data files (see prepare_dataset/dataset_processors.py for each "
         "task's layout). Optional for rotten_tomatoes and bbc_news, which default to the packaged data.")
  string("vocab_path", None, "Vocab of the model to fine-tune: a WordPiece vocab.txt, or a byte-level BPE vocab.json "
         "(RoBERTa) with --merges_file (or use --spm_model_file).")
  string("merges_file", None, "merges.txt of a BPE vocab.json in --vocab_path; default: merges.txt beside it.")
  flags.DEFINE_enum("special_tokens", None, list(records.SPECIAL_TOKEN_SCHEMES), "Special-token layout: bert "
                    "([CLS] A [SEP] B [SEP]) or roberta (<s> A </s></s> B </s>, RoBERTa and MPNet); default: detected "
                    "from the vocab (roberta for a BPE vocab.json or a WordPiece vocab starting <s> <pad> </s> <unk>).",
                    flag_values=flag_values)
  string("output_dir", None, "Folder to write the TFRecords and meta.json into (created if needed).")
  integer("max_seq_length", 128, "Length of every record in tokens, special tokens included; longer texts are "
          "truncated (longest segment first).", lower_bound=4)
  boolean("do_lower_case", None, "Lower-case text before tokenizing; default: inferred from the vocab (uncased when "
          "no entry has an upper-case letter).")
  string("spm_model_file", None, "SentencePiece .model file (ALBERT) instead of --vocab_path.")
  boolean("skip_bad_rows", False, "Skip malformed rows (wrong column count, unknown label) and count them in "
          "meta.json instead of failing on the first one.")
  integer("max_examples", None, "Keep at most this many examples of each split (the first ones), for quick runs. "
          "Refused when that drops a label a split has; then add --sample_examples.", lower_bound=1)
  boolean("sample_examples", False, "With --max_examples: keep a random subset (fixed seed, file order kept) instead "
          "of the first examples, for files sorted by label such as bbc_news.")
  string("text_column", "0", "tsv/csv tasks: column of the text, a 0-based index or a header name.")
  string("text_pair_column", None, "tsv/csv tasks: column of the second text of sentence-pair tasks.")
  string("label_column", "-1", "tsv/csv tasks: column of the label (default: the last one).")
  string("delimiter", None, "tsv/csv tasks: field separator, one character or \\t (default: tab for tsv, comma for "
         "csv).")
  boolean("has_header", True, "tsv/csv tasks: the first row of each file names the columns.")
  boolean("regression", False, "tsv/csv tasks: labels are real-valued scores (the head regresses them).")
  string("augmented_file", None, "train_augmented.tsv from prepare_dataset/augment_data.py (same task flags): its "
         "copies are also written, as train_augmented.tfrecord with label -1 (no gold label), for run_finetuning.py "
         "--augmented_data.")


def main():
  meta = run(_validate(FLAGS))
  print(f"wrote {', '.join(f'{s}: {n}' for s, n in meta['num_examples'].items())} examples of "
        f"{meta['task_name']} to {FLAGS.output_dir}")


if __name__ == "__main__":
  define_flags()
  run_script(main)
