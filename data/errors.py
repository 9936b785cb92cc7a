"""The data pipeline's one exception, and the redraw rule for samples that raise it."""
import warnings


class BadClip(Exception):
  """A clip or sample that cannot be used; the pipeline skips it and counts it. str(e) names the file."""


def redraw(draw, max_attempts: int, failures=(BadClip,)):
  """draw(attempt) for attempt = 0, 1, ... until one returns: (its result, the failures before it). A failure
  (an exception of `failures`) is warned once per process and message, then the next attempt is drawn; after
  max_attempts in a row, a RuntimeError names the last three. The pipelines' rule for bad samples: skipped,
  counted (num_skipped), never a crash of one sample nor a NaN in a batch."""
  errors = []
  for attempt in range(max_attempts):
    try:
      return draw(attempt), len(errors)
    except failures as e:
      message = str(e) if type(e) is BadClip else f'{type(e).__name__}: {e}'
      warnings.warn(message)  # once per process and message
      errors.append(message)
  raise RuntimeError(f'{max_attempts} consecutive samples failed; the data is broken. Last errors: {errors[-3:]}')
