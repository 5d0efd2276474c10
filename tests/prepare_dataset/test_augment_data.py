"""augment_data.py: exact GloVe neighbours, TinyBERT's replacement draws, the masked-LM path, the file and the script."""

import json
import os
import re

import numpy as np
import pytest
from absl import flags
from safetensors.numpy import save_file

from modeling import masked_lm
from modeling.errors import UserError
from prepare_dataset import augment_data as ad
from prepare_dataset import dataset_processors as dp
from tests import tiny
from tests.modeling.test_checkpoints import _gelu_exact, _random_bert_tensors, reference_forward

SCRIPT = "prepare_dataset/augment_data.py"


# ---------------------------------------------------------------------------------------------------------------
# Neighbours.


@pytest.mark.parametrize("pool_size,k", [(5000, 7), (300, 4), (1030, 15)])
def test_nearest_neighbours_match_brute_force(pool_size, k):
  rng = np.random.default_rng(pool_size)
  pool = rng.standard_normal([pool_size, 12]).astype(np.float32)
  queries = np.concatenate([pool[:20], rng.standard_normal([45, 12]).astype(np.float32)])
  exclude = np.concatenate([np.arange(20), np.full(45, -1)])
  found = ad.nearest_neighbours(queries, pool, k, exclude=exclude)
  scores = queries.astype(np.float64) @ pool.T.astype(np.float64)
  scores[np.arange(20), np.arange(20)] = -np.inf
  np.testing.assert_array_equal(found, np.argsort(-scores, axis=1, kind="stable")[:, :k])
  assert not (found[:20] == np.arange(20)[:, None]).any()


def test_nearest_neighbours_break_ties_by_row():
  pool = np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 600, np.float32)  # rows 4.. tie, across two chunks
  found = ad.nearest_neighbours(np.array([[0.0, 1.0], [1.0, 0.0]], np.float32), pool, 5)
  np.testing.assert_array_equal(found, [[4, 5, 6, 7, 8], [0, 1, 2, 3, 4]])


def _vectors(words, rng, dim=8):
  return ad.WordVectors(list(words), rng.standard_normal([len(words), dim]).astype(np.float32))


def test_glove_candidates_are_cosine_neighbours_without_stopwords_or_self():
  rng = np.random.default_rng(0)
  words = ["good", "great", "bad", "the", "film", "movie", "123", "fine", "nice", "well-made", "awful", "plot"]
  glove = _vectors(words, rng)
  glove.vectors[1] = glove.vectors[0] * 3.0  # "great" has the direction of "good": its nearest by cosine
  glove.vectors[3] = glove.vectors[0]  # "the" too, but stopwords are never candidates
  found = ad.glove_candidates(["Good", "plot", "unknownword"], glove, 3)
  assert set(found) == {"good", "plot"}
  assert found["good"][0] == "great"
  unit = glove.vectors / np.linalg.norm(glove.vectors, axis=1, keepdims=True)
  for word, candidates in found.items():
    pool = [w for w in words if ad.is_replaceable(w) and w != word]
    expected = sorted(pool, key=lambda w: -float(unit[words.index(w)] @ unit[words.index(word)]))[:3]
    assert candidates == expected


def test_load_glove_text_file(tmp_path):
  path = tmp_path / "vectors.txt"
  path.write_text("film 0.1 0.2\nmovie 0.1 0.25\n")
  glove = ad.load_glove(str(path))
  assert glove.words == ["film", "movie"]
  np.testing.assert_allclose(glove.vectors, [[0.1, 0.2], [0.1, 0.25]])
  path.write_text("film 0.1 0.2\nmovie 0.1\n")
  with pytest.raises(UserError, match=r"vectors.txt:2: expected a word and 2 numbers"):
    ad.load_glove(str(path))


def test_packaged_glove_neighbours():
  glove = ad.load_glove()
  assert len(glove.words) == 400_000 and glove.vectors.shape == (400_000, 50)
  found = ad.glove_candidates(["movie", "three"], glove, 15)
  assert found["movie"][:3] == ["movies", "film", "films"]
  assert found["three"][:3] == ["four", "five", "two"]


# ---------------------------------------------------------------------------------------------------------------
# Drawing copies.


def _examples(texts, labels=None):
  return [dp.InputExample(guid=str(i), text_a=t, label=(labels or ["x"] * len(texts))[i]) for i, t in enumerate(texts)]


CANDIDATES = {"movie": ["film", "picture"], "great": ["superb", "fine", "grand"], "plot": ["story"],
              "actors": ["cast"], "the": ["a"], "boring": ["dull"]}


