r"""Does projecting the teacher's layer weights help a narrower student's initial intermediate loss?

MiniLM-L6-H384 (real weights, 12 heads, FFN 1536) teaches TinyBERT4 (312 wide, 12 heads, FFN 1200), layer map
2,3,5,6. The stage-1 loss terms at step 0 are measured on the first `--num_examples` Rotten Tomatoes train reviews
for three starts:

  random       build_encoder's random start, random W_h
  embeddings   `init_from_teacher`: the teacher's embeddings on their top-312 principal directions U (and W_h)
  projected    the same, plus every block projected through the map the embedding start defines: with
               t = s·U^T·diag(gamma_e) + beta_e (gamma_e, beta_e: the teacher's embedding LayerNorm) between the two
               spaces, Q/K/V/FFN-in kernels become U^T·diag(gamma_e)·W (biases absorb beta_e·W), outputs are mapped
               back by diag(1/gamma_e)·U; each head's query-key and value-output products are cut from 32 to 26
               dimensions by SVD (rescaled for 1/sqrt(d)); the FFN keeps its 1200 neurons of largest
               |W_in column|·|W_out row|; LayerNorm scales and shifts are carried through the same map (diagonal
               part).

Usage:
  python3 benchmarks/bench_teacher_init.py [--num_examples 64] [--seq_length 64]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from bench_distillation_throughput import machine_info, minilm_pair, save_results

STUDENT_CONFIG = "configs/tinybert_4l_312.json"


def _low_rank(a: np.ndarray, b: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
  """Factors x, y with x·y^T the best rank-`rank` approximation of a·b^T."""
  u, s, vt = np.linalg.svd(a @ b.T, full_matrices=False)
  root = np.sqrt(s[:rank])
  return u[:, :rank] * root, vt[:rank].T * root


def project_block(s_block, t_block, to_student: np.ndarray, to_teacher: np.ndarray, shift: np.ndarray) -> None:
  """Sets a narrower student block from a teacher block through t = s·to_teacher + shift, s = (t - shift)·to_student."""
  import re
  t = {re.sub(r"^.*?layer_\d+/", "", w.name.split(":")[0]): w.numpy().astype(np.float64) for w in t_block.weights}
  s = {re.sub(r"^.*?layer_\d+/", "", w.name.split(":")[0]): w for w in s_block.weights}
  heads, head_dim = s["self_attention/query/kernel"].shape[1:]
  scale = (head_dim / t["self_attention/query/kernel"].shape[2]) ** 0.25  # keeps q·k/sqrt(d) unchanged
  new = {name: np.zeros(variable.shape) for name, variable in s.items()}

  def augmented(name, h):  # [student width + 1, teacher head dim]: the kernel in student space, bias as last row
    kernel = t[f"self_attention/{name}/kernel"][:, h, :]
    return np.vstack([to_teacher @ kernel, shift @ kernel + t[f"self_attention/{name}/bias"][h]])

  for h in range(heads):
    q, k = _low_rank(augmented("query", h), augmented("key", h), head_dim)
    v, o = _low_rank(augmented("value", h), (t["self_attention/attention_output/kernel"][h] @ to_student).T, head_dim)
    for name, value in (("query", q * scale), ("key", k * scale), ("value", v)):
      new[f"self_attention/{name}/kernel"][:, h, :] = value[:-1]
      new[f"self_attention/{name}/bias"][h] = value[-1]
    new["self_attention/attention_output/kernel"][h] = o.T
  new["self_attention/attention_output/bias"] = t["self_attention/attention_output/bias"] @ to_student
  inner = s["intermediate/kernel"].shape[1]
  importance = np.linalg.norm(t["intermediate/kernel"], axis=0) * np.linalg.norm(t["output/kernel"], axis=1)
  keep = np.sort(np.argsort(-importance)[:inner])
  new["intermediate/kernel"] = to_teacher @ t["intermediate/kernel"][:, keep]
  new["intermediate/bias"] = shift @ t["intermediate/kernel"][:, keep] + t["intermediate/bias"][keep]
  new["output/kernel"] = t["output/kernel"][keep] @ to_student
  new["output/bias"] = t["output/bias"] @ to_student
  for norm in ("self_attention_layer_norm", "output_layer_norm"):  # the diagonal of to_teacher·diag(gamma)·to_student
    new[f"{norm}/gamma"] = np.einsum("ji,i,ij->j", to_teacher, t[f"{norm}/gamma"], to_student)
    new[f"{norm}/beta"] = (t[f"{norm}/beta"] - shift) @ to_student
  for name, variable in s.items():
    variable.assign(new[name].astype(np.float32))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_examples", type=int, default=64)
  parser.add_argument("--seq_length", type=int, default=64)
  args = parser.parse_args()
  result = machine_info()
  import tensorflow as tf

  from modeling import build_encoder, restore_encoder, tokenization
  from modeling.losses import IntermediateDistillation
  from modeling.teacher_init import init_from_teacher
  from prepare_dataset import dataset_processors

  teacher_dir, teacher_config, student_config, layer_map = minilm_pair()
  teacher = build_encoder(teacher_config)
  restore_encoder(teacher, teacher_config, teacher_dir)
  tokenizer = tokenization.build_tokenizer(os.path.join(teacher_dir, "vocab.txt"))
  examples = dataset_processors.get_processor("rotten_tomatoes").get_examples(None, "train")[:args.num_examples]
  packed = [tokenizer.pack(ids, None, args.seq_length) for ids in tokenizer.tokenize_to_ids([e.text_a for e in examples])]
  features = {name: tf.constant([p[i] for p in packed], tf.int32)
              for i, name in enumerate(("input_word_ids", "input_mask", "input_type_ids"))}
  teacher_outputs = teacher(features, training=False)

  runs = {}
  for start in ("random", "embeddings", "projected"):
    tf.random.set_seed(0)
    student = build_encoder(student_config)
    distillation = IntermediateDistillation(student_config.hidden_size, teacher_config.hidden_size, layer_map)
    if start != "random":
      init_from_teacher(student, teacher, layer_map, distillation)
    if start == "projected":
      to_teacher = distillation.projections[0].kernel.numpy().astype(np.float64)  # U^T·diag(gamma_e)
      shift = distillation.projections[0].bias.numpy().astype(np.float64)  # beta_e
      to_student = np.linalg.pinv(to_teacher)
      for m, g in enumerate(layer_map):
        project_block(student._transformer_layers[m], teacher._transformer_layers[g - 1], to_student, to_teacher,
                      shift)
    terms = distillation(student(features, training=False), teacher_outputs, features["input_mask"])
    runs[start] = {name: round(float(value), 4) for name, value in terms.items()}
    print(start, runs[start], flush=True)
  result.update({"command": "python3 benchmarks/bench_teacher_init.py " + " ".join(sys.argv[1:]),
                 "teacher": "MiniLM-L6-H384", "student": STUDENT_CONFIG, "layer_map": layer_map,
                 "num_examples": args.num_examples, "seq_length": args.seq_length, "initial_losses": runs})
  save_results("teacher_init", result)


if __name__ == "__main__":
  main()
