"""`make demo`: the whole TinyBERT pipeline, offline, on the real assets, through the documented commands.

  1. The teacher is imported from its packaged Hugging Face folder.
  2. News articles become general-distillation data; a 4-layer, 312-wide student is general-distilled.
  3. `distill.py` takes it from there on Rotten Tomatoes: it prepares the data, fine-tunes the teacher, distils the
     general student on the task (both stages), exports it and measures teacher and student.
  4. The student's export is run on raw sentences, and the table compares teacher and student.

Every step is one of the scripts a user runs, called as a subprocess with the flags printed before it runs. A step
whose output is complete is skipped, and the training scripts resume from their checkpoints, so an interrupted
demo continues where it stopped. Outputs go to `demo_output/<scale>/` (or `DEMO_DIR`).

Scales (`DEMO_SCALE`):
  small (default, about 15-20 minutes on 2 cores): MiniLM-L6-H384 (22.7M) into TinyBERT4, on a slice of the data.
  full: all-mpnet-base-v2 (109.5M, the TinyBERT paper's teacher size) into the TinyBERT4-shaped MPNet student
    (configs/mpnet_4l_312.json, on the teacher's vocab and specials), on all of the data. Hours on a CPU.

Why the small demo keeps MiniLM: one MPNet-base fine-tuning step at batch 32, sequence 64 was measured at 24-44 s
(median 27 s, 5 steps) on this 2-core machine under a load of 6-10 from other jobs, and about 9 s would be expected
unloaded. The small demo fine-tunes its teacher for 2 epochs of 2,000 reviews (126 steps): 19 minutes unloaded and
about an hour as measured, before the general distillation (300 steps with the frozen teacher's forward pass) and the
task distillation. MiniLM-L6 fine-tunes the same steps in a few minutes, so only the full demo uses the big teacher.
Measured 2026-11-29: one epoch of its fine-tuning on all 10,250 Rotten Tomatoes reviews (seq 64, bfloat16) took 68
minutes on the same machine under a load of 7-15 (experiments/README.md).
"""

import json
import os
import sys
import time

import tensorflow as tf

from modeling import assets, files, load_config, pipeline
from modeling.errors import UserError

ROOT = pipeline.ROOT

TEACHERS = {
    # name, folder, student config, peak learning rate of its fine-tuning.
    "minilm": ("MiniLM-L6-H384", assets.minilm_dir, "configs/tinybert_4l_312.json", 5e-5),
    "mpnet": ("all-mpnet-base-v2", assets.mpnet_dir, "configs/mpnet_4l_312.json", 2e-5),
}
SCALES = {
    # teacher; articles for general distillation, its steps and batch; max_seq_length; task examples per split;
    # epochs of teacher fine-tuning and of the two task-distillation stages; training batch.
    "small": {"teacher": "minilm", "articles": 400, "general_steps": 300, "general_batch": 16, "seq": 64,
              "task_examples": 2000, "teacher_epochs": 2, "intermediate_epochs": 2, "prediction_epochs": 2,
              "batch": 32},
    "full": {"teacher": "mpnet", "articles": None, "general_steps": 20000, "general_batch": 32, "seq": 128,
             "task_examples": None, "teacher_epochs": 3, "intermediate_epochs": 10, "prediction_epochs": 3,
             "batch": 32},
}
SENTENCES = ["A gorgeous, witty, seductive movie.", "The plot is a mess and the acting is worse.",
             "It has its moments, but it never quite comes together."]


