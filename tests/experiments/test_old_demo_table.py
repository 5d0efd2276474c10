"""The old_demo table's arithmetic: selection on validation, means and spreads, the gain, and the recorded teacher."""

import dataclasses
import json
import statistics

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from experiments import old_demo_table as table


def _run(student, seed, kd, valid, test):
  return {"student": student, "seed": seed, "kd": kd, "valid_accuracy": valid, "test_accuracy": test}


def test_select_takes_the_best_validation_run_and_the_earliest_among_ties():
  grid = [_run("mlp", 0, [2.0, 0.5, 0.5], 0.90, 0.99), _run("mlp", 0, [5.0, 0.5, 0.5], 0.92, 0.10),
          _run("mlp", 0, [10.0, 0.1, 0.9], 0.92, 0.50)]
  assert table.select(grid) == [5.0, 0.5, 0.5]  # the test accuracy plays no part


def test_summarize_means_sample_std_and_gain_in_points():
  kd, other = [5.0, 0.1, 0.9], [2.0, 0.5, 0.5]
  runs = [_run("bilstm", 0, None, 0.7, 0.70), _run("bilstm", 1, None, 0.7, 0.74), _run("bilstm", 2, None, 0.7, 0.72),
          _run("bilstm", 0, kd, 0.8, 0.75), _run("bilstm", 0, other, 0.6, 0.99), _run("bilstm", 1, kd, 0.8, 0.77),
          _run("bilstm", 2, kd, 0.8, 0.73), _run("mlp", 0, None, 0.5, 0.5)]
  row = table.summarize(runs, {"bilstm": kd})["bilstm"]
  assert row["alone"]["mean"] == pytest.approx(0.72) and row["alone"]["n"] == 3
  assert row["alone"]["std"] == pytest.approx(statistics.stdev([0.70, 0.74, 0.72])) == pytest.approx(0.02)
  assert row["distilled"]["mean"] == pytest.approx(0.75) and row["distilled"]["n"] == 3  # the 0.99 run is not kept
  assert row["gain_points"] == pytest.approx(3.0)


def test_markdown_table_has_one_row_per_student():
  summary = {"mlp": {"kd": [5.0, 0.1, 0.9], "alone": {"mean": 0.9, "std": 0.01, "n": 3},
                     "distilled": {"mean": 0.9125, "std": 0.0, "n": 3}, "gain_points": 1.25}}
  text = table.markdown_table({"mnist": {"teacher": {"name": "cnn", "test_accuracy": 0.97}, "summary": summary}})
  assert text.splitlines()[2] == ("| mnist | cnn 0.9700 | mlp | 0.9000 ± 0.0100 (n=3) | 0.9125 ± 0.0000 (n=3) | "
                                  "+1.25 | 5, 0.1, 0.9 |")


def test_subsample_is_a_seeded_prefix_of_one_permutation():
  x, y = np.arange(100), np.arange(100) % 2
  small, smaller = table.subsample((x, y), 30), table.subsample((x, y), 10)
  np.testing.assert_array_equal(small[0][:10], smaller[0])
  np.testing.assert_array_equal(small[0] % 2, small[1])
  assert sorted(table.subsample((x, y), None)[0]) == list(range(100))


def test_recorded_teacher_returns_each_examples_logits():
  texts = np.array(["good", "bad", "good"], dtype=object)  # a duplicate text has one set of logits
  logits = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 1.0]], np.float32)
  teacher = table.RecordedTeacher(texts, logits)
  np.testing.assert_array_equal(teacher(tf.constant(["bad", "good"])).numpy(), [[2.0, 0.0], [0.0, 1.0]])
  with pytest.raises(tf.errors.InvalidArgumentError, match="without recorded logits"):
    teacher(tf.constant(["unseen"]))
  images = np.random.default_rng(0).random((4, 3, 3, 1)).astype(np.float32)
  image_teacher = table.RecordedTeacher(images, np.eye(4, dtype=np.float32))
  np.testing.assert_array_equal(image_teacher(tf.constant(images[[2, 0]])).numpy(), np.eye(4)[[2, 0]])


def test_cache_key_follows_the_teacher_and_data_settings_only():
  mpnet = table.EXPERIMENTS["imdb_reviews"]
  key = table.cache_key("imdb_reviews", mpnet)
  students_changed = dataclasses.replace(mpnet, max_epochs=1, patience=None, grid=((1.0, 0.0, 1.0),), batch_size=4)
  assert table.cache_key("imdb_reviews", students_changed) == key
  for changed in (dataclasses.replace(mpnet, teacher_optimizer="adam"), dataclasses.replace(mpnet, test_examples=999),
                  dataclasses.replace(mpnet, teacher=("bert", {**mpnet.teacher[1], "pooling": "pooled"}))):
    assert table.cache_key("imdb_reviews", changed) != key
  # Fields added with their defaults leave older keys alone: the first table's MiniLM teacher keeps its cache.
  assert table.cache_key("imdb_reviews", table.MINILM_IMDB) == "7e6dc4f8e042"


def test_resolve_config_fills_asset_folders_and_the_precision(monkeypatch):
  monkeypatch.setitem(table.ASSET_FOLDERS, "mpnet", lambda: "/cache/all-mpnet-base-v2")
  monkeypatch.setattr(table, "bf16_instructions", lambda: True)
  config = {"hf_dir": "mpnet", "vocab_file": "mpnet/vocab.txt", "pooling": "mean", "precision": "auto",
            "note": "mpnetish"}
  assert table.resolve_config(config) == {"hf_dir": "/cache/all-mpnet-base-v2",
                                          "vocab_file": "/cache/all-mpnet-base-v2/vocab.txt", "pooling": "mean",
                                          "precision": "bfloat16", "note": "mpnetish"}
  monkeypatch.setattr(table, "bf16_instructions", lambda: False)
  assert table.resolve_config({"precision": "auto"}) == {"precision": "float32"}
  assert table._teacher_name(table.EXPERIMENTS["imdb_reviews"]) == "mpnet"
  assert table._teacher_name(table.MINILM_IMDB) == "minilm" and table._teacher_name(table.EXPERIMENTS["mnist"]) == "cnn"


