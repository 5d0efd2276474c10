r"""The project's general-distillation step against the same step in PyTorch + transformers, in one run.

Both sides train TinyBERT4 (4 layers, 312 hidden, 12 heads, FFN 1200) from a frozen MiniLM-L6 teacher at batch 32,
seq 128 with the embedding, hidden (through W_h) and attention-logit MSE losses and AdamW. The project's side is
bench_distillation_throughput.py's worker (`modeling.training.TrainLoop`, one fresh process per measurement); the
peer is benchmarks/torch_peer_step.py (transformers' `BertModel` with eager attention, `torch.optim.AdamW`, bf16 by
`torch.autocast`), run by an interpreter that has torch. Measurements alternate project / peer, and the order flips
every round, so both sides share the machine's load; each round's ratio compares two neighbouring processes, and
the summary takes the median of the rounds' ratios.

torch is never a dependency of the project: the peer runs under `--torch_python`, or else the virtualenv at
`--torch_venv` (default `.bench-venv/` in the repository, gitignored), which is created with `pip install
torch==2.13.0` (CPU wheels from `--torch_index_url`) and `transformers` when it is missing. If that fails, the
benchmark prints why and exits without measuring anything.

The results go to benchmarks/results/vs_pytorch.json, with the issue-14 targets checked where the CPU has bf16
instructions: bf16 ≥ 1.5x the peer, fp32 ≥ 2x the peer, and the project's fp32 step at ≥ 75% of the fp32 matmul
peak measured in its own process. On a CPU without AVX512_BF16 or AMX the bf16 rows are skipped (bf16 there is
emulated, and its figures say nothing about bf16).

Usage:
  python3 benchmarks/bench_vs_pytorch.py [--precisions fp32,bf16] [--rounds 2] [--steps 2] [--loops 2] \
      [--torch_python /path/to/python] [--project_fp32 fp32_intra2_inter1] [--project_bf16 bf16_intra2_inter1]
"""

import argparse
import os
import statistics
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_distillation_throughput import (
  CONFIGS,
  ROOT,
  config_options,
  machine_info,
  run_worker,
  save_results,
)

PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "torch_peer_step.py")
DEFAULT_VENV = os.path.join(ROOT, ".bench-venv")
TORCH_REQUIREMENTS = ("torch==2.13.0", "transformers")
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}
TARGETS = {"bf16_vs_peer": 1.5, "fp32_vs_peer": 2.0, "fp32_fraction_of_peak": 0.75}


def _imports_torch(python: str) -> str | None:
  """None if `python` imports torch and transformers, else the reason it does not."""
  try:
    completed = subprocess.run([python, "-c", "import torch, transformers"], capture_output=True, text=True,
                               check=False, timeout=300)
  except (OSError, subprocess.TimeoutExpired) as e:
    return f"{python}: {e}"
  if completed.returncode:
    return f"{python}: {(completed.stderr.strip().splitlines() or ['import failed'])[-1]}"
  return None


def find_torch_python(torch_python: str | None, venv: str, index_url: str, install: bool) -> tuple[str | None, str]:
  """The interpreter to run the peer with, creating the virtualenv if needed; (None, why) when there is none."""
  if torch_python:
    problem = _imports_torch(torch_python)
    return (None, f"--torch_python {problem}") if problem else (torch_python, "given")
  python = os.path.join(venv, "bin", "python")
  if os.path.exists(python) and _imports_torch(python) is None:
    return python, f"existing {venv}"
  if not install:
    return None, f"no torch in {venv} and --noinstall"
  print(f"# creating {venv} with {' '.join(TORCH_REQUIREMENTS)} (once; this downloads torch)", file=sys.stderr,
        flush=True)
  steps = [[sys.executable, "-m", "venv", venv],
           [python, "-m", "pip", "install", "--quiet", TORCH_REQUIREMENTS[0], "--index-url", index_url],
           [python, "-m", "pip", "install", "--quiet", *TORCH_REQUIREMENTS[1:]]]
  for command in steps:
    try:
      completed = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as e:
      return None, f"{' '.join(command[:4])}: {e}"
    if completed.returncode:
      tail = (completed.stderr.strip().splitlines() or ["failed"])[-1]
      return None, f"`{' '.join(command)}` failed: {tail}"
  problem = _imports_torch(python)
  return (None, problem) if problem else (python, f"created {venv}")


