"""Shared test set-up: the repo root on sys.path, quiet TensorFlow, and the offline assets."""

import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def minilm_dir() -> str:
  from modeling import assets
  return assets.minilm_dir()
