"""Multi-teacher distillation: averaged soft targets against NumPy, the flag and label-set checks, and the per-teacher
logits tables joined to the student's examples."""

import os

import numpy as np
import pytest
import tensorflow as tf

from modeling import losses, multi_teacher
from modeling.errors import UserError


def _softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("weights", [None, [1.0, 3.0], [2.0, 0.0], [0.2, 0.3, 0.5]])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_averaged_soft_targets_and_loss_match_numpy(weights, temperature):
  rng = np.random.default_rng(7)
  count = len(weights) if weights else 2
  teachers = [rng.normal(scale=3, size=(5, 4)).astype(np.float32) for _ in range(count)]
  student = rng.normal(size=(5, 4)).astype(np.float32)
  w = np.ones(count) if weights is None else np.asarray(weights, np.float64)
  expected = sum(wi / w.sum() * _softmax(z / temperature) for wi, z in zip(w, teachers))
  got = losses.average_soft_targets([tf.constant(z) for z in teachers], weights, temperature)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
  np.testing.assert_allclose(got.numpy().sum(-1), 1.0, rtol=1e-6)
  log_q = np.log(_softmax(student / temperature))
  loss = losses.soft_target_loss(tf.constant(student), got, tf.constant(temperature))
  np.testing.assert_allclose(loss.numpy(), np.mean(-(expected * log_q).sum(-1)), rtol=1e-5)


def test_one_teacher_equals_the_prediction_loss_and_regression_averages_predictions():
  rng = np.random.default_rng(0)
  teacher, student = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
  targets = losses.average_soft_targets([tf.constant(teacher)], [5.0], 2.0)
  np.testing.assert_allclose(losses.soft_target_loss(student, targets, 2.0).numpy(),
                             losses.prediction_loss(student, teacher, 2.0).numpy(), rtol=1e-6)
  a, b = rng.normal(size=(6, 1)).astype(np.float32), rng.normal(size=(6, 1)).astype(np.float32)
  mean = losses.average_soft_targets([a, b], [1.0, 3.0], regression=True)
  np.testing.assert_allclose(mean.numpy(), 0.25 * a + 0.75 * b, rtol=1e-6)


def test_parse_teachers_pairs_the_comma_lists():
  specs = multi_teacher.parse_teachers("a.json,b.json", "A,B", "1,3", ",vocab_b_data")
  assert [(s.config_path, s.ckpt_path, s.weight, s.data_dir) for s in specs] == [
      ("a.json", "A", 1.0, None), ("b.json", "B", 3.0, "vocab_b_data")]
  assert [s.weight for s in multi_teacher.parse_teachers("a.json", "A")] == [1.0]


@pytest.mark.parametrize("configs, ckpts, weights, dirs, message", [
    ("a,b", "A,B", "1", None, "--teacher_weights has 1 weights for 2 teachers"),
    ("a,b", "A,B", "1,2,3", None, "--teacher_weights has 3 weights for 2 teachers"),
    ("a,b", "A", None, None, "--teacher_ckpt_path has 1 entries but --teacher_config_path has 2"),
    ("a,b", "A,B", "1,x", None, "--teacher_weights=1,x: expected comma-separated numbers"),
    ("a,b", "A,B", "0,0", None, "--teacher_weights=0,0: weights must be non-negative and not all zero"),
    ("a,b", "A,B", "1,-1", None, "weights must be non-negative"),
    ("a,b", "A,B", None, "d1,d2,d3", "--teacher_data_dir has 3 entries for 2 teachers"),
])
def test_teacher_flag_refusals(configs, ckpts, weights, dirs, message):
  with pytest.raises(UserError, match=message):
    multi_teacher.parse_teachers(configs, ckpts, weights, dirs)


def test_label_sets_must_match_and_orders_are_aligned():
  task = ["neg", "pos", "neutral"]
  permutations = multi_teacher.label_permutations(task, [task, None, ["pos", "neutral", "neg"]])
  assert permutations == [None, None, [2, 0, 1]]
  logits = np.array([[0.0, 1.0, 2.0]])  # The third teacher's columns: pos, neutral, neg.
  np.testing.assert_array_equal(logits[:, permutations[2]], [[2.0, 0.0, 1.0]])
  with pytest.raises(UserError) as error:
    multi_teacher.label_permutations(task, [task, ["neg", "pos"]])
  assert str(error.value).startswith("--teacher_ckpt_path: teacher 2 was fine-tuned on labels ['neg', 'pos']")
  assert "must share the task's label set" in str(error.value)


