"""Reconstruction over a mesh of fake CPU devices against one device; prints one JSON line. Run by
tests/test_reconstruct_sharded.py in its own process (the device count must be set before JAX starts):
  python -m tests.scripts.sharded_reconstruct CHECKPOINT WORKDIR [DEVICES]
- inference: the pairs of three test images at 512 (three shapes: six shape groups), batch_size 3 per device, so
  every group's batch is padded to the devices: the largest relative difference of each prediction;
- the reconstruct job (the same images, 224², 1 iteration: the alignment's own numerics are tests/scripts/sharded_align.py's) with config.mesh.devices = -1 (all) and 1: the largest
  difference of the cameras.json poses, and its summary's devices.
"""
import json
import os
import sys

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           f' --xla_force_host_platform_device_count={sys.argv[3] if len(sys.argv) > 3 else 8}')

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import reconstruct as reconstruct_config  # noqa: E402
from dynadust3r_jax import distributed, load_model  # noqa: E402
from dynadust3r_jax.inference import inference, load_images, make_pairs  # noqa: E402
from dynadust3r_jax.inference.reconstruct import reconstruct  # noqa: E402
from tests.test_reconstruct import IMAGES  # noqa: E402

INPUTS = str(IMAGES / '[abc]_*')  # landscape, portrait, square


def _rel(a, b) -> float:
  a, b = (np.concatenate([np.ravel(x) for x in v]) for v in (a, b))
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def main(checkpoint, workdir):
  model = load_model(checkpoint, dtype='float32', attention_impl='xla')
  imgs = load_images(INPUTS, size=512)
  pairs = make_pairs(imgs, 'complete', None, symmetrize=True)
  single = inference(pairs, model, batch_size=3, progress=False)
  sharded = inference(pairs, model, batch_size=3, progress=False, mesh=distributed.edge_mesh())
  out = {'devices': jax.device_count(), 'pairs': len(pairs),
         'shapes': sorted({tuple(int(x) for x in v['true_shape'][0]) for v in imgs}),
         'inference': {f'{p}.{k}': _rel(sharded[p][k], single[p][k]) for p in ('pred1', 'pred2') for k in single[p]}}
  cams = {}
  for devices in (-1, 1):
    c = reconstruct_config.get_config()
    c.checkpoint, c.inputs, c.image_size, c.scene_graph, c.align.niter = checkpoint, INPUTS, 224, 'complete', 1
    c.exports, c.mesh.devices = ('cameras',), devices
    summary = reconstruct(c, os.path.join(workdir, str(devices)))
    cams[devices] = json.loads(open(os.path.join(workdir, str(devices), 'cameras.json')).read())
    out[f'summary_devices_{devices}'] = summary['devices']
  out['cam_to_world'] = max(_rel(cams[-1][n]['cam_to_world'], cams[1][n]['cam_to_world']) for n in cams[1])
  print(json.dumps(out))


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2])
