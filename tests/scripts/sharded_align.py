"""The global alignment on a mesh of 8 fake CPU devices (edges split over them) against one device: prints one
JSON line of relative differences (poses, focals, depths, pairwise poses, losses) after each of `niters`, for
the 5-image synthetic scene (20 edges: 3 per device, padded to 24) and the mixed-size one (4 images, 12 edges),
and the relative difference of two single-device runs that only sum in another order (edge_chunk 16 vs 3): the
size of float32 reduction-order effects. Run by tests/test_global_align_sharded.py in its own process (the
device count must be set before JAX starts):  python -m tests.scripts.sharded_align [niter ...]
"""
import importlib
import json
import os
import sys

os.environ['XLA_FLAGS'] = os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8'

import jax  # noqa: E402
import numpy as np  # noqa: E402

from tests.test_global_align import FIXTURE, _output, mixed_problem  # noqa: E402

ga = importlib.import_module('dynadust3r_jax.inference.global_align')
FIELDS = ('cam_to_world', 'focals', 'depthmaps')


def _rel(x, y) -> float:
  x, y = (np.concatenate([np.ravel(a) for a in v]) if isinstance(v, list) else np.asarray(v) for v in (x, y))
  return float(np.max(np.abs(x - y)) / np.max(np.abs(y)))


def _diffs(a, b) -> dict:
  out = {k: _rel(getattr(b, k), getattr(a, k)) for k in FIELDS}
  out.update(pw_poses=_rel(b.params['pw_poses'], a.params['pw_poses']), losses=_rel(b.losses, a.losses))
  da, db = (np.concatenate([np.ravel(x) for x in s.depthmaps]) for s in (a, b))
  out['depth_pixels_off'] = float(np.mean(np.abs(db - da) > 1e-5 * np.abs(da).max()))  # fraction beyond 1e-5
  return out


def main(niters):
  mesh = jax.make_mesh((4, 2), ('data', 'fsdp'), axis_types=(jax.sharding.AxisType.Auto,) * 2)
  out = {'devices': jax.device_count()}
  for niter in niters:
    for name, output in (('synthetic', _output(dict(np.load(FIXTURE)))), ('mixed', mixed_problem()[2])):
      single = ga.global_align(output, niter=niter, init='mst')
      out[f'{name}_{niter}'] = _diffs(single, ga.global_align(output, niter=niter, init='mst', mesh=mesh))
      out[f'{name}_{niter}_reordered'] = _diffs(single, ga.global_align(output, niter=niter, init='mst', edge_chunk=3))
  print(json.dumps(out))


if __name__ == '__main__':
  main([int(n) for n in sys.argv[1:]] or [300])
