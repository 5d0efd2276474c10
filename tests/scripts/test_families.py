"""Every model family through the four documented commands, on tiny models, with its own kind of tokenizer.

Per family, a teacher is fine-tuned from random initialisation (run_finetuning.py), distilled into a general student
(run_pretraining.py) and then into a task student (run_finetuning.py with a teacher), on data prepared by
create_distilled_pretraining_data.py and create_finetuning_data.py. Teacher and student must read the same token ids,
so families meet where their tokenizers agree: ALBERT, BERT and MobileBERT share a SentencePiece model trained here
(BERT's specials) and teach each other in a cycle; RoBERTa teaches RoBERTa on a byte-level BPE trained here, and MPNet
teaches MPNet on an MPNet-style WordPiece vocab (RoBERTa's specials). Each family is once the teacher and once the
student. Every command runs in this process (`tiny.run_main`: the script's `main` on its own flags), which spares a
fresh Python and TensorFlow for each of the 21 runs; each script's command line is tested in its own test file.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import run_finetuning
import run_pretraining
from prepare_dataset import create_distilled_pretraining_data, create_finetuning_data
from tests import tiny
from tests.tiny import read_json

SEQ = 16
# teacher family -> student family, and the tokenizer both read.
PAIRS = {"albert": ("bert", "spm"), "bert": ("mobilebert", "spm"), "mobilebert": ("albert", "spm"),
         "roberta": ("roberta", "bpe"), "mpnet": ("mpnet", "mpnet")}
FAMILIES = tuple(PAIRS)
TOKENIZER_OF = {family: tokenizer for family, (_, tokenizer) in PAIRS.items()}

_NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
_ROBERTA_STYLE = {"type_vocab_size": 1, "pad_token_id": 1, "max_position_embeddings": SEQ + 2, "layer_norm_eps": 1e-5}
_CONFIGS = {
    "bert": {},
    "albert": {"model_type": "albert", "embedding_size": 8},
    "mobilebert": {"model_type": "mobilebert", "embedding_size": 8, "intra_bottleneck_size": 8, "true_hidden_size": 8,
                   "num_feedforward_networks": 1},
    "roberta": dict(_ROBERTA_STYLE, model_type="roberta"),
    "mpnet": dict(tiny.TINY_MPNET, max_position_embeddings=SEQ + 2),
}

_POSITIVE, _NEGATIVE = ["good", "great", "fine"], ["bad", "dull", "awful"]
_FILLER = ["the", "movie", "plot", "cast", "was", "a", "story", "film", "and", "it"]
# MPNet's vocab.txt layout: RoBERTa's specials in front, `<mask>` at the end, WordPiece entries between.
_MPNET_VOCAB = ["<s>", "<pad>", "</s>", "<unk>", *_POSITIVE, *_NEGATIVE, *_FILLER, ".", "<mask>"]


def _sentence(rng, label):
  words = list(rng.choice(_FILLER, 4)) + [str(rng.choice(_POSITIVE if label else _NEGATIVE))]
  rng.shuffle(words)
  return " ".join(words) + " ."


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
  """Text, a task in tsv files, and the three tokenizers trained or written on that text."""
  import sentencepiece
  import tokenizers

  d = tmp_path_factory.mktemp("families")
  rng = np.random.default_rng(0)
  documents = [[_sentence(rng, int(rng.integers(0, 2))) for _ in range(6)] for _ in range(12)]
  (d / "text.txt").write_text("\n\n".join("\n".join(doc) for doc in documents) + "\n")
  for split, n in (("train", 96), ("dev", 32), ("test", 16)):
    labels = rng.integers(0, 2, n)
    rows = [f"{_sentence(rng, label)}\t{'pos' if label else 'neg'}" for label in labels]
    (d / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
  sentences = [s for doc in documents for s in doc]
  sentencepiece.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences), model_prefix=str(d / "spm"), vocab_size=40, pad_id=0, unk_id=1, bos_id=-1,
      eos_id=-1, user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], hard_vocab_limit=False, minloglevel=2)
  bpe = tokenizers.ByteLevelBPETokenizer()
  bpe.train_from_iterator(sentences, vocab_size=300, show_progress=False,
                          special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
  os.makedirs(d / "bpe")
  bpe.save_model(str(d / "bpe"))
  (d / "mpnet_vocab.txt").write_text("\n".join(_MPNET_VOCAB) + "\n")
  return {"dir": d, "spm": ["--spm_model_file", str(d / "spm.model")],
          "bpe": ["--merges_file", str(d / "bpe" / "merges.txt")],
          "vocab": {"spm": None, "bpe": str(d / "bpe" / "vocab.json"), "mpnet": str(d / "mpnet_vocab.txt")}}


def _tokenizer_args(assets, tokenizer, vocab_flag):
  vocab = assets["vocab"][tokenizer]
  return ([f"--{vocab_flag}", vocab] if vocab else []) + assets.get(tokenizer, [])


@pytest.fixture(scope="module")
def data(assets):
  """Per tokenizer, the pretraining and task data folders, prepared by the two data scripts."""
  d = assets["dir"]
  for tokenizer in ("spm", "bpe", "mpnet"):
    tiny.run_main(
        create_distilled_pretraining_data, "--input_file", d / "text.txt",
        "--output_file", d / f"general_{tokenizer}" / "train.tfrecord", "--max_seq_length", SEQ, "--dupe_factor", 2,
        *_tokenizer_args(assets, tokenizer, "vocab_file"))
    tiny.run_main(create_finetuning_data, "--task_name=tsv", f"--data_dir={d}", "--output_dir", d / f"task_{tokenizer}",
                  "--max_seq_length", SEQ, *_tokenizer_args(assets, tokenizer, "vocab_path"))
  folders = {}
  for tokenizer in ("spm", "bpe", "mpnet"):
    general, task = str(d / f"general_{tokenizer}"), str(d / f"task_{tokenizer}")
    folders[tokenizer] = {"general": general, "task": task, "vocab_size": read_json(os.path.join(task, "meta.json"))[
        "vocab_size"]}
  return folders


def _config(assets, data, family, role):
  tokenizer = TOKENIZER_OF[family] if role == "teacher" else next(t for s, t in PAIRS.values() if s == family)
  size = {"hidden_size": 32, "intermediate_size": 64} if role == "teacher" else {"hidden_size": 16,
                                                                                 "intermediate_size": 32}
  path = assets["dir"] / f"{role}_{family}.json"
  values = dict(tiny.TINY, **_CONFIGS[family])
  values.update(size, **_NO_DROPOUT, num_hidden_layers=2, vocab_size=data[tokenizer]["vocab_size"])
  path.write_text(json.dumps(values))
  return str(path)


_TASK = ["--task_name=tsv", f"--max_seq_length={SEQ}", "--batch_size=16", "--seed=1", "--steps_per_loop=1000"]


@pytest.fixture(scope="module")
def teachers(assets, data):
  """A fine-tuned teacher of every family, trained from random initialisation."""
  d = assets["dir"]
  for family in FAMILIES:
    tiny.run_main(
        run_finetuning, *_TASK, f"--data_dir={data[TOKENIZER_OF[family]]['task']}",
        f"--output_dir={d / ('teacher_' + family)}", f"--config_path={_config(assets, data, family, 'teacher')}",
        "--epochs=2", "--learning_rate=1e-2", "--export_dir=-")
  return {family: str(d / f"teacher_{family}") for family in FAMILIES}


@pytest.fixture(scope="module")
def students(assets, data, teachers):
  """Per family as the student: general distillation from its teacher, then both stages of task distillation."""
  d = assets["dir"]
  general, task = {}, {}
  for teacher, (student, tokenizer) in PAIRS.items():
    general[student] = [
        f"--data_dir={data[tokenizer]['general']}", f"--output_dir={d / ('general_' + student)}",
        f"--config_path={_config(assets, data, student, 'student')}",
        f"--teacher_config_path={os.path.join(teachers[teacher], 'config.json')}",
        f"--teacher_ckpt_path={teachers[teacher]}", f"--max_seq_length={SEQ}", "--batch_size=8", "--epochs=1",
        "--steps_per_epoch=6", "--steps_per_loop=6", "--warmup_steps=1", "--learning_rate=1e-3", "--seed=1"]
    vocab = assets["vocab"][tokenizer] or str(assets["dir"] / "spm.model")
    task[student] = [
        *_TASK, f"--data_dir={data[tokenizer]['task']}", f"--output_dir={d / ('student_' + student)}",
        f"--config_path={_config(assets, data, student, 'student')}", f"--ckpt_path={d / ('general_' + student)}",
        f"--teacher_config_path={os.path.join(teachers[teacher], 'config.json')}",
        f"--teacher_ckpt_path={teachers[teacher]}", "--intermediate_epochs=1", "--prediction_epochs=1",
        "--learning_rate=1e-2", f"--vocab_file={vocab}"]
  for student in FAMILIES:
    tiny.run_main(run_pretraining, *general[student])
  for student in FAMILIES:
    tiny.run_main(run_finetuning, *task[student])
  return {family: {"general": str(d / f"general_{family}"), "task": str(d / f"student_{family}"),
                   "teacher": next(t for t, (s, _) in PAIRS.items() if s == family)} for family in FAMILIES}


def test_every_family_is_teacher_and_student_once():
  assert sorted(PAIRS) == sorted(s for s, _ in PAIRS.values()) == sorted(FAMILIES)
  assert {"bert", "albert", "roberta", "mobilebert", "mpnet"} == set(FAMILIES)


@pytest.mark.parametrize("tokenizer,kind,scheme,ids", [
    ("spm", "sentencepiece", "bert", {"pad_id": 0, "unk_id": 1, "cls_id": 2, "sep_id": 3, "mask_id": 4}),
    ("bpe", "byte_level_bpe", "roberta", {"cls_id": 0, "pad_id": 1, "sep_id": 2, "unk_id": 3, "mask_id": 4}),
    ("mpnet", "wordpiece", "roberta", {"cls_id": 0, "pad_id": 1, "sep_id": 2, "unk_id": 3,
                                       "mask_id": len(_MPNET_VOCAB) - 1})])
def test_data_meta_names_the_tokenizer_and_specials(data, tokenizer, kind, scheme, ids):
  for folder in (data[tokenizer]["general"], data[tokenizer]["task"]):
    meta = read_json(os.path.join(folder, "meta.json"))
    assert meta["tokenizer"] == kind, folder
    assert meta["special_tokens"] == dict(ids, scheme=scheme), folder
  assert os.path.isfile(os.path.join(data[tokenizer]["general"], "train.tfrecord"))
  task_meta = read_json(os.path.join(data[tokenizer]["task"], "meta.json"))
  assert task_meta["num_examples"] == {"train": 96, "dev": 32, "test": 16}
  assert task_meta["label_list"] == ["neg", "pos"]


@pytest.mark.parametrize("family", FAMILIES)
def test_teacher_fine_tunes(teachers, family):
  out = teachers[family]
  assert read_json(os.path.join(out, "config.json"))["model_type"] == family
  results = read_json(os.path.join(out, "eval_results.json"))
  assert [r["epoch"] for r in results["epochs"]] == [1, 2]
  assert all(0 <= r["accuracy"] <= 1 for r in results["epochs"])
  assert tf.train.latest_checkpoint(os.path.join(out, "best"))
  summary = read_json(os.path.join(out, "training_summary.json"))
  assert all(np.isfinite(v) for stage in summary["stages"] for v in stage["final_losses"].values())


@pytest.mark.parametrize("family", FAMILIES)
def test_general_distillation(students, family):
  out = students[family]["general"]
  summary = read_json(os.path.join(out, "training_summary.json"))
  assert summary["global_step"] == 6 and [h["step"] for h in summary["history"]] == [6]
  assert all(np.isfinite(v) for h in summary["history"] for k, v in h.items() if k != "step")
  assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("ckpt-6")
  assert read_json(os.path.join(out, "config.json"))["model_type"] == family


@pytest.mark.parametrize("family", FAMILIES)
def test_task_distillation(students, family):
  out = students[family]["task"]
  summary = read_json(os.path.join(out, "training_summary.json"))
  assert [s["stage"] for s in summary["stages"]] == ["intermediate", "prediction"]
  for stage in summary["stages"]:
    assert stage["final_losses"] and all(np.isfinite(v) for v in stage["final_losses"].values()), stage
  results = read_json(os.path.join(out, "eval_results.json"))
  assert [r["stage"] for r in results["epochs"]] == ["prediction"]
  assert 0 <= results["final_dev"]["accuracy"] <= 1
  assert tf.train.latest_checkpoint(os.path.join(out, "intermediate", "checkpoints"))
  assert tf.train.latest_checkpoint(os.path.join(out, "best"))
  assert read_json(os.path.join(out, "config.json"))["model_type"] == family
  assert os.path.isfile(os.path.join(out, "saved_model", "saved_model.pb"))


@pytest.mark.parametrize("family", FAMILIES)
def test_export_answers(assets, data, students, family):
  """SentencePiece and WordPiece exports take raw strings (and agree with the ids); the BPE export takes ids."""
  from modeling import records
  tokenizer = next(t for s, t in PAIRS.values() if s == family)
  loaded = tf.saved_model.load(os.path.join(students[family]["task"], "saved_model"))
  features, _ = next(iter(records.make_dataset([os.path.join(data[tokenizer]["task"], "dev.tfrecord")], SEQ, 32,
                                               label_dtype=tf.int64)))
  by_ids = loaded.signatures["serve_ids"](**features)["probabilities"].numpy()
  assert by_ids.shape == (32, 2) and np.allclose(by_ids.sum(axis=1), 1, atol=1e-5)
  serving = loaded.signatures["serving_default"]
  if tokenizer == "bpe":
    assert set(serving.structured_input_signature[1]) == set(records.FEATURES)
    np.testing.assert_allclose(serving(**features)["probabilities"].numpy(), by_ids, atol=1e-6)
    return
  assert set(serving.structured_input_signature[1]) == {"text"}
  with open(assets["dir"] / "dev.tsv") as f:
    texts = [line.split("\t")[0] for line in f.read().splitlines()[1:]]
  by_text = serving(text=tf.constant(texts))["probabilities"].numpy()
  np.testing.assert_allclose(by_text, by_ids, atol=1e-5)