def run_peer(python: str, dtype: str, args) -> dict:
  import json
  command = [python, PEER_SCRIPT, "--dtype", dtype, "--batch_size", str(args.batch_size), "--seq_length",
             str(args.seq_length), "--steps", str(args.steps), "--loops", str(args.loops)]
  if args.torch_threads:
    command += ["--threads", str(args.torch_threads)]
  completed = subprocess.run(command, capture_output=True, text=True, check=False)
  lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
  if completed.returncode or not lines:
    print(f"# peer {dtype} failed:\n{completed.stderr[-3000:]}", file=sys.stderr)
    return {"error": (completed.stderr.strip().splitlines() or ["no output"])[-1][:500]}
  return json.loads(lines[-1][len("RESULT "):])


def summarize(rounds: list[dict], precision: str) -> dict:
  """Medians over the rounds of one precision, and the median of the per-round project/peer ratios."""
  good = [r for r in rounds if r["precision"] == precision and "ratio" in r]
  if not good:
    return {"error": "no round finished"}
  project = [r["project"]["examples_per_second"] for r in good]
  peer = [r["peer"]["examples_per_second"] for r in good]
  summary = {"project_config": good[0]["project"]["config"],
             "project_examples_per_second_median": round(statistics.median(project), 3),
             "peer_examples_per_second_median": round(statistics.median(peer), 3),
             "ratio_median": round(statistics.median(r["ratio"] for r in good), 3),
             "ratio_per_round": [r["ratio"] for r in good], "rounds": len(good)}
  summary["project_fraction_of_peak_median"] = round(
      statistics.median(r["project"]["fraction_of_peak"] for r in good), 3)
  summary["project_matmul_peak_gflops_median"] = round(
      statistics.median(r["project"]["matmul_peak_gflops"] for r in good), 1)
  summary["peer_matmul_peak_gflops_median"] = round(statistics.median(r["peer"]["matmul_peak_gflops"] for r in good), 1)
  return summary


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--precisions", default="fp32,bf16", help="Comma-separated from fp32, bf16.")
  parser.add_argument("--rounds", type=int, default=2, help="Project/peer pairs per precision.")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--steps", type=int, default=2, help="Steps per timed loop, both sides.")
  parser.add_argument("--loops", type=int, default=2, help="Timed loops per measurement; the best counts.")
  parser.add_argument("--project_fp32", default="fp32_intra2_inter1",
                      help="bench_distillation_throughput.py configuration for the fp32 rows.")
  parser.add_argument("--project_bf16", default="bf16_intra2_inter1",
                      help="bench_distillation_throughput.py configuration for the bf16 rows.")
  parser.add_argument("--torch_python", help="An interpreter with torch and transformers (skips the venv).")
  parser.add_argument("--torch_venv", default=DEFAULT_VENV, help="Virtualenv for the peer, created when missing.")
  parser.add_argument("--torch_index_url", default="https://download.pytorch.org/whl/cpu",
                      help="Where pip finds the torch wheel (the CPU-only build by default).")
  parser.add_argument("--noinstall", dest="install", action="store_false",
                      help="Skip instead of creating --torch_venv.")
  parser.add_argument("--torch_threads", type=int, default=0, help="torch.set_num_threads for the peer; 0: default.")
  parser.add_argument("--allow_emulated_bf16", action="store_true",
                      help="Measure bf16 even where the CPU has no bf16 instructions (figures are not comparable).")
  args = parser.parse_args()
  precisions = [p for p in args.precisions.split(",") if p]
  if not precisions or any(p not in PRECISIONS for p in precisions):
    sys.exit(f"error: --precisions={args.precisions!r}; choose from {', '.join(PRECISIONS)}")
  configs = {"fp32": args.project_fp32, "bf16": args.project_bf16}
  for precision in precisions:
    name = configs[precision]
    if name not in CONFIGS or config_options(name)["dtype"] != PRECISIONS[precision]:
      sys.exit(f"error: --project_{precision}={name!r} is not a {PRECISIONS[precision]} configuration of "
               f"bench_distillation_throughput.py")
  if min(args.rounds, args.batch_size, args.seq_length, args.steps, args.loops) <= 0:
    sys.exit("error: --rounds, --batch_size, --seq_length, --steps and --loops must be positive")
  from modeling import runtime_env
  bf16_hardware = runtime_env.has_bf16_instructions()
  if "bf16" in precisions and not bf16_hardware and not args.allow_emulated_bf16:
    print("# this CPU has no AVX512_BF16 or AMX: bf16 is emulated here, so only fp32 is measured", file=sys.stderr)
    precisions.remove("bf16")
    if not precisions:
      return

  python, how = find_torch_python(args.torch_python, args.torch_venv, args.torch_index_url, args.install)
  if python is None:
    print(f"bench_vs_pytorch skipped: no PyTorch peer ({how})")
    return
  print(f"# peer interpreter: {python} ({how})", file=sys.stderr, flush=True)

  result = machine_info()
  result.update(batch_size=args.batch_size, seq_length=args.seq_length, steps_per_loop=args.steps, loops=args.loops,
                bf16_instructions=bf16_hardware,
                cpu_bf16_flags=sorted(runtime_env.cpu_flags() & {"avx512_bf16", "amx_bf16", "amx_tile"}),
                command="python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]))
  rounds = []
  for index in range(args.rounds):
    for precision in precisions:
      entry = {"round": index, "precision": precision, "load_average_1min_before": round(os.getloadavg()[0], 2)}
      sides = ("project", "peer") if index % 2 == 0 else ("peer", "project")
      for side in sides:
        if side == "project":
          entry["project"] = run_worker(configs[precision], args)
        else:
          entry["peer"] = run_peer(python, PRECISIONS[precision], args)
      entry["order"] = list(sides)
      entry["load_average_1min_after"] = round(os.getloadavg()[0], 2)
      if "error" not in entry["project"] and "error" not in entry["peer"]:
        entry["ratio"] = round(entry["project"]["examples_per_second"] / entry["peer"]["examples_per_second"], 3)
        print(f"# round {index} {precision}: project {entry['project']['examples_per_second']:.2f} ex/s, peer "
              f"{entry['peer']['examples_per_second']:.2f} ex/s, ratio {entry['ratio']:.2f} (load "
              f"{entry['load_average_1min_before']}-{entry['load_average_1min_after']})", file=sys.stderr, flush=True)
      rounds.append(entry)
  result["rounds"] = rounds
  result["summary"] = {p: summarize(rounds, p) for p in precisions}
  goals = {}
  fp32, bf16 = result["summary"].get("fp32", {}), result["summary"].get("bf16", {})
  if "ratio_median" in fp32:
    goals["fp32_vs_peer"] = {"value": fp32["ratio_median"], "target": TARGETS["fp32_vs_peer"]}
    goals["fp32_fraction_of_peak"] = {"value": fp32["project_fraction_of_peak_median"],
                                      "target": TARGETS["fp32_fraction_of_peak"]}
  if "ratio_median" in bf16:
    goals["bf16_vs_peer"] = {"value": bf16["ratio_median"], "target": TARGETS["bf16_vs_peer"]}
  for goal in goals.values():
    goal["met"] = goal["value"] >= goal["target"]
  result["goals"] = goals
  save_results("vs_pytorch", result)
  print(f"project vs PyTorch (batch {args.batch_size}, seq {args.seq_length}): " + "; ".join(
      f"{p} {s['project_examples_per_second_median']:.2f} vs {s['peer_examples_per_second_median']:.2f} ex/s = "
      f"{s['ratio_median']:.2f}x" for p, s in result["summary"].items() if "ratio_median" in s)
      + f"; load {result['load_average_start'][0]}-{result['load_average_end'][0]}")


if __name__ == "__main__":
  main()
