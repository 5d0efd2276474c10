"""create_finetuning_data.py writes parseable records and a correct meta.json, and refuses bad input cleanly.

The end-to-end run and one refusal go through the command line (exit status, one-line error); the other runs call
the script's `run` in this process on its own flags.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from modeling import records, tokenization
from modeling.errors import UserError
from prepare_dataset import create_finetuning_data as cfd
from prepare_dataset import dataset_processors as dp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "prepare_dataset", "create_finetuning_data.py")


def _run_script(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, SCRIPT, *args], check=False, cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)


def _run_in_process(*args):
  """`run()` on the script's own flags, parsed into a private FlagValues (no clash with other scripts' flags)."""
  flag_values = flags.FlagValues()
  cfd.define_flags(flag_values)
  flag_values(["create_finetuning_data.py", *args])
  return cfd.run(cfd._validate(flag_values))


def _error_line(result):
  assert result.returncode == 1, result.stderr
  assert "Traceback" not in result.stderr
  return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def vocab_path(minilm_dir):
  return os.path.join(minilm_dir, "vocab.txt")


@pytest.fixture(scope="module")
def tokenizer(vocab_path):
  return tokenization.build_tokenizer(vocab_path)


def _read_records(path, max_seq_length, label_dtype):
  batches = list(records.make_dataset([path], max_seq_length, batch_size=1000, label_dtype=label_dtype))
  features = {name: np.concatenate([b[0][name].numpy() for b in batches]) for name in records.FEATURES}
  return features, np.concatenate([b[1].numpy() for b in batches])


def test_rotten_tomatoes_end_to_end(tmp_path, vocab_path, tokenizer):
  output_dir = tmp_path / "rt"
  result = _run_script("--task_name=rotten_tomatoes", f"--vocab_path={vocab_path}", f"--output_dir={output_dir}",
                       "--max_examples=200", "--max_seq_length=64")
  assert result.returncode == 0, result.stderr
  assert sorted(os.listdir(output_dir)) == ["dev.tfrecord", "meta.json", "test.tfrecord", "train.tfrecord"]
  meta = records.read_meta(str(output_dir))
  assert meta["kind"] == "finetuning" and meta["task_name"] == "rotten_tomatoes"
  assert meta["task_type"] == "classification" and meta["test_has_labels"] is True
  assert meta["label_list"] == ["rotten", "fresh"] and meta["num_labels"] == 2
  assert meta["num_examples"] == {"train": 200, "dev": 200, "test": 200}
  assert meta["max_seq_length"] == 64 and meta["tokenizer"] == "wordpiece"
  assert meta["vocab_sha256"] == records.sha256_file(vocab_path) and meta["vocab_size"] == 30522
  assert meta["do_lower_case"] is True and meta["skipped_rows"] == 0
  assert meta["dropped_rows_by_file"] == {"rotten_tomatoes_corpus_full.csv.bz2": 1097}

  processor = dp.get_processor("rotten_tomatoes")
  for split in ("train", "dev", "test"):
    features, labels = _read_records(str(output_dir / f"{split}.tfrecord"), 64, tf.int64)
    examples = processor.get_examples(None, split)[:200]
    assert features["input_word_ids"].shape == (200, 64)
    assert labels.tolist() == [["rotten", "fresh"].index(e.label) for e in examples]
    ids = tokenizer.tokenize_to_ids([examples[0].text_a])[0]
    expected = tokenizer.pack(ids, None, 64)
    assert [features[name][0].tolist() for name in records.FEATURES] == [list(x) for x in expected]
  assert meta["num_truncated"]["train"] == sum(
      len(ids) + 2 > 64 for ids in tokenizer.tokenize_to_ids([e.text_a for e in processor.get_examples(None, "train")
                                                               [:200]]))


def test_unknown_task_lists_the_known_ones(tmp_path, vocab_path):
  with pytest.raises(UserError, match="^--task_name: unknown task 'glue'; known tasks: bbc_news, cola, csv, imdb"):
    _run_in_process("--task_name=glue", f"--vocab_path={vocab_path}", f"--output_dir={tmp_path}/o")
  assert not os.path.exists(tmp_path / "o")


def test_missing_data_dir_and_misplaced_flags(tmp_path, vocab_path):
  with pytest.raises(UserError) as error:
    _run_in_process("--task_name=mrpc", f"--data_dir={tmp_path}/glue/MRPC", f"--vocab_path={vocab_path}",
                    f"--output_dir={tmp_path}/o")
  assert str(error.value) == (f"--data_dir: folder not found: {tmp_path}/glue/MRPC; mrpc expects a GLUE mrpc folder "
                              "with train.tsv, dev.tsv, test.tsv")
  with pytest.raises(UserError, match="^--data_dir is required for mrpc: a GLUE mrpc folder"):
    _run_in_process("--task_name=mrpc", f"--vocab_path={vocab_path}", f"--output_dir={tmp_path}/o")
  with pytest.raises(UserError, match="^--label_column only apply to the tsv and csv tasks"):
    _run_in_process("--task_name=rotten_tomatoes", "--label_column=2", f"--vocab_path={vocab_path}",
                    f"--output_dir={tmp_path}/o")
  with pytest.raises(UserError, match="^--vocab_path: file not found"):
    _run_in_process("--task_name=rotten_tomatoes", f"--vocab_path={tmp_path}/vocab.txt", f"--output_dir={tmp_path}/o")
  assert not os.path.exists(tmp_path / "o")


def test_generic_tsv_from_flags(tmp_path, vocab_path):
  (tmp_path / "train.tsv").write_text("a\tb\ty\nfirst\tsecond\tno\nthird\tfourth\tyes\n")
  (tmp_path / "dev.tsv").write_text("a\tb\ty\nfifth\tsixth\tyes\n")
  meta = _run_in_process("--task_name=tsv", f"--data_dir={tmp_path}", "--text_column=a", "--text_pair_column=b",
                         "--label_column=y", "--delimiter=\\t", f"--vocab_path={vocab_path}",
                         f"--output_dir={tmp_path}/o", "--max_seq_length=8")
  assert meta["label_list"] == ["no", "yes"] and meta["num_examples"] == {"train": 2, "dev": 1}
  features, labels = _read_records(str(tmp_path / "o" / "dev.tfrecord"), 8, tf.int64)
  assert labels.tolist() == [1] and features["input_type_ids"][0].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]


def test_malformed_row_exits_with_one_line_and_writes_nothing(tmp_path, vocab_path):
  data_dir = tmp_path / "SST-2"
  data_dir.mkdir()
  (data_dir / "train.tsv").write_text("sentence\tlabel\ngood film\t1\nbad\t0\textra\n")
  (data_dir / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
  line = _error_line(_run_script("--task_name=sst-2", f"--data_dir={data_dir}", f"--vocab_path={vocab_path}",
                                 f"--output_dir={tmp_path}/o"))
  assert line == (f"error: {data_dir}/train.tsv:3: expected 2 columns, found 3 (pass --skip_bad_rows to skip and "
                  "count such rows)")
  assert not os.path.exists(tmp_path / "o")


def _sst_dir(tmp_path, bad_rows=True):
  data_dir = tmp_path / "SST-2"
  data_dir.mkdir(exist_ok=True)
  bad = "ok\t2\nbad\t0\textra\n" if bad_rows else ""
  (data_dir / "train.tsv").write_text(f"sentence\tlabel\ngood film\t1\n{bad}dull film\t0\n")
  (data_dir / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
  (data_dir / "test.tsv").write_text("index\tsentence\n17\tsome film\n18\tanother\n")
  return str(data_dir)


def test_skip_bad_rows_counts_them_in_meta(tmp_path, tokenizer):
  processor = dp.get_processor("sst-2", skip_bad_rows=True)
  meta = cfd.create_finetuning_data(processor, tokenizer, _sst_dir(tmp_path), str(tmp_path), 16)
  assert meta["skipped_rows"] == 2 and meta["skipped_rows_by_file"] == {"train.tsv": 2}
  assert meta["num_examples"] == {"train": 2, "dev": 1, "test": 2}
  _, labels = _read_records(str(tmp_path / "train.tfrecord"), 16, tf.int64)
  assert labels.tolist() == [1, 0]


def test_unlabeled_glue_test_set_gets_ids_and_placeholder_labels(tmp_path, tokenizer):
  output_dir = tmp_path / "out"
  output_dir.mkdir()
  meta = cfd.create_finetuning_data(dp.get_processor("sst-2"), tokenizer, _sst_dir(tmp_path, bad_rows=False),
                                    str(output_dir), 16)
  assert meta["test_has_labels"] is False and meta["num_examples"]["test"] == 2
  assert (output_dir / "test_ids.txt").read_text() == "17\n18\n"
  _, labels = _read_records(str(output_dir / "test.tfrecord"), 16, tf.int64)
  assert labels.tolist() == [0, 0]


def test_mnli_writes_both_dev_sets_and_stale_files_are_removed(tmp_path, tokenizer):
  header = "index\tpromptID\tpairID\tgenre\ts1bp\ts2bp\ts1p\ts2p\tsentence1\tsentence2"
  data_dir = tmp_path / "MNLI"
  data_dir.mkdir()
  (data_dir / "train.tsv").write_text(
      f"{header}\tlabel1\tgold_label\n0\t1\t1n\tg\tx\ty\tx\ty\tA b.\tC d.\tn\tneutral\n")
  for name, label in (("dev_matched.tsv", "entailment"), ("dev_mismatched.tsv", "contradiction")):
    (data_dir / name).write_text(f"{header}\tlabel1\tl2\tl3\tl4\tl5\tgold_label\n"
                                 f"0\t1\t1n\tg\tx\ty\tx\ty\tE f.\tG h.\ta\tb\tc\td\te\t{label}\n")
  for name in ("test_matched.tsv", "test_mismatched.tsv"):
    (data_dir / name).write_text(f"{header}\n{name[5]}7\t1\t1n\tg\tx\ty\tx\ty\tI j.\tK l.\n")
  output_dir = tmp_path / "out"
  output_dir.mkdir()
  meta = cfd.create_finetuning_data(dp.get_processor("mnli"), tokenizer, str(data_dir), str(output_dir), 16)
  assert meta["record_files"] == {split: f"{split}.tfrecord" for split in
                                  ("train", "dev", "dev_mismatched", "test", "test_mismatched")}
  assert (output_dir / "test_mismatched_ids.txt").read_text() == "m7\n"
  features, labels = _read_records(str(output_dir / "dev_mismatched.tfrecord"), 16, tf.int64)
  assert labels.tolist() == [0]  # contradiction
  assert features["input_type_ids"][0].tolist()[:10] == [0] * 5 + [1] * 4 + [0]  # [CLS] e f . [SEP] g h . [SEP]
  _, labels = _read_records(str(output_dir / "dev.tfrecord"), 16, tf.int64)
  assert labels.tolist() == [1]  # entailment

  cfd.create_finetuning_data(dp.get_processor("sst-2"), tokenizer, _sst_dir(tmp_path, bad_rows=False),
                             str(output_dir), 16)
  assert sorted(os.listdir(output_dir)) == ["dev.tfrecord", "meta.json", "test.tfrecord", "test_ids.txt",
                                            "train.tfrecord"]


def test_regression_labels_are_float(tmp_path, tokenizer):
  (tmp_path / "train.csv").write_text("text,score\nfirst,0.5\nsecond,4.25\n")
  (tmp_path / "dev.csv").write_text("text,score\nthird,3\n")
  processor = dp.get_processor("csv", regression=True)
  meta = cfd.create_finetuning_data(processor, tokenizer, str(tmp_path), str(tmp_path), 8)
  assert meta["task_type"] == "regression" and meta["label_list"] == [] and meta["num_labels"] == 1
  _, labels = _read_records(str(tmp_path / "train.tfrecord"), 8, tf.float32)
  assert labels.tolist() == [0.5, 4.25]


def test_failed_run_keeps_the_previous_output(tmp_path, tokenizer):
  output_dir = tmp_path / "out"
  output_dir.mkdir()
  cfd.create_finetuning_data(dp.get_processor("sst-2"), tokenizer, _sst_dir(tmp_path, bad_rows=False),
                             str(output_dir), 16)
  before = {name: (output_dir / name).read_bytes() for name in os.listdir(output_dir)}
  with pytest.raises(UserError, match="train.tsv:3: unknown label '2'"):
    cfd.create_finetuning_data(dp.get_processor("sst-2"), tokenizer, _sst_dir(tmp_path), str(output_dir), 16)
  assert {name: (output_dir / name).read_bytes() for name in os.listdir(output_dir)} == before


def test_max_examples_that_drops_labels_is_refused(tmp_path, vocab_path):
  # bbc_news lists its files class by class, so its first 100 training articles are all `business`.
  with pytest.raises(UserError) as refused:
    _run_in_process("--task_name=bbc_news", f"--vocab_path={vocab_path}", f"--output_dir={tmp_path / 'bbc'}",
                    "--max_examples=100", "--max_seq_length=32")
  line = str(refused.value)
  assert "--max_examples=100 keeps none of the train examples labelled entertainment, politics, sports, tech" in line
  assert "--sample_examples" in line and "\n" not in line
  assert not os.path.exists(tmp_path / "bbc")


def test_sample_examples_keeps_a_fixed_random_subset(tmp_path, vocab_path):
  runs = []
  for name in ("a", "b"):
    output_dir = tmp_path / name
    _run_in_process("--task_name=bbc_news", f"--vocab_path={vocab_path}", f"--output_dir={output_dir}",
                    "--max_examples=100", "--sample_examples", "--max_seq_length=32")
    meta = records.read_meta(str(output_dir))
    assert meta["num_examples"]["train"] == 100 and meta["sample_examples"] is True
    runs.append(_read_records(str(output_dir / "train.tfrecord"), 32, tf.int64))
  (features, labels), (features_b, labels_b) = runs
  assert sorted(set(labels.tolist())) == [0, 1, 2, 3, 4]  # every class, unlike the first 100
  np.testing.assert_array_equal(features["input_word_ids"], features_b["input_word_ids"])
  np.testing.assert_array_equal(labels, labels_b)


@pytest.fixture(scope="module")
def mpnet_style_vocab(tmp_path_factory, vocab_path):
  """How MPNet's vocab.txt is made: the bert-base-uncased vocab (MiniLM's) with RoBERTa's specials around it."""
  path = tmp_path_factory.mktemp("mpnet") / "vocab.txt"
  with open(vocab_path, encoding="utf-8") as f:
    path.write_text("<s>\n<pad>\n</s>\n<unk>\n" + f.read() + "<mask>\n", encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def roberta_bpe_files(tmp_path_factory):
  """vocab.json and merges.txt of a byte-level BPE with RoBERTa's specials, trained on Rotten Tomatoes text."""
  import tokenizers  # pylint: disable=g-import-not-at-top

  folder = tmp_path_factory.mktemp("bpe")
  texts = [e.text_a for e in dp.get_processor("rotten_tomatoes").get_examples(None, "train")[:3000]]
  trained = tokenizers.ByteLevelBPETokenizer()
  trained.train_from_iterator(texts, vocab_size=1000, show_progress=False,
                              special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
  trained.save_model(str(folder))
  return str(folder / "vocab.json"), str(folder / "merges.txt")


def _pair_task(tmp_path):
  (tmp_path / "train.tsv").write_text("a\tb\ty\nA man is eating food.\tHe eats.\tyes\nfirst\tsecond\tno\n")
  (tmp_path / "dev.tsv").write_text("a\tb\ty\nA man is eating food.\tA man is eating food.\tyes\n")
  return ["--task_name=tsv", f"--data_dir={tmp_path}", "--text_column=a", "--text_pair_column=b", "--label_column=y"]


def test_mpnet_style_vocab_writes_the_roberta_layout(tmp_path, mpnet_style_vocab):
  meta = _run_in_process(*_pair_task(tmp_path), f"--vocab_path={mpnet_style_vocab}", f"--output_dir={tmp_path}/o",
                         "--max_seq_length=20")
  assert meta["tokenizer"] == "wordpiece" and meta["vocab_size"] == 30527
  assert meta["special_tokens"] == {"scheme": "roberta", "cls_id": 0, "sep_id": 2, "pad_id": 1, "unk_id": 104,
                                    "mask_id": 30526}
  assert records.read_meta(str(tmp_path / "o"))["special_tokens"] == meta["special_tokens"]
  features, _ = _read_records(str(tmp_path / "o" / "dev.tfrecord"), 20, tf.int64)
  sentence = [1041, 2162, 2007, 5987, 2837, 1016]  # "A man is eating food." in all-mpnet-base-v2's vocab.
  assert features["input_word_ids"][0].tolist() == [0, *sentence, 2, 2, *sentence, 2, 1, 1, 1, 1]
  assert not features["input_type_ids"].any() and features["input_mask"][0].sum() == 16
  with pytest.raises(UserError, match="^--max_seq_length=4 leaves no room for text next to the 4 special tokens"):
    _run_in_process(*_pair_task(tmp_path), f"--vocab_path={mpnet_style_vocab}", f"--output_dir={tmp_path}/p",
                    "--max_seq_length=4")
  assert not os.path.exists(tmp_path / "p")


def test_roberta_bpe_end_to_end(tmp_path, roberta_bpe_files):
  vocab_json, merges = roberta_bpe_files
  meta = _run_in_process("--task_name=rotten_tomatoes", f"--vocab_path={vocab_json}", f"--merges_file={merges}",
                         f"--output_dir={tmp_path}/rt", "--max_examples=100", "--max_seq_length=32")
  assert meta["tokenizer"] == "byte_level_bpe" and meta["special_tokens"]["scheme"] == "roberta"
  assert meta["merges_sha256"] == records.sha256_file(merges) and meta["vocab_size"] == 1000
  tokenizer = tokenization.build_tokenizer(vocab_json, merges_file=merges)
  examples = dp.get_processor("rotten_tomatoes").get_examples(None, "dev")[:100]
  features, _ = _read_records(str(tmp_path / "rt" / "dev.tfrecord"), 32, tf.int64)
  expected = [tokenizer.pack(ids, None, 32) for ids in tokenizer.tokenize_to_ids([e.text_a for e in examples])]
  got = list(zip(*(features[name].tolist() for name in records.FEATURES)))
  assert got == [tuple(row) for row in expected]
  assert (features["input_word_ids"][:, 0] == 0).all() and (features["input_word_ids"][features["input_mask"] == 0]
                                                             == 1).all()
  pair = _run_in_process(*_pair_task(tmp_path), f"--vocab_path={vocab_json}", f"--output_dir={tmp_path}/pair",
                         "--max_seq_length=24")  # merges.txt found beside vocab.json.
  assert pair["merges_sha256"] == meta["merges_sha256"]
  features, _ = _read_records(str(tmp_path / "pair" / "train.tfrecord"), 24, tf.int64)
  ids_a, ids_b = tokenizer.tokenize_to_ids(["A man is eating food.", "He eats."])
  assert features["input_word_ids"][0].tolist() == tokenizer.pack(ids_a, ids_b, 24)[0]
  assert features["input_word_ids"][0].tolist()[:len(ids_a) + 4] == [0, *ids_a, 2, 2, ids_b[0]]


def test_merges_without_vocab_exits_with_one_line_and_writes_nothing(tmp_path, roberta_bpe_files):
  _, merges = roberta_bpe_files
  with pytest.raises(UserError) as refused:
    _run_in_process("--task_name=rotten_tomatoes", f"--merges_file={merges}", f"--output_dir={tmp_path}/o")
  assert str(refused.value) == f"--merges_file {merges} needs its vocab.json: give it with --vocab_path"
  with pytest.raises(UserError, match=f"^--vocab_path: {merges} is a BPE merges.txt; give its vocab.json as "
                     "--vocab_path and this file as --merges_file"):
    _run_in_process("--task_name=rotten_tomatoes", f"--vocab_path={merges}", f"--output_dir={tmp_path}/o")
  assert not os.path.exists(tmp_path / "o")


def _augmented_task(folder):
  folder.mkdir()
  (folder / "train.tsv").write_text("sentence\tlabel\nthe great movie\tpos\nboring plot , bad actors\tneg\n"
                                    "a film with a plot\tpos\n")
  (folder / "dev.tsv").write_text("sentence\tlabel\ngreat film\tpos\n")
  (folder / "vectors.txt").write_text("".join(f"{w} {np.cos(i)} {np.sin(i)} {i % 3}\n" for i, w in enumerate(
      ["great", "good", "movie", "film", "boring", "dull", "plot", "story", "bad", "actors", "cast", "fine"])))
  return folder


def test_augmented_file_from_augment_data_becomes_unlabelled_records(tmp_path, vocab_path, tokenizer):
  from prepare_dataset import augment_data
  data = _augmented_task(tmp_path / "task")
  task = ["--task_name=tsv", f"--data_dir={data}"]
  flag_values = flags.FlagValues()
  augment_data.define_flags(flag_values)
  flag_values(["augment_data.py", *task, f"--glove_path={data / 'vectors.txt'}", "--num_candidates=2",
               "--num_augmented=4", f"--output_dir={tmp_path / 'aug'}"])
  augment_meta = augment_data.run(flag_values)
  augmented_tsv = str(tmp_path / "aug" / augment_data.OUTPUT_FILE)
  copies = [row for row in augment_data.read_augmented_file(augmented_tsv) if row.augmented]
  assert copies and augment_meta["num_augmented_rows"] == len(copies)

  meta = _run_in_process(*task, f"--vocab_path={vocab_path}", f"--output_dir={tmp_path / 'o'}", "--max_seq_length=16",
                         f"--augmented_file={augmented_tsv}")
  assert meta["num_examples"] == {"train": 3, "dev": 1, "train_augmented": len(copies)}
  assert meta["record_files"]["train_augmented"] == "train_augmented.tfrecord"
  assert meta["augmentation"] == augment_meta
  features, labels = _read_records(str(tmp_path / "o" / "train_augmented.tfrecord"), 16, tf.int64)
  assert labels.tolist() == [-1] * len(copies)
  for i, row in enumerate(copies):
    expected = tokenizer.pack(tokenizer.tokenize_to_ids([row.text_a])[0], None, 16)
    assert features["input_word_ids"][i].tolist() == list(expected[0])
  _, train_labels = _read_records(str(tmp_path / "o" / "train.tfrecord"), 16, tf.int64)
  assert train_labels.tolist() == [1, 0, 1]  # The originals keep their gold labels (neg=0, pos=1).

  # Augmented rows for another train split are refused before anything is written.
  (data / "train.tsv").write_text("sentence\tlabel\nsomething else\tpos\nand more\tneg\n")
  with pytest.raises(UserError, match="original rows are not this task's train split"):
    _run_in_process(*task, f"--vocab_path={vocab_path}", f"--output_dir={tmp_path / 'o2'}",
                    f"--augmented_file={augmented_tsv}")
  assert not (tmp_path / "o2").exists()
