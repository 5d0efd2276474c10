"""What the machine has (GPU, CPU model and instruction sets), and two of TensorFlow's start-up notices kept out of
the output, where they read like failures and are not.

- **The CUDA probe.** TensorFlow's CUDA build logs "failed call to cuInit: ... CUDA error" at ERROR level the first
  time it looks for GPUs, even with `TF_CPP_MIN_LOG_LEVEL=2`; on a CPU-only machine that line is expected. Where no
  NVIDIA device exists, that first probe runs with the process's stderr (file descriptor 2, where TensorFlow's C++
  logging writes) pointed at /dev/null. The probe lists physical devices only, so threads and logical devices can
  still be configured afterwards. Machines with a GPU are left alone.
- **oneDNN's data-type notice.** The first time oneDNN's graph rewrite meets an op of a type it leaves to Eigen (an
  int64 transpose in the text preprocessor of a SavedModel, float16 under `--dtype=float16`), TensorFlow logs "oneDNN
  supports DT_INT64 only on platforms with AVX-512. Falling back to the default Eigen-based implementation", at
  ERROR level and even on a CPU that has AVX-512. Nothing failed: the op runs, on Eigen. TensorFlow prints it once per
  process whatever the type, so one int64 transpose is run here with stderr pointed at /dev/null, in a CPU graph
  session of its own (which leaves the eager runtime unconfigured, as the CUDA probe does), and the notice is spent.
  Only that notice is affected: stderr is restored before anything else runs, so every other error still shows.

`modeling` imports this module first, so both happen before any other TensorFlow op. Machines with an NVIDIA device
are left alone: a session there would set up the GPUs before the scripts can configure them.
"""

import contextlib
import os
import shutil


def has_nvidia_device() -> bool:
  """Whether this machine shows an NVIDIA GPU: a /dev/nvidia0 device node or an `nvidia-smi` on the PATH."""
  return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None


def _cpuinfo_field(name: str) -> str | None:
  """The first `name : value` line's value in /proc/cpuinfo (None where there is no such file or line)."""
  try:
    with open("/proc/cpuinfo") as f:
      return next((line.split(":", 1)[1].strip() for line in f if line.split(":", 1)[0].strip() == name), None)
  except OSError:
    return None


def cpu_model() -> str:
  """The CPU's model name as /proc/cpuinfo gives it, or "unknown"."""
  return _cpuinfo_field("model name") or "unknown"


def cpu_flags() -> set[str]:
  """The CPU's instruction-set flags from /proc/cpuinfo (empty where it cannot be read)."""
  return set((_cpuinfo_field("flags") or "").split())


def has_bf16_instructions() -> bool:
  """Whether the CPU has bfloat16 instructions (AVX512_BF16 or AMX); without them bfloat16 is emulated and slow."""
  return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


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


def quiet_start() -> None:
  """Runs TensorFlow's first GPU probe and spends oneDNN's data-type notice silently (see the module docstring),
  where the machine has no NVIDIA device; a no-op otherwise."""
  if has_nvidia_device():
    return
  import tensorflow as tf
  graph = tf.Graph()
  with graph.as_default():
    transposed = tf.transpose(tf.constant([[1, 2]], tf.int64))
  # CPU only, with per-session pools freed when the session closes; the eager runtime stays unconfigured. No thread
  # count is given: oneDNN keeps the first session's intra-op count for the whole process (one thread here once
  # halved every matmul).
  config = tf.compat.v1.ConfigProto(device_count={"GPU": 0}, use_per_session_threads=True)
  with _stderr_to_devnull():
    tf.config.list_physical_devices("GPU")
    with tf.compat.v1.Session(graph=graph, config=config) as session:
      session.run(transposed)


quiet_start()
