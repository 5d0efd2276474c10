r"""Relation distillation and two teachers, from real runs: a 6-head student of a 12-head teacher on Rotten Tomatoes.

  python3 experiments/relations_table.py --seeds 1 --intra_op_threads 1 --inter_op_threads 1   # every row, seed 1
  python3 experiments/relations_table.py --seeds 2,3 --rows minilmv2,alone                      # more seeds
  python3 experiments/relations_table.py --report_only                                          # the table only

The evidence asked for by issue 13: (1) a student whose head count differs from its teacher's, general-distilled with
MiniLMv2's self-attention relations and then task-distilled, against the same student trained alone (the goal: 3
points or more on dev and test); (2) one student taught by two fine-tuned teachers at once against each teacher alone.

Setting, fixed before any run (scale `medium` of experiments/tinybert_table.py's MiniLM table, whose data, news
text, general-distillation records and MiniLM teacher are shared with it, made by the same commands):
  task       Rotten Tomatoes: the first 2,000 training reviews, the whole dev (1,272) and test (1,286) splits, seq 64.
  student    `configs/minilm_student_4l_384_h6.json`: 4 layers, hidden 384, 6 heads (the teacher has 12),
             intermediate 1,536, MiniLM's uncased WordPiece vocab (30,522): 19.2M parameters, embeddings included.
  general    MiniLM-L6-H384 (`modeling.assets.minilm_dir()`) -> the student with `--intermediate_loss minilmv2
             --relation_heads 12` (Q-Q, K-K and V-V relations of the teacher's last layer, 12 relation heads of 32
             dimensions on both sides), on all the news articles: 600 steps of 32 at seq 128, learning rate 3e-4,
             the teacher's projected embeddings as its start, bfloat16 mixed precision (this machine has
             avx512_bf16); into <output_dir>/medium/general_student_minilmv2.
  teachers   MiniLM-L6-H384 fine-tuned on the 2,000 reviews (3 epochs at 5e-5; tinybert_table.py's teacher, in
             <output_dir>/medium/rotten_tomatoes/teacher), and all-mpnet-base-v2 fine-tuned on all 10,250 reviews
             (1 epoch at 3e-5, bfloat16, as tinybert_table.py's MPNet teacher but on every review; in
             <output_dir>/medium_mpnet_alldata/rotten_tomatoes/teacher). MPNet reads
             its own tokenization of the same 2,000 reviews (create_finetuning_data.py with its vocab, data_mpnet/,
             passed by `--teacher_data_dir`).
  students   learning rate 5e-4, batch 32, fp32; 6 epochs without task distillation or with prediction-layer
             distillation only, 3 + 3 epochs with both stages.

Rows (`--rows` takes the names or the keys in brackets; run folders <output_dir>/medium/rotten_tomatoes/h6_<key>_seed<N>):
  trained alone [alone]                     random initialisation, gold labels only, 6 epochs
  MiniLMv2 general + task KD [minilmv2]     the general student; stage 1 MiniLMv2 relations against the MiniLM
                                            teacher (3 epochs), stage 2 its soft targets (3 epochs)
  MiniLMv2 general + fine-tuning [finetune] the general student fine-tuned on gold labels alone, 6 epochs: what the
                                            general distillation gives by itself
  KD from MiniLM [kd_minilm]                the general student, prediction-layer distillation only, 6 epochs
  KD from MPNet [kd_mpnet]                  the same with the MPNet teacher
  KD from both [kd_both]                    the same with both teachers, soft targets averaged with weights 0.5, 0.5

Every run is one of the documented commands, printed before it runs; a step whose completion file exists is skipped,
so an interrupted table resumes. Before a step starts, the script waits while another process runs a command with
the same output (e.g. tinybert_table.py training the shared MiniLM teacher). Rows that need no teacher run first.
The MiniLM teacher's logits are cached on disk (`--cache_teacher_outputs logits`, <task>/teacher_cache/, shared with
tinybert_table.py's Hinton KD row); stage 1 of MiniLMv2 reads queries, keys and values, which the cache does not
hold, so it runs the teacher at every step. The rows with MPNet keep each teacher's logits table in the same folder
(`teacher_logits-<fingerprint>.npy`): MPNet's pass over the 2,000 reviews is made once, by the first such run.

Measured on 2 AMD EPYC cores shared with another training run (load 3-4), one thread per run: the general student
24 min (bfloat16, 600 steps); each student row 10-11 min; the MPNet rows 16 min when they computed MPNet's logits
themselves, 4-5 min of which was MPNet's pass over the reviews; the MiniLM teacher about 10 min.

Dev is the best epoch's (selected on itself); test is the same checkpoint's. Results go to
experiments/results/relations_table.{md,json}: the table over every finished run on disk, the teachers' own scores,
and the issue's two checks.
"""

