"""Progress of long work (tokenizing, evaluating, exporting) with rate and ETA.

On a terminal (stderr is a TTY) a tqdm bar; otherwise, as in logs and CI, a log line at most every
`log_every_seconds` and one at the end: `<what>: 3200/10000 examples (32%), 850 examples/s, ETA 8s`.
"""

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from absl import logging

T = TypeVar("T")


def _eta(seconds: float) -> str:
  seconds = round(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else (
      f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s")


def progress_line(what: str, done: int, total: int | None, seconds: float, unit: str) -> str:
  """One progress line: count, percentage and ETA when the total is known, and the rate."""
  rate = done / seconds if seconds > 0 else 0.0
  if total:
    eta = f", ETA {_eta((total - done) / rate)}" if rate > 0 and done < total else ""
    return f"{what}: {done}/{total} {unit} ({100 * done / total:.0f}%), {rate:.0f} {unit}/s{eta}"
  return f"{what}: {done} {unit}, {rate:.0f} {unit}/s"


def progress(items: Iterable[T], what: str, total: int | None = None, unit: str = "examples",
             sizes=None, log_every_seconds: float = 10.0, bar: bool | None = None) -> Iterator[T]:
  """Yields `items` and reports progress over them.

  Args:
    items: the work, one item per step.
    what: what is being done, e.g. "tokenizing train".
    total: how many units there are (for the percentage and ETA), if known.
    unit: what is counted.
    sizes: a function from an item to how many units it holds (e.g. a batch's length); default 1 per item.
    log_every_seconds: the least time between two log lines.
    bar: force the tqdm bar on or off; default: a bar when stderr is a terminal.
  """
  if bar is None:
    bar = sys.stderr.isatty()
  size = sizes or (lambda _: 1)
  if bar:
    from tqdm import tqdm
    with tqdm(total=total, desc=what, unit=unit.rstrip("s") or unit, dynamic_ncols=True, leave=False) as shown:
      for item in items:
        yield item
        shown.update(size(item))
    return
  start = last = time.monotonic()
  done = 0
  for item in items:
    yield item
    done += size(item)
    now = time.monotonic()
    if now - last >= log_every_seconds:
      last = now
      logging.info("%s", progress_line(what, done, total, now - start, unit))
  if done and time.monotonic() - start >= log_every_seconds:
    logging.info("%s", progress_line(what, done, total, time.monotonic() - start, unit))
