"""Shared test set-up: quiet TensorFlow, the repo's packages for the scripts tests start, and the offline assets.

Tests import the repo root through pytest's `pythonpath` setting (pyproject.toml). The scripts they start as
subprocesses find `modeling` through the editable install that `make` does; PYTHONPATH stands in for it, so the
tests also run in an environment without that install.
"""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))


@pytest.fixture
def logged(monkeypatch, caplog):
  """`logged(prefix)`: the log messages starting with `prefix`, with a progress line after every step (no 10 s wait).

  INFO is switched on through absl's verbosity, as the scripts do: TensorFlow's object tracking resets the absl
  logger's level from it.
  """
  from absl import logging as absl_logging

  from modeling import progress
  monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.INFO)
  yield lambda prefix: [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]
  absl_logging.set_verbosity(verbosity)


@pytest.fixture(scope="session")
def minilm_dir() -> str:
  from modeling import assets
  return assets.minilm_dir()


# The slowest files, slowest first (CPU seconds measured on the shared 2-core machine). `make test` runs with `-n 2 --dist
# loadfile`: each file goes whole to one worker. xdist's default queue order is by number of tests, which would start
# these few-test files last and leave one worker running the longest file alone at the end; longest-first keeps the
# two workers busy until the queue runs dry.
SLOWEST_FIRST = (
    "tests/scripts/test_run_finetuning.py",  # ~210 CPU seconds
    "tests/scripts/test_families.py",  # ~195
    "tests/scripts/test_real_pipeline.py",  # ~145
    "tests/scripts/test_distribution.py",  # ~85
    "tests/scripts/test_distill.py",  # ~75
    "tests/scripts/test_run_pretraining.py",  # ~75
    "tests/scripts/test_precision.py",  # ~60; every other file takes 40 or less
)


def pytest_configure(config):
  if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the file order set below.
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
  rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # A stable sort: others keep order.
