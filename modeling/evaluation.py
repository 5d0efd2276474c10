"""Dev-set evaluation of a task model during fine-tuning, the best checkpoint, and the final test predictions.

An output folder of run_finetuning.py holds `eval_results.json` (the dev scores of every epoch, the best one, the
final dev scores and, when the test split has labels, the test scores), `best/` (the checkpoint of the best dev
epoch) and `test_predictions.tsv` (one row per test example: index, predicted label or score, gold label).
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging

from modeling import files, metrics, progress, records
from modeling.models import TaskModel

RESULTS_FILE = "eval_results.json"
TEST_PREDICTIONS_FILE = "test_predictions.tsv"
# Above this share of one common vector in the last layer's token states, a head reads (almost) a constant.
COLLAPSED_SHARE = 0.995


def common_vector_share(states: np.ndarray, mask: np.ndarray) -> float:
  """How much of the token states is one vector shared by every real token: |mean h|^2 / mean |h|^2 over the
  positions where `mask` is 1, in [0, 1] (1: every token of every example has the same state).

  Args:
    states: [batch, seq, hidden] token states.
    mask: [batch, seq], 1 at real tokens.
  """
  real = np.asarray(states, np.float64)[np.asarray(mask, bool)]
  energy = float(np.mean(np.sum(real ** 2, axis=-1)))
  return float(np.sum(np.mean(real, axis=0) ** 2) / energy) if energy > 0 else 1.0


class Evaluator:
  """Dev-set evaluation after each epoch, the record of every epoch, and the best checkpoint.

  `eval_results.json` is read back when it exists, so a resumed run keeps the epochs evaluated before it stopped
  and does not evaluate them again.

  Args:
    model: the task model being trained.
    meta: the data's `meta.json` (task name and type, metric, label list).
    split_files: {split: TFRecord file}; the splits whose name starts with `dev` are evaluated.
    output_dir: where `eval_results.json` and `best/` go.
    max_seq_length: the records' sequence length.
    eval_batch_size: batch size for prediction.
  """

  def __init__(self, model: TaskModel, meta: dict, split_files: dict[str, str], output_dir: str,
               max_seq_length: int, eval_batch_size: int):
    self.model, self.meta = model, meta
    self.regression = meta["task_type"] == "regression"
    self.label_dtype = tf.float32 if self.regression else tf.int64
    self.dev_splits = [s for s in split_files if s.startswith("dev")]
    self.split_files = split_files
    self.max_seq_length, self.eval_batch_size = max_seq_length, eval_batch_size
    self.primary = meta.get("primary_metric") or metrics.primary_metric(meta["task_name"], meta["task_type"])
    os.makedirs(output_dir, exist_ok=True)
    self.output_dir = output_dir
    self.results_path = os.path.join(output_dir, RESULTS_FILE)
    self.results = (files.read_json(self.results_path) if os.path.isfile(self.results_path)
                    else {"task_name": meta["task_name"], "primary_metric": self.primary, "epochs": [], "best": None})
    self.best_manager = tf.train.CheckpointManager(model.checkpoint(), os.path.join(output_dir, "best"),
                                                   max_to_keep=1)
    self._predict = tf.function(lambda features: model(features, training=False)["logits"])

  def _dataset(self, split: str) -> tf.data.Dataset:
    """One split's (features, labels) batches, in record order."""
    return records.make_dataset([self.split_files[split]], self.max_seq_length, self.eval_batch_size,
                                label_dtype=self.label_dtype)

  def predict(self, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The model's logits and the gold labels of one split, in record order."""
    logits, labels = [], []
    for features, batch_labels in progress.progress(self._dataset(split), f"predicting {split}",
                                                    total=self.meta.get("num_examples", {}).get(split),
                                                    sizes=lambda batch: len(batch[1])):
      logits.append(self._predict(features).numpy())
      labels.append(batch_labels.numpy())
    return np.concatenate(logits), np.concatenate(labels)

  def _scores(self, logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return metrics.compute_metrics(self.meta.get("metric") or self.meta["task_type"], logits, labels)

  def evaluate(self) -> dict[str, float]:
    """Scores on every dev split; a split other than `dev` prefixes its keys with its name."""
    return self._evaluate()[0]

  def _evaluate(self) -> tuple[dict[str, float], dict[str, int]]:
    """The scores of `evaluate`, and {split: class} for each dev split where every prediction is that one class."""
    results, single = {}, {}
    for split in self.dev_splits:
      logits, labels = self.predict(split)
      scores = self._scores(logits, labels)
      results.update({(k if split == "dev" else f"{split}_{k}"): v for k, v in scores.items()})
      predicted = np.unique(np.argmax(logits, axis=-1))
      if not self.regression and len(logits) > 1 and len(predicted) == 1:
        single[split] = int(predicted[0])
    return results, single

  def after_epoch(self, stage: str, epoch: int, step: int) -> None:
    """Evaluates, records the epoch in `eval_results.json`, and saves the model to `best/` when it is the best."""
    if any(r["stage"] == stage and r["epoch"] == epoch for r in self.results["epochs"]):
      return  # Already evaluated before a resume.
    scores, single = self._evaluate()
    record = dict(stage=stage, epoch=epoch, step=step, **scores)
    if single:
      # A collapsed model (one class for every dev example) scores the majority rate: worth a loud line.
      record["single_class"] = True
      for split, label in single.items():
        logging.warning("[%s] epoch %d predicts a single class on %s: every example is %r", stage, epoch, split,
                        self.meta["label_list"][label])
    self.results["epochs"].append(record)
    best = self.results["best"]
    if best is None or scores[self.primary] > best[self.primary]:
      self.results["best"] = record
      self.best_manager.save(checkpoint_number=step)
    logging.info("[%s] epoch %d dev: %s (best %s %.4f)", stage, epoch,
                 " ".join(f"{k} {v:.4f}" for k, v in scores.items()), self.primary,
                 self.results["best"][self.primary])
    files.write_json(self.results_path, self.results)

  def feature_check(self, stage: str, max_examples: int = 256) -> float | None:
    """The last layer's `common_vector_share` over the first `max_examples` dev examples, with a warning when the
    states are nearly one vector (a stage-1 student whose head could only read a constant); None without dev."""
    if not self.dev_splits:
      return None
    split = self.dev_splits[0]
    states, masks, seen = [], [], 0
    for features, _ in self._dataset(split):
      states.append(self.model(features, training=False)["hidden_states"][-1].numpy())
      masks.append(features["input_mask"].numpy())
      seen += len(masks[-1])
      if seen >= max_examples:
        break
    share = common_vector_share(np.concatenate(states)[:max_examples], np.concatenate(masks)[:max_examples])
    if share >= COLLAPSED_SHARE:
      logging.warning(
          "[%s] the student's last layer gives every token nearly the same state on %s (share of the common vector "
          "%.5f over %d examples): its head can only learn the majority class until that changes. Stage 1 does this "
          "to a student that starts from random weights (experiments/README.md); start from a general-distilled "
          "student (--ckpt_path), lower --intermediate_learning_rate, or skip stage 1 (--distill_stage prediction)",
          stage, split, share, min(seen, max_examples))
    return share

  def restore_best(self) -> str | None:
    """Loads the best dev epoch's weights into the model; returns its checkpoint, or None when there is none."""
    best_prefix = self.best_manager.latest_checkpoint
    if best_prefix:
      self.model.restore(best_prefix, "the best checkpoint")
    return best_prefix

  def finish(self, best_prefix: str | None) -> dict[str, float]:
    """Final dev scores, test predictions (and test scores when the test split has labels) into the output folder.

    Returns:
      The final dev scores.
    """
    final_scores = self.evaluate()
    if "test" in self.split_files:
      logits, labels = self.predict("test")
      write_test_predictions(os.path.join(self.output_dir, TEST_PREDICTIONS_FILE), logits, labels, self.meta)
      if self.meta.get("test_has_labels"):
        self.results["test"] = self._scores(logits, labels)
    self.results["final_dev"] = final_scores
    self.results["best_checkpoint"] = best_prefix
    files.write_json(self.results_path, self.results)
    return final_scores


def write_test_predictions(path: str, logits: np.ndarray, labels: np.ndarray, meta: dict) -> None:
  """Writes `index, prediction, label` rows: the predicted label name (or score) and the gold one, if known."""
  regression = meta["task_type"] == "regression"
  with files.atomic_path(path) as tmp, open(tmp, "w") as f:
    f.write("index\tprediction\tlabel\n")
    for i, (row, label) in enumerate(zip(logits, labels)):
      prediction = f"{row[0]:.6f}" if regression else meta["label_list"][int(np.argmax(row))]
      gold = f"{label:.6f}" if regression else (meta["label_list"][int(label)] if meta.get("test_has_labels")
                                                 else "")
      f.write(f"{i}\t{prediction}\t{gold}\n")
