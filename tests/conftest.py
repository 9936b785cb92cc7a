"""Shared test helpers: fixture paths and views in this port's layout."""
from pathlib import Path

import pytest

from dynadust3r_jax.testing import fixture_views, nhwc, relative_error  # noqa: F401 (the tests import them from here)

FIXTURES = Path(__file__).parent / 'fixtures'


@pytest.fixture(scope='session')
def manifest():
  import json
  return json.loads((FIXTURES / 'shared' / 'dust3r_official_manifest.json').read_text())