import argparse
import os
import statistics
import sys
import time

from modeling import assets, files, pipeline

try:
  from experiments import tinybert_table as table  # Imported from the repo root (the tests).
except ModuleNotFoundError:  # Run as `python3 experiments/relations_table.py`: its own folder is on sys.path.
  import tinybert_table as table

ROOT = pipeline.ROOT
TASK = "rotten_tomatoes"
SCALE = "medium"
SETTINGS = table.SCALES[SCALE]["minilm"]
# The MPNet teacher of this table fine-tunes on all 10,250 reviews (tinybert_table.py's MPNet teacher sees only the
# students' 2,000), in a folder of its own.
MPNET_SETTINGS = dict(table.SCALES[SCALE]["mpnet"], task_examples={TASK: None}, teacher={TASK: (1, 3e-5)})
MPNET_FOLDER = SCALE + "_mpnet_alldata"
STUDENT_CONFIG = "configs/minilm_student_4l_384_h6.json"
RELATION_HEADS = 12
LAYER_MAP = "2,3,5,6"  # tinybert_table.py's map of MiniLM's 6 layers onto 4.
GENERAL_DTYPE = "bfloat16"
GENERAL_FOLDER = "general_student_minilmv2"
TEACHER_WEIGHTS = "0.5,0.5"
GOAL_POINTS = 3.0
# Row name -> key; the key names the run folders h6_<key>_seed<N>.
ROW_KEYS = {"trained alone": "alone", "MiniLMv2 general + task KD": "minilmv2",
            "MiniLMv2 general + fine-tuning": "finetune", "KD from MiniLM": "kd_minilm", "KD from MPNet": "kd_mpnet",
            "KD from both": "kd_both"}
ROWS = tuple(ROW_KEYS)
# The teachers each row needs ("minilm", "mpnet"); rows without one run first.
NEEDS = {"trained alone": (), "MiniLMv2 general + task KD": ("minilm",), "MiniLMv2 general + fine-tuning": (),
         "KD from MiniLM": ("minilm",), "KD from MPNet": ("mpnet",), "KD from both": ("minilm", "mpnet")}


def run_key(row):
  """The run folders' stem of `row`: h6_<key>, then _seed<N> (h6: the 6-head student)."""
  return f"h6_{ROW_KEYS[row]}"


def layout(output_dir):
  """The folders of the table under `output_dir`, by name."""
  out = os.path.join(output_dir, SCALE)
  task_dir = os.path.join(out, TASK)
  return {"out": out, "task_dir": task_dir, "data": os.path.join(task_dir, "data"),
          "data_mpnet": os.path.join(task_dir, "data_mpnet"), "cache": os.path.join(task_dir, "teacher_cache"),
          "general": os.path.join(out, GENERAL_FOLDER), "minilm_teacher": os.path.join(task_dir, "teacher"),
          "mpnet_out": os.path.join(output_dir, MPNET_FOLDER),
          "mpnet_teacher": os.path.join(output_dir, MPNET_FOLDER, TASK, "teacher")}


