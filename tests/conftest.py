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


@pytest.fixture(scope="session")
def minilm_dir() -> str:
  from modeling import assets
  return assets.minilm_dir()
