r"""A quality table in the TinyBERT paper's style, from real runs: a teacher and its 4-layer students on real tasks.

  python3 experiments/tinybert_table.py --intra_op_threads 1 --inter_op_threads 1      # the MiniLM table (medium)
  python3 experiments/tinybert_table.py --teacher mpnet --seeds 1 \
    --rows teacher,no,hinton,task,tinybert,init_from_teacher,tinybert_augmented         # the MPNet table, seed 1

Teachers (`--teacher`):
  minilm (default)  MiniLM-L6-H384 (22.7M) -> TinyBERT4 (`configs/tinybert_4l_312.json`, 14.4M), layer map 2,3,5,6;
                    Rotten Tomatoes and BBC News by default; outputs in experiments_output/<scale>/.
  mpnet             all-mpnet-base-v2 (109.5M, the TinyBERT paper's teacher size) -> the TinyBERT4-shaped MPNet
                    student (`configs/mpnet_4l_312.json`, on the teacher's vocab and specials), layer map 3,6,9,12;
                    Rotten Tomatoes and BBC News by default, IMDB on request; outputs in
                    experiments_output/<scale>_mpnet/.

Rows (`--rows` takes the names or the short keys in brackets; teacher, no, hinton, task and tinybert run by
default, the others only when named):
  teacher [teacher]          the teacher fine-tuned on the task (run_finetuning.py without a teacher); one run, seed 1
  no distillation [no]       the student trained on the task alone, from random initialisation
  Hinton KD [hinton]         prediction-layer distillation only (soft targets), from random initialisation
  task KD [task]             both task-distillation stages from random initialisation (no general distillation)
  task KD, stage 2 as long as alone [task_long]
                             the same with stage 2 given the epochs of the student trained alone (the collapse check
                             of experiments/README.md: does a random student collapse because stage 2 is short?)
  TinyBERT (general + task) [tinybert]
                             both task-distillation stages from the general-distilled student
  init from teacher [init_from_teacher]
                             both task-distillation stages from `--init_from_teacher` (no general distillation): the
                             student is narrower than the teacher, so it starts from the teacher's token, position
                             and segment embeddings projected onto their top principal directions (and W_h from the
                             same projection); its layers start random
  TinyBERT + augmentation [tinybert_augmented]
                             TinyBERT (general + task) trained on the train split plus `augment_copies` word-replaced
                             copies of each example (prepare_dataset/augment_data.py, GloVe candidates), learnt from
                             the teacher only (`--augmented_data`); its data is a folder of its own, data_augmented/
  layer copy [copy]          another student: half the teacher's layers at its width (COPY_STUDENTS: MPNet 6x768,
                             67M, about 2x faster than the teacher; MiniLM 3x384), started by `--init_from_teacher`
                             (DistilBERT's recipe: the teacher's embeddings and its layers g(m) = 2m copied), then
                             both task-distillation stages over the same layer map, at the teacher's learning rate
                             and in its dtype (a pretrained 768-wide stack, not random layers)
  layer copy + augmentation [copy_augmented]
                             the layer copy trained on the augmented data, as TinyBERT + augmentation is

The general-distilled student is made here too, from all the news articles (about 2.7M tokens), starting from the
teacher's projected embeddings (`run_pretraining.py --init_embeddings_from_teacher`, an addition to the paper's
recipe that matters when the text is this small). Every run is one of the documented commands, printed before it
runs, so each number can be reproduced by hand; a step whose completion file exists is skipped, so an interrupted
table resumes and runs made by hand with the same commands are picked up.

Hyperparameters are fixed in SCALES, chosen before the runs and not tuned on their dev sets, except the students'
learning rate 5e-4 (an earlier 1e-4 left the student trained alone at the majority class). Rows without
distillation get as many epochs as the two distillation stages together. Distillation rows share a cache of the
teacher's outputs on disk (`--cache_teacher_outputs`, <task>/teacher_cache/, keyed by the data, the teacher and
the batch size), which shuffles whole batches. Dev is the best epoch's, so it is selected on itself; test is the
same checkpoint's, untouched by any choice.

Scale `medium` gives both teachers the same data: the first 2,000 Rotten Tomatoes training reviews, a seeded 1,000
of BBC News' training articles (both at seq 64) and, for MPNet, a seeded 2,000 of IMDB's (`imdb_reviews`, at seq
128); dev and test are capped the same way (Rotten Tomatoes' are smaller than the cap, so they are whole). The
teacher fine-tunes on the same examples as its students, so what a distilled student gains over the student alone
comes from the teacher, not from labels the student never saw. experiments/README.md gives the minutes each row
took. Disk for the stage-1 cache with the MPNet teacher (`all`, float16): about 0.84 MB a row at seq 64 when the
text fills it (BBC News: 4.2 GB with augmentation), 0.63 MB for Rotten Tomatoes' shorter reviews (6.1 GB with
augmentation) and about 2.6 MB at seq 128 (IMDB: about 26 GB with augmentation).
The distillation rows share the caches (Hinton KD its own logits), so seeds 2 and 3 cost only their epochs. The
general student (400 steps of 32 at seq 64, bfloat16) is made once for every task. A finished run's folder keeps its
best checkpoint; `--prune_checkpoints` deletes its resume checkpoints once it has finished (an MPNet teacher's are
1.3 GB each, a stage-1 student's about 0.5 GB with tf.data's shuffle buffer).

Results go to experiments/results/tinybert_table.{md,json,png} (MiniLM) or tinybert_table_mpnet.{md,json,png},
with `_<pooling>` added to the name unless `--pooling first_token` (`--results_dir` changes the folder). The table
holds every finished run of the selected tasks, all seeds found on disk, and keeps the runs an earlier results file
recorded whose folders are gone (a run on disk wins; `--forget_recorded` drops them): seeds run in another output
folder or on another machine join the table. `--report_only` rebuilds it without running anything.
"""

