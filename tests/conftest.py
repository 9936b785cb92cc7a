"""Shared test helpers: fixture paths and views in this port's layout."""
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).parent / 'fixtures'


def nhwc(img):
  """(B, 3, H, W) PyTorch layout → (B, H, W, 3)."""
  return np.ascontiguousarray(np.asarray(img).transpose(0, 2, 3, 1))


def fixture_views(ref):
  """The two input views stored in a reference .npz, as the model takes them."""
  return ({'img': nhwc(ref['img1']), 'true_shape': ref['true_shape1']},
          {'img': nhwc(ref['img2']), 'true_shape': ref['true_shape2']})


def relative_error(got, ref):
  """max |got - ref| / max |ref| (the parity measure of the fixtures' README)."""
  got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
  assert got.shape == ref.shape, (got.shape, ref.shape)
  assert np.all(np.isfinite(got))
  return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


@pytest.fixture(scope='session')
def manifest():
  import json
  return json.loads((FIXTURES / 'shared' / 'dust3r_official_manifest.json').read_text())
