"""TFLite export in fp32, dynamic-range and full-integer int8: names, agreement with Keras, the runtime and the gate."""

import os
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from absl import flags

from modeling import load_config, records, tflite
from modeling.errors import UserError
from modeling.models import build_task_model
from tests import tiny

SEQ = 16
# Agreement with the Keras model's probabilities, per mode, on the tiny trained classifier below (24 dev examples).
# fp32 is the same arithmetic up to op fusion: every probability stays within `max`. Dynamic-range rounds weights
# and matmul inputs to 8 bits, and full-integer also rounds every activation (the softmax output alone has a step of
# 1/256). A 16-wide model trained to saturated logits has steep examples near its decision boundary, where that
# rounding moves a probability by up to 0.16 on some CPUs (seen in CI with dynamic-range): for the quantized modes the
# typical (median) difference is bounded, no probability moves by half, and at least `agree` of the labels match.
TOLERANCE = {"fp32": {"max": 1e-4, "agree": 1.0}, "dynamic": {"median": 0.01, "max": 0.5, "agree": 0.9},
             "int8": {"median": 0.01, "agree": 0.9}}


def _train(model, train_file, steps=60):
  """A few steps of plain fine-tuning, so that the outputs depend on the input (a random encoder's hardly do)."""
  optimizer = tf_keras.optimizers.Adam(3e-3)
  dataset = records.make_dataset([train_file], SEQ, 32, label_dtype=tf.int64, shuffle=True, repeat=True, seed=0)

  @tf.function
  def step(features, labels):
    with tf.GradientTape() as tape:
      logits = model(features, training=True)["logits"]
      loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

  for features, labels in dataset.take(steps):
    step(features, labels)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A tiny classifier trained for a few steps, its data, and its three TFLite models."""
  root = tmp_path_factory.mktemp("tflite")
  data_dir = tiny.task_data(str(root / "data"), train=64, dev=24, seq_len=SEQ)
  # Python's, NumPy's and TensorFlow's generators: tf_keras draws unseeded initialisers from Python's `random`, whose
  # state depends on the tests that ran before in the same worker (one such order left every output the same).
  tf_keras.utils.set_random_seed(3)
  model = build_task_model(load_config(tiny.write_config(root / "tiny.json")), 2)
  dev = next(iter(records.make_dataset([os.path.join(data_dir, "dev.tfrecord")], SEQ, 24, label_dtype=tf.int64)))
  features = {k: v.numpy() for k, v in dev[0].items()}
  _train(model, os.path.join(data_dir, "train.tfrecord"))
  meta = records.read_meta(data_dir)
  calibration = tflite.representative_dataset([os.path.join(data_dir, "train.tfrecord")], SEQ, 32)
  paths = {}
  for mode in tflite.MODES:
    paths[mode] = tflite.write_tflite(str(root / tflite.MODE_FILES[mode]),
                                      tflite.convert_tflite(model, SEQ, mode, calibration))
  expected = tf.nn.softmax(model(features, training=False)["logits"]).numpy()
  return {"root": root, "data_dir": data_dir, "model": model, "meta": meta, "paths": paths, "features": features,
          "labels": dev[1].numpy(), "expected": expected}


def test_inputs_and_output_carry_the_feature_names(setup):
  interpreter = tflite.interpreter_class()(model_path=setup["paths"]["int8"])
  inputs = {d["name"]: d for d in interpreter.get_input_details()}
  assert set(inputs) == {"input_word_ids", "input_mask", "input_type_ids"}
  for detail in inputs.values():
    assert detail["dtype"] == np.int32 and list(detail["shape"]) == [1, SEQ]
  assert [d["name"] for d in interpreter.get_output_details()] == ["probabilities"]
  assert interpreter.get_output_details()[0]["dtype"] == np.float32
  signature = interpreter.get_signature_list()["serving_default"]
  assert sorted(signature["inputs"]) == sorted(tflite.INPUT_NAMES) and signature["outputs"] == ["probabilities"]
  runner = interpreter.get_signature_runner()
  row = {k: v[:1] for k, v in setup["features"].items()}
  full = tflite.TFLiteClassifier(setup["paths"]["int8"]).predict(row)
  np.testing.assert_array_equal(runner(**row)["probabilities"], full)  # the names address the right inputs


def test_the_runtime_is_litert_with_tf_lite_as_fallback(setup, monkeypatch):
  from ai_edge_litert.interpreter import Interpreter
  assert tflite.interpreter_class() is Interpreter
  monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # as if not installed
  assert tflite.interpreter_class() is tf.lite.Interpreter
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # tf.lite.Interpreter's deprecation warning is not passed on
    probabilities = tflite.TFLiteClassifier(setup["paths"]["fp32"]).predict(setup["features"])
  np.testing.assert_allclose(probabilities, setup["expected"], atol=1e-4)


@pytest.mark.parametrize("mode", tflite.MODES)
def test_each_mode_agrees_with_keras(setup, mode):
  probabilities = tflite.TFLiteClassifier(setup["paths"][mode]).predict(setup["features"])
  assert probabilities.shape == (24, 2)
  assert np.ptp(setup["expected"][:, 0]) > 0.3  # the comparison is not between near-constant outputs
  difference = np.abs(probabilities - setup["expected"])
  assert np.median(difference) <= TOLERANCE[mode].get("median", 1.0)
  assert difference.max() <= TOLERANCE[mode].get("max", 1.0)
  assert np.mean(probabilities.argmax(-1) == setup["expected"].argmax(-1)) >= TOLERANCE[mode]["agree"]
  if mode == "int8":  # every activation is rounded, so the tolerance is the real bound (dynamic-range may run
    # dequantized float weights on CPUs where the delegate does so, and then match Keras to 1e-6; its int8 storage is
    # checked by test_dynamic_range_model_stores_int8_weights)
    assert np.abs(probabilities - setup["expected"]).max() > 1e-6


def _tensor_dtypes(path):
  from ai_edge_litert.interpreter import Interpreter, OpResolverType
  interpreter = Interpreter(model_path=path,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  interpreter.allocate_tensors()
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  return interpreter, tensors


def test_full_integer_model_runs_every_layer_in_int8(setup):
  interpreter, tensors = _tensor_dtypes(setup["paths"]["int8"])
  by_op = {}
  for op in interpreter._get_ops_details():
    by_op.setdefault(op["op_name"], set()).update(tensors[i]["dtype"].__name__ for i in op["outputs"])
  for op in ("FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "GELU", "ADD", "GATHER"):
    assert by_op[op] == {"int8"}, (op, by_op[op])
  # Only the mask's cast to float before it is quantized, and the final dequantize, produce float.
  float_ops = sorted(name for name, dtypes in by_op.items() if "float32" in dtypes)
  assert float_ops == ["CAST", "DEQUANTIZE"]


def test_dynamic_range_model_stores_int8_weights(setup):
  _, tensors = _tensor_dtypes(setup["paths"]["dynamic"])
  assert any(t["dtype"] == np.int8 for t in tensors.values())
  assert os.path.getsize(setup["paths"]["dynamic"]) < os.path.getsize(setup["paths"]["fp32"])


def test_classifier_runs_batches_as_single_examples(setup):
  classifier = tflite.TFLiteClassifier(setup["paths"]["fp32"])
  assert classifier.fixed_batch and classifier.max_seq_length == SEQ
  batch = classifier.predict(setup["features"])
  one = classifier.predict({k: v[5:6] for k, v in setup["features"].items()})
  np.testing.assert_array_equal(batch[5:6], one)


def test_score_tflite_matches_numpy_accuracy(setup):
  dev_file = os.path.join(setup["data_dir"], "dev.tfrecord")
  scores = tflite.score_tflite(setup["paths"]["fp32"], dev_file, setup["meta"], batch_size=7)
  assert scores == {"accuracy": pytest.approx(np.mean(setup["expected"].argmax(-1) == setup["labels"]))}


def test_regression_model_outputs_a_score(tmp_path):
  tf.random.set_seed(0)
  model = build_task_model(load_config(tiny.write_config(tmp_path / "tiny.json")), 1)
  path = tflite.write_tflite(str(tmp_path / "r.tflite"), tflite.convert_tflite(model, 8, "dynamic", regression=True))
  classifier = tflite.TFLiteClassifier(path)
  ones = np.ones([3, 8], np.int32)
  features = {"input_word_ids": ones * 7, "input_mask": ones, "input_type_ids": ones * 0}
  assert classifier.regression and classifier.output_name == "score"
  expected = model(features, training=False)["logits"].numpy()[:, 0]
  np.testing.assert_allclose(classifier.predict(features), expected, atol=0.05)


def test_representative_dataset_draws_training_examples(setup):
  train_file = os.path.join(setup["data_dir"], "train.tfrecord")
  drawn = list(tflite.representative_dataset([train_file], SEQ, 10)())
  assert len(drawn) == 10
  all_ids = {tuple(row) for row in next(iter(records.make_dataset([train_file], SEQ, 64)))["input_word_ids"].numpy()}
  for example in drawn:
    assert set(example) == set(tflite.INPUT_NAMES)
    assert example["input_word_ids"].shape == (1, SEQ) and example["input_word_ids"].dtype == np.int32
    assert tuple(example["input_word_ids"][0]) in all_ids
  # Repeatable, and shuffled rather than the file's first rows.
  again = list(tflite.representative_dataset([train_file], SEQ, 10)())
  assert all((a["input_word_ids"] == b["input_word_ids"]).all() for a, b in zip(drawn, again))
  first = next(iter(records.make_dataset([train_file], SEQ, 10)))["input_word_ids"].numpy()
  assert not np.array_equal(np.concatenate([e["input_word_ids"] for e in drawn]), first)


def _gate(setup, out, **kwargs):
  os.makedirs(out, exist_ok=True)
  return tflite.quantize_and_gate(setup["model"], str(out), setup["meta"],
                                  os.path.join(setup["data_dir"], "train.tfrecord"),
                                  os.path.join(setup["data_dir"], "dev.tfrecord"), num_calibration_examples=16,
                                  **kwargs)


def _read(path):
  with open(path, "rb") as f:
    return f.read()


@pytest.fixture
def converted(setup, monkeypatch):
  """The fixture's conversions stand in for new ones, in the gate tests that inject their scores."""
  monkeypatch.setattr(tflite, "convert_tflite", lambda model, seq, mode, *args, **kwargs: _read(setup["paths"][mode]))