def test_copies_replace_only_words_with_candidates_and_keep_case():
  examples = _examples(["The MOVIE was great, 10/10; Plot boring."])
  rows = ad.augment_examples(examples, CANDIDATES, num_augmented=2000, replace_prob=0.5, seed=1)
  assert rows[0] == ad.AugmentedExample(0, False, examples[0].text_a, None, "x")
  copies = [row.text_a for row in rows[1:]]
  pattern = re.compile(r"The (MOVIE|FILM|PICTURE) was (great|superb|fine|grand), 10/10; (Plot|Story) (boring|dull)\.")
  assert all(pattern.fullmatch(text) for text in copies), copies[:5]
  assert all(not row.augmented or row.label is None for row in rows)
  # Every distinct combination but the original can appear (3 * 4 * 2 * 2 - 1 = 47) and no copy repeats.
  assert len(copies) == len(set(copies)) == 47


def test_replacement_rate_is_replace_prob():
  words = " ".join(["movie"] * 50)
  rows = ad.augment_examples(_examples([words]), {"movie": [f"w{i}" for i in range(15)]}, num_augmented=40,
                             replace_prob=0.4, seed=3)
  replaced = [sum(w != "movie" for w in row.text_a.split()) for row in rows[1:]]
  assert len(rows) == 41
  assert abs(np.mean(replaced) / 50 - 0.4) < 0.03
  chosen = [w for row in rows[1:] for w in row.text_a.split() if w != "movie"]
  counts = np.bincount([int(w[1:]) for w in chosen], minlength=15)
  assert counts.min() > 0.5 * len(chosen) / 15  # uniform over the K candidates


def test_seed_fixes_the_draws_and_zero_probability_copies_nothing():
  examples = _examples(["great movie", "boring plot with actors", "no candidates here"])
  first = ad.augment_examples(examples, CANDIDATES, num_augmented=5, seed=7)
  assert first == ad.augment_examples(examples, CANDIDATES, num_augmented=5, seed=7)
  assert first != ad.augment_examples(examples, CANDIDATES, num_augmented=5, seed=8)
  assert [row.source for row in first if not row.augmented] == [0, 1, 2]
  assert ad.augment_examples(examples, CANDIDATES, replace_prob=0.0) == [
      ad.AugmentedExample(i, False, e.text_a, None, "x") for i, e in enumerate(examples)]


def test_pairs_augment_both_texts():
  example = dp.InputExample(guid="0", text_a="great movie", text_b="boring plot", label="x")
  rows = ad.augment_examples([example], CANDIDATES, num_augmented=50, replace_prob=1.0, seed=0)
  assert {row.text_b for row in rows[1:]} == {"dull story"}
  assert all(row.text_a.split()[0] in CANDIDATES["great"] for row in rows[1:])


# ---------------------------------------------------------------------------------------------------------------
# The file.


def test_file_round_trip_and_checks(tmp_path):
  train = [dp.InputExample(guid="0", text_a="a\tgreat\nmovie", text_b="x", label="1"),
           dp.InputExample(guid="1", text_a="plot", text_b="y", label="0")]
  rows = ad.augment_examples(train, CANDIDATES, num_augmented=3, replace_prob=1.0)
  path = str(tmp_path / ad.OUTPUT_FILE)
  ad.write_augmented_file(path, rows, has_text_b=True)
  back = ad.read_augmented_file(path)
  assert [r.text_a for r in back] == [r.text_a.replace("\t", " ").replace("\n", " ") for r in rows]
  assert [(r.source, r.augmented, r.label, r.text_b) for r in back] == [
      (r.source, r.augmented, r.label, r.text_b) for r in rows]
  augmented = ad.check_matches_train(back, train, path)
  assert augmented == [r for r in back if r.augmented] and augmented
  with pytest.raises(UserError, match="original rows are not this task's train split"):
    ad.check_matches_train(back, train[:1], path)
  with open(path) as f:
    lines = f.read().splitlines()
  bad = lines[:2] + [lines[2].split("\t")[0] + "\t1\t1\t" + "\t".join(lines[2].split("\t")[3:])]
  (tmp_path / "bad.tsv").write_text("\n".join(bad) + "\n")
  with pytest.raises(UserError, match=r"bad.tsv:3: an augmented row has the label '1'"):
    ad.read_augmented_file(str(tmp_path / "bad.tsv"))
  (tmp_path / "other.tsv").write_text("text\tlabel\n")
  with pytest.raises(UserError, match=r"other.tsv:1: header"):
    ad.read_augmented_file(str(tmp_path / "other.tsv"))


# ---------------------------------------------------------------------------------------------------------------
# A tiny random masked LM, written as a Hugging Face BertForMaskedLM folder.

