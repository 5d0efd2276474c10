"""Task metrics agree with scikit-learn and SciPy on fixed predictions."""

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk_metrics

from modeling import metrics
from modeling.errors import UserError

RNG = np.random.default_rng(1234)
BINARY_LABELS = RNG.integers(0, 2, size=200)
BINARY_LOGITS = RNG.normal(size=(200, 2)) + 0.8 * np.eye(2)[BINARY_LABELS]
MULTI_LABELS = RNG.integers(0, 4, size=300)
MULTI_PREDICTIONS = np.where(RNG.random(300) < 0.6, MULTI_LABELS, RNG.integers(0, 4, size=300))
SCORES = RNG.uniform(0, 5, size=150).round(1)  # rounded so that ties exercise Spearman's average ranks
PREDICTED_SCORES = (SCORES + RNG.normal(scale=1.0, size=150)).round(1)


def test_accuracy_from_logits_matches_sklearn():
  result = metrics.compute_metrics("classification", BINARY_LOGITS, BINARY_LABELS)
  assert list(result) == ["accuracy"]
  expected = sk_metrics.accuracy_score(BINARY_LABELS, BINARY_LOGITS.argmax(-1))
  assert result["accuracy"] == pytest.approx(expected)
  assert 0.5 < expected < 1.0  # the fixture is neither trivial nor random


def test_f1_and_accuracy_for_mrpc_and_qqp():
  for name in ("mrpc", "qqp", "f1"):
    result = metrics.compute_metrics(name, BINARY_LOGITS, BINARY_LABELS)
    assert set(result) == {"accuracy", "f1"}
    assert result["f1"] == pytest.approx(sk_metrics.f1_score(BINARY_LABELS, BINARY_LOGITS.argmax(-1)))
    assert result["accuracy"] == pytest.approx(sk_metrics.accuracy_score(BINARY_LABELS, BINARY_LOGITS.argmax(-1)))


def test_f1_without_positives_is_zero():
  assert metrics.compute_metrics("f1", np.zeros(5, int), np.zeros(5, int))["f1"] == 0.0


@pytest.mark.parametrize("labels,predictions", [(BINARY_LABELS, BINARY_LOGITS.argmax(-1)),
                                                (MULTI_LABELS, MULTI_PREDICTIONS)])
def test_matthews_correlation_matches_sklearn(labels, predictions):
  result = metrics.compute_metrics("cola", predictions, labels)
  assert result["mcc"] == pytest.approx(sk_metrics.matthews_corrcoef(labels, predictions), abs=1e-12)


def test_matthews_correlation_of_constant_predictions_is_zero():
  assert metrics.compute_metrics("mcc", np.ones(10, int), BINARY_LABELS[:10])["mcc"] == 0.0


def test_pearson_and_spearman_match_scipy():
  for predictions in (PREDICTED_SCORES, PREDICTED_SCORES[:, None]):
    result = metrics.compute_metrics("sts-b", predictions, SCORES)
    assert result["pearson"] == pytest.approx(stats.pearsonr(PREDICTED_SCORES, SCORES)[0], abs=1e-12)
    assert result["spearman"] == pytest.approx(stats.spearmanr(PREDICTED_SCORES, SCORES)[0], abs=1e-12)
    assert result["pearson_spearman_mean"] == pytest.approx((result["pearson"] + result["spearman"]) / 2)
  assert len(np.unique(SCORES)) < len(SCORES)  # ties are present


def test_regression_task_type_gives_correlations():
  result = metrics.compute_metrics("regression", PREDICTED_SCORES, SCORES)
  assert set(result) == {"pearson", "spearman", "pearson_spearman_mean"}


def test_primary_metric_per_task():
  assert metrics.primary_metric("cola") == "mcc"
  assert metrics.primary_metric("sts-b") == "pearson_spearman_mean"
  assert metrics.primary_metric("mrpc") == "accuracy"
  assert metrics.primary_metric("mnli") == "accuracy"
  assert metrics.primary_metric("tsv", task_type="regression") == "pearson_spearman_mean"
  for task in ("cola", "sts-b", "mrpc", "sst-2"):
    task_type = "regression" if task == "sts-b" else "classification"
    predictions = PREDICTED_SCORES if task == "sts-b" else BINARY_LOGITS
    labels = SCORES if task == "sts-b" else BINARY_LABELS
    key = metrics.task_metric(task, task_type)
    assert metrics.primary_metric(task, task_type) in metrics.compute_metrics(key, predictions, labels)


def test_bad_input_is_refused():
  with pytest.raises(UserError, match="unknown metric.*accuracy"):
    metrics.compute_metrics("bleu", BINARY_LOGITS, BINARY_LABELS)
  with pytest.raises(ValueError, match="shape"):
    metrics.compute_metrics("accuracy", BINARY_LOGITS[:10], BINARY_LABELS)