def test_gate_scores_every_model_and_ships_dynamic_range_when_it_passes(setup, tmp_path, converted):
  result = _gate(setup, tmp_path, max_drop=1.0)
  dev_file = os.path.join(setup["data_dir"], "dev.tfrecord")
  for mode in tflite.MODES:
    path = tmp_path / tflite.MODE_FILES[mode]
    assert result[mode] == tflite.score_tflite(str(path), dev_file, setup["meta"])["accuracy"]
  assert result["kept"] == "dynamic" and result["metric"] == "accuracy"
  assert _read(tmp_path / "model.tflite") == _read(tmp_path / "model_int8_dynamic.tflite")
  assert sorted(os.listdir(tmp_path)) == ["model.tflite", "model_fp32.tflite", "model_int8.tflite",
                                          "model_int8_dynamic.tflite"]


def test_gate_keeps_fp32_when_int8_loses_too_much(setup, tmp_path, converted):
  result = _gate(setup, tmp_path, fp32_score=0.90, scores={"dynamic": 0.885, "int8": 0.87}, max_drop=0.01)
  assert result["kept"] == "fp32"
  assert _read(tmp_path / "model.tflite") == _read(tmp_path / "model_fp32.tflite")
  assert {k: result[k] for k in tflite.MODES} == {"fp32": 0.90, "dynamic": 0.885, "int8": 0.87}
  assert result["reason"] == ("model.tflite is fp32: both int8 models lose more than 0.0100 dev accuracy against "
                              "fp32's 0.9000 (dynamic 0.8850 (-0.0150); int8 0.8700 (-0.0300))")


