"""Triplet sampling is uniform over all valid triplets of all clips (spec dynadust3r.md §c.1)."""
import collections
import itertools

import numpy as np
import pytest

from data import sampling
from data.errors import BadClip


def _all_triplets(n, window):
  return [(l, m, r) for l, r in itertools.combinations(range(n), 2) if 2 <= r - l <= window
          for m in range(l + 1, r)]


@pytest.mark.parametrize('n,window', [(3, 60), (10, 4), (25, 60), (80, 60)])
def test_count_matches_enumeration(n, window):
  assert sampling.triplet_count(n, window) == len(_all_triplets(n, window))


def test_uniform_over_triplets_of_all_clips():
  clips = [(6, 3), (9, 3)]  # (frames, window): 7 + 19 triplets
  cumulative = np.cumsum([sampling.triplet_count(n, w) for n, w in clips])
  universe = [(c, t) for c, (n, w) in enumerate(clips) for t in _all_triplets(n, w)]
  rng = np.random.default_rng(0)
  draws = 52000
  counts = collections.Counter()
  for _ in range(draws):
    c = sampling.sample_clip(rng, cumulative)
    counts[(c, sampling.sample_triplet(rng, *clips[c]))] += 1
  assert set(counts) == set(universe)  # only valid triplets, all of them
  expected = draws / len(universe)
  chi2 = sum((counts[u] - expected) ** 2 / expected for u in universe)
  assert chi2 < 60  # 25 degrees of freedom: p ≈ 1e-4 at 60; a skew (e.g. clips drawn uniformly) gives > 500


def test_too_short_clip():
  assert sampling.triplet_count(2, 60) == 0
  with pytest.raises(BadClip):
    sampling.sample_triplet(np.random.default_rng(0), 2, 60)
