"""`make demo`: the whole TinyBERT pipeline, offline, on the real assets, through the documented commands.

  1. The MiniLM-L6-H384 teacher is imported from its packaged Hugging Face folder.
  2. News articles become general-distillation data; a 4-layer TinyBERT student is general-distilled.
  3. Rotten Tomatoes is prepared; the teacher is fine-tuned on it; the student is task-distilled (both stages).
  4. The student's export is run on raw sentences, and a table compares teacher and student.

Every step is one of the scripts a user runs, called as a subprocess with the flags printed before it runs. A step
whose output is complete is skipped, and the training scripts resume from their checkpoints, so an interrupted
demo continues where it stopped. `DEMO_SCALE=small` (default, about 15-20 minutes on 2 cores) uses a slice of the
data and few steps; `DEMO_SCALE=full` uses all of it. Outputs go to `demo_output/` (or `DEMO_DIR`).
"""

import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from modeling import assets, build_encoder, load_config

ROOT = os.path.dirname(os.path.abspath(__file__))

SCALES = {
    # articles for general distillation, its steps and batch, max_seq_length, task examples per split, epochs.
    "small": {"articles": 400, "general_steps": 300, "general_batch": 16, "seq": 64, "task_examples": 2000, "teacher_epochs": 2,
                  "intermediate_epochs": 2, "prediction_epochs": 2, "batch": 32},
    "full": {"articles": None, "general_steps": 20000, "general_batch": 32, "seq": 128, "task_examples": None, "teacher_epochs": 3,
                 "intermediate_epochs": 10, "prediction_epochs": 3, "batch": 32},
}
LAYER_MAP = "2,3,5,6"  # 6 teacher layers onto 4: evenly spaced, the last layer always included.
SENTENCES = ["A gorgeous, witty, seductive movie.", "The plot is a mess and the acting is worse.",
             "It has its moments, but it never quite comes together."]


def step(title, script, args, done_file):
  """Runs one documented command unless its output is already complete."""
  print(f"\n=== {title}", flush=True)
  command = [sys.executable, os.path.join(ROOT, script)] + [f"--{k}={v}" for k, v in args.items() if v is not None]
  print("$ " + " ".join(shlex.quote(c if not c.startswith(ROOT) else os.path.relpath(c, ROOT)) for c in command),
        flush=True)
  if os.path.exists(done_file):
    print(f"(already done: {os.path.relpath(done_file, ROOT)})", flush=True)
    return
  start = time.time()
  result = subprocess.run(command, cwd=ROOT, check=False)
  if result.returncode:
    sys.exit(f"demo: step '{title}' failed (exit {result.returncode}); fix it and run `make demo` again to resume")
  print(f"({time.time() - start:.0f}s)", flush=True)


def latency_ms(saved_model_dir, seq, repeats=30):
  serve = tf.saved_model.load(saved_model_dir).signatures["serve_ids"]
  ones = tf.ones([1, seq], tf.int32)
  inputs = {"input_word_ids": ones, "input_mask": ones, "input_type_ids": tf.zeros_like(ones)}
  for _ in range(5):
    serve(**inputs)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    serve(**inputs)
    times.append(time.perf_counter() - start)
  return 1000 * float(np.median(times))


def count_params(config_path):
  return build_encoder(load_config(config_path)).count_params()


