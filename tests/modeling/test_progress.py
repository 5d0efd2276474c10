"""modeling.progress: log lines with count, rate and ETA off a terminal, a tqdm bar on one, items passed through."""

import logging

from modeling import progress


def test_progress_line_rate_and_eta():
  assert progress.progress_line("tokenizing train", 250, 1000, 2.0, "examples") == (
      "tokenizing train: 250/1000 examples (25%), 125 examples/s, ETA 6s")
  assert progress.progress_line("x", 10, 7210, 1.0, "batches").endswith("10 batches/s, ETA 12m00s")
  assert progress.progress_line("x", 30, None, 3.0, "examples") == "x: 30 examples, 10 examples/s"


def test_log_lines_off_a_terminal(caplog):
  with caplog.at_level(logging.INFO, logger="absl"):
    items = list(progress.progress([[1, 2], [3], [4, 5, 6]], "predicting dev", total=6, sizes=len,
                                   log_every_seconds=0, bar=False))
  assert items == [[1, 2], [3], [4, 5, 6]]
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("predicting dev")]
  assert [line.split(" examples")[0] for line in lines[:3]] == ["predicting dev: 2/6", "predicting dev: 3/6",
                                                               "predicting dev: 6/6"]
  assert "ETA" in lines[0] and "(100%)" in lines[2]


def test_bar_on_a_terminal(capsys):
  assert list(progress.progress(range(5), "exporting", total=5, bar=True)) == list(range(5))
  assert "exporting" in capsys.readouterr().err