def test_best_epoch_callback_stops_after_patience_and_keeps_the_best_weights():
  model = tf_keras.Sequential([tf_keras.Input((1,)), tf_keras.layers.Dense(1, use_bias=False)])
  accuracies = iter([0.5, 0.9, 0.6, 0.7, 0.8, 0.95])

  class Scripted(tf_keras.callbacks.Callback):  # sets a weight per epoch and reports a scripted accuracy
    def on_epoch_end(self, epoch, logs=None):
      model.layers[0].kernel.assign([[float(epoch)]])
      logs["val_accuracy"] = next(accuracies)

  stop = table._best_epoch_callback(6, patience=3)
  model.compile(optimizer="sgd", loss="mse")
  history = model.fit(np.zeros((2, 1)), np.zeros((2, 1)), epochs=6, verbose=0, callbacks=[Scripted(), stop])
  assert len(history.epoch) == 5 and stop.best_epoch == 1  # epochs 3-5 did not beat 0.9; epoch 6 never ran
  assert model.layers[0].kernel.numpy()[0, 0] == 1.0
  assert table._best_epoch_callback(6).patience == 6  # no patience: runs every epoch


def test_write_results_keeps_other_tasks_only_with_update(tmp_path):
  summary = {"mlp": {"kd": [4.0, 0.1, 0.9], "alone": {"mean": 0.95, "std": 0.0, "n": 3},
                     "distilled": {"mean": 0.96, "std": 0.0, "n": 3}, "gain_points": 1.0}}

  def result(task, command):
    return {task: {"teacher": {"name": "cnn", "test_accuracy": 0.98}, "summary": summary,
                   "run": {"command": command, "date": "2026-11-29", "minutes": 2.0}}}

  table.write_results(str(tmp_path), result("imdb_reviews", "first"), update=False)
  table.write_results(str(tmp_path), result("mnist", "second"), update=True)
  saved = json.loads((tmp_path / "old_demo_table.json").read_text())["results"]
  assert sorted(saved) == ["imdb_reviews", "mnist"] and saved["imdb_reviews"]["run"]["command"] == "first"
  text = (tmp_path / "old_demo_table.md").read_text()
  assert "| imdb_reviews | cnn 0.9800 | mlp |" in text and "- mnist: `second`, 2026-11-29, 2.0 min" in text
  table.write_results(str(tmp_path), result("mnist", "third"), update=False)
  assert sorted(json.loads((tmp_path / "old_demo_table.json").read_text())["results"]) == ["mnist"]


def _shift_reference(image, dy, dx):
  """`image` moved dy rows down and dx columns right, zero-filled: a padded copy, sliced."""
  height, width = image.shape[:2]
  padded = np.pad(image, ((abs(dy), abs(dy)), (abs(dx), abs(dx))) + ((0, 0),) * (image.ndim - 2))
  return padded[abs(dy) - dy:abs(dy) - dy + height, abs(dx) - dx:abs(dx) - dx + width]


def test_shifted_copies_move_each_image_by_a_seeded_shift_within_the_limit():
  images = np.random.default_rng(0).random((5, 6, 7, 1)).astype(np.float32)
  copies = table.shifted_copies(images, 3, max_shift=2, seed=4)
  assert copies.shape == (15, 6, 7, 1) and copies.dtype == np.float32
  np.testing.assert_array_equal(copies, table.shifted_copies(images, 3, max_shift=2, seed=4))
  shifts = set()
  for k in range(3):
    for i in range(5):
      matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(copies[5 * k + i], _shift_reference(images[i], dy, dx))]
      assert len(matches) == 1, (k, i)
      shifts.add(matches[0])
  assert len(shifts) > 3  # the shifts vary


def test_transfer_sets_and_their_labels():
  mnist = dataclasses.replace(table.EXPERIMENTS["mnist"], transfer_copies=2)
  data, transfer, labels = table.prepare_data("mnist", mnist)
  assert transfer.shape == (2 * len(data.train[1]),) + data.train[0].shape[1:]
  np.testing.assert_array_equal(labels, np.tile(data.train[1], 2))
  assert table.prepare_data("mnist", mnist)[1].shape == transfer.shape
  imdb = dataclasses.replace(table.EXPERIMENTS["imdb_reviews"], train_examples=50, transfer_examples=30)
  data, transfer, labels = table.prepare_data("imdb_reviews", imdb)
  assert len(data.train[1]) == 50 and len(transfer) == len(labels) == 30
  assert not set(transfer) & set(data.train[0])  # the next reviews of the same permutation, not the train ones
  every = table.subsample(table.datasets.get_dataset("imdb_reviews")(None).train, 80)
  np.testing.assert_array_equal(transfer, every[0][50:])
  np.testing.assert_array_equal(labels, every[1][50:])
  # The vocabulary reads the transfer texts too: every word of the train reviews, and more.
  assert set(data.vocabulary) > set(table.datasets.build_vocabulary(data.train[0]))
  with pytest.raises(table.UserError, match="transfer_examples applies to text tasks"):
    table.prepare_data("mnist", dataclasses.replace(mnist, transfer_examples=3))
