"""Triplet sampling: (l, m, r) uniformly over all valid triplets of all clips (spec dynadust3r.md §c.1).

Valid means 2 <= d = r - l <= D = min(max_frame_window, n - 1) and l < m < r. A clip of n frames has
Σ_d (n - d)(d - 1) of them, so a clip is drawn with that weight, then d ∝ (n - d)(d - 1), then l and m
uniformly: every valid triplet of the dataset is equally likely (the unofficial shard writer's scheme).
"""
import numpy as np

from data.errors import BadClip


def _per_gap(n: int, max_frame_window: int) -> tuple[np.ndarray, np.ndarray]:
  gaps = np.arange(2, min(max_frame_window, n - 1) + 1)
  return gaps, (n - gaps) * (gaps - 1)


def triplet_count(n: int, max_frame_window: int) -> int:
  """Number of valid triplets in a clip of n frames."""
  return int(_per_gap(n, max_frame_window)[1].sum())


def sample_triplet(rng: np.random.Generator, n: int, max_frame_window: int) -> tuple[int, int, int]:
  """One valid (l, m, r) of a clip of n frames, uniformly."""
  gaps, counts = _per_gap(n, max_frame_window)
  if not len(gaps):
    raise BadClip(f'a clip of {n} frames has no triplet (needs >= 3 frames)')
  d = int(rng.choice(gaps, p=counts / counts.sum()))
  l = int(rng.integers(0, n - d))
  return l, int(rng.integers(l + 1, l + d)), l + d


def sample_clip(rng: np.random.Generator, cumulative_counts: np.ndarray) -> int:
  """A clip index drawn ∝ its triplet count (cumulative_counts = cumsum of triplet_count per clip)."""
  return int(np.searchsorted(cumulative_counts, rng.integers(0, cumulative_counts[-1]), side='right'))
