"""What a job prints: a quiet console and the full log in a file.

The console shows the progress bars, the project's own INFO lines (its summary lines: data found, model
size, resumed from step N, checkpoint saved, validation results) and every warning or error. Everything
else — orbax's per-save INFO chatter, JAX's backend probing — goes only to the log file, with absl's
usual `I1201 07:47:34.497765 thread file.py:line] message` prefix. `verbose=True` puts every line on the
console too, as absl prints it.

    console.setup(log_file=os.path.join(workdir, 'train.log'), verbose=FLAGS.verbose)

`logging.info(..., extra=console.FILE_ONLY)` writes a line to the log file alone (e.g. a summary that
the job also prints). A line is the project's when the code that logged it lives in one of the project's top-level packages or
scripts (the logger name cannot tell: absl logs everyone's lines as 'absl').
"""
import contextlib
import logging
import os
import sys

from absl import logging as absl_logging
from tqdm import tqdm

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding dynadust3r_jax/
_OURS = ('dynadust3r_jax', 'data', 'pallas_kernels', 'benchmarks', 'configs', 'tools', 'main.py',
         'convert_weights.py')


FILE_ONLY = {'console': False}


def is_ours(record: logging.LogRecord) -> bool:
  return os.path.relpath(os.path.abspath(record.pathname), _ROOT).split(os.sep)[0] in _OURS


class _Console(logging.Handler):
  """stderr through tqdm.write, so log lines do not break a progress bar."""

  def __init__(self, verbose: bool):
    super().__init__(logging.INFO)
    self.verbose = verbose
    self.setFormatter(absl_logging.PythonFormatter() if verbose else _Short())

  def filter(self, record):
    if not getattr(record, 'console', True):
      return False
    return self.verbose or record.levelno >= logging.WARNING or is_ours(record)

  def emit(self, record):
    try:
      tqdm.write(self.format(record), file=sys.stderr)
    except Exception:  # noqa: BLE001 - logging must not raise
      self.handleError(record)


class _Short(logging.Formatter):
  """The message alone for INFO; `warning: message` and the like above it."""

  def format(self, record):
    message = super().format(record)
    return message if record.levelno < logging.WARNING else f'{record.levelname.lower()}: {message}'


def setup(log_file: str | None = None, verbose: bool = False) -> None:
  """Replace absl's stderr handler by the quiet console; append the full log to `log_file`."""
  root = logging.getLogger()
  for handler in list(root.handlers):
    if handler is absl_logging.get_absl_handler() or isinstance(handler, _Console):
      root.removeHandler(handler)
  root.addHandler(_Console(verbose))
  root.setLevel(min(root.getEffectiveLevel(), logging.INFO))
  logging.captureWarnings(True)  # Python warnings: console and file alike
  if log_file:
    add_log_file(log_file)


def add_log_file(path: str) -> logging.Handler:
  """Append every INFO+ line, in absl's format, to `path` (its folder is made)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  handler = logging.FileHandler(path, mode='a', encoding='utf-8')
  handler.setLevel(logging.INFO)
  handler.setFormatter(absl_logging.PythonFormatter())
  logging.getLogger().addHandler(handler)
  return handler


@contextlib.contextmanager
def log_file(path: str):
  """`add_log_file` for the duration of a block (INFO lines reach it even where the root logger's level
  is higher, e.g. in a library call outside main.py; the level is restored after)."""
  root = logging.getLogger()
  level = root.level
  root.setLevel(min(root.getEffectiveLevel(), logging.INFO))
  handler = add_log_file(path)
  try:
    yield
  finally:
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()