MLM_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", ".", ",", "movie", "film", "great", "good",
             "plot", "story", "boring", "dull", "actors", "cast", "superb", "##s", "123", "was", "is"]


def _write_mlm(folder, favourite=("superb", "cast", "dull", "the", "##s", "123", "film")):
  """A random BertForMaskedLM whose output bias makes `favourite` the most likely tokens, best first."""
  rng = np.random.default_rng(11)
  vocab = len(MLM_VOCAB)
  tensors = _random_bert_tensors(rng, prefix="bert.", vocab=vocab, positions=64, pooler=False)
  bias = rng.normal(0, 0.1, vocab).astype(np.float32)
  for rank, token in enumerate(favourite):
    bias[MLM_VOCAB.index(token)] = 200.0 - 20.0 * rank  # far above the random logits
  tensors.update({"cls.predictions.transform.dense.weight": rng.normal(0, 0.5, [16, 16]).astype(np.float32),
                  "cls.predictions.transform.dense.bias": rng.normal(0, 0.5, 16).astype(np.float32),
                  "cls.predictions.transform.LayerNorm.weight": (1 + rng.normal(0, 0.1, 16)).astype(np.float32),
                  "cls.predictions.transform.LayerNorm.bias": rng.normal(0, 0.1, 16).astype(np.float32),
                  "cls.predictions.bias": bias})
  os.makedirs(folder, exist_ok=True)
  save_file(tensors, os.path.join(folder, "model.safetensors"))
  config = dict(tiny.TINY, vocab_size=vocab, num_hidden_layers=2, intermediate_size=24,
                architectures=["BertForMaskedLM"])
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump(config, f)
  with open(os.path.join(folder, "vocab.txt"), "w") as f:
    f.write("\n".join(MLM_VOCAB) + "\n")
  return tensors


def test_masked_lm_head_matches_numpy(tmp_path):
  tensors = _write_mlm(tmp_path)
  mlm = masked_lm.load_masked_lm(str(tmp_path))
  word_ids = np.array([[2, 5, 9, 4, 11, 3], [2, 13, 4, 3, 0, 0]])
  mask = (word_ids > 0).astype(np.int32)
  logits = mlm.logits_at(word_ids, mask, np.array([3, 2])).numpy()
  hidden, _ = reference_forward(tensors, word_ids.tolist(), mask.tolist(), prefix="bert.", heads=2)
  x = hidden[-1][[0, 1], [3, 2]]
  x = _gelu_exact(x @ tensors["cls.predictions.transform.dense.weight"].T + tensors["cls.predictions.transform.dense.bias"])
  x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
  x = x * tensors["cls.predictions.transform.LayerNorm.weight"] + tensors["cls.predictions.transform.LayerNorm.bias"]
  expected = x @ tensors["bert.embeddings.word_embeddings.weight"].T + tensors["cls.predictions.bias"]
  np.testing.assert_allclose(logits, expected, atol=1e-3)


def test_masked_lm_without_head_is_refused(tmp_path):
  tensors = _write_mlm(tmp_path)
  save_file({k: v for k, v in tensors.items() if not k.startswith("cls.")}, str(tmp_path / "model.safetensors"))
  with pytest.raises(UserError, match=r"no masked-LM head \(cls.predictions.transform.dense.weight"):
    masked_lm.load_masked_lm(str(tmp_path))


def test_mlm_candidates_are_top_whole_words_except_the_word(tmp_path):
  _write_mlm(tmp_path)
  mlm = masked_lm.load_masked_lm(str(tmp_path))
  texts = ["The film was great, unbelievably 123 boring.", "superb cast"]
  found = ad.mlm_candidates(mlm, texts, 3, batch_size=2)
  # One-piece replaceable words: film (1), great (3), boring (6); "unbelievably" is not in the vocab.
  assert sorted(found[0]) == [1, 3, 6]
  assert found[0][1] == ["superb", "cast", "dull"]  # never "the" (stopword), "##s", "123", nor "film" itself
  assert found[0][6] == ["superb", "cast", "dull"]
  assert found[1] == {0: ["cast", "dull", "film"], 1: ["superb", "dull", "film"]}
  rows = ad.augment_examples(_examples(texts), {"unbelievably": ["amazingly"]}, num_augmented=30,
                             replace_prob=1.0, mlm=[[by_word] for by_word in found])
  assert all(row.text_a.split()[1] in ("superb", "cast", "dull") for row in rows[1:] if row.source == 0)
  assert all("amazingly" in row.text_a for row in rows[1:] if row.source == 0)


