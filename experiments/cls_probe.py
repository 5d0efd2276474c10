"""How much a student's [CLS] features depend on the input: the probe behind the "task KD" collapse (issue 12).

The task head reads the pooled [CLS] vector. When that vector is (nearly) the same for every example, no head can
do better than the majority class. For a randomly initialised model and for each checkpoint given, this prints the
mean pairwise cosine similarity of the last layer's [CLS] states and of the pooled outputs over the first dev
examples (1.0: the same vector for every input), and the spread of the logits across examples.

  python3 experiments/cls_probe.py --config configs/tinybert_4l_312.json --data_dir DATA \
    --checkpoints OUT/intermediate/checkpoints/ckpt-62
"""

import argparse
import json
import os

import numpy as np
import tensorflow as tf

from modeling import load_config, records
from modeling.models import build_task_model


def cls_similarity(model, dataset) -> dict[str, float]:
  """Mean off-diagonal cosine similarity of the last-layer [CLS] states and of the pooled outputs; logits' std."""
  cls, pooled, logits = [], [], []
  for features, _ in dataset:
    outputs = model(features, training=False)
    cls.append(outputs["hidden_states"][-1][:, 0].numpy())
    pooled.append(outputs["pooled_output"].numpy())
    logits.append(outputs["logits"].numpy())
  result = {}
  for name, x in (("cls_cosine", np.concatenate(cls)), ("pooled_cosine", np.concatenate(pooled))):
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = unit @ unit.T
    result[name] = float(sim[~np.eye(len(x), dtype=bool)].mean())
  result["logits_std"] = float(np.concatenate(logits).std(0).mean())
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", required=True)
  parser.add_argument("--data_dir", required=True, help="task records from create_finetuning_data.py")
  parser.add_argument("--checkpoints", nargs="*", default=[], help="task checkpoints (prefixes) to probe")
  parser.add_argument("--examples", type=int, default=256, help="dev examples to probe")
  parser.add_argument("--seed", type=int, default=1, help="seed of the random initialisation")
  args = parser.parse_args()
  with open(os.path.join(args.data_dir, "meta.json")) as f:
    meta = json.load(f)
  config = load_config(args.config)
  dataset = records.make_dataset([os.path.join(args.data_dir, meta["record_files"]["dev"])], meta["max_seq_length"],
                                 64, label_dtype=tf.int64).unbatch().take(args.examples).batch(64)
  tf.random.set_seed(args.seed)
  rows = {"random init": build_task_model(config, meta["num_labels"])}
  for prefix in args.checkpoints:
    model = build_task_model(config, meta["num_labels"])
    tf.train.Checkpoint(**model.checkpoint_objects()).read(prefix).expect_partial()
    rows[prefix] = model
  for name, model in rows.items():
    print(json.dumps({"model": name, **cls_similarity(model, dataset)}))


if __name__ == "__main__":
  main()