import argparse
import functools
import json
import os
import re
import shutil
import statistics
import sys
import time

from modeling import assets, cli, files, load_config, pipeline

ROOT = pipeline.ROOT

# Per teacher: its name, its folder, the student config, and the output folder's suffix after the scale's name.
TEACHERS = {
    "minilm": ("MiniLM-L6-H384", assets.minilm_dir, "configs/tinybert_4l_312.json", ""),
    "mpnet": ("all-mpnet-base-v2", assets.mpnet_dir, "configs/mpnet_4l_312.json", "_mpnet"),
}
# Per teacher: the equal-width student of the layer-copy rows (half the teacher's layers).
COPY_STUDENTS = {"minilm": "configs/minilm_3l_384.json", "mpnet": "configs/mpnet_6l_768.json"}
DEFAULT_TASKS = {"minilm": "rotten_tomatoes,bbc_news", "mpnet": "rotten_tomatoes,bbc_news"}

# SCALES[scale][teacher]: task_examples caps each split (None: all; for SORTED_TASKS a cap takes a seeded random
# subset); seq per task; teacher (epochs, learning rate) per task, with its dtype and progress
# interval; general: the general-distillation run; epochs: the rows without task distillation; intermediate and
# prediction epochs: the two task-distillation stages; cache: --cache_teacher_outputs per task (copy_cache: for the
# layer-copy rows, whose 6 mapped 768-wide layers take about 1.1 MB a row at seq 64 and 3.7 MB at seq 128);
# augment_copies: augment_data.py --num_augmented.
SCALES = {
    "medium": {
        "minilm": {"task_examples": {"rotten_tomatoes": 2000, "bbc_news": 1000},
                   "seq": {"rotten_tomatoes": 64, "bbc_news": 64},
                   "teacher": {"rotten_tomatoes": (3, 5e-5), "bbc_news": (3, 5e-5)},
                   "teacher_dtype": None, "teacher_steps_per_loop": 20,
                   "general": {"steps": 600, "batch": 32, "seq": 128, "learning_rate": 3e-4, "dtype": None},
                   "epochs": 6, "intermediate_epochs": 3, "prediction_epochs": 3, "batch": 32,
                   "cache": {"rotten_tomatoes": "all", "bbc_news": "all"},
                   "copy_cache": {"rotten_tomatoes": "all", "bbc_news": "all"}, "augment_copies": 4},
        "mpnet": {"task_examples": {"rotten_tomatoes": 2000, "bbc_news": 1000, "imdb_reviews": 2000},
                  "seq": {"rotten_tomatoes": 64, "bbc_news": 64, "imdb_reviews": 128},
                  "teacher": {"rotten_tomatoes": (3, 3e-5), "bbc_news": (3, 3e-5), "imdb_reviews": (2, 3e-5)},
                  "teacher_dtype": "bfloat16", "teacher_steps_per_loop": 10,
                  "general": {"steps": 400, "batch": 32, "seq": 64, "learning_rate": 3e-4, "dtype": "bfloat16"},
                  "epochs": 6, "intermediate_epochs": 3, "prediction_epochs": 3, "batch": 32,
                  "cache": {"rotten_tomatoes": "all", "bbc_news": "all", "imdb_reviews": "all"},
                  "copy_cache": {"rotten_tomatoes": "all", "bbc_news": "all", "imdb_reviews": "logits"},
                  "augment_copies": 4},
    },
}
# Scale `full` (the paper's lengths; never run end to end here) differs from `medium` in these settings only.
_FULL_COMMON = {"epochs": 13, "intermediate_epochs": 10, "prediction_epochs": 3, "augment_copies": 20}
SCALES["full"] = {
    "minilm": dict(SCALES["medium"]["minilm"], **_FULL_COMMON,
                   task_examples={"rotten_tomatoes": None, "bbc_news": None},
                   seq={"rotten_tomatoes": 128, "bbc_news": 256},
                   general={"steps": 20000, "batch": 32, "seq": 256, "learning_rate": 1e-4, "dtype": None}),
    "mpnet": dict(SCALES["medium"]["mpnet"], **_FULL_COMMON,
                  task_examples={"rotten_tomatoes": None, "bbc_news": None, "imdb_reviews": None},
                  seq={"rotten_tomatoes": 128, "bbc_news": 256, "imdb_reviews": 256},
                  teacher={"rotten_tomatoes": (3, 2e-5), "bbc_news": (3, 2e-5), "imdb_reviews": (2, 2e-5)},
                  general={"steps": 20000, "batch": 32, "seq": 128, "learning_rate": 1e-4, "dtype": "bfloat16"},
                  cache={"rotten_tomatoes": "logits", "bbc_news": "logits", "imdb_reviews": "logits"},
                  copy_cache={"rotten_tomatoes": "logits", "bbc_news": "logits", "imdb_reviews": "logits"}),
}
# Row name -> short key, which also names its run folders <task>/<key>_seed<N> (and <task>/teacher).
ROW_KEYS = {"teacher": "teacher", "no distillation": "no", "Hinton KD": "hinton", "task KD": "task",
            "task KD, stage 2 as long as alone": "task_long",
            "TinyBERT (general + task)": "tinybert", "init from teacher": "init_from_teacher",
            "TinyBERT + augmentation": "tinybert_augmented", "layer copy": "copy",
            "layer copy + augmentation": "copy_augmented"}
