"""Shared test set-up: quiet TensorFlow and the offline assets. The repo root is importable through pytest's
`pythonpath` setting (pyproject.toml)."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def minilm_dir() -> str:
  from modeling import assets
  return assets.minilm_dir()
