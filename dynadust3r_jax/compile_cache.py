"""JAX's persistent compilation cache for the reconstruct and evaluate jobs, and the compile time they spend.

A second run with the same shapes (same model, image sizes, pair counts, XLA flags and jaxlib) then loads its
programs from the cache instead of compiling them: `config.compile_cache_dir` ('default': $JAX_COMPILATION_CACHE_DIR
if set, else DEFAULT_DIR under the user's cache directory; a path; '' leaves JAX's own setting, off by default).
Every program is cached, however short its compile (JAX's default keeps only those over a second).

    with CompileTimer() as compiled:
      ...                                   # the job
    compiled.summary()                      # {'compile_seconds': ..., 'programs': ..., 'cache_hits': ...}
"""
import os

import jax
from absl import logging
from jax import monitoring

DEFAULT_DIR = os.path.join(os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'dynadust3r_jax', 'jax')
_COMPILE = '/jax/core/compile/backend_compile_duration'   # an executable obtained: compiled, or read from the cache
_HIT = '/jax/compilation_cache/cache_retrieval_time_sec'  # ... read from the persistent cache


def enable(directory: str) -> str | None:
  """Cache compiled programs in `directory` ('default': see the module docstring; '~' expanded; '' changes
  nothing). Returns the directory in use (None: no cache).

  A job of several processes runs without it (JAX_COMPILATION_CACHE_DIR included): two CPU processes of one
  reconstruct job sharing a cache hung in their first collective (tests/test_multiprocess.py), each process
  apparently holding a differently obtained executable of the same program."""
  if jax.process_count() > 1:
    if directory or jax.config.jax_compilation_cache_dir:
      logging.warning('%d processes: the persistent compilation cache is off for this job', jax.process_count())
    jax.config.update('jax_compilation_cache_dir', None)
    return None
  if directory == 'default':
    directory = os.environ.get('JAX_COMPILATION_CACHE_DIR') or DEFAULT_DIR
  if directory:
    jax.config.update('jax_compilation_cache_dir', os.path.expanduser(directory))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
    jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  return jax.config.jax_compilation_cache_dir


class CompileTimer:
  """While active: the seconds spent obtaining executables (XLA compiles, or reads from the cache), their count
  and how many came from the cache (tracing and lowering, which the cache does not save, are not counted)."""

  def __init__(self):
    self.compile_seconds, self.programs, self.hits = 0.0, 0, 0

  def _listen(self, event, duration, **_):
    if event == _COMPILE:
      self.compile_seconds += duration
      self.programs += 1
    elif event == _HIT:
      self.hits += 1

  def __enter__(self):
    monitoring.register_event_duration_secs_listener(self._listen)
    return self

  def __exit__(self, *exc):
    monitoring.unregister_event_duration_listener(self._listen)

  def summary(self) -> dict:
    return {'compile_seconds': round(self.compile_seconds, 3), 'programs': self.programs, 'cache_hits': self.hits}
