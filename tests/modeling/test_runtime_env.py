"""modeling.runtime_env: oneDNN's data-type notice is spent silently at import, stderr still shows everything else,
and the runtime can still be configured."""

import os
import re
import subprocess
import sys

import pytest

from modeling import runtime_env
from tests import tiny

NOTICE = "only on platforms with AVX-512"
# What a training script does after importing `modeling`: configure the runtime, then run ops that meet the notice
# (an int64 transpose, as in the SavedModel's text preprocessor, and float16 as under --dtype=float16).
_SCRIPT = """
import os, sys
{imports}
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
tf.function(lambda x: tf.transpose(x))(tf.constant([[1, 2]], tf.int64))
tf.function(lambda x: tf.matmul(x, x))(tf.ones([4, 4], tf.float16))
os.write(2, b"stderr still open\\n")
print(len(tf.config.list_logical_devices("CPU")), tf.config.threading.get_intra_op_parallelism_threads())
"""


def _run(imports):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-c", _SCRIPT.format(imports=imports)], capture_output=True, text=True,
                        cwd=tiny.ROOT, env=env, timeout=300, check=True)


@pytest.mark.skipif(runtime_env.has_nvidia_device(), reason="machines with an NVIDIA device are left alone")
def test_notice_is_spent_and_the_runtime_stays_configurable():
  without = _run("")
  if NOTICE not in without.stderr:
    pytest.skip("this TensorFlow build or CPU does not print oneDNN's data-type notice")
  # The module alone, loaded from its file: `import modeling` would also load tf-models, at no gain here.
  with_modeling = _run("import importlib.util\n"
                       "spec = importlib.util.spec_from_file_location('runtime_env', 'modeling/runtime_env.py')\n"
                       "spec.loader.exec_module(importlib.util.module_from_spec(spec))")
  assert NOTICE not in with_modeling.stderr
  assert "stderr still open" in with_modeling.stderr
  assert with_modeling.stdout.split() == ["2", "1"]  # Logical devices and threads were set after the import.


# A matmul in a fresh process with oneDNN's verbose log on; its "nthr:N" line gives the threads oneDNN runs on.
_MATMUL = """
{imports}
import tensorflow as tf
tf.function(lambda x: tf.matmul(x, x))(tf.ones([64, 64]))
"""


def _onednn_threads(imports):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", ONEDNN_VERBOSE="1")
  result = subprocess.run([sys.executable, "-c", _MATMUL.format(imports=imports)], capture_output=True, text=True,
                          cwd=tiny.ROOT, env=env, timeout=300, check=True)
  found = re.findall(r"\bnthr:(\d+)", result.stdout + result.stderr)
  return int(found[0]) if found else None


@pytest.mark.skipif(runtime_env.has_nvidia_device(), reason="machines with an NVIDIA device are left alone")
def test_import_leaves_onednn_all_its_threads():
  """The silent first session must not size oneDNN's thread pool: a one-thread session there once halved every
  matmul of every script (oneDNN keeps the first session's intra-op count for the whole process)."""
  plain = _onednn_threads("")
  if plain is None:
    pytest.skip("this TensorFlow build does not log oneDNN's thread count")
  assert _onednn_threads("import modeling") == plain


def test_cpu_model_and_flags_read_proc_cpuinfo(tmp_path, monkeypatch):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n\n"
                     "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n")
  real_open = open
  monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo" else path,
                                                                        *a, **k))
  assert runtime_env.cpu_model() == "AMD EPYC"
  assert runtime_env.cpu_flags() == {"fpu", "avx512f", "avx512_bf16"}
  assert runtime_env.has_bf16_instructions()
  cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx512f\n")
  assert not runtime_env.has_bf16_instructions()
  cpuinfo.unlink()
  assert runtime_env.cpu_model() == "unknown" and runtime_env.cpu_flags() == set()
