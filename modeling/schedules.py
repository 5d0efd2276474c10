"""Values that change linearly over a training stage: the distillation temperature and the gold-label weight.

TextBrewer lets both move during training (its linear decay and growth). Here a schedule is a start and an end
value: `LinearSchedule(4.0, 1.0).over(steps)` goes from 4 at the stage's first step to 1 at its last, and a constant is a
schedule whose ends are equal. It is evaluated on the step tensor inside the training step, so one traced
`tf.function` serves every step.
"""

import dataclasses

import tensorflow as tf

from modeling.errors import UserError


@dataclasses.dataclass(frozen=True)
class LinearSchedule:
  """Linear from `start` at step 0 to `end` at the stage's last step, `steps` − 1, then flat.

  Args:
    start: the value at step 0.
    end: the value from step `steps` − 1 on (None: `start`, a constant).
    steps: the stage's step count (steps 0 .. steps − 1), set with `over` once it is known.
  """
  start: float
  end: float | None = None
  steps: int = 1

  @property
  def is_constant(self) -> bool:
    return self.end is None or self.end == self.start

  def over(self, steps: int) -> "LinearSchedule":
    """This schedule stretched over a stage of `steps` steps."""
    return dataclasses.replace(self, steps=max(int(steps), 1))

  def __call__(self, step) -> tf.Tensor:
    """The float32 value at `step`: an int, or an int tensor such as the stage optimizer's `iterations`."""
    if self.is_constant:
      return tf.constant(self.start, tf.float32)
    progress = tf.minimum(tf.cast(step, tf.float32) / float(max(self.steps - 1, 1)), 1.0)
    return self.start + (self.end - self.start) * tf.maximum(progress, 0.0)


def parse_schedule(flag: str, start: float, end: float | None = None, *, minimum: float = 0.0,
                   strict: bool = False) -> LinearSchedule:
  """Checks a schedule given as a start flag and an optional end flag (e.g. `--temperature`, `--temperature_end`).

  Args:
    flag: the start flag's name, without dashes; the end flag is `{flag}_end`.
    start, end: the two flag values (end None: constant).
    minimum: the lowest value allowed at either end.
    strict: refuse `minimum` itself too (a temperature must be above 0; a weight may be 0).

  Raises:
    UserError: naming the flag whose value is out of range.
  """
  for name, value in ((flag, start), (f"{flag}_end", end)):
    if value is not None and (value < minimum or (strict and value == minimum)):
      raise UserError(f"--{name} must be {'above' if strict else 'at least'} {minimum:g}, got {value:g}")
  return LinearSchedule(float(start), None if end is None else float(end))