def row_args(paths, threads):
  """{row: the run_finetuning.py flags of its runs, without output_dir and seed}."""
  student = dict(threads, task_name=TASK, data_dir=paths["data"], max_seq_length=SETTINGS["seq"][TASK],
                 batch_size=SETTINGS["batch"], export_dir="-", config_path=os.path.join(ROOT, STUDENT_CONFIG),
                 learning_rate=table.STUDENT_LEARNING_RATE, steps_per_loop=table.STUDENT_STEPS_PER_LOOP,
                 pooling="first_token")  # The table's runs predate --pooling=auto; every row reads [CLS].
  general = dict(student, ckpt_path=paths["general"])
  minilm, mpnet = paths["minilm_teacher"], paths["mpnet_teacher"]
  minilm_teacher = {"teacher_config_path": os.path.join(minilm, "config.json"), "teacher_ckpt_path": minilm,
                    "cache_teacher_outputs": "logits", "teacher_cache_dir": paths["cache"]}
  prediction_only = dict(general, distill_stage="prediction", prediction_epochs=SETTINGS["epochs"])
  # The general student's folder holds no vocab and MPNet's is not the student data's: the rows with MPNet name the
  # student's vocab. Each teacher's logits table is kept in the task's teacher cache, so MPNet runs over the reviews
  # once for every row and seed.
  mpnet_rows = dict(prediction_only, vocab_file=os.path.join(assets.minilm_dir(), "vocab.txt"),
                    cache_teacher_outputs="logits", teacher_cache_dir=paths["cache"])
  return {
      "trained alone": dict(student, epochs=SETTINGS["epochs"]),
      "MiniLMv2 general + task KD": dict(general, **minilm_teacher, intermediate_loss="minilmv2",
                                         relation_heads=RELATION_HEADS,
                                         intermediate_epochs=SETTINGS["intermediate_epochs"],
                                         prediction_epochs=SETTINGS["prediction_epochs"]),
      "MiniLMv2 general + fine-tuning": dict(general, epochs=SETTINGS["epochs"]),
      "KD from MiniLM": dict(prediction_only, **minilm_teacher),
      "KD from MPNet": dict(mpnet_rows, teacher_config_path=os.path.join(mpnet, "config.json"),
                            teacher_ckpt_path=mpnet, teacher_data_dir=paths["data_mpnet"]),
      "KD from both": dict(mpnet_rows, teacher_config_path=f"{minilm}/config.json,{mpnet}/config.json",
                           teacher_ckpt_path=f"{minilm},{mpnet}", teacher_weights=TEACHER_WEIGHTS,
                           teacher_data_dir="," + paths["data_mpnet"]),
  }


def other_writers(path, proc="/proc"):
  """Pids of other processes whose command line has `--output_dir=<path>` or `--output_file=<path>` (Linux)."""
  if not path or not os.path.isdir(proc):
    return []
  path, pids = os.path.abspath(path), []
  for pid in filter(str.isdigit, os.listdir(proc)):
    if int(pid) == os.getpid():
      continue
    try:
      with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
        words = f.read().decode(errors="replace").split("\0")
      values = [value for name, _, value in (word.partition("=") for word in words)
                if name in ("--output_dir", "--output_file") and value]
      if any(not os.path.isabs(value) for value in values):
        values = [os.path.join(os.readlink(os.path.join(proc, pid, "cwd")), value) for value in values]
    except OSError:
      continue  # Gone, or not ours to read.
    if path in map(os.path.abspath, values):
      pids.append(int(pid))
  return pids


def waiting_step(step, poll_seconds=60):
  """`step`, first waiting while another process writes the same output (two writers would corrupt a run)."""
  def run(title, script, args, done_file):
    path = args.get("output_dir") or args.get("output_file")
    while pids := other_writers(path):
      print(f"(waiting for process {', '.join(map(str, pids))}, which is writing {path})", flush=True)
      time.sleep(poll_seconds)
    return step(title, script, args, done_file)
  return run


def run_rows(rows, seeds, paths, threads, step):
  """Runs the data, the general student, the teachers (each only when a selected row needs it) and the rows."""
  minilm_dir = assets.minilm_dir()
  table._prepare(TASK, SETTINGS, minilm_dir, paths["data"], step)
  if any(row != "trained alone" for row in rows):
    # MiniLMv2 reads no layer map (run_pretraining.py reads --layer_map for --init_from_teacher only); the table's map
    # is passed as when the general student was made, and is not used.
    table.run_general(dict(SETTINGS, general=dict(SETTINGS["general"], dtype=GENERAL_DTYPE)), paths["out"],
                      "MiniLM-L6-H384", minilm_dir, os.path.join(ROOT, STUDENT_CONFIG), LAYER_MAP, threads, step,
                      folder=GENERAL_FOLDER,
                      loss_flags={"intermediate_loss": "minilmv2", "relation_heads": RELATION_HEADS})
  made = set()

  def make_teacher(name):
    if name in made:
      return
    made.add(name)
    if name == "minilm":  # tinybert_table.py's very command, so either script finds it done.
      table.run_task(TASK, [], SETTINGS, paths["out"], None, minilm_dir, None, None, threads, ["teacher"], step)
    else:
      mpnet_dir = assets.mpnet_dir()
      table.run_task(TASK, [], MPNET_SETTINGS, paths["mpnet_out"], None, mpnet_dir, None, None, threads,
                     ["teacher"], step)
      table._prepare(TASK, SETTINGS, mpnet_dir, paths["data_mpnet"], step)

  args = row_args(paths, threads)
  for seed in seeds:  # Seed by seed, so that a first complete table comes early.
    for row in sorted(rows, key=lambda r: bool(NEEDS[r])):
      for name in NEEDS[row]:
        make_teacher(name)
      folder = os.path.join(paths["task_dir"], f"{run_key(row)}_seed{seed}")
      step(f"{TASK}: {row} (6-head student), seed {seed}", "run_finetuning.py",
           dict(args[row], output_dir=folder, seed=seed), os.path.join(folder, "training_summary.json"))


