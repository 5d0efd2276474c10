"""Linear schedules: values at the first, middle and last steps, inside a tf.function, and the flag checks."""

import numpy as np
import pytest
import tensorflow as tf

from modeling.errors import UserError
from modeling.schedules import LinearSchedule, parse_schedule


@pytest.mark.parametrize("start, end, steps, expected", [
    (4.0, 1.0, 101, {0: 4.0, 50: 2.5, 100: 1.0, 150: 1.0}),    # decay over steps 0..100, then flat
    (0.0, 0.8, 11, {0: 0.0, 5: 0.4, 10: 0.8, 7: 0.56}),        # growth (a gold-label weight)
    (2.0, None, 10, {0: 2.0, 5: 2.0, 10: 2.0}),                # constant
])
def test_values_at_steps_in_a_tf_function(start, end, steps, expected):
  schedule = parse_schedule("temperature", start, end).over(steps)
  traced = tf.function(lambda step: schedule(step))  # One trace serves every step.
  for step, value in expected.items():
    np.testing.assert_allclose(traced(tf.constant(step, tf.int64)).numpy(), value, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(step)), value, rtol=1e-6)
  assert traced.experimental_get_tracing_count() == 1


def test_optimizer_step_variable_drives_it():
  step = tf.Variable(0, dtype=tf.int64)
  schedule = LinearSchedule(1.0, 3.0).over(5)
  values = []
  for _ in range(6):
    values.append(float(schedule(step)))
    step.assign_add(1)
  np.testing.assert_allclose(values, [1.0, 1.5, 2.0, 2.5, 3.0, 3.0])


@pytest.mark.parametrize("flag, start, end, kwargs, message", [
    ("temperature", 0.0, None, {"strict": True}, "--temperature must be above 0, got 0"),
    ("temperature", 4.0, -1.0, {"strict": True}, "--temperature_end must be above 0, got -1"),
    ("gold_label_weight", -0.5, 1.0, {}, "--gold_label_weight must be at least 0, got -0.5"),
])
def test_refusals_name_the_flag(flag, start, end, kwargs, message):
  with pytest.raises(UserError, match=message):
    parse_schedule(flag, start, end, **kwargs)
  assert parse_schedule("gold_label_weight", 0.0, 1.0).end == 1.0  # Zero is a valid weight.