def test_gate_falls_back_to_full_integer(setup, tmp_path, converted):
  result = _gate(setup, tmp_path, scores={"fp32": 0.90, "dynamic": 0.85, "int8": 0.91}, max_drop=0.01)
  assert result["kept"] == "int8"
  assert result["reason"].startswith("model.tflite is int8: its dev accuracy is within 0.0100 of fp32's 0.9000")
  assert _read(tmp_path / "model.tflite") == _read(tmp_path / "model_int8.tflite")


def test_int8_gate_without_dev_labels_is_refused_before_anything_is_written(setup, tmp_path):
  meta = dict(setup["meta"], record_files={"train": "train.tfrecord"}, num_examples={"train": 64})
  with pytest.raises(UserError, match=r"^--export_tflite=int8 .*/meta\.json has no labelled dev split"):
    tflite.check_int8_gate_data(meta, setup["data_dir"])
  with pytest.raises(UserError, match="no labelled dev split"):
    tflite.check_int8_gate_data(dict(setup["meta"], dev_has_labels=False), setup["data_dir"])
  tflite.check_int8_gate_data(setup["meta"], setup["data_dir"])  # labelled dev: accepted
  out = tmp_path / "out"
  os.makedirs(out)
  with pytest.raises(UserError):
    tflite.quantize_and_gate(setup["model"], str(out), meta, "", "")
  assert os.listdir(out) == []


