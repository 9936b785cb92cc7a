"""The one exception of the data pipeline."""


class BadClip(Exception):
  """A clip or sample that cannot be used; the pipeline skips it and counts it. str(e) names the file."""