ROWS = tuple(ROW_KEYS)
DEFAULT_ROWS = ("teacher", "no distillation", "Hinton KD", "task KD", "TinyBERT (general + task)")
GENERAL_ROWS = ("TinyBERT (general + task)", "TinyBERT + augmentation")
COPY_ROWS = ("layer copy", "layer copy + augmentation")
STUDENT_LEARNING_RATE = 5e-4
# Their files are sorted by class: a cap on the examples takes a seeded random subset (--sample_examples).
SORTED_TASKS = ("bbc_news", "imdb_reviews")
TEACHER_SEED = 1
AUGMENT_SEED = 1
STUDENT_STEPS_PER_LOOP = 20


def scores_of(folder):
  """(dev, test) primary metric of a finished run: both from the checkpoint of its best dev epoch."""
  with open(os.path.join(folder, "eval_results.json")) as f:
    results = json.load(f)
  metric = results["primary_metric"]
  return results["final_dev"][metric], results.get("test", {}).get(metric)


def minutes_of(folder):
  """Wall-clock minutes of a finished training run (training_summary.json's `seconds`), or None if not recorded."""
  path = os.path.join(folder, "training_summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    seconds = json.load(f).get("seconds")
  return None if seconds is None else seconds / 60


def parse_rows(spec, row_keys=None):
  """The rows named in `spec` (comma-separated names or keys, any case), in table order; exits on an unknown one.

  Args:
    spec: the `--rows` value.
    row_keys: {row name: short key} in table order (default: this table's `ROW_KEYS`).
  """
  row_keys = row_keys or ROW_KEYS
  by_name = {name.lower(): name for name in row_keys} | {key: name for name, key in row_keys.items()}
  wanted = set()
  for item in filter(None, (x.strip().lower() for x in spec.split(","))):
    if item not in by_name:
      sys.exit(f"--rows: unknown row {item!r}; rows are {', '.join(f'{n!r} ({k})' for n, k in row_keys.items())}")
    wanted.add(by_name[item])
  if not wanted:
    sys.exit(f"--rows={spec!r} names no row")
  return [row for row in row_keys if row in wanted]


def run_general(settings, out, teacher_name, teacher_dir, student_config, layer_map, threads, step,
                folder="general_student", loss_flags=None):
  """News text -> general-distillation records -> the general-distilled student, as in the README's commands.

  The text and its records are shared by every general student of `out`; the student goes to <out>/<folder>, and
  `loss_flags` (e.g. `intermediate_loss`) are added to its run_pretraining.py command.
  """
  general = settings["general"]
  news = os.path.join(out, "news.txt")
  step("general: news articles -> text", "prepare_dataset/news_to_text.py", {"output_file": news}, news)
  data = os.path.join(out, "general_data")
  step("general: prepare", "prepare_dataset/create_distilled_pretraining_data.py",
       {"input_file": news, "output_file": os.path.join(data, "train.tfrecord"),
        "vocab_file": os.path.join(teacher_dir, "vocab.txt"), "max_seq_length": general["seq"]},
       os.path.join(data, "meta.json"))
  student = os.path.join(out, folder)
  step(f"general: distil {teacher_name} -> {os.path.basename(student_config)[:-5]}", "run_pretraining.py",
       dict(threads, data_dir=data, output_dir=student, config_path=student_config,
            teacher_config_path=os.path.join(teacher_dir, "config.json"), teacher_ckpt_path=teacher_dir,
            max_seq_length=general["seq"], batch_size=general["batch"], epochs=1, steps_per_epoch=general["steps"],
            steps_per_loop=25, warmup_steps=general["steps"] // 10, learning_rate=general["learning_rate"],
            layer_map=layer_map, seed=1, save_checkpoint_steps=100, init_embeddings_from_teacher=True,
            dtype=general["dtype"], **(loss_flags or {})),
       os.path.join(student, "training_summary.json"))
  return student


def _prepare(task, settings, teacher_dir, output_dir, step, augmented_file=None):
  """create_finetuning_data.py for `task` with the teacher's vocab (and the augmented copies, if given)."""
  examples = settings["task_examples"][task]
  step(f"{task}: prepare" + (" with augmented copies" if augmented_file else ""),
       "prepare_dataset/create_finetuning_data.py",
       {"task_name": task, "vocab_path": os.path.join(teacher_dir, "vocab.txt"), "output_dir": output_dir,
        "max_seq_length": settings["seq"][task], "max_examples": examples,
        "sample_examples": "true" if task in SORTED_TASKS and examples else None, "augmented_file": augmented_file},
       os.path.join(output_dir, "meta.json"))


def _augment(task, settings, task_dir, teacher_dir, step):
  """augment_data.py's copies of the train split, then the data folder with them; returns that folder."""
  examples = settings["task_examples"][task]
  augmented = os.path.join(task_dir, "augmented")
  step(f"{task}: augment (GloVe, {settings['augment_copies']} copies per example)", "prepare_dataset/augment_data.py",
       {"task_name": task, "output_dir": augmented, "num_augmented": settings["augment_copies"], "seed": AUGMENT_SEED,
        "max_examples": examples, "sample_examples": "true" if task in SORTED_TASKS and examples else None},
       os.path.join(augmented, "augment_meta.json"))
  data = os.path.join(task_dir, "data_augmented")
  _prepare(task, settings, teacher_dir, data, step, augmented_file=os.path.join(augmented, "train_augmented.tsv"))
  return data


def finished_runs(task_dir, key):
  """{seed: folder} of the finished runs `<key>_seed<N>` in `task_dir`."""
  pattern = re.compile(rf"{re.escape(key)}_seed(\d+)")
  runs = {}
  if os.path.isdir(task_dir):
    for name in os.listdir(task_dir):
      match = pattern.fullmatch(name)
      if match and os.path.exists(os.path.join(task_dir, name, "training_summary.json")):
        runs[int(match.group(1))] = os.path.join(task_dir, name)
  return dict(sorted(runs.items()))


RESUME_CHECKPOINTS = ("checkpoints", os.path.join("intermediate", "checkpoints"))


def prune_resume_checkpoints(folder):
  """Deletes a finished run's resume checkpoints (`checkpoints/`, `intermediate/checkpoints/`), keeping `best/` and
  the results; an unfinished run (no training_summary.json) keeps everything. Returns the bytes freed."""
  if not os.path.exists(os.path.join(folder, "training_summary.json")):
    return 0
  freed = 0
  for name in RESUME_CHECKPOINTS:
    path = os.path.join(folder, name)
    if os.path.isdir(path):
      freed += sum(os.path.getsize(os.path.join(root, f)) for root, _, names in os.walk(path) for f in names)
      shutil.rmtree(path)
  return freed


def pruning(step):
  """`step` that then prunes the resume checkpoints of a finished training run (`--prune_checkpoints`)."""
  def run(title, script, args, done_file):
    ran = step(title, script, args, done_file)
    if script == "run_finetuning.py":
      freed = prune_resume_checkpoints(args["output_dir"])
      if freed:
        print(f"(deleted {freed / 1e9:.2f} GB of resume checkpoints in {args['output_dir']})", flush=True)
    return ran
  return run


def general_pooling(general_student):
  """What `--pooling=auto` reads from a run a student starts from (the general student, or the fine-tuned teacher of
  a layer copy): the pooling the run recorded in its config.json (`mean` for a general student since
  run_pretraining.py records it), else the first token (general students made before that)."""
  found = cli.recorded_pooling(general_student) if general_student and os.path.isdir(general_student) else None
  return found[0] if found else "first_token"


def row_pooling(row, pooling, general="first_token", teacher="first_token"):
  """What the student's head reads in `row` under `--pooling`: `auto` resolves as run_finetuning.py does for this
  table's students: `general` (`general_pooling`) from the general student, `teacher` (what the fine-tuned teacher
  recorded) for a layer copy of it, else (random layers) the mean."""
  if pooling != "auto":
    return pooling
  return general if row in GENERAL_ROWS else teacher if row in COPY_ROWS else "mean"


def run_key(row, pooling, general="first_token", teacher="first_token"):
  """The run folders' stem of `row`: its short key, plus `_mean` when its head reads the mean."""
  return ROW_KEYS[row] + ("_mean" if row_pooling(row, pooling, general, teacher) == "mean" else "")


def run_task(task, seeds, settings, out, general_student, teacher_dir, student_config, layer_map, threads, rows,
             step, pooling="auto", copy=None):
  """Runs the selected rows of `task` (the steps skip what is done); returns the finished runs' results.

  `copy` is (config path, layer map) of the layer-copy rows' student.

  Returns:
    {"metric": the primary metric, "scores": {row: [(dev, test), ...]}, "minutes": {row: [minutes, ...]},
    "seeds": {row: [seed, ...]}}, over every finished run of the row (the teacher: its one run).
  """
  seq = settings["seq"][task]
  task_dir = os.path.join(out, task)
  data = os.path.join(task_dir, "data")
  _prepare(task, settings, teacher_dir, data, step)
  common = dict(threads, task_name=task, data_dir=data, max_seq_length=seq, batch_size=settings["batch"],
                export_dir="-")
  teacher = os.path.join(task_dir, "teacher")
  if any(row != "no distillation" for row in rows):
    epochs, learning_rate = settings["teacher"][task]
    step(f"{task}: teacher", "run_finetuning.py",
         dict(common, output_dir=teacher, config_path=os.path.join(teacher_dir, "config.json"),
              ckpt_path=teacher_dir, epochs=epochs, learning_rate=learning_rate, seed=TEACHER_SEED,
              steps_per_loop=settings["teacher_steps_per_loop"], dtype=settings["teacher_dtype"]),
         os.path.join(teacher, "training_summary.json"))
  student = dict(common, config_path=student_config, learning_rate=STUDENT_LEARNING_RATE,
                 steps_per_loop=STUDENT_STEPS_PER_LOOP)
  distill = dict(student, teacher_config_path=os.path.join(teacher, "config.json"), teacher_ckpt_path=teacher,
                 layer_map=layer_map, cache_teacher_outputs=settings["cache"][task],
                 teacher_cache_dir=os.path.join(task_dir, "teacher_cache"))
  stages = {"intermediate_epochs": settings["intermediate_epochs"], "prediction_epochs": settings["prediction_epochs"]}
  augmented = functools.cache(lambda: _augment(task, settings, task_dir, teacher_dir, step))
  copied = None if copy is None else dict(
      distill, config_path=copy[0], layer_map=copy[1], init_from_teacher=True, learning_rate=settings["teacher"][task][1],
      cache_teacher_outputs=settings["copy_cache"][task], dtype=settings["teacher_dtype"], **stages)
  runs = {
      "no distillation": lambda: dict(student, epochs=settings["epochs"]),
      "Hinton KD": lambda: dict(distill, distill_stage="prediction", prediction_epochs=settings["epochs"]),
      "task KD": lambda: dict(distill, **stages),
      "task KD, stage 2 as long as alone": lambda: dict(distill, **dict(stages, prediction_epochs=settings["epochs"])),
      "TinyBERT (general + task)": lambda: dict(distill, ckpt_path=general_student, **stages),
      "init from teacher": lambda: dict(distill, init_from_teacher=True, **stages),
      "TinyBERT + augmentation": lambda: dict(distill, ckpt_path=general_student, augmented_data=True, **stages,
                                              data_dir=augmented()),
      "layer copy": lambda: copied,
      "layer copy + augmentation": lambda: dict(copied, augmented_data=True, data_dir=augmented()),
  }
  # Made once per row: the augmentation row prepares its data here, before any run.
  args_of = {row: make_args() for row, make_args in runs.items() if row in rows}
  general, taught = general_pooling(general_student), general_pooling(teacher)
  for seed in seeds:  # Seed by seed, so that a first complete table comes early.
    for row, args in args_of.items():
      folder = os.path.join(task_dir, f"{run_key(row, pooling, general, taught)}_seed{seed}")
      step(f"{task}: {row}, seed {seed}", "run_finetuning.py",
           dict(args, output_dir=folder, seed=seed, pooling=row_pooling(row, pooling, general, taught)),
           os.path.join(folder, "training_summary.json"))
  result = {"metric": _metric(data), "scores": {}, "minutes": {}, "seeds": {}}
  found = {row: finished_runs(task_dir, run_key(row, pooling, general, taught)) for row in runs}
  if all(os.path.exists(os.path.join(teacher, name)) for name in ("training_summary.json", "eval_results.json")):
    # Finished: a teacher still training has written its epochs' eval_results.json only.
    found = {"teacher": {TEACHER_SEED: teacher}} | found
  for row, by_seed in found.items():
    if by_seed:
      result["scores"][row] = [scores_of(folder) for folder in by_seed.values()]
      result["minutes"][row] = [minutes_of(folder) for folder in by_seed.values()]
      result["seeds"][row] = list(by_seed)
  return result


def keep_recorded_runs(results, recorded):
  """Adds to `results` the runs an earlier results file recorded whose folders are no longer on disk.

  A run on disk wins over the recorded run of the same row and seed (the teacher is seed 1). So the table survives
  a deleted or new output folder, and seeds run on another machine join the ones recorded before.

  Args:
    results: {task: run_task's result}, changed in place.
    recorded: the `tasks` entry of the earlier results JSON.

  Returns:
    {task: {row: [seed, ...]}} of the runs taken from `recorded`.
  """
  kept = {}
  for task, result in results.items():
    earlier = recorded.get(task, {})
    for row, seeds in earlier.get("seeds", {}).items():
      if row not in ROWS:
        continue
      on_disk = set(result["seeds"].get(row, []))
      runs = [(seed, tuple(score), minutes) for seed, score, minutes
              in zip(seeds, earlier["scores"][row], earlier["minutes"][row]) if seed not in on_disk]
      if not runs:
        continue
      kept.setdefault(task, {})[row] = [seed for seed, _, _ in runs]
      merged = sorted(list(zip(result["seeds"].get(row, []), result["scores"].get(row, []),
                               result["minutes"].get(row, []))) + runs, key=lambda run: run[0])
      result["seeds"][row] = [seed for seed, _, _ in merged]
      result["scores"][row] = [score for _, score, _ in merged]
      result["minutes"][row] = [minutes for _, _, minutes in merged]
  return kept


def _metric(data):
  meta = os.path.join(data, "meta.json")
  if not os.path.exists(meta):
    return "accuracy"  # Not prepared yet (--report_only): no run to show either.
  with open(meta) as f:
    return json.load(f)["primary_metric"]


def _report_step(title, script, args, done_file):
  """With --report_only: nothing runs; unfinished runs are left out of the table."""
  if not os.path.exists(done_file):
    print(f"(not finished, left out: {title})")
  return False


def _cell(values):
  spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
  return f"{statistics.mean(values):.4f}{spread}"


def format_table(results, params):
  """One row per model; per task: dev (best epoch) and test, each mean ± std over the seeds, and % of the teacher.

  Args:
    results: {task: run_task's result}.
    params: {row: encoder parameters}.
  """
  header, rule = ["model", "params"], ["---", "---"]
  for task, result in results.items():
    metric = result["metric"]
    header += [f"{task} dev {metric}", f"{task} test {metric}", f"% of teacher ({task} dev / test)"]
    rule += ["---"] * 3
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
  for row in ROWS:
    cells = [row, f"{params[row] / 1e6:.1f}M"]
    for result in results.values():
      runs = result["scores"].get(row, [])
      dev = [d for d, _ in runs]
      test = [t for _, t in runs if t is not None]
      teacher = result["scores"].get("teacher", [])
      if not dev:
        cells += ["n/a"] * 3
        continue
      n = f" (n={len(dev)})" if row != "teacher" else ""
      cells += [_cell(dev) + n, _cell(test) if test else "n/a"]
      if teacher and test:
        cells.append(f"{100 * statistics.mean(dev) / teacher[0][0]:.1f}% / "
                     f"{100 * statistics.mean(test) / teacher[0][1]:.1f}%")
      else:
        cells.append("n/a")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def format_compute(results, general_minutes=None):
  """Mean wall-clock minutes of one finished run per row and task (from training_summary.json)."""
  lines = ["| run | " + " | ".join(f"{task} min/run" for task in results) + " |", "|---|" + "---|" * len(results)]
  if general_minutes is not None:
    lines.append(f"| general student (once) | {general_minutes:.0f} |" + " |" * (len(results) - 1))
  for row in ROWS:
    cells = []
    for result in results.values():
      minutes = [m for m in result["minutes"].get(row, []) if m is not None]
      cells.append(f"{statistics.mean(minutes):.0f} (n={len(minutes)})" if minutes else "n/a")
    if any(cell != "n/a" for cell in cells):
      lines.append(f"| {row} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot(results, path, title):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
  for ax, (task, result) in zip(axes[0], results.items()):
    dev = {r: [d for d, _ in result["scores"].get(r, [])] for r in ROWS}
    means = [statistics.mean(dev[r]) if dev[r] else 0 for r in ROWS]
    errors = [statistics.stdev(dev[r]) if len(dev[r]) > 1 else 0 for r in ROWS]
    ax.bar(range(len(ROWS)), means, yerr=errors, color=["#555"] + ["#4a7ab0"] * (len(ROWS) - 1), capsize=4)
    ax.set_xticks(range(len(ROWS)), [r.replace(" (", "\n(").replace(" + ", "\n+ ") for r in ROWS], rotation=30,
                  ha="right", fontsize=8)
    ax.set_ylim(max(0, min([m for m in means if m] or [0.5]) - 0.1), 1.0)
    ax.set_title(f"{task}: dev {result['metric']}")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  with files.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=100, format="png")
  plt.close(fig)


def results_stem(teacher, pooling="first_token"):
  """File name stem of the results: MiniLM keeps the table's original name; `--pooling` other than the first token
  adds its name (the table of the original runs was made with first-token heads)."""
  stem = "tinybert_table" if teacher == "minilm" else f"tinybert_table_{teacher}"
  return stem if pooling == "first_token" else f"{stem}_{pooling}"


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--teacher", choices=sorted(TEACHERS), default="minilm")
  parser.add_argument("--scale", choices=sorted(SCALES), default="medium")
  parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds for the student rows to run")
  parser.add_argument("--tasks", default=None, help="comma-separated tasks (default: "
                      + "; ".join(f"{t}: {v}" for t, v in DEFAULT_TASKS.items()) + ")")
  parser.add_argument("--rows", default=",".join(ROW_KEYS[r] for r in DEFAULT_ROWS),
                      help="comma-separated rows (names or keys) to run now; the table shows every finished run")
  parser.add_argument("--output_dir", default=os.path.join(ROOT, "experiments_output"),
                      help="runs go to <output_dir>/<scale>[_<teacher>] (MiniLM: no suffix)")
  parser.add_argument("--prune_checkpoints", action="store_true",
                      help="once a training run has finished, delete its resume checkpoints (checkpoints/ and "
                      "intermediate/checkpoints/; best/ and the results stay): an MPNet teacher's are 1.3 GB each")
  parser.add_argument("--forget_recorded", action="store_true",
                      help="build the table from the runs on disk only; by default, runs the results file recorded "
                      "earlier whose folders are gone (a deleted or another output folder) stay in the table")
  parser.add_argument("--pooling", choices=("auto", "first_token", "mean"), default="auto",
                      help="run_finetuning.py's --pooling for the student rows; auto: mean for the rows that start "
                      "from random weights; from the general student, the pooling its config.json records (mean), "
                      "or the first token for a general student that records none. Runs whose head reads the "
                      "mean live in <key>_mean_seed<N>, the others in <key>_seed<N>")
  add_run_arguments(parser)
  return parser.parse_args(argv)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
  """The options every experiments table shares: where results go, the runs' threads, and --report_only."""
  parser.add_argument("--results_dir", default=os.path.join(ROOT, "experiments", "results"))
  parser.add_argument("--intra_op_threads", type=int, default=0, help="passed to every training run")
  parser.add_argument("--inter_op_threads", type=int, default=0, help="passed to every training run")
  parser.add_argument("--report_only", action="store_true", help="build the table from finished runs only")


def main(argv=None):
  args = parse_args(argv)
  settings = SCALES[args.scale][args.teacher]
  teacher_name, teacher_folder, student_config, suffix = TEACHERS[args.teacher]
  student_config = os.path.join(ROOT, student_config)
  try:
    seeds = [int(s) for s in args.seeds.split(",")]
  except ValueError:
    sys.exit(f"--seeds={args.seeds!r}: give comma-separated integers")
  tasks = [t.strip() for t in (args.tasks or DEFAULT_TASKS[args.teacher]).split(",") if t.strip()]
  unknown = [t for t in tasks if t not in settings["seq"]]
  if unknown or not tasks:
    sys.exit(f"--tasks: {', '.join(unknown) or 'none given'}; with --teacher {args.teacher} at scale {args.scale} "
             f"the tasks are {', '.join(settings['seq'])}")
  rows = parse_rows(args.rows)
  out = os.path.join(args.output_dir, args.scale + suffix)
  threads = {"intra_op_threads": args.intra_op_threads or None, "inter_op_threads": args.inter_op_threads or None}
  teacher_dir = teacher_folder()
  teacher_config = os.path.join(teacher_dir, "config.json")
  teacher_layers = load_config(teacher_config).num_hidden_layers
  copy_config = os.path.join(ROOT, COPY_STUDENTS[args.teacher])
  layer_map, copy_layer_map = (
      ",".join(map(str, pipeline.spread_layer_map(teacher_layers, load_config(config).num_hidden_layers)))
      for config in (student_config, copy_config))
  step = _report_step if args.report_only else pipeline.run_step
  if args.prune_checkpoints and not args.report_only:
    step = pruning(step)
  start = time.time()
  general_student = os.path.join(out, "general_student")
  if not args.report_only and any(row in rows for row in GENERAL_ROWS):
    run_general(settings, out, teacher_name, teacher_dir, student_config, layer_map, threads, step)
  results = {task: run_task(task, seeds, settings, out, general_student, teacher_dir, student_config, layer_map,
                            threads, rows, step, args.pooling, copy=(copy_config, copy_layer_map))
             for task in tasks}
  stem = os.path.join(args.results_dir, results_stem(args.teacher, args.pooling))
  kept = {}
  if not args.forget_recorded and os.path.exists(stem + ".json"):
    with open(stem + ".json") as f:
      kept = keep_recorded_runs(results, json.load(f).get("tasks", {}))
  params = {row: pipeline.encoder_params(copy_config if row in COPY_ROWS else student_config) for row in ROWS}
  params["teacher"] = pipeline.encoder_params(teacher_config)
  title = (f"Teacher {teacher_name} ({params['teacher'] / 1e6:.1f}M) -> student "
           f"{os.path.relpath(student_config, ROOT)} ({params['no distillation'] / 1e6:.1f}M), layer map {layer_map}; "
           f"layer copy {os.path.relpath(copy_config, ROOT)} ({params['layer copy'] / 1e6:.1f}M), layer map "
           f"{copy_layer_map}")
  table = format_table(results, params)
  general_note, general_minutes = "", None
  general_summary = os.path.join(general_student, "training_summary.json")
  if os.path.exists(general_summary):
    with open(general_summary) as f:
      summary = json.load(f)
    general_minutes = minutes_of(general_student)
    general_note = (f" The general-distilled student had {summary['global_step']} steps of "
                    f"{summary['batch_size']} sequences (final loss {summary['final_losses']['total']:.2f}).")
  found = sorted({seed for r in results.values() for row, s in r["seeds"].items() if row != "teacher" for seed in s})
  note = (f"Scale `{args.scale}`; student rows over the seeds in the table, {found} (the teacher is one run, seed "
          f"{TEACHER_SEED}).{general_note} "
          f"{'Rebuilt from the finished runs' if args.report_only else f'{(time.time() - start) / 60:.0f} min'}. "
          f"Command: `python3 experiments/tinybert_table.py --teacher {args.teacher} --scale {args.scale} "
          f"--seeds {args.seeds} --tasks {','.join(tasks)} --rows {','.join(ROW_KEYS[r] for r in rows)}"
          f"{'' if args.pooling == 'auto' else f' --pooling {args.pooling}'}`.")
  if kept:
    note += (" The general student described here and its minutes below are the one on disk; kept runs may come from"
             " another. Runs recorded by the results file before and no longer on disk, kept: " + "; ".join(
        f"{task}: " + ", ".join(f"{row} seed {', '.join(map(str, seeds))}" for row, seeds in rows_kept.items())
        for task, rows_kept in kept.items()) + ".")
  compute = format_compute(results, general_minutes)
  report = f"{title}\n\n{table}\n\n{note}\n\nTraining time (wall clock, from training_summary.json):\n\n{compute}\n"
  print("\n" + report)
  os.makedirs(args.results_dir, exist_ok=True)
  with files.atomic_path(stem + ".md") as tmp, open(tmp, "w") as f:
    f.write(report)
  files.write_json(stem + ".json", {
      "teacher": teacher_name, "teacher_dir": teacher_dir, "student_config": os.path.relpath(student_config, ROOT),
      "params": params, "scale": args.scale, "settings": settings, "student_learning_rate": STUDENT_LEARNING_RATE,
      "layer_map": layer_map, "copy_student_config": os.path.relpath(copy_config, ROOT),
      "copy_layer_map": copy_layer_map, "general_minutes": general_minutes, "tasks": results,
      "kept_from_results_file": kept})
  plot(results, stem + ".png", title)


if __name__ == "__main__":
  main()
