"""Each layer imports alone, first in a fresh interpreter: a module that a lower layer reaches through a package's
__init__ must not import that layer back (import-linter's contracts see the files, not this runtime order)."""
import subprocess
import sys

import pytest

ROOT = __file__.rsplit('/tests/', 1)[0]
FIRST = ('data.stereo4d', 'data.pipeline', 'data.predecoded', 'data.pair_targets', 'dynadust3r_jax.common.geometry',
         'dynadust3r_jax.families', 'dynadust3r_jax.evaluation.pair_protocol', 'dynadust3r_jax.inference',
         'dynadust3r_jax.convert.checkpoint')


@pytest.mark.parametrize('module', FIRST)
def test_module_imports_first(module):
  run = subprocess.run([sys.executable, '-c', f'import {module}'], cwd=ROOT, capture_output=True, text=True,
                       check=False)
  assert run.returncode == 0, run.stderr[-3000:]


def test_package_exports_load_on_first_use():
  code = ('import sys, dynadust3r_jax; assert "dynadust3r_jax.pretrained" not in sys.modules; '
          'f = dynadust3r_jax.load_model; assert f.__module__ == "dynadust3r_jax.pretrained"; '
          'assert dynadust3r_jax.ModelConfig.arch == "AsymmetricCroCo3DStereo"')
  run = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
