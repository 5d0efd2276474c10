"""Keeps TensorFlow's CUDA probe quiet on machines without an NVIDIA GPU.

TensorFlow's CUDA build logs "failed call to cuInit: ... CUDA error" at ERROR level the first time it looks for GPUs,
even with `TF_CPP_MIN_LOG_LEVEL=2`; on a CPU-only machine that line is expected and reads like a failure. `modeling`
imports this module first, and where no NVIDIA device exists it runs that first probe with the process's stderr
(file descriptor 2, where TensorFlow's C++ logging writes) pointed at /dev/null. The probe lists physical devices
only, so threads and logical devices can still be configured afterwards. Machines with a GPU are left alone.
"""

import contextlib
import os
import shutil


def has_nvidia_device() -> bool:
  """Whether this machine shows an NVIDIA GPU: a /dev/nvidia0 device node or an `nvidia-smi` on the PATH."""
  return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


@contextlib.contextmanager
def _stderr_to_devnull():
  saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(null, 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(null)


def quiet_cuda_probe() -> None:
  """Runs TensorFlow's first GPU probe silently when the machine has no NVIDIA device; a no-op otherwise."""
  if has_nvidia_device():
    return
  import tensorflow as tf
  with _stderr_to_devnull():
    tf.config.list_physical_devices("GPU")


quiet_cuda_probe()
