"""Shared test helpers: fixture paths and views in this port's layout; one compilation cache for the run.

JAX's persistent compilation cache is on for every test process and every child process a test starts
(the environment is inherited): on a CPU, XLA compiles each new shape of a parameter initialiser in ~0.2 s,
so building even a tiny model costs ~16 s per process without it and ~1 s with it. The cache is keyed by
the program, the jaxlib version and XLA_FLAGS, so a cached entry is what a fresh compile would give.
It lives in the user's cache directory (DYNADUST3R_TEST_JAX_CACHE overrides it; '' turns it off).
XLA's CPU backend also compiles at optimisation level 0 here (a fifth less time for the suite on 2 cores:
the tests' programs are tiny, so compiling dominates running them); an XLA_FLAGS that sets
--xla_backend_optimization_level keeps its own. Checks of the product's own compile (tests/isolated.py)
give their child the exact flags they test.
"""
import os
from pathlib import Path

_CACHE = os.environ.get('DYNADUST3R_TEST_JAX_CACHE', os.path.join(
    os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'dynadust3r_jax', 'jax_tests'))
if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_backend_optimization_level=0').strip()
if _CACHE:
  os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', _CACHE)
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

import pytest  # noqa: E402

from dynadust3r_jax.testing import fixture_views, nhwc, relative_error  # noqa: F401,E402 (the tests import them from here)

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
