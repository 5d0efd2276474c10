r"""The general-distillation step of bench_distillation_throughput.py, in PyTorch + transformers (the peer).

Runs under an interpreter that has torch and transformers (never the project's venv; bench_vs_pytorch.py starts it
as a subprocess) and prints one line `RESULT {json}` with examples/s. The step mirrors the project's:
  teacher  MiniLM-L6 (6 layers, 384 hidden, 12 heads, FFN 1536), frozen, eval mode, under `torch.no_grad`;
  student  TinyBERT4 (4 layers, 312 hidden, 12 heads, FFN 1200), train mode (dropout 0.1);
  losses   embedding MSE(E_S·W_h, E_T) + Σ_m hidden MSE(H_S^m·W_h, H_T^g(m)) + Σ_m attention-logit MSE with masked
           keys zeroed, layer map g = 2,3,5,6, W_h a 312→384 linear layer, every MSE in float32;
  update   AdamW (lr 5e-5 decaying linearly, weight decay 0.01 except LayerNorm and biases, eps 1e-6), gradients
           clipped to global norm 1.0 first, as the project's optimizer does.
Attention is transformers' eager implementation, registered under another name only so that it hands back the
scaled scores before the mask and softmax (what the project's attention loss uses) instead of the probabilities;
the arithmetic is eager's. `--dtype bfloat16` runs both forward passes under `torch.autocast("cpu", bfloat16)`
with float32 master weights, the counterpart of Keras' mixed_bfloat16 policy.

The batch is constant random ids (speed does not depend on them). One untimed loop warms up, then `--loops` timed
loops of `--steps` steps each; the best loop counts, as in the project's benchmark. The process also measures its
own float32 matmul peak (chained 2048×2048 matmuls) so the two frameworks' peaks can be compared.

Usage:
  /path/to/torch/python benchmarks/torch_peer_step.py [--dtype float32|bfloat16] [--batch_size 32] \
      [--seq_length 128] [--steps 2] [--loops 2] [--threads 0]
"""

import argparse
import json
import os
import time

import torch
import transformers
from torch import nn
from transformers.modeling_utils import AttentionInterface

TEACHER = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}
STUDENT = {"hidden_size": 312, "num_hidden_layers": 4, "num_attention_heads": 12, "intermediate_size": 1200}
LAYER_MAP = (2, 3, 5, 6)
VOCAB_SIZE = 30522


def eager_with_logits(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
  """transformers' eager attention, returning the scaled pre-mask scores as its second output."""
  if scaling is None:
    scaling = query.size(-1) ** -0.5
  logits = torch.matmul(query, key.transpose(2, 3)) * scaling
  weights = logits if attention_mask is None else logits + attention_mask
  weights = nn.functional.softmax(weights, dim=-1)
  weights = nn.functional.dropout(weights, p=dropout, training=module.training)
  output = torch.matmul(weights, value).transpose(1, 2).contiguous()
  return output, logits


AttentionInterface.register("eager_logits", eager_with_logits)


def build_bert(sizes: dict) -> transformers.BertModel:
  config = transformers.BertConfig(vocab_size=VOCAB_SIZE, hidden_act="gelu", hidden_dropout_prob=0.1,
                                   attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
                                   **sizes)
  config._attn_implementation = "eager_logits"
  return transformers.BertModel(config, add_pooling_layer=False)


def mse(a, b):
  return nn.functional.mse_loss(a.float(), b.float())


def matmul_peak(size: int = 2048, chain: int = 8, repeats: int = 5) -> float:
  """Best float32 matmul rate in FLOP/s over `chain` dependent [size, size] matmuls."""
  a = torch.randn(size, size)
  b = torch.randn(size, size) / size
  best = float("inf")
  for _ in range(repeats + 1):
    start = time.perf_counter()
    x = a
    for _ in range(chain):
      x = x @ b
    best = min(best, time.perf_counter() - start)
  return chain * 2 * size ** 3 / best


def measure(dtype: str, batch: int, seq: int, steps: int, loops: int) -> dict:
  torch.manual_seed(0)
  peak = matmul_peak()
  teacher, student = build_bert(TEACHER), build_bert(STUDENT)
  teacher.eval().requires_grad_(False)
  student.train()
  projection = nn.Linear(STUDENT["hidden_size"], TEACHER["hidden_size"])
  parameters = list(student.named_parameters()) + [(f"projection.{n}", p) for n, p in projection.named_parameters()]
  no_decay = [p for n, p in parameters if "LayerNorm" in n or n.endswith("bias")]
  decay = [p for n, p in parameters if not ("LayerNorm" in n or n.endswith("bias"))]
  optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=5e-5, eps=1e-6)
  total_steps = steps * (loops + 1)
  schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total_steps))
  ids = torch.randint(0, VOCAB_SIZE, (batch, seq))
  mask = torch.ones(batch, seq, dtype=torch.long)
  types = torch.zeros(batch, seq, dtype=torch.long)
  key_mask = mask[:, None, None, :].float()
  autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")

  def step():
    with autocast:
      with torch.no_grad():
        t = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True,
                    output_attentions=True)
      s = student(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True,
                  output_attentions=True)
    loss = mse(projection(s.hidden_states[0].float()), t.hidden_states[0])
    for m, g in enumerate(LAYER_MAP, start=1):
      loss = loss + mse(projection(s.hidden_states[m].float()), t.hidden_states[g])
      loss = loss + mse(s.attentions[m - 1].float() * key_mask, t.attentions[g - 1].float() * key_mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for _, p in parameters], 1.0)
    optimizer.step()
    schedule.step()
    return loss

  start = time.perf_counter()
  for _ in range(steps):
    step()
  warmup_seconds = time.perf_counter() - start
  rates = []
  for _ in range(loops):
    start = time.perf_counter()
    for _ in range(steps):
      loss = step()
    final_loss = float(loss.detach())
    rates.append(steps * batch / (time.perf_counter() - start))
  return {"framework": "pytorch", "torch": torch.__version__, "transformers": transformers.__version__,
          "dtype": dtype, "threads": torch.get_num_threads(), "attention": "eager (logits returned)",
          "examples_per_second": round(max(rates), 3), "examples_per_second_per_loop": [round(r, 3) for r in rates],
          "seconds_per_step": round(batch / max(rates), 3), "matmul_peak_gflops": round(peak / 1e9, 2),
          "warmup_seconds": round(warmup_seconds, 1), "final_loss": round(final_loss, 4),
          "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--loops", type=int, default=2)
  parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads; 0 keeps torch's default.")
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  print("RESULT " + json.dumps(measure(args.dtype, args.batch_size, args.seq_length, args.steps, args.loops)),
        flush=True)


if __name__ == "__main__":
  main()