# ---------------------------------------------------------------------------------------------------------------
# The script.


def _task(folder):
  os.makedirs(folder, exist_ok=True)
  (folder / "train.tsv").write_text("sentence\tlabel\nthe great movie\t1\nboring plot , bad actors\t0\n"
                                    "a film with a plot\t1\n")
  (folder / "dev.tsv").write_text("sentence\tlabel\ngreat film\t1\n")
  (folder / "vectors.txt").write_text("".join(f"{w} {np.cos(i)} {np.sin(i)} {i % 3}\n" for i, w in enumerate(
      ["great", "good", "movie", "film", "boring", "dull", "plot", "story", "bad", "actors", "cast", "fine"])))
  return folder


def _run_in_process(*args):
  """`run()` on the script's own flags, parsed into a private FlagValues."""
  flag_values = flags.FlagValues()
  ad.define_flags(flag_values)
  flag_values(["augment_data.py", *args])
  return ad.run(flag_values)


def test_script_writes_the_same_file_for_the_same_seed(tmp_path):
  data = _task(tmp_path / "task")
  common = ["--task_name=tsv", f"--data_dir={data}", f"--glove_path={data / 'vectors.txt'}", "--num_candidates=2",
            "--num_augmented=4"]
  result = tiny.run_script(SCRIPT, *common, f"--output_dir={tmp_path / 'one'}")
  assert result.returncode == 0, result.stderr
  assert "augmented copies of 3 tsv train examples" in result.stdout
  _run_in_process(*common, f"--output_dir={tmp_path / 'two'}")
  content = (tmp_path / "one" / ad.OUTPUT_FILE).read_text()
  assert content == (tmp_path / "two" / ad.OUTPUT_FILE).read_text()
  _run_in_process(*common, f"--output_dir={tmp_path / 'three'}", "--seed=1")
  assert content != (tmp_path / "three" / ad.OUTPUT_FILE).read_text()
  meta = json.loads((tmp_path / "one" / ad.META_FILE).read_text())
  rows = ad.read_augmented_file(str(tmp_path / "one" / ad.OUTPUT_FILE))
  assert meta["num_source_examples"] == 3 and meta["num_augmented_rows"] == sum(r.augmented for r in rows) > 0
  assert [r.label for r in rows if not r.augmented] == ["1", "0", "1"]
  train = dp.get_processor("tsv").get_examples(str(data), "train")
  assert meta["train_sha256"] == ad.train_fingerprint(train)
  assert [r.text_a for r in rows if not r.augmented] == [e.text_a for e in train]
  assert sorted(os.listdir(tmp_path / "one")) == [ad.META_FILE, ad.OUTPUT_FILE]  # no temporary files left


def test_script_with_masked_lm(tmp_path):
  data = _task(tmp_path / "task")
  _write_mlm(tmp_path / "mlm")
  meta = _run_in_process("--task_name=tsv", f"--data_dir={data}", f"--glove_path={data / 'vectors.txt'}",
                         f"--mlm_path={tmp_path / 'mlm'}", "--num_candidates=2", "--replace_prob=1",
                         f"--output_dir={tmp_path / 'out'}")
  rows = ad.read_augmented_file(str(tmp_path / "out" / ad.OUTPUT_FILE))
  # "great" and "movie" are one piece: the LM's top two (superb, cast); "bad" is not in its vocab: GloVe's.
  assert {r.text_a for r in rows if r.source == 0 and r.augmented} <= {
      f"the {a} {b}" for a in ("superb", "cast") for b in ("superb", "cast")}
  assert meta["candidates"] == "mlm+glove"


def test_script_error_is_one_line(tmp_path):
  data = _task(tmp_path / "task")
  result = tiny.run_script(SCRIPT, "--task_name=tsv", f"--data_dir={data}", f"--output_dir={tmp_path / 'out'}",
                           "--replace_prob=1.5")
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == "error: --replace_prob must be in [0, 1], not 1.5"


@pytest.mark.parametrize("flag,message", [
    ("--mlm_path=/nonexistent", "--mlm_path: folder not found: /nonexistent"),
    ("--glove_path=/nonexistent", "--glove_path: not found: /nonexistent"),
    ("--text_column=9", "column 9 does not exist; rows have 2 columns"),
])
def test_bad_input_writes_nothing(tmp_path, flag, message):
  data = _task(tmp_path / "task")
  with pytest.raises(UserError, match=re.escape(message)):
    _run_in_process("--task_name=tsv", f"--data_dir={data}", f"--output_dir={tmp_path / 'out'}", flag)
  assert not os.path.exists(tmp_path / "out" / ad.OUTPUT_FILE)