def collect(task_dir):
  """{row: {"seeds", "scores": [(dev, test)], "minutes"}} over the finished runs on disk."""
  found = {}
  for row in ROWS:
    runs = table.finished_runs(task_dir, run_key(row))
    if runs:
      found[row] = {"seeds": list(runs), "scores": [table.scores_of(f) for f in runs.values()],
                    "minutes": [table.minutes_of(f) for f in runs.values()]}
  return found


def _mean(values):
  return statistics.mean(values) if values else None


def format_table(found, params, teachers):
  """Markdown: the teachers' own scores, then one row per student row (mean ± std over its seeds)."""
  lines = ["| model | params | dev accuracy | test accuracy | seeds | minutes per run |", "|---|---|---|---|---|---|"]
  for name, teacher in teachers.items():
    if teacher["dev"] is None:
      lines.append(f"| teacher {name} | {teacher['params'] / 1e6:.1f}M | n/a | n/a | not run | n/a |")
      continue
    minutes = "n/a" if teacher["minutes"] is None else f"{teacher['minutes']:.0f}"
    test = "n/a" if teacher["test"] is None else f"{teacher['test']:.4f}"
    lines.append(f"| teacher {name} | {teacher['params'] / 1e6:.1f}M | {teacher['dev']:.4f} | {test} | 1 | "
                 f"{minutes} |")
  for row in ROWS:
    if row not in found:
      lines.append(f"| {row} | {params / 1e6:.1f}M | n/a | n/a | 0 | n/a |")
      continue
    runs = found[row]
    dev = [d for d, _ in runs["scores"]]
    test = [t for _, t in runs["scores"] if t is not None]
    minutes = [m for m in runs["minutes"] if m is not None]
    lines.append(f"| {row} | {params / 1e6:.1f}M | {table._cell(dev)} | {table._cell(test) if test else 'n/a'} | "
                 f"{len(dev)} ({','.join(map(str, runs['seeds']))}) | "
                 f"{f'{statistics.mean(minutes):.0f}' if minutes else 'n/a'} |")
  return "\n".join(lines)


def checks(found):
  """The issue's two checks, in accuracy points (means over each row's seeds): None where a row is missing.

  Returns:
    {"goal": {"dev", "test", "met"}: MiniLMv2 general + task KD minus trained alone, met when both >= GOAL_POINTS;
     "two_teachers": {"KD from MiniLM": {"dev", "test"}, "KD from MPNet": {...}}: KD from both minus each}.
  """
  def points(a, b, split):
    if a not in found or b not in found:
      return None
    column = 0 if split == "dev" else 1
    x = _mean([s[column] for s in found[a]["scores"] if s[column] is not None])
    y = _mean([s[column] for s in found[b]["scores"] if s[column] is not None])
    return None if x is None or y is None else 100 * (x - y)

  goal = {split: points("MiniLMv2 general + task KD", "trained alone", split) for split in ("dev", "test")}
  goal["met"] = None if None in goal.values() else all(goal[s] >= GOAL_POINTS for s in ("dev", "test"))
  return {"goal": goal,
          "two_teachers": {single: {split: points("KD from both", single, split) for split in ("dev", "test")}
                           for single in ("KD from MiniLM", "KD from MPNet")}}


def format_checks(result, found):
  def signed(value):
    return "n/a" if value is None else f"{value:+.2f}"

  def seeds(row):
    return len(found.get(row, {}).get("seeds", []))

  goal = result["goal"]
  verdict = {None: "not measured yet", True: "met", False: "not met"}[goal["met"]]
  lines = [(f"- Goal, MiniLMv2 general + task KD minus trained alone >= {GOAL_POINTS:g} points on dev and test: "
            f"dev {signed(goal['dev'])}, test {signed(goal['test'])} points: {verdict} "
            f"(n={seeds('MiniLMv2 general + task KD')} and n={seeds('trained alone')} seeds).")]
  for single, diff in result["two_teachers"].items():
    if None in diff.values():
      lines.append(f"- KD from both minus {single}: not measured yet.")
      continue
    better = [split for split in ("dev", "test") if diff[split] > 0]
    word = "beat it on " + " and ".join(better) if better else "do not beat it"
    lines.append(f"- KD from both minus {single}: dev {signed(diff['dev'])}, test {signed(diff['test'])} points; two "
                 f"teachers {word} (n={seeds('KD from both')} and n={seeds(single)} seeds).")
  return "\n".join(lines)