def test_logits_tables_computed_once_and_joined_by_position():
  features = {"input_word_ids": np.arange(10, dtype=np.int32)[:, None] * np.ones((1, 3), np.int32)}
  labels = np.arange(10, dtype=np.int32) % 2
  examples = tf.data.Dataset.from_tensor_slices((features, labels))
  calls = []

  def teacher(scale):
    def call(batch, training):
      calls.append(scale)
      assert training is False
      ids = tf.cast(batch["input_word_ids"][:, 0], tf.float32)
      return {"logits": tf.stack([ids * scale, -ids], axis=-1)}
    return call

  tables = [multi_teacher.teacher_logits_table(teacher(s), examples, batch_size=4) for s in (1.0, 2.0)]
  assert tables[0].shape == (10, 2)
  np.testing.assert_array_equal(tables[1][:, 0], 2.0 * np.arange(10))
  swapped = multi_teacher.teacher_logits_table(teacher(1.0), examples, permutation=[1, 0], batch_size=4)
  np.testing.assert_array_equal(swapped, tables[0][:, ::-1])
  joined = list(multi_teacher.add_teacher_logits(examples, tables, num_examples=10).shuffle(10, seed=1).batch(10))
  (batch_features, batch_labels, outputs), = joined
  ids = batch_features["input_word_ids"].numpy()[:, 0]
  assert sorted(ids) == list(range(10)) and list(ids) != list(range(10))  # Shuffled, and each row kept its logits.
  np.testing.assert_array_equal(outputs["teacher_logits"].numpy()[:, 1, 0], 2.0 * ids)
  np.testing.assert_array_equal(outputs["teacher_logits"].numpy()[:, 0, 1], -ids)
  np.testing.assert_array_equal(batch_labels.numpy(), ids % 2)
  with pytest.raises(ValueError, match="differ in shape"):
    multi_teacher.add_teacher_logits(examples, [tables[0], tables[1][:5]])
  with pytest.raises(ValueError, match="the teachers' logits cover 10 examples, the student's data 11"):
    multi_teacher.add_teacher_logits(examples, tables, num_examples=11)


def test_teacher_data_must_hold_the_same_examples():
  student = {"task_name": "sst-2", "num_examples": {"train": 10}, "examples_sha256": "aa"}
  multi_teacher.check_same_examples(student, dict(student), "other_vocab")
  for teacher, message in (
      ({"task_name": "sst-2", "num_examples": {"train": 9}}, "has 9 training examples but --data_dir has 10"),
      (dict(student, examples_sha256="bb"), "was prepared from other raw examples"),
      (dict(student, task_name="cola"), "is task 'cola'")):
    with pytest.raises(UserError, match=f"--teacher_data_dir other_vocab {message}"):
      multi_teacher.check_same_examples(student, teacher, "other_vocab")


def test_recorded_label_list(tmp_path):
  assert multi_teacher.recorded_label_list(str(tmp_path)) is None
  (tmp_path / "training_summary.json").write_text('{"stages": []}')
  assert multi_teacher.recorded_label_list(str(tmp_path)) is None
  (tmp_path / "training_summary.json").write_text('{"label_list": [0, 1]}')
  assert multi_teacher.recorded_label_list(str(tmp_path)) == ["0", "1"]


def test_logits_table_kept_on_disk_between_runs(tmp_path):
  examples = tf.data.Dataset.from_tensor_slices(({"input_word_ids": np.arange(6, dtype=np.int32)[:, None]},
                                                 np.zeros(6, np.int32)))
  calls = []

  def teacher(batch, training):
    calls.append(1)
    ids = tf.cast(batch["input_word_ids"][:, 0], tf.float32)
    return {"logits": tf.stack([ids, -ids], axis=-1)}

  cache_file = str(tmp_path / "teacher_logits-x.npy")
  first = multi_teacher.teacher_logits_table(teacher, examples, batch_size=4, num_examples=6, cache_file=cache_file)
  passes = len(calls)
  assert passes and os.path.isfile(cache_file) and [p.name for p in tmp_path.iterdir()] == ["teacher_logits-x.npy"]
  again = multi_teacher.teacher_logits_table(teacher, examples, permutation=[1, 0], batch_size=4, num_examples=6,
                                             cache_file=cache_file)
  assert len(calls) == passes  # Read from the file: the teacher did not run again.
  np.testing.assert_array_equal(again, first[:, ::-1])  # Stored in the teacher's order, permuted on reading.
  with pytest.raises(UserError, match="teacher_logits-x.npy covers 6 examples, the data 7; delete it"):
    multi_teacher.teacher_logits_table(teacher, examples, batch_size=4, num_examples=7, cache_file=cache_file)


def test_cached_table_name_follows_the_teacher_weights_and_the_data(tmp_path):
  data = [tmp_path / "a.tfrecord", tmp_path / "b.tfrecord"]
  data[0].write_bytes(b"one")
  data[1].write_bytes(b"two")
  model = tf.Module()
  model.w = tf.Variable([1.0, 2.0], name="w")
  cache = str(tmp_path / "cache")
  path = multi_teacher.cached_table_path(cache, model, [str(data[0])])
  assert os.path.dirname(path) == cache and os.path.basename(path).startswith("teacher_logits-")
  assert multi_teacher.cached_table_path(cache, model, [str(data[0])]) == path
  assert multi_teacher.cached_table_path(cache, model, [str(data[1])]) != path
  model.w.assign([1.0, 3.0])
  assert multi_teacher.cached_table_path(cache, model, [str(data[0])]) != path
