"""Saving and restoring the demo's models: weights in `{role}.h5`, what they were built from in `{role}.json`."""

import os
from typing import Any

import tf_keras

from modeling import files
from modeling.errors import UserError


def save_model(model: tf_keras.Model, weights_dir: str, role: str, architecture: str, config: dict[str, Any],
               task: str) -> str:
  """Writes `weights_dir/{role}.h5` and `{role}.json` (architecture, config, task), both atomically."""
  path = os.path.join(weights_dir, f"{role}.h5")
  with files.atomic_path(path) as tmp:
    model.save_weights(tmp, save_format="h5")
  files.write_json(os.path.join(weights_dir, f"{role}.json"),
                   {"architecture": architecture, "config": config, "task": task})
  return path


def load_model_weights(model: tf_keras.Model, weights_dir: str, role: str, architecture: str,
                       config: dict[str, Any], task: str) -> None:
  """Restores weights saved by `save_model`, refusing ones saved for another architecture, config or task."""
  saved = files.read_json(os.path.join(weights_dir, f"{role}.json"), f"{role} description")
  wanted = {"architecture": architecture, "config": config, "task": task}
  for key, value in wanted.items():
    if saved.get(key) != value:
      raise UserError(f"{os.path.join(weights_dir, role + '.json')}: saved {key} {saved.get(key)!r} does not match "
                      f"the requested {value!r}")
  path = os.path.join(weights_dir, f"{role}.h5")
  try:
    model.load_weights(path)
  except (OSError, ValueError, KeyError) as e:
    raise UserError(f"{path} does not fit the {architecture!r} model built from {config}: {e}") from None
