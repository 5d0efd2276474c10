"""Atomic file output: every file is written under a temporary name and renamed into place when complete."""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

from modeling.errors import UserError


def _tmp_name(path: str) -> str:
  directory, base = os.path.split(os.path.abspath(path))
  return os.path.join(directory, f".{base}.tmp-{os.getpid()}")


def ensure_writable_dir(path: str, flag: str = "output") -> str:
  """Creates `path` if needed and checks that files can be created in it; raises `UserError` naming `flag`."""
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
      pass
  except OSError as e:
    raise UserError(f"--{flag}: cannot write to {path}: {e.strerror or e}") from None
  return path


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path to write; on success it is renamed to `path`, on failure it is removed.

  Works for files and for folders (a SavedModel export, for example).
  """
  tmp = _tmp_name(path)
  try:
    yield tmp
    if os.path.isdir(path) and os.path.isdir(tmp):
      shutil.rmtree(path)
    os.replace(tmp, path)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.exists(tmp):
      os.remove(tmp)


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON, atomically."""
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write("\n")


def read_json(path: str, what: str = "file") -> Any:
  """Reads JSON, turning a missing or malformed file into a `UserError` naming it."""
  if not os.path.isfile(path):
    raise UserError(f"{what} not found: {path}")
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UserError(f"{what} {path} is not valid JSON: {e}") from None
