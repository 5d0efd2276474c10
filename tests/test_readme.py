"""The README's commands name scripts that exist and flags those scripts define, and paste into a shell as they are."""

import importlib
import os
import re
import shlex
import subprocess
import sys

import pytest
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shell_commands() -> list[list[str]]:
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  commands = []
  for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
    for line in block.replace("\\\n", " ").splitlines():
      if line.strip():
        commands.append(line.strip())
  return commands


def _script_commands() -> dict[str, set[str]]:
  """{script path: the flags the README passes to it}."""
  used = {}
  for command in _shell_commands():
    words = shlex.split(command)
    if words[0] != "python3" or len(words) < 2 or not words[1].endswith(".py"):
      continue
    names = {w[2:].split("=")[0] for w in words[2:] if w.startswith("--")}
    used.setdefault(words[1], set()).update(names)
  return used


def test_readme_blocks_paste_into_a_shell():
  commands = _shell_commands()
  assert len(commands) >= 8
  for command in commands:
    assert "(default" not in command and "\\ #" not in command, command
    shlex.split(command)  # Balanced quotes.
    assert not re.search(r"\\[a-z]", command.replace("\\\n", "")), f"Windows path in: {command}"


def _defined_flags(script: str) -> set[str]:
  """The flags `script` defines: read from its `define_flags` in this process where it takes a FlagValues (no fresh
  Python and TensorFlow per script), else from its `--helpfull`."""
  module = importlib.import_module(script[:-len(".py")].replace("/", "."))
  if hasattr(module, "define_flags"):
    flag_values = flags.FlagValues()
    module.define_flags(flag_values)
    return set(flag_values)
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  result = subprocess.run([sys.executable, os.path.join(ROOT, script), "--helpfull"], check=False, capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
  return set(re.findall(r"--(?:\[no\])?([a-z_0-9]+)", result.stdout + result.stderr))


@pytest.mark.parametrize("script", sorted(_script_commands()))
def test_readme_flags_exist(script):
  assert os.path.isfile(os.path.join(ROOT, script)), f"README runs {script}, which does not exist"
  defined = _defined_flags(script)
  missing = sorted(name for name in _script_commands()[script] if name not in defined
                   and not (name.startswith("no") and name[2:] in defined))
  assert not missing, f"README passes flags {missing} that {script} does not define"
