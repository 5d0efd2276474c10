"""The quality table's arithmetic and its reading of finished runs (experiments/tinybert_table.py)."""

import json
import statistics

from experiments import tinybert_table as table


def _write_run(folder, dev, test):
  folder.mkdir(parents=True)
  (folder / "eval_results.json").write_text(json.dumps(
      {"primary_metric": "accuracy", "final_dev": {"accuracy": dev}, "test": {"accuracy": test}}))
  return str(folder)


def test_scores_of_reads_dev_and_test(tmp_path):
  assert table.scores_of(_write_run(tmp_path / "run", 0.75, 0.72)) == (0.75, 0.72)


def test_format_table_means_spread_and_share_of_teacher():
  scores = {"teacher": [(0.80, 0.78)], "no distillation": [(0.60, 0.62), (0.70, 0.66), (0.65, 0.64)],
            "TinyBERT (general + task)": [(0.78, 0.76)]}
  params = {row: 14.4e6 for row in table.ROWS}
  params["teacher"] = 22.7e6
  lines = table.format_table({"rt": (scores, "accuracy")}, params).splitlines()
  assert lines[0] == "| model | params | rt dev accuracy | rt test accuracy | % of teacher (rt dev / test) |"
  rows = {line.split(" | ")[0].strip("| "): line for line in lines[2:]}
  assert rows["teacher"] == "| teacher | 22.7M | 0.8000 | 0.7800 | 100.0% / 100.0% |"
  spread = statistics.stdev([0.60, 0.70, 0.65])
  assert rows["no distillation"] == (f"| no distillation | 14.4M | 0.6500 ± {spread:.4f} (n=3) | 0.6400 ± 0.0200 | "
                                     f"{100 * 0.65 / 0.80:.1f}% / {100 * 0.64 / 0.78:.1f}% |")
  assert rows["TinyBERT (general + task)"].endswith("| 0.7800 (n=1) | 0.7600 | 97.5% / 97.4% |")
  assert rows["Hinton KD"] == "| Hinton KD | 14.4M | n/a | n/a | n/a |"
