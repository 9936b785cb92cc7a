"""Shared test helpers: fixture paths and views in this port's layout."""
from pathlib import Path

import pytest

from dynadust3r_jax.testing import fixture_views, nhwc, relative_error  # noqa: F401 (the tests import them from here)

FIXTURES = Path(__file__).parent / 'fixtures'


@pytest.fixture(scope='session')
def manifest():
  import json
  return json.loads((FIXTURES / 'shared' / 'dust3r_official_manifest.json').read_text())


@pytest.fixture(scope='session')
def dyna_checkpoint(tmp_path_factory):
  """The tiny DPT fixture converted as a DynaDUSt3R (motion heads initialised from the point heads)."""
  from convert_weights import convert
  from tests.test_dynadust3r import SHARED_DPT, _dyna_model_string
  out = tmp_path_factory.mktemp('dyna') / 'tiny_dyna'
  convert(str(SHARED_DPT) + '.pth', str(out), model=_dyna_model_string(), seed=1)
  return str(out)


@pytest.fixture(scope='session')
def dust3r_checkpoint(tmp_path_factory):
  """The tiny DUSt3R DPT fixture, converted."""
  from convert_weights import convert
  out = tmp_path_factory.mktemp('dust3r') / 'tiny_dpt'
  convert(str(FIXTURES / 'shared' / 'dust3r_tiny_dpt.pth'), str(out))
  return str(out)