def main():
  scale_name = os.environ.get("DEMO_SCALE", "small")
  if scale_name not in SCALES:
    sys.exit(f"demo: DEMO_SCALE={scale_name!r}; choose one of {', '.join(SCALES)}")
  scale = SCALES[scale_name]
  out = os.path.abspath(os.environ.get("DEMO_DIR", os.path.join(ROOT, "demo_output", scale_name)))
  os.makedirs(out, exist_ok=True)
  teacher_dir = assets.minilm_dir()
  vocab = os.path.join(teacher_dir, "vocab.txt")
  student_config = os.path.join(ROOT, "configs", "tinybert_4l_312.json")
  seq = scale["seq"]
  print(f"demo at scale {scale_name!r} into {out}\nteacher: MiniLM-L6-H384 from {teacher_dir}")
  started = time.time()

  news = os.path.join(out, "news.txt")
  step("news articles -> BERT pretraining text", "prepare_dataset/news_to_text.py",
       {"output_file": news, "max_articles": scale["articles"]}, news)
  general_data = os.path.join(out, "general_data")
  step("1. prepare data for pretraining distillation", "prepare_dataset/create_distilled_pretraining_data.py",
       {"input_file": news, "output_file": os.path.join(general_data, "train.tfrecord"), "vocab_file": vocab,
        "max_seq_length": seq}, os.path.join(general_data, "meta.json"))
  general = os.path.join(out, "general_student")
  step("2. run pretraining distillation (MiniLM-L6 -> TinyBERT 4L-312)", "run_pretraining.py",
       {"data_dir": general_data, "output_dir": general, "config_path": student_config,
        "teacher_config_path": os.path.join(teacher_dir, "config.json"), "teacher_ckpt_path": teacher_dir,
        "max_seq_length": seq, "batch_size": scale["general_batch"], "epochs": 1,
        "steps_per_epoch": scale["general_steps"], "steps_per_loop": 25, "warmup_steps": scale["general_steps"] // 10,
        "learning_rate": 3e-4, "layer_map": LAYER_MAP, "seed": 1, "save_checkpoint_steps": 100,
        "init_embeddings_from_teacher": "true"},
       os.path.join(general, "training_summary.json"))
  task_data = os.path.join(out, "rotten_tomatoes_data")
  step("3. prepare data for finetuning distillation (Rotten Tomatoes)", "prepare_dataset/create_finetuning_data.py",
       {"task_name": "rotten_tomatoes", "vocab_path": vocab, "output_dir": task_data, "max_seq_length": seq,
        "max_examples": scale["task_examples"]}, os.path.join(task_data, "meta.json"))
  teacher = os.path.join(out, "teacher")
  step("teacher: fine-tune MiniLM-L6 on the task (run_finetuning.py without a teacher)", "run_finetuning.py",
       {"task_name": "rotten_tomatoes", "data_dir": task_data, "output_dir": teacher,
        "config_path": os.path.join(teacher_dir, "config.json"), "ckpt_path": teacher_dir, "max_seq_length": seq,
        "batch_size": scale["batch"], "epochs": scale["teacher_epochs"], "learning_rate": 5e-5, "seed": 1,
        "steps_per_loop": 10}, os.path.join(teacher, "training_summary.json"))
  student = os.path.join(out, "student")
  step("4. run finetuning distillation (intermediate, then prediction)", "run_finetuning.py",
       {"task_name": "rotten_tomatoes", "data_dir": task_data, "output_dir": student, "config_path": student_config,
        "teacher_config_path": os.path.join(teacher, "config.json"), "ckpt_path": general,
        "teacher_ckpt_path": teacher, "max_seq_length": seq, "batch_size": scale["batch"],
        "intermediate_epochs": scale["intermediate_epochs"], "prediction_epochs": scale["prediction_epochs"],
        "learning_rate": 5e-4, "layer_map": LAYER_MAP, "seed": 1, "steps_per_loop": 10, "export_tflite": "true"},
       os.path.join(student, "training_summary.json"))

  print("\n=== the exported student on raw sentences", flush=True)
  serve = tf.saved_model.load(os.path.join(student, "saved_model")).signatures["serving_default"]
  probabilities = serve(text=tf.constant(SENTENCES))["probabilities"].numpy()
  with open(os.path.join(task_data, "meta.json")) as f:
    labels = json.load(f)["label_list"]
  for sentence, p in zip(SENTENCES, probabilities):
    print(f"  {labels[int(p.argmax())]:>6} ({p.max():.2f})  {sentence}")

  rows = []
  for name, folder, config in (("teacher MiniLM-L6-H384", teacher, os.path.join(teacher, "config.json")),
                               ("student TinyBERT 4L-312", student, student_config)):
    with open(os.path.join(folder, "eval_results.json")) as f:
      results = json.load(f)
    rows.append((name, results["final_dev"]["accuracy"], count_params(config),
                 latency_ms(os.path.join(folder, "saved_model"), seq)))
  table = [f"| model | dev accuracy | encoder params | batch-1 latency (SavedModel, seq {seq}) |",
           "|---|---|---|---|"]
  table += [f"| {n} | {a:.4f} | {p / 1e6:.1f}M | {ms:.1f} ms |" for n, a, p, ms in rows]
  table.append(f"\nstudent keeps {100 * rows[1][1] / rows[0][1]:.1f}% of the teacher's accuracy with "
               f"{rows[0][2] / rows[1][2]:.1f}x fewer parameters and is {rows[0][3] / rows[1][3]:.1f}x faster "
               f"(DEMO_SCALE={scale_name}, {os.path.getsize(news) // 1000} kB of news text, "
               f"{(time.time() - started) / 60:.1f} min this run)")
  text = "\n".join(table)
  print("\n" + text)
  with open(os.path.join(out, "demo_results.md"), "w") as f:
    f.write(text + "\n")


if __name__ == "__main__":
  main()
