"""One process of a reconstruct job (`reconstruct.reconstruct`, the three test images at 224², complete graph,
config.mesh.devices=-1): DEVICES fake CPU devices here, and with --num_processes > 1 one of that many processes
joined by `jax.distributed.initialize` over localhost, together one mesh. Writes OUT/summary_<process>.json (the
summary the job returned to this process: every process computes) and the job's files into WORKDIR (process 0
only). Run by
tests/test_multiprocess.py:
  python -m tests.scripts.multiprocess_reconstruct --checkpoint=C --workdir=W --out=O --devices=4
  python -m tests.scripts.multiprocess_reconstruct ... --devices=2 --num_processes=2 --process_id=I --port=P
"""
import argparse
import json
import os
import sys


def main(argv):
  p = argparse.ArgumentParser()
  for flag in ('checkpoint', 'workdir', 'out'):
    p.add_argument(f'--{flag}', required=True)
  p.add_argument('--devices', type=int, required=True)
  p.add_argument('--num_processes', type=int, default=1)
  p.add_argument('--process_id', type=int, default=0)
  p.add_argument('--port', type=int, default=0)
  a = p.parse_args(argv)
  os.environ['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={a.devices}'
  import jax  # pylint: disable=import-outside-toplevel
  if a.num_processes > 1:  # what distributed.maybe_initialize does on a cluster (there from its environment)
    jax.distributed.initialize(f'localhost:{a.port}', num_processes=a.num_processes, process_id=a.process_id,
                               initialization_timeout=60)
  from configs import reconstruct as reconstruct_config  # pylint: disable=import-outside-toplevel
  from dynadust3r_jax.inference.reconstruct import reconstruct  # pylint: disable=import-outside-toplevel
  from tests.test_reconstruct import IMAGES  # pylint: disable=import-outside-toplevel

  c = reconstruct_config.get_config()
  c.checkpoint, c.inputs, c.image_size, c.scene_graph, c.align.niter = a.checkpoint, str(IMAGES / '[abc]_*'), 224, 'complete', 20
  c.exports = ('cameras', 'ply')
  summary = reconstruct(c, a.workdir)
  os.makedirs(a.out, exist_ok=True)
  with open(os.path.join(a.out, f'summary_{a.process_id}.json'), 'w') as f:
    json.dump({k: summary[k] for k in ('devices', 'processes', 'losses', 'pairs', 'points_kept')}, f)
  if a.num_processes > 1:
    jax.distributed.shutdown()


if __name__ == '__main__':
  main(sys.argv[1:])
