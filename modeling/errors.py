"""The one exception type for bad user input, and the entry point that reports it.

Every script runs its `main` through `run_script`, which prints a `UserError`'s message as one line with a non-zero
exit; so anything raised as a `UserError` must already name the flag, file or field at fault.
"""

import re
import sys
from collections.abc import Callable

from absl import app, logging


class UserError(ValueError):
  """Bad input from the user: a flag, file, config or checkpoint that cannot be used as given.

  It is a `ValueError`, so Python callers can catch bad arguments with the standard exception.
  """


# `tf.io.parse_example` names its op so; its InvalidArgumentErrors are records that do not fit the schema.
_PARSE_OP = re.compile(r"\bParse(Single)?Example")


def is_record_error(error: BaseException) -> bool:
  """Whether an error comes from reading TFRecords: a corrupt file, or records that do not fit the schema."""
  tf = sys.modules.get("tensorflow")  # A script that never loaded TensorFlow raises no TensorFlow error.
  if tf is None:
    return False
  if isinstance(error, tf.errors.DataLossError):
    return True
  return isinstance(error, tf.errors.InvalidArgumentError) and bool(_PARSE_OP.search(str(error)))


# tf.data's file cache (the teacher-output cache folder) refuses a prefix whose lockfile exists.
_CACHE_LOCK = re.compile(r"cache lockfile already exists \('([^']+)'\)")


def cache_lock_of(error: BaseException) -> str | None:
  """The lockfile named by a tf.data cache's refusal to write a cache another iterator holds, or None."""
  tf = sys.modules.get("tensorflow")
  if tf is None or not isinstance(error, tf.errors.AlreadyExistsError):
    return None
  found = _CACHE_LOCK.search(str(error))
  return found.group(1) if found else None


def run_script(main: Callable[[], object]) -> None:
  """Runs a script's `main` under absl (flags parsed, `--flagfile` and `--help` handled).

  Stray positional arguments are refused. Bad input (`UserError`, NaN losses included), corrupt records, records
  that do not fit the schema and a teacher-output cache locked by another run end with one `error:` line on stderr
  and exit status 1; any other error keeps its own message and traceback.
  """

  def wrapped(argv):
    logging.set_verbosity(logging.INFO)
    try:
      if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
      main()
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(1)
    except Exception as e:
      lock = cache_lock_of(e)
      if lock:
        print(f"error: another run is writing the same teacher-output cache, or a run that was killed left its lock "
              f"{lock}: wait for that run to finish, or delete the lockfile if none is running", file=sys.stderr)
        sys.exit(1)
      if not is_record_error(e):
        raise
      message = str(getattr(e, "message", e)).strip().splitlines()[0]
      print(f"error: could not read the input records ({type(e).__name__}: {message}); prepare the data again",
            file=sys.stderr)
      sys.exit(1)

  app.run(wrapped)
