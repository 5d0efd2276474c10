r"""Variants of the general-distillation step, interleaved in one process so that they share the machine's load.

bench_distillation_throughput.py runs each configuration in its own process, one after the other: right for thread
and environment settings, which are fixed when TensorFlow starts, but on a shared machine the load moves between
processes. The variants here differ only in what a process can hold side by side (dtypes, XLA on the teacher or on
the whole step, fused QKV), so this script builds one `TrainLoop` per variant in the same process, warms each up,
and then runs one loop of each per round, rotating the order every round. The fp32 matmul peak (chained 2048×2048
matmuls) is measured at every round too. Each variant's speed-up is the median over rounds of its rate divided by
the baseline's rate in the same round, and its fraction of peak uses the same round's peak.

Usage:
  python3 benchmarks/bench_step_variants.py [--variants fp32_intra2_inter1,fp32_teacher_bf16_intra2_inter1,...] \
      [--rounds 3] [--steps 1]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_distillation_throughput import (
  CONFIGS,
  ROOT,
  build_loop,
  config_options,
  machine_info,
  matmul_peak,
  save_results,
)

DEFAULT_VARIANTS = ("fp32_intra2_inter1,fp32_teacher_bf16_intra2_inter1,fp32_teacher_xla_intra2_inter1,"
                    "fp32_fused_qkv_intra2_inter1,fp32_xla_intra2_inter1,bf16_intra2_inter1,"
                    "bf16_fused_qkv_intra2_inter1,bf16_teacher_xla_intra2_inter1")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                      help="Comma-separated bench_distillation_throughput.py configurations, baseline first; all "
                           "must share thread and environment settings.")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=1, help="Steps per timed loop.")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--name", default="step_variants", help="Results file name under benchmarks/results/.")
  args = parser.parse_args()
  names = [n for n in args.variants.split(",") if n]
  unknown = [n for n in names if n not in CONFIGS]
  if unknown or not names:
    sys.exit(f"error: --variants: unknown {unknown}; known: {', '.join(CONFIGS)}")
  options = {n: config_options(n) for n in names}
  shared = {(o["intra"], o["inter"], tuple(sorted(o["env"].items()))) for o in options.values()}
  if len(shared) > 1:
    sys.exit("error: --variants must share threads and env (run bench_distillation_throughput.py for those)")
  if min(args.rounds, args.steps, args.batch_size, args.seq_length) <= 0:
    sys.exit("error: --rounds, --steps, --batch_size and --seq_length must be positive")
  first = options[names[0]]
  os.environ.update(first["env"])

  from modeling import training
  training.set_threads(first["intra"], first["inter"])
  result = machine_info()
  result.update(batch_size=args.batch_size, seq_length=args.seq_length, steps_per_loop=args.steps,
                rounds=args.rounds, baseline=names[0],
                command="python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]))
  total_steps = args.steps * (args.rounds + 2)
  with tempfile.TemporaryDirectory() as output_dir:
    loops, infos, warmup = {}, {}, {}
    for name in names:
      loops[name], infos[name] = build_loop(options[name], args.batch_size, args.seq_length, total_steps,
                                            os.path.join(output_dir, name), name)
      loops[name].steps_per_loop = args.steps
      start = time.perf_counter()
      loops[name].run(args.steps)  # Traces (and with XLA compiles); not timed.
      loops[name].run(2 * args.steps)  # The first loop after tracing was still slow in trials; not timed either.
      warmup[name] = round(time.perf_counter() - start, 1)
      print(f"# built {name} (warm-up {warmup[name]} s)", file=sys.stderr, flush=True)
    rounds = []
    for index in range(args.rounds):
      order = names[index % len(names):] + names[:index % len(names)]
      entry = {"round": index, "order": order, "load_average_1min": round(os.getloadavg()[0], 2),
               "matmul_peak_gflops": round(matmul_peak() / 1e9, 2), "examples_per_second": {}}
      for name in order:
        loop = loops[name]
        loop.run(loop.step + args.steps)
        entry["examples_per_second"][name] = round(loop.history[-1]["examples_per_second"], 3)
      base = entry["examples_per_second"][names[0]]
      print(f"# round {index} (load {entry['load_average_1min']}, peak {entry['matmul_peak_gflops']:.0f} GFLOP/s): "
            + ", ".join(f"{n} {v:.2f} ({v / base:.2f}x)" for n, v in entry["examples_per_second"].items()),
            file=sys.stderr, flush=True)
      rounds.append(entry)
  summary = {}
  for name in names:
    rates = [r["examples_per_second"][name] for r in rounds]
    flops = infos[name]["flops"]["total"]
    summary[name] = {
        **{k: v for k, v in infos[name].items() if k != "flops"},
        "examples_per_second_median": round(statistics.median(rates), 3),
        "speedup_vs_baseline_median": round(statistics.median(
            r["examples_per_second"][name] / r["examples_per_second"][names[0]] for r in rounds), 3),
        "fraction_of_peak_median": round(statistics.median(
            r["examples_per_second"][name] / args.batch_size * flops / (r["matmul_peak_gflops"] * 1e9)
            for r in rounds), 3),
        "warmup_seconds": warmup[name], "final_loss": round(loops[name].history[-1]["total"], 4)}
  result["rounds_detail"] = rounds
  result["summary"] = summary
  save_results(args.name, result)
  print(f"step variants (batch {args.batch_size}, seq {args.seq_length}, {args.rounds} rounds) vs {names[0]}: "
        + ", ".join(f"{n} {s['speedup_vs_baseline_median']:.2f}x" for n, s in summary.items())
        + f"; load {result['load_average_start'][0]}-{result['load_average_end'][0]}")


if __name__ == "__main__":
  main()
