"""The one exception type for bad user input.

Scripts catch `UserError` at the top level and print its message as one line with a non-zero exit, so anything
raised as a `UserError` must already name the flag, file or field at fault.
"""


class UserError(Exception):
  """Bad input from the user: a flag, file, config or checkpoint that cannot be used as given."""
