"""attention_impl='pallas' inside the sharded train step: the kernel (interpret mode on CPU) runs per
device under the trainer's (data, fsdp) mesh and the step equals the same step with attention_impl='xla'."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow  # ~95 s on 2 cores (interpret-mode kernels); the GPU suite runs the kernel in the step on a device
def test_sharded_pallas_step_equals_xla_step():
  """(data=4, fsdp=2) on 8 fake CPU devices, tiny DynaDUSt3R on 32x32 images, 2 micro-batches of 8."""
  out = subprocess.run([sys.executable, '-m', 'tests.scripts.sharded_step', 'pallas'], cwd=ROOT,
                       capture_output=True, text=True, timeout=900, check=True)
  r = json.loads(out.stdout.strip().splitlines()[-1])
  assert r['shard_maps'] > 0                               # the kernels ran per device
  assert r['loss'][0] == pytest.approx(r['loss'][1], rel=1e-6)
  assert r['grad_norm'][0] == pytest.approx(r['grad_norm'][1], rel=1e-5)
  # Adam's first step is lr·g/|g|: an element whose gradient is float32 noise around 0 may move by up to
  # 2 lr either way; every other element agrees (measured: 2e-6 of them differ by > 1% of the update)
  assert r['params_off'] < 1e-4
