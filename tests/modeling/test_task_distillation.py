"""The stage losses and the training data of task distillation, with and without the teacher-output cache."""

import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from modeling import config as config_lib
from modeling import records, task_distillation, teacher_cache
from modeling.models import build_task_model
from tests import tiny

SEQ = 8


def _records(path, num_examples):
  """Examples told apart by their second token (10 + index), labels alternating."""
  with records.RecordWriter(path) as writer:
    for i in range(num_examples):
      ids = [2, 10 + i, 7, 3] + [0] * (SEQ - 4)
      writer.write(records.serialize_example(ids, [1] * 4 + [0] * (SEQ - 4), [0] * SEQ, i % 2))
  return str(path)


@pytest.fixture(scope="module")
def teacher():
  tf.random.set_seed(0)
  config = config_lib.config_from_dict(dict(tiny.TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                                       source="tiny")
  model = build_task_model(config, 2)
  model.trainable = False
  return model, config


def _dataset(train_file, stage, num_examples, teacher, cache, batch_size=8, cache_dir=None):
  """`train_dataset` on the tiny teacher with layer map 2,4: `(dataset, loss layer map)`."""
  model, config = teacher
  return task_distillation.train_dataset(
      train_file, stage, max_seq_length=SEQ, batch_size=batch_size, label_dtype=tf.int64, num_examples=num_examples,
      seed=1, teacher=model, teacher_config=config, layer_map=[2, 4], cache=cache, cache_dir=cache_dir)


def _batches(train_file, stage, num_examples, teacher, cache, count, batch_size=8):
  dataset, layer_map = _dataset(train_file, stage, num_examples, teacher, cache, batch_size)
  return list(dataset.take(count)), layer_map


@pytest.mark.parametrize("stage, cache", [("prediction", "logits"), ("intermediate", "all"), ("prediction", "none")])
def test_every_example_is_used(tmp_path, teacher, stage, cache):
  train_file = _records(tmp_path / "train.tfrecord", 20)  # 2 full batches of 8 and a remainder of 4.
  batches, _ = _batches(train_file, stage, 20, teacher, cache, count=3)
  assert [int(b[0]["input_word_ids"].shape[0]) for b in batches] == [8, 8, 8]
  seen = {int(i) for b in batches for i in b[0]["input_word_ids"][:, 1]}
  assert seen == set(range(10, 30))  # The first 24 examples drawn include the whole first epoch.


@pytest.mark.parametrize("stage, cache", [("prediction", "logits"), ("intermediate", "all")])
def test_fewer_examples_than_one_batch_still_train(tmp_path, teacher, stage, cache):
  train_file = _records(tmp_path / "train.tfrecord", 5)
  batches, _ = _batches(train_file, stage, 5, teacher, cache, count=2)
  assert len(batches) == 2
  assert {int(i) for i in batches[0][0]["input_word_ids"][:, 1]} <= set(range(10, 15))
  assert {int(i) for b in batches for i in b[0]["input_word_ids"][:, 1]} == set(range(10, 15))


def test_cached_outputs_stay_with_their_examples(tmp_path, teacher):
  """After the cache's batches are split and batched again, each example still carries its own teacher outputs."""
  model, _ = teacher
  train_file = _records(tmp_path / "train.tfrecord", 20)
  (batch,), layer_map = _batches(train_file, "intermediate", 20, teacher, "all", count=1)
  assert layer_map == [1, 2]  # The cache holds the mapped layers only.
  features, _, cached = batch
  expected = model(features, training=False)
  # Hidden states and attention logits are cached in float16 (modeling/teacher_cache.py): half-precision rounding.
  np.testing.assert_allclose(cached["hidden_states"][2], expected["hidden_states"][4], rtol=2e-3, atol=2e-3)
  mask = features["input_mask"].numpy()[:, None, None, :].astype(bool)  # Masked keys are cached as zeros.
  np.testing.assert_allclose(np.where(mask, cached["attention_logits"][0], 0),
                             np.where(mask, expected["attention_logits"][1], 0), rtol=2e-3, atol=2e-3)
  (batch,), layer_map = _batches(train_file, "prediction", 20, teacher, "logits", count=1)
  assert layer_map == [2, 4]
  np.testing.assert_allclose(batch[2]["logits"], model(batch[0], training=False)["logits"], atol=1e-5)


def test_stage_losses(teacher):
  model, config = teacher
  student = build_task_model(config, 2)
  features = {"input_word_ids": tf.constant([[2, 11, 3, 0]]), "input_mask": tf.constant([[1, 1, 1, 0]]),
              "input_type_ids": tf.zeros([1, 4], tf.int32)}
  labels = tf.constant([1])
  finetune = task_distillation.make_loss_fn("finetune", student)((features, labels), False)
  logits = student(features, training=False)["logits"].numpy()[0]
  log_softmax = logits - np.log(np.exp(logits).sum())
  assert finetune["total"].numpy() == pytest.approx(-log_softmax[1], rel=1e-5)
  prediction = task_distillation.make_loss_fn("prediction", student, model, temperature=2.0, gold_label_weight=0.5)(
      (features, labels), False)
  teacher_logits = model(features, training=False)["logits"].numpy()[0]
  soft = np.exp(teacher_logits / 2) / np.exp(teacher_logits / 2).sum()
  student_log = logits / 2 - np.log(np.exp(logits / 2).sum())
  assert prediction["prediction"].numpy() == pytest.approx(-(soft * student_log).sum(), rel=1e-5)
  expected_total = float(prediction["prediction"] + 0.5 * finetune["gold"])
  assert prediction["total"].numpy() == pytest.approx(expected_total, rel=1e-5)


def test_stage_one_with_a_prediction_term_trains_the_head(teacher):
  from modeling.losses import IntermediateDistillation
  model, config = teacher
  tf.random.set_seed(2)
  student = build_task_model(config, 2)
  distillation = IntermediateDistillation(config.hidden_size, config.hidden_size, [1, 2, 3, 4])
  features = {"input_word_ids": tf.constant([[2, 11, 3, 0]]), "input_mask": tf.constant([[1, 1, 1, 0]]),
              "input_type_ids": tf.zeros([1, 4], tf.int32)}
  batch = (features, tf.constant([1]))
  alone = task_distillation.make_loss_fn("intermediate", student, model, distillation)(batch, False)
  joint = task_distillation.make_loss_fn("intermediate", student, model, distillation, temperature=2.0,
                                         intermediate_prediction_weight=0.5)(batch, False)
  assert "prediction" not in alone
  logits = student(features, training=False)["logits"].numpy()[0]
  teacher_logits = model(features, training=False)["logits"].numpy()[0]
  soft = np.exp(teacher_logits / 2) / np.exp(teacher_logits / 2).sum()
  assert float(joint["prediction"]) == pytest.approx(-(soft * (logits / 2 - np.log(np.exp(logits / 2).sum()))).sum(),
                                                     rel=1e-5)
  assert float(joint["total"]) == pytest.approx(float(alone["total"]) + 0.5 * float(joint["prediction"]), rel=1e-5)
  head = {v.ref() for v in student.head.trainable_variables}
  _, stage_one = task_distillation.stage_variables("intermediate", student, distillation)
  _, with_head = task_distillation.stage_variables("intermediate", student, distillation, trains_head=True)
  assert not head & {v.ref() for v in stage_one()}
  assert head <= {v.ref() for v in with_head()} and len(with_head()) == len(student.trainable_variables)


def test_gold_loss_skips_rows_without_a_label():
  logits = np.array([[1.0, -1.0], [0.5, 2.0], [3.0, 0.0]], np.float32)
  labels = np.array([1, -1, 0])
  log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  want = -(log_softmax[0, 1] + log_softmax[2, 0]) / 2
  got = task_distillation.gold_loss(tf.constant(logits), tf.constant(labels, tf.int64), False, has_unlabeled=True)
  assert float(got) == pytest.approx(want, rel=1e-6)
  none = task_distillation.gold_loss(tf.constant(logits), tf.constant([-1, -1, -1], tf.int64), False, True)
  assert float(none) == 0.0
  scores = task_distillation.gold_loss(tf.constant(logits[:, :1]), tf.constant([2.0, -1.0, 1.0]), True, True)
  assert float(scores) == pytest.approx(((1 - 2) ** 2 + (3 - 1) ** 2) / 2, rel=1e-6)


def test_prediction_loss_with_schedules_and_two_teachers(teacher):
  from modeling.schedules import LinearSchedule
  _, config = teacher
  student = build_task_model(config, 2)
  features = {"input_word_ids": tf.constant([[2, 11, 3, 0]]), "input_mask": tf.constant([[1, 1, 1, 0]]),
              "input_type_ids": tf.zeros([1, 4], tf.int32)}
  z1, z2 = np.array([[2.0, -1.0]], np.float32), np.array([[0.0, 1.0]], np.float32)
  batch = (features, tf.constant([-1], tf.int64), {"teacher_logits": tf.constant(np.stack([z1, z2], 1))})
  step = tf.Variable(5, dtype=tf.int64)
  terms = task_distillation.make_loss_fn(
      "prediction", student, temperature=LinearSchedule(4.0, 1.0), gold_label_weight=LinearSchedule(0.0, 1.0),
      step=step, total_steps=11, teacher_weights=[3.0, 1.0], has_unlabeled=True)(batch, False)
  t = 4.0 - 3.0 * 5 / 10
  assert float(terms["temperature"]) == pytest.approx(t) and float(terms["gold_label_weight"]) == pytest.approx(0.5)
  soft = lambda z: np.exp(z / t) / np.exp(z / t).sum()
  targets = 0.75 * soft(z1[0]) + 0.25 * soft(z2[0])
  s = student(features, training=False)["logits"].numpy()[0] / t
  assert float(terms["prediction"]) == pytest.approx(-(targets * (s - np.log(np.exp(s).sum()))).sum(), rel=1e-5)
  assert float(terms["gold"]) == 0.0 and float(terms["total"]) == pytest.approx(float(terms["prediction"]))


def test_plan_stages():
  assert task_distillation.plan_stages(False, "both", 3, 1e-3) == (("finetune", 3, 1e-3),)
  assert task_distillation.plan_stages(True, "both", 3, 1e-3, intermediate_epochs=10,
                                       intermediate_learning_rate=5e-3) == (("intermediate", 10, 5e-3),
                                                                            ("prediction", 3, 1e-3))
  assert task_distillation.plan_stages(True, "prediction", 3, 1e-3, prediction_epochs=2) == (("prediction", 2, 1e-3),)


def test_stage_two_reads_the_logits_of_stage_one_files(tmp_path, teacher, logged):
  """With `all` in a folder, stage 2 takes the logits from the files stage 1 completed: no teacher pass, no new file."""
  model, _ = teacher
  train_file = _records(tmp_path / "train.tfrecord", 20)
  cache_dir = str(tmp_path / "cache")

  def dataset(stage):
    return _dataset(train_file, stage, 20, teacher, "all", cache_dir=cache_dir)[0]

  list(dataset("intermediate").take(6))  # Two epochs of 3 batches: stage 1's pass over the file is complete.
  stage_one_files = sorted(os.listdir(cache_dir))
  assert any(name.endswith(".index") for name in stage_one_files)
  hashed = []
  fingerprint = teacher_cache.teacher_fingerprint
  with mock.patch.object(teacher_cache, "teacher_fingerprint",
                         lambda *args: hashed.append(args[1:]) or fingerprint(*args)):
    batches = list(dataset("prediction").take(3))
  assert len(hashed) == 1  # The teacher's weights are hashed once, to find stage 1's files.
  assert sorted(os.listdir(cache_dir)) == stage_one_files  # Read from stage 1's files; nothing new written.
  assert len(logged("[prediction] teacher logits read from stage 1's cache")) == 1
  for features, _, outputs in batches:
    assert set(outputs) == {"logits"}
    np.testing.assert_allclose(outputs["logits"], model(features, training=False)["logits"], atol=1e-5)
  assert {int(i) for b in batches for i in b[0]["input_word_ids"][:, 1]} == set(range(10, 30))


def test_stage_two_runs_the_teacher_when_stage_one_files_are_incomplete(tmp_path, teacher, logged):
  model, _ = teacher
  train_file = _records(tmp_path / "train.tfrecord", 20)
  cache_dir = str(tmp_path / "cache")

  def dataset(stage):
    return _dataset(train_file, stage, 20, teacher, "all", cache_dir=cache_dir)[0]

  list(dataset("intermediate").take(1))  # Its shuffle buffer draws all 3 cached batches: the pass completes.
  (index,) = [name for name in os.listdir(cache_dir) if name.endswith(".index")]
  os.remove(os.path.join(cache_dir, index))  # As if stage 1 had stopped before the end of its first pass.
  (features, _, outputs), = list(dataset("prediction").take(1))
  assert not logged("[prediction] teacher logits read from stage 1's cache")
  np.testing.assert_allclose(outputs["logits"], model(features, training=False)["logits"], atol=1e-5)
