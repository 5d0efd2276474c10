"""Progress of long work (tokenizing, evaluating, exporting) with rate and ETA.

On a terminal (stderr is a TTY) a tqdm bar; otherwise, as in logs and CI, a log line at most every
`LOG_EVERY_SECONDS` and one at the end: `<what>: 3200/10000 examples (32%), 850 examples/s, ETA 8s`, or
`... 4.2 s/batch` when a unit takes longer than a second. Work too short for one interval logs nothing.
"""

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from absl import logging

T = TypeVar("T")

# The least time between two log lines off a terminal, unless a call says otherwise; tests set it to 0.
LOG_EVERY_SECONDS = 10.0


def _eta(seconds: float) -> str:
  seconds = round(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
      f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


def _singular(unit: str) -> str:
  if unit.endswith(("ches", "shes", "sses", "xes")):
    return unit[:-2]
  return unit.removesuffix("s")


def _rate(rate: float, unit: str) -> str:
  return f"{1 / rate:.1f} s/{_singular(unit)}" if 0 < rate < 1 else f"{rate:.0f} {unit}/s"


def progress_line(what: str, done: int, total: int | None, seconds: float, unit: str) -> str:
  """One progress line: count, percentage and ETA when the total is known, and the rate."""
  rate = done / seconds if seconds > 0 else 0.0
  if total:
    eta = f", ETA {_eta((total - done) / rate)}" if rate > 0 and done < total else ""
    return f"{what}: {done}/{total} {unit} ({100 * done / total:.0f}%), {_rate(rate, unit)}{eta}"
  return f"{what}: {done} {unit}, {_rate(rate, unit)}"


def progress(items: Iterable[T], what: str, total: int | None = None, unit: str = "examples",
             sizes=None, log_every_seconds: float | None = None, bar: bool | None = None) -> Iterator[T]:
  """Yields `items` and reports progress over them.

  Args:
    items: the work, one item per step.
    what: what is being done, e.g. "tokenizing train".
    total: how many units there are (for the percentage and ETA), if known.
    unit: what is counted.
    sizes: a function from an item to how many units it holds (e.g. a batch's length); default 1 per item.
    log_every_seconds: the least time between two log lines (default: `LOG_EVERY_SECONDS`).
    bar: force the tqdm bar on or off; default: a bar when stderr is a terminal.
  """
  if bar is None:
    bar = sys.stderr.isatty()
  if log_every_seconds is None:
    log_every_seconds = LOG_EVERY_SECONDS
  size = sizes or (lambda _: 1)
  if bar:
    from tqdm import tqdm
    with tqdm(total=total, desc=what, unit=_singular(unit), dynamic_ncols=True, leave=False) as shown:
      for item in items:
        yield item
        shown.update(size(item))
    return
  start = last = time.monotonic()
  done = logged = 0
  for item in items:
    yield item
    done += size(item)
    now = time.monotonic()
    if now - last >= log_every_seconds:
      last, logged = now, done
      logging.info("%s", progress_line(what, done, total, now - start, unit))
  if done != logged and time.monotonic() - start >= log_every_seconds:
    logging.info("%s", progress_line(what, done, total, time.monotonic() - start, unit))
