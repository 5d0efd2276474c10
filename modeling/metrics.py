"""Task metrics computed with NumPy on predictions: accuracy, F1, Matthews correlation, Pearson and Spearman.

The metric set of each task follows GLUE: CoLA is scored by Matthews correlation, MRPC and QQP by F1 and accuracy,
STS-B by Pearson and Spearman correlation, everything else by accuracy (MNLI matched and mismatched are accuracy on
two dev sets). `primary_metric` names the one number used to pick the best checkpoint; it follows the TinyBERT
reference implementation: accuracy for the accuracy tasks and for MRPC/QQP, Matthews correlation for CoLA, and the
mean of Pearson and Spearman for STS-B.
"""

from collections.abc import Sequence

import numpy as np

from modeling.errors import UserError

ACCURACY = "accuracy"
F1 = "f1"
MCC = "mcc"
PEARSON = "pearson"
SPEARMAN = "spearman"
CORRELATION = "pearson_spearman_mean"

# The metrics reported for each kind of task; `compute_metrics` accepts these keys, a task type or a task name.
METRIC_SETS: dict[str, Sequence[str]] = {
    ACCURACY: (ACCURACY,),
    F1: (ACCURACY, F1),
    MCC: (MCC, ACCURACY),
    PEARSON: (PEARSON, SPEARMAN, CORRELATION),
    SPEARMAN: (PEARSON, SPEARMAN, CORRELATION),
    "classification": (ACCURACY,),
    "regression": (PEARSON, SPEARMAN, CORRELATION),
}

# Tasks whose metrics are not plain accuracy (every other classification task is scored by accuracy).
TASK_METRIC: dict[str, str] = {"cola": MCC, "mrpc": F1, "qqp": F1, "sts-b": PEARSON}
_PRIMARY: dict[str, str] = {MCC: MCC, F1: ACCURACY, PEARSON: CORRELATION, SPEARMAN: CORRELATION,
                            ACCURACY: ACCURACY, "classification": ACCURACY, "regression": CORRELATION}


def task_metric(task_name: str, task_type: str = "classification") -> str:
  """The metric-set key of a task: `mcc`, `f1`, `pearson` or `accuracy` (or by `task_type` for unlisted tasks)."""
  if task_name.lower() in TASK_METRIC:
    return TASK_METRIC[task_name.lower()]
  return PEARSON if task_type == "regression" else ACCURACY


def primary_metric(task_name: str, task_type: str = "classification") -> str:
  """The name of "the" number for best-checkpoint selection (a key of `compute_metrics`' result); higher is better."""
  return _PRIMARY[task_metric(task_name, task_type)]


def accuracy(predicted_labels: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(predicted_labels == labels)) if labels.size else 0.0


def f1_score(predicted_labels: np.ndarray, labels: np.ndarray, positive_label: int = 1) -> float:
  """Binary F1 of the class `positive_label`; 0.0 when there is no true or predicted positive."""
  true_positive = np.sum((predicted_labels == positive_label) & (labels == positive_label))
  predicted_positive = np.sum(predicted_labels == positive_label)
  actual_positive = np.sum(labels == positive_label)
  if predicted_positive + actual_positive == 0:
    return 0.0
  return float(2.0 * true_positive / (predicted_positive + actual_positive))


def matthews_corrcoef(predicted_labels: np.ndarray, labels: np.ndarray) -> float:
  """Matthews correlation (multi-class: Gorodkin's R_K from the confusion matrix); 0.0 when undefined."""
  classes, encoded = np.unique(np.concatenate([labels, predicted_labels]), return_inverse=True)
  true_ids, pred_ids = encoded[:labels.size], encoded[labels.size:]
  confusion = np.zeros((len(classes), len(classes)), dtype=np.float64)
  np.add.at(confusion, (true_ids, pred_ids), 1.0)
  true_counts, pred_counts = confusion.sum(axis=1), confusion.sum(axis=0)
  total, correct = confusion.sum(), np.trace(confusion)
  covariance = correct * total - np.dot(true_counts, pred_counts)
  denominator = np.sqrt((total**2 - np.dot(pred_counts, pred_counts)) * (total**2 - np.dot(true_counts, true_counts)))
  return float(covariance / denominator) if denominator > 0 else 0.0


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
  """Pearson correlation; 0.0 when either side is constant (the correlation is undefined there)."""
  x = predictions.astype(np.float64) - np.mean(predictions)
  y = labels.astype(np.float64) - np.mean(labels)
  denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
  return float(np.dot(x, y) / denominator) if denominator > 0 else 0.0


def _average_ranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks with ties given their average rank (what Spearman's rho needs)."""
  order = np.argsort(values, kind="mergesort")
  sorted_values = values[order]
  is_new_value = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]])
  group_ids = np.cumsum(is_new_value) - 1
  group_starts = np.flatnonzero(is_new_value)
  group_ends = np.concatenate([group_starts[1:], [values.size]])
  mean_rank_of_group = (group_starts + group_ends + 1) / 2.0
  ranks = np.empty(values.size, dtype=np.float64)
  ranks[order] = mean_rank_of_group[group_ids]
  return ranks


def spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
  """Spearman's rank correlation: Pearson on average ranks."""
  return pearson(_average_ranks(predictions), _average_ranks(labels))


def _metric_set(task_type_or_metric_name: str) -> Sequence[str]:
  key = task_type_or_metric_name.lower()
  if key in METRIC_SETS:
    return METRIC_SETS[key]
  if key == "matthews_corrcoef":
    return METRIC_SETS[MCC]
  if key in TASK_METRIC:
    return METRIC_SETS[TASK_METRIC[key]]
  raise UserError(f"unknown metric or task type {task_type_or_metric_name!r}; known: "
                  f"{', '.join(sorted(METRIC_SETS))} or a task name ({', '.join(sorted(TASK_METRIC))})")


def compute_metrics(task_type_or_metric_name: str, predictions, labels) -> dict[str, float]:
  """Computes a task's metrics from model outputs and gold labels.

  Args:
    task_type_or_metric_name: "classification", "regression", a metric name ("accuracy", "f1", "mcc", "pearson",
      "spearman") or a task name with its own metric ("cola", "mrpc", "qqp", "sts-b").
    predictions: for classification, logits/probabilities `[n, num_labels]` (arg-maxed here) or predicted label ids
      `[n]`; for regression, predicted scores `[n]` or `[n, 1]`.
    labels: gold label ids `[n]` (classification) or scores `[n]` (regression).

  Returns:
    A dict of metric name to float, e.g. {"accuracy": 0.9, "f1": 0.88}.
  """
  metric_names = _metric_set(task_type_or_metric_name)
  predictions = np.asarray(predictions)
  labels = np.asarray(labels).reshape(-1)
  is_regression = PEARSON in metric_names
  if is_regression:
    predictions = predictions.reshape(-1)
  elif predictions.ndim == 2:
    predictions = np.argmax(predictions, axis=-1)
  if predictions.shape != labels.shape:
    raise ValueError(f"predictions have shape {predictions.shape} but labels have shape {labels.shape}")
  if is_regression:
    results = {PEARSON: pearson(predictions, labels), SPEARMAN: spearman(predictions, labels)}
    results[CORRELATION] = (results[PEARSON] + results[SPEARMAN]) / 2.0
    return results
  predictions = predictions.astype(np.int64)
  labels = labels.astype(np.int64)
  functions = {ACCURACY: accuracy, F1: f1_score, MCC: matthews_corrcoef}
  return {name: functions[name](predictions, labels) for name in metric_names}
