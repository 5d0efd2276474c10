"""TrainLoop on a toy regression model: exact resume, history across resumes, NaN stop and checkpoint cadence."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from modeling import training
from modeling.errors import UserError

SEED = 5


@pytest.fixture(autouse=True)
def determinism():
  """`_loop` seeds as the scripts' --seed does (dropout from checkpointable generators); undone for other tests."""
  yield
  tf_keras.backend.experimental.disable_tf_random_generator()


def _dataset():
  rng = np.random.default_rng(0)
  x = rng.normal(size=[40, 6]).astype(np.float32)
  y = (x @ rng.normal(size=[6, 1])).astype(np.float32)
  return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(40, seed=SEED).repeat().batch(8, drop_remainder=True)


def _loop(output_dir, *, save_checkpoint_steps=4, nan_from_step=None, learning_rate=0.05):
  """A fresh model, optimizer and dataset around a TrainLoop, as a re-run of a script builds them."""
  training.configure_determinism(SEED)
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  with strategy.scope():
    model = tf_keras.Sequential([tf_keras.layers.Dense(16, activation="relu"), tf_keras.layers.Dropout(0.2),
                                 tf_keras.layers.Dense(1)])
    model.build([None, 6])
    optimizer = training.make_optimizer(learning_rate, total_steps=12, warmup_steps=2)

  def loss_fn(batch, is_training):
    x, y = batch
    loss = tf.reduce_mean(tf.square(model(x, training=is_training) - y))
    if nan_from_step is not None:  # The step numbered k runs with `iterations` == k - 1.
      loss = tf.where(optimizer.iterations >= nan_from_step - 1, tf.constant(np.nan), loss)
    return {"total": loss, "mse": loss}

  loop = training.TrainLoop(
      strategy=strategy, loss_fn=loss_fn, variables_fn=lambda: model.trainable_variables, optimizer=optimizer,
      dataset=_dataset(), checkpoint_objects={"model": model}, output_dir=str(output_dir), global_batch_size=8,
      steps_per_loop=2, save_checkpoint_steps=save_checkpoint_steps, keep_checkpoint_max=10, models=[model],
      name="toy")
  return loop, model


def _steps(loop):
  return [int(path.rsplit("-", 1)[1]) for path in loop.manager.checkpoints]


def test_resume_continues_exactly_and_keeps_the_whole_history(tmp_path):
  whole, whole_model = _loop(tmp_path / "whole")
  assert whole.restore() == 0
  whole.run(12)
  assert [h["step"] for h in whole.history] == [2, 4, 6, 8, 10, 12]
  assert whole.history[-1]["total"] < whole.history[0]["total"]

  first, _ = _loop(tmp_path / "resumed")
  first.restore()
  first.run(6)  # Saves at 4 and, as the end of this run, at 6; the "crash" comes after step 6.
  assert _steps(first) == [4, 6]

  resumed, resumed_model = _loop(tmp_path / "resumed")
  assert resumed.restore() == 6
  assert [h["step"] for h in resumed.history] == [2, 4, 6]  # The history before the resume is restored with it.
  resumed.run(12)
  assert [h["step"] for h in resumed.history] == [2, 4, 6, 8, 10, 12]
  for got, want in zip(resumed.history, whole.history):
    for term in ("total", "mse"):
      assert got[term] == pytest.approx(want[term], rel=1e-5), (got["step"], term)
  for got, want in zip(resumed_model.get_weights(), whole_model.get_weights()):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

  again, _ = _loop(tmp_path / "resumed")  # A re-run of the finished command trains nothing and loses nothing.
  assert again.restore() == 12
  again.run(12)
  assert again.history == resumed.history
  assert again.final_losses == {"total": resumed.history[-1]["total"], "mse": resumed.history[-1]["mse"]}


def test_history_is_cut_back_to_the_checkpoint_it_resumes_from(tmp_path):
  first, _ = _loop(tmp_path, save_checkpoint_steps=4)
  first.restore()
  first.run(8)
  # Pretend the run died after the checkpoint of step 4 was written but before the one of step 8.
  os.remove(os.path.join(tmp_path, "checkpoints", "ckpt-8.index"))
  ckpt_dir = os.path.join(tmp_path, "checkpoints")
  tf.compat.v1.train.update_checkpoint_state(ckpt_dir, os.path.join(ckpt_dir, "ckpt-4"))
  resumed, _ = _loop(tmp_path)
  assert resumed.restore() == 4
  assert [h["step"] for h in resumed.history] == [2, 4]


def test_checkpoint_cadence(tmp_path):
  loop, _ = _loop(tmp_path, save_checkpoint_steps=5)
  loop.restore()
  loop.run(12)
  # Loops end at 2, 4, ..., 12; a checkpoint once 5 steps have passed since the last one, and one at the end.
  assert _steps(loop) == [6, 12]
  loop.run(13)  # A last loop shorter than steps_per_loop still ends with a checkpoint.
  assert _steps(loop) == [6, 12, 13] and loop.step == 13


def test_non_finite_loss_stops_with_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
  loop, _ = _loop(tmp_path, nan_from_step=7)
  loop.restore()
  with pytest.raises(training.NonFiniteLossError, match=r"non-finite at step 7 .*ckpt-4$") as raised:
    loop.run(12)
  assert isinstance(raised.value, UserError)
  assert _steps(loop) == [4]  # Step 6 was not yet due; nothing after the NaN was saved.
  assert tf.train.latest_checkpoint(os.path.join(tmp_path, "checkpoints")).endswith("ckpt-4")
