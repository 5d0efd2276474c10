"""Config loading: the project format, Hugging Face config.json, Google bert_config.json, and clear refusals."""

import glob
import json
import os

import pytest

from modeling import load_config
from modeling.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOGLE = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
          "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 512,
          "num_attention_heads": 12, "num_hidden_layers": 12, "type_vocab_size": 2, "vocab_size": 30522}


def _write(tmp_path, obj, name="config.json"):
  path = tmp_path / name
  path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
  return str(path)


def test_shipped_configs_load():
  names = {os.path.basename(p)[:-5]: load_config(p) for p in glob.glob(os.path.join(ROOT, "configs", "*.json"))}
  for required in ("bert_base", "bert_large", "roberta_base", "albert_base", "tinybert_4l_312", "tinybert_6l_768",
                   "mobilebert", "mobilebert_tiny", "minilm_l6_h384", "mpnet_base", "mpnet_4l_312"):
    assert required in names
  tiny = names["tinybert_4l_312"]
  assert (tiny.num_hidden_layers, tiny.hidden_size, tiny.num_attention_heads, tiny.intermediate_size) == (4, 312, 12,
                                                                                                          1200)
  assert names["roberta_base"].max_sequence_length == 512


def test_hugging_face_config_loads_unchanged(minilm_dir):
  config = load_config(minilm_dir)  # A folder means its config.json.
  assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (
      "bert", 6, 384, 12)
  assert config.hidden_act == "gelu" and config.vocab_size == 30522


def test_google_bert_config_is_a_bert(tmp_path):
  config = load_config(_write(tmp_path, GOOGLE, "bert_config.json"))
  assert config.model_type == "bert" and config.hidden_size == 768


@pytest.mark.parametrize("change, message", [
    ({"model_type": "gpt2"}, "field 'model_type' is 'gpt2'; known types"),
    ({"hidden_size": 100}, "field 'hidden_size' (100) is not divisible by num_attention_heads (12)"),
    ({"hidden_size": None}, "missing field 'hidden_size'"),
    ({"num_hidden_layers": "six"}, "field 'num_hidden_layers' must be a positive integer"),
    ({"hidden_act": "softsign"}, "field 'hidden_act' is 'softsign'"),
    ({"pooling": "max"}, "field 'pooling' is 'max'; known: first_token, mean"),
])
def test_bad_configs_name_file_and_field(tmp_path, change, message):
  raw = dict(GOOGLE, **change)
  raw = {k: v for k, v in raw.items() if v is not None}
  path = _write(tmp_path, raw)
  with pytest.raises(UserError) as error:
    load_config(path)
  assert str(error.value).startswith(path) and message in str(error.value)


def test_missing_and_malformed_files(tmp_path):
  with pytest.raises(UserError, match="config file not found"):
    load_config(str(tmp_path / "nope.json"))
  with pytest.raises(UserError, match="not valid JSON"):
    load_config(_write(tmp_path, "{not json"))
