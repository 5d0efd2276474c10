"""Tiny models and data for the script tests: small enough to train for a few steps in seconds."""

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import time
from unittest import mock

import numpy as np
from absl import flags
from absl import logging as absl_logging

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = {"model_type": "bert", "vocab_size": 120, "hidden_size": 16, "num_hidden_layers": 4, "num_attention_heads": 2,
            "intermediate_size": 32, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02}


def write_config(path, **overrides):
  with open(path, "w") as f:
    json.dump(dict(TINY, **overrides), f)
  return str(path)


def write_records(data_dir, split, num_examples, seq_len, vocab_size=120, num_labels=None, seed=0, **meta_fields):
  """Random but learnable records: the label is whether token 5 appears in the sequence."""
  from modeling import records
  rng = np.random.default_rng(seed)
  os.makedirs(data_dir, exist_ok=True)
  with records.RecordWriter(os.path.join(data_dir, f"{split}.tfrecord")) as writer:
    for _ in range(num_examples):
      length = int(rng.integers(4, seq_len + 1))
      ids = [2] + list(rng.integers(6, vocab_size, length - 2)) + [3]
      label = None
      if num_labels:
        label = int(rng.integers(0, num_labels))
        if label:
          ids[int(rng.integers(1, length - 1))] = 5
      pad = seq_len - length
      writer.write(records.serialize_example(ids + [0] * pad, [1] * length + [0] * pad, [0] * seq_len, label))
  return os.path.join(data_dir, f"{split}.tfrecord")


def pretraining_data(data_dir, num_examples=64, seq_len=16):
  from modeling import records
  write_records(data_dir, "train", num_examples, seq_len)
  records.write_meta(str(data_dir), {"kind": "pretraining", "max_seq_length": seq_len, "tokenizer": "wordpiece",
                                     "vocab_sha256": "0" * 64, "vocab_size": 120, "do_lower_case": True,
                                     "num_examples": num_examples, "files": ["train.tfrecord"]})
  return str(data_dir)


def task_data(data_dir, train=96, dev=32, seq_len=16, num_labels=2):
  from modeling import records
  counts = {"train": train, "dev": dev, "test": dev}
  for i, (split, n) in enumerate(counts.items()):
    write_records(data_dir, split, n, seq_len, num_labels=num_labels, seed=i)
  records.write_meta(str(data_dir), {
      "kind": "finetuning", "task_name": "tiny", "task_type": "classification",
      "label_list": [str(i) for i in range(num_labels)], "num_labels": num_labels, "metric": "accuracy",
      "primary_metric": "accuracy", "num_examples": counts,
      "record_files": {s: f"{s}.tfrecord" for s in counts}, "test_has_labels": True, "max_seq_length": seq_len,
      "tokenizer": "wordpiece", "vocab_sha256": "0" * 64, "vocab_size": 120, "do_lower_case": True})
  return str(data_dir)


def save_encoder(config_path, out_dir, seed=1):
  """A randomly initialised encoder saved as a TF2 checkpoint folder, like a Model Garden export."""
  import tensorflow as tf

  from modeling import build_encoder, load_config
  tf.random.set_seed(seed)
  encoder = build_encoder(load_config(config_path))
  os.makedirs(out_dir, exist_ok=True)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(encoder=encoder.garden_network), str(out_dir), 1)
  manager.save()
  return str(out_dir)


@contextlib.contextmanager
def _absl_log():
  """The text of every absl log line (INFO and up) written inside the block, as a script run shows it."""
  stream = io.StringIO()
  handler = logging.StreamHandler(stream)
  handler.setFormatter(logging.Formatter("%(message)s"))
  logger = absl_logging.get_absl_logger()
  verbosity = absl_logging.get_verbosity()
  logger.addHandler(handler)
  absl_logging.set_verbosity(absl_logging.INFO)
  try:
    yield stream
  finally:
    logger.removeHandler(handler)
    absl_logging.set_verbosity(verbosity)


def run_main(script, *args):
  """Runs a repo script's command line in this process; returns the absl log it wrote.

  The script's flags are defined into a private FlagValues and parsed from `args`, and its `main` runs with the
  module's `FLAGS` pointing at them: what `python3 script.py args` does once absl has parsed the flags, without a
  fresh Python and TensorFlow per run (the slowest part of a tiny run). Errors propagate as exceptions (a
  `UserError` for bad input); that `run_script` turns them into one line and exit status 1 is tested once per script
  from the command line. What a run sets for the whole process is reset around it: the Keras session before, the
  mixed-precision policy and Keras's TF random generator mode after. Thread-count flags cannot be used in-process:
  TensorFlow fixes its thread pools at its first op.
  """
  import tf_keras

  flag_values = flags.FlagValues()
  script.define_flags(flag_values)
  flag_values([script.__file__, *map(str, args)])
  tf_keras.backend.clear_session()
  try:
    with _absl_log() as log, mock.patch.object(script, "FLAGS", flag_values):
      script.main()
    return log.getvalue()
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
    tf_keras.backend.experimental.disable_tf_random_generator()


def run_script(script, *args, env=None, timeout=600):
  """Runs a repo script as a user would; returns the CompletedProcess (stdout+stderr captured)."""
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
  return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], capture_output=True, text=True,
                        cwd=ROOT, env=full_env, timeout=timeout, check=False)


class Scripts:
  """Repo scripts run side by side in the background, for tests that need several runs (or several workers).

  Use as a context manager: leaving the block kills every script still running, whatever happened inside.
  Each script's stdout and stderr go to one log file, read back with `log(name)`.
  """

  def __init__(self, log_dir):
    self.log_dir = str(log_dir)
    self.processes = {}

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    for process in self.processes.values():
      if process.poll() is None:
        process.kill()
        process.wait()

  def start(self, name, script, *args, env=None):
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    with open(self.log_path(name), "w") as log:
      self.processes[name] = subprocess.Popen([sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT,
                                              env=full_env, stdout=log, stderr=subprocess.STDOUT)

  def log_path(self, name):
    return os.path.join(self.log_dir, f"{name}.log")

  def log(self, name):
    with open(self.log_path(name)) as f:
      return f.read()

  def wait(self, *names, timeout=900):
    """Waits for the named scripts (default: all); returns {name: exit status}.

    When one fails, the others are killed rather than waited for: a worker whose peer died would wait for it
    until its own timeout. Scripts still running at `timeout` seconds are killed and get status None.
    """
    names = names or tuple(self.processes)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      codes = [self.processes[name].poll() for name in names]
      if None not in codes or any(codes):
        break
      time.sleep(0.5)
    killed = [name for name in names if self.processes[name].poll() is None]
    for name in killed:
      self.processes[name].kill()
      self.processes[name].wait()
    return {name: None if name in killed else self.processes[name].returncode for name in names}

# A tiny MPNet: no token types, positions numbered after pad id 1 (so two more position rows than usable positions).
TINY_MPNET = dict(TINY, model_type="mpnet", type_vocab_size=1, pad_token_id=1, max_position_embeddings=66,
                  layer_norm_eps=1e-5, relative_attention_num_buckets=32)


def ok(result):
  """`result` of a script run, after asserting it succeeded (its stderr's end is the failure message)."""
  assert result.returncode == 0, result.stderr[-4000:]
  return result


def read_json(path):
  with open(path) as f:
    return json.load(f)
