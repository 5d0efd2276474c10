"""The supported datasets and architectures of the classic distillation demo, in one place.

A thin re-export: the datasets live in `old_demo/datasets.py` (`DATASETS`, `TaskData`, the loaders and the split
rule shared with `prepare_dataset/dataset_processors.py`), the model builders in `old_demo/architectures.py`
(`ARCHITECTURES`), and saving in `old_demo/saving.py`.
"""

from old_demo.architectures import (
  ARCHITECTURES,
  AdditiveAttentionPooling,
  build_attention,
  build_bert,
  build_bigru,
  build_bilstm,
  build_cnn,
  build_mlp,
  build_model,
  build_transformer,
  get_architecture,
  parse_config,
)
from old_demo.datasets import (
  DATASETS,
  TaskData,
  build_vocabulary,
  get_dataset,
  load_bbc_news,
  load_digits,
  load_imdb,
  load_imdb_reviews,
  load_mnist,
  load_mnli,
  load_rotten_tomatoes,
  load_yelp,
  split_arrays,
)
from old_demo.saving import load_model_weights, save_model

__all__ = ["ARCHITECTURES", "DATASETS", "AdditiveAttentionPooling", "TaskData", "build_attention", "build_bert",
           "build_bigru", "build_bilstm", "build_cnn", "build_mlp", "build_model", "build_transformer",
           "build_vocabulary", "get_architecture", "get_dataset", "load_bbc_news", "load_digits", "load_imdb",
           "load_imdb_reviews", "load_mnist", "load_mnli", "load_model_weights", "load_rotten_tomatoes", "load_yelp",
           "parse_config", "save_model", "split_arrays"]
