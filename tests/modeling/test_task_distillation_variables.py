"""Stage 1 trains only what its loss reaches: no pooler or head, no optimizer warning, one trace of the step."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from modeling import config as config_lib
from modeling import encoders, losses, records, relation_losses, task_distillation, training
from modeling.models import build_task_model
from tests import tiny

SEQ = 8


def _train_file(path, num_examples=24):
  with records.RecordWriter(path) as writer:
    for i in range(num_examples):
      ids = [2, 10 + i, 7 + i % 3, 3] + [0] * (SEQ - 4)
      writer.write(records.serialize_example(ids, [1] * 4 + [0] * (SEQ - 4), [0] * SEQ, i % 2))
  return str(path)


def _models(kind):
  tf.random.set_seed(0)
  teacher_config = config_lib.config_from_dict(dict(tiny.TINY), source="teacher")
  student_config = config_lib.config_from_dict(dict(tiny.TINY, num_hidden_layers=2, hidden_size=8), source="student")
  teacher, student = build_task_model(teacher_config, 2), build_task_model(student_config, 2)
  teacher.trainable = False
  if kind == "tinybert":
    distillation = losses.IntermediateDistillation(8, 16, [2, 4])
  else:
    distillation = relation_losses.MiniLMDistillation("minilmv2", 4, relation_heads=2)
    encoders.set_expose_qkv(student)
    encoders.set_expose_qkv(teacher)
  return teacher, student, distillation


def _names(variables):
  return {v.name for v in variables}


@pytest.mark.parametrize("kind", ["tinybert", "minilmv2"])
def test_stage1_trains_what_its_loss_reaches(tmp_path, caplog, kind):
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  with strategy.scope():  # As TrainLoop wants: models and optimizer built in the strategy's scope.
    teacher, student, distillation = _models(kind)
    optimizer = training.make_optimizer(1e-2, 6, 0)
  dataset, _ = task_distillation.train_dataset(_train_file(tmp_path / "train.tfrecord"), "intermediate",
                                               max_seq_length=SEQ, batch_size=8, label_dtype=tf.int64,
                                               num_examples=24, seed=1)
  objects, variables_fn = task_distillation.stage_variables("intermediate", student, distillation)
  encoder_names = _names(student.encoder.trainable_variables)
  pooler = {n for n in encoder_names if "pooler" in n}
  assert len(pooler) == 2
  trained = _names(variables_fn())
  if kind == "tinybert":  # Every encoder variable but the pooler's, and W_h.
    assert trained == (encoder_names - pooler) | _names(distillation.trainable_variables)
    assert len(distillation.trainable_variables) == 2
  else:  # The last layer's FFN and attention output are out too; its query, key and value projections are in.
    last = {n for n in encoder_names if "layer_1/" in n}
    assert {n for n in last if n in trained} == {n for n in last if "/query/" in n or "/key/" in n or "/value/" in n}
    assert len({n for n in last if n in trained}) == 6
    assert trained == encoder_names - pooler - (last - trained)
  before = {v.name: v.numpy().copy() for v in student.trainable_variables}
  loop = training.TrainLoop(strategy=strategy, variables_fn=variables_fn, optimizer=optimizer, dataset=dataset,
                            checkpoint_objects=objects, output_dir=str(tmp_path / "out"), global_batch_size=8,
                            loss_fn=task_distillation.make_loss_fn("intermediate", student, teacher, distillation),
                            steps_per_loop=2, models=[student], name="intermediate")
  with caplog.at_level(logging.WARNING, logger="absl"):
    loop.run(2, 6)
    loop.run(6, 6)
  assert loop.step == 6
  assert not [r for r in caplog.records if "Gradients do not exist" in r.getMessage()]
  assert loop._train_fn.experimental_get_tracing_count() == 1  # Two loops, one trace.
  after = {v.name: v.numpy() for v in student.trainable_variables}
  unchanged = {name for name in before if np.array_equal(before[name], after[name])}
  head = _names(student.head.trainable_variables)
  assert unchanged == (set(before) - trained)  # Pooler and head (and what MiniLM does not reach) keep their values.
  assert pooler | head <= unchanged


def test_local_copies_of_mirrored_variables_are_probed():
  """Under MirroredStrategy the probe reads each variable's local copy (a distributed one takes no gradient here)."""
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  with strategy.scope():
    _, student, distillation = _models("tinybert")
  assert isinstance(student.encoder.trainable_variables[0], tf.distribute.DistributedValues)
  trained = task_distillation.intermediate_variables(student.encoder, distillation)
  assert not [v for v in trained if "pooler" in v.name]
  assert len(trained) == len(student.encoder.trainable_variables) - 2 + 2
