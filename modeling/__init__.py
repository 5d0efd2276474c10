"""The shared Keras modeling package: configs, encoders for every family, checkpoint loading and losses."""

from modeling import runtime_env  # noqa: F401  (first: quiets the CUDA probe before any TensorFlow op)
from modeling.checkpoints import find_checkpoint, load_encoder, restore_encoder
from modeling.config import ModelConfig, load_config, save_config
from modeling.encoders import build_encoder

__all__ = ["ModelConfig", "build_encoder", "load_config", "save_config"]
__all__ += ["find_checkpoint", "load_encoder", "restore_encoder"]