def test_a_failed_conversion_leaves_no_file(setup, tmp_path, monkeypatch, converted):
  convert = tflite.convert_tflite  # the fixture's conversions

  def failing(model, seq, mode, *args, **kwargs):
    if mode == "int8":
      raise RuntimeError("calibration failed")
    return convert(model, seq, mode, *args, **kwargs)

  monkeypatch.setattr(tflite, "convert_tflite", failing)
  with pytest.raises(RuntimeError):
    _gate(setup, tmp_path, scores={"fp32": 0.9, "dynamic": 0.9})
  assert sorted(os.listdir(tmp_path)) == ["model_fp32.tflite", "model_int8_dynamic.tflite"]
  with pytest.raises(RuntimeError), tflite.files.atomic_path(str(tmp_path / "x.tflite")) as tmp:
    with open(tmp, "wb") as f:
      f.write(b"half")
    raise RuntimeError("interrupted")
  assert "x.tflite" not in os.listdir(tmp_path) and not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_unknown_mode_is_refused(setup):
  with pytest.raises(UserError, match="--export_tflite: unknown TFLite mode 'int4'"):
    tflite.convert_tflite(setup["model"], SEQ, "int4")


@pytest.mark.parametrize("argv,value", [([], "false"), (["--export_tflite"], "fp32"), (["--noexport_tflite"], "false"),
                                        (["--export_tflite=true"], "fp32"), (["--export_tflite=false"], "false"),
                                        (["--export_tflite=fp32"], "fp32"), (["--export_tflite=int8"], "int8"),
                                        (["--export_tflite=INT8"], "int8")])
def test_export_tflite_flag_keeps_the_boolean_spellings(argv, value):
  flag_values = flags.FlagValues()
  tflite.define_export_tflite_flag(flag_values=flag_values)
  flag_values(["prog", *argv])
  assert flag_values.export_tflite == value
  if argv:
    reparsed = flags.FlagValues()
    tflite.define_export_tflite_flag(flag_values=reparsed)
    reparsed(["prog", flag_values["export_tflite"].serialize()])  # what --flagfile round trips
    assert reparsed.export_tflite == value


def test_export_tflite_flag_refuses_other_values():
  flag_values = flags.FlagValues()
  tflite.define_export_tflite_flag(flag_values=flag_values)
  with pytest.raises(flags.IllegalFlagValueError, match="must be false, true, fp32 or int8"):
    flag_values(["prog", "--export_tflite=int4"])


def test_latency_is_measured(setup):
  latency = tflite.tflite_latency_ms(setup["paths"]["int8"], SEQ, repeats=3, warmup=1)
  assert 0 < latency < 1000
  with pytest.raises(UserError, match="takes sequences of 16 tokens, not 32"):
    tflite.tflite_latency_ms(setup["paths"]["int8"], 32, repeats=1)