def run_demo(scale_name: str, out: str) -> str:
  """Runs the demo at `scale_name` into `out`; returns the final table."""
  scale = SCALES[scale_name]
  teacher_name, teacher_folder, student_config, teacher_learning_rate = TEACHERS[scale["teacher"]]
  teacher_dir = teacher_folder()
  vocab = os.path.join(teacher_dir, "vocab.txt")
  student_config = os.path.join(ROOT, student_config)
  layer_map = ",".join(map(str, pipeline.spread_layer_map(
      load_config(os.path.join(teacher_dir, "config.json")).num_hidden_layers,
      load_config(student_config).num_hidden_layers)))  # MiniLM 6 onto 4: 2,3,5,6; MPNet 12 onto 4: 3,6,9,12
  seq = scale["seq"]
  os.makedirs(out, exist_ok=True)
  print(f"demo at scale {scale_name!r} into {out}\nteacher: {teacher_name} from {teacher_dir}")
  started = time.time()

  news = os.path.join(out, "news.txt")
  pipeline.run_step("news articles -> BERT pretraining text", "prepare_dataset/news_to_text.py",
                    {"output_file": news, "max_articles": scale["articles"]}, news)
  general_data = os.path.join(out, "general_data")
  pipeline.run_step("1. prepare data for pretraining distillation",
                    "prepare_dataset/create_distilled_pretraining_data.py",
                    {"input_file": news, "output_file": os.path.join(general_data, "train.tfrecord"),
                     "vocab_file": vocab, "max_seq_length": seq}, os.path.join(general_data, "meta.json"))
  general = os.path.join(out, "general_student")
  pipeline.run_step(f"2. run pretraining distillation ({teacher_name} -> 4L-312 student)", "run_pretraining.py",
                    {"data_dir": general_data, "output_dir": general, "config_path": student_config,
                     "teacher_config_path": os.path.join(teacher_dir, "config.json"),
                     "teacher_ckpt_path": teacher_dir, "max_seq_length": seq, "batch_size": scale["general_batch"],
                     "epochs": 1, "steps_per_epoch": scale["general_steps"], "steps_per_loop": 25,
                     "warmup_steps": scale["general_steps"] // 10, "learning_rate": 3e-4, "layer_map": layer_map, "seed": 1,
                     "save_checkpoint_steps": 100, "init_embeddings_from_teacher": True},
                    os.path.join(general, "training_summary.json"))
  task = os.path.join(out, "rotten_tomatoes")
  pipeline.run_step("3. distill.py: task data, teacher fine-tuning, task distillation from the general student, "
                    "export and measurements (Rotten Tomatoes)", "distill.py",
                    {"teacher": teacher_dir, "task_name": "rotten_tomatoes", "max_examples": scale["task_examples"],
                     "student_config": student_config, "general_student": general, "output_dir": task,
                     "max_seq_length": seq, "batch_size": scale["batch"], "teacher_epochs": scale["teacher_epochs"],
                     "teacher_learning_rate": teacher_learning_rate,
                     "intermediate_epochs": scale["intermediate_epochs"],
                     "prediction_epochs": scale["prediction_epochs"], "seed": 1, "steps_per_loop": 10},
                    os.path.join(task, "distill_results.json"))

  print("\n=== the exported student on raw sentences", flush=True)
  serve = tf.saved_model.load(os.path.join(task, "student", "saved_model")).signatures["serving_default"]
  probabilities = serve(text=tf.constant(SENTENCES))["probabilities"].numpy()
  with open(os.path.join(task, "data", "meta.json")) as f:
    labels = json.load(f)["label_list"]
  for sentence, p in zip(SENTENCES, probabilities):
    print(f"  {labels[int(p.argmax())]:>6} ({p.max():.2f})  {sentence}")

  with open(os.path.join(task, "distill_results.json")) as f:
    results = json.load(f)
  rows = [pipeline.ModelRow(**row) for row in results["rows"]]
  rows[0].name, rows[1].name = f"teacher {teacher_name}", f"student {os.path.basename(student_config)[:-5]}"
  table = pipeline.results_table(rows, results["metric"], seq)
  table += (f"\n(DEMO_SCALE={scale_name}, {os.path.getsize(news) // 1000} kB of news text, "
            f"{(time.time() - started) / 60:.1f} min this run)")
  with files.atomic_path(os.path.join(out, "demo_results.md")) as tmp, open(tmp, "w") as f:
    f.write(table + "\n")
  return table


def main():
  scale_name = os.environ.get("DEMO_SCALE", "small")
  if scale_name not in SCALES:
    sys.exit(f"demo: DEMO_SCALE={scale_name!r}; choose one of {', '.join(SCALES)}")
  out = os.path.abspath(os.environ.get("DEMO_DIR", os.path.join(ROOT, "demo_output", scale_name)))
  try:
    print("\n" + run_demo(scale_name, out))
  except UserError as e:
    sys.exit(f"demo: {e}")


if __name__ == "__main__":
  main()