def _teacher(folder, config_path):
  done = os.path.exists(os.path.join(folder, "eval_results.json"))
  dev, test = table.scores_of(folder) if done else (None, None)
  return {"dir": folder, "dev": dev, "test": test, "minutes": table.minutes_of(folder) if done else None,
          "params": pipeline.encoder_params(config_path)}


def _machine():
  model = "unknown"
  try:
    with open("/proc/cpuinfo") as f:
      model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
  except OSError:
    pass
  load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
  return f"{model}, {os.cpu_count()} cores, load {load}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds for the rows to run")
  parser.add_argument("--rows", default=",".join(ROW_KEYS.values()),
                      help="comma-separated rows (names or keys) to run now; the table shows every finished run")
  parser.add_argument("--output_dir", default=os.path.join(ROOT, "experiments_output"),
                      help="runs go to <output_dir>/medium (the MPNet teacher: <output_dir>/medium_mpnet_alldata)")
  table.add_run_arguments(parser)
  args = parser.parse_args(argv)
  try:
    args.seeds = [int(s) for s in args.seeds.split(",")]
  except ValueError:
    sys.exit(f"--seeds={args.seeds!r}: give comma-separated integers")
  args.rows = table.parse_rows(args.rows, ROW_KEYS)
  return args


def main(argv=None):
  args = parse_args(argv)
  paths = layout(args.output_dir)
  threads = {"intra_op_threads": args.intra_op_threads or None, "inter_op_threads": args.inter_op_threads or None}
  start = time.time()
  if not args.report_only:
    run_rows(args.rows, args.seeds, paths, threads, waiting_step(pipeline.run_step))
  found = collect(paths["task_dir"])
  student_config = os.path.join(ROOT, STUDENT_CONFIG)
  params = pipeline.encoder_params(student_config)
  teachers = {
      "MiniLM-L6-H384 (2,000 reviews)": _teacher(paths["minilm_teacher"],
                                                 os.path.join(assets.minilm_dir(), "config.json")),
      "all-mpnet-base-v2 (10,250 reviews)": _teacher(paths["mpnet_teacher"],
                                                     os.path.join(assets.mpnet_dir(), "config.json"))}
  result = checks(found)
  machine = _machine()
  general = {"dir": paths["general"], "minutes": None}
  note = ""
  if os.path.exists(os.path.join(paths["general"], "training_summary.json")):
    summary = files.read_json(os.path.join(paths["general"], "training_summary.json"), "general student summary")
    general.update(minutes=table.minutes_of(paths["general"]), steps=summary["global_step"],
                   batch_size=summary["batch_size"], final_losses=summary["final_losses"])
    note = (f" The general student (MiniLMv2, R={RELATION_HEADS}) had {summary['global_step']} steps of "
            f"{summary['batch_size']} sequences, final loss {summary['final_losses']['total']:.4f}, "
            f"{general['minutes']:.0f} min.")
  title = (f"MiniLMv2 relations and two teachers on Rotten Tomatoes (scale {SCALE}, 2,000 train reviews, seq "
           f"{SETTINGS['seq'][TASK]}): student {STUDENT_CONFIG} ({params / 1e6:.1f}M, 6 heads) from MiniLM-L6-H384 "
           f"(12 heads)")
  report = (f"{title}\n\n{format_table(found, params, teachers)}\n\n{format_checks(result, found)}\n\n"
            f"Dev: best epoch's; test: the same checkpoint's. Minutes: wall clock per run from "
            f"training_summary.json.{note} "
            f"{'Rebuilt from the finished runs' if args.report_only else f'This call: {(time.time() - start) / 60:.0f} min'}"
            f" on {machine}.\n")
  print("\n" + report)
  os.makedirs(args.results_dir, exist_ok=True)
  stem = os.path.join(args.results_dir, "relations_table")
  with files.atomic_path(stem + ".md") as tmp, open(tmp, "w") as f:
    f.write(report)
  files.write_json(stem + ".json", {
      "task": TASK, "scale": SCALE, "settings": SETTINGS, "student_config": STUDENT_CONFIG, "student_params": params,
      "relation_heads": RELATION_HEADS, "general_dtype": GENERAL_DTYPE, "teacher_weights": TEACHER_WEIGHTS,
      "student_learning_rate": table.STUDENT_LEARNING_RATE, "general": general, "teachers": teachers,
      "rows": {row: dict(found[row], key=ROW_KEYS[row]) for row in found}, "checks": result,
      "machine": machine})


if __name__ == "__main__":
  main()
