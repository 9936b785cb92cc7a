"""One process of a training run by the real trainer (`trainer.train`, configs/stereo4d.py:tiny on clips in
DATA): DEVICES fake CPU devices here, and with --num_processes > 1 one of that many processes joined by
`jax.distributed.initialize` over localhost (gloo collectives, JAX's default on CPU), all of them together
one global mesh. Each process feeds its own shard of the global batch (`make_dataset(shard_index=
process_index)` + `make_array_from_process_local_data`); all save and restore the orbax checkpoints in the
shared WORKDIR. Writes OUT/params_<process>.npz (this process's copy of the final parameters, which are
replicated) and OUT/done_<process>.json. Run by tests/test_multiprocess.py:
  python -m tests.scripts.multiprocess_train --data=D --workdir=W --out=O --devices=4 --steps=4
  python -m tests.scripts.multiprocess_train ... --devices=2 --num_processes=2 --process_id=I --port=P
"""
import argparse
import json
import os
import sys


def main(argv):
  p = argparse.ArgumentParser()
  p.add_argument('--data', required=True)
  p.add_argument('--workdir', required=True)
  p.add_argument('--out', required=True)
  p.add_argument('--devices', type=int, required=True)    # local (fake CPU) devices
  p.add_argument('--steps', type=int, required=True)
  p.add_argument('--num_processes', type=int, default=1)
  p.add_argument('--process_id', type=int, default=0)
  p.add_argument('--port', type=int, default=0)
  a = p.parse_args(argv)
  os.environ['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={a.devices}'
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  if a.num_processes > 1:  # before any device access; what maybe_initialize_distributed does on a cluster
    jax.distributed.initialize(f'localhost:{a.port}', num_processes=a.num_processes, process_id=a.process_id,
                               initialization_timeout=60)
  from configs import stereo4d  # pylint: disable=import-outside-toplevel
  from dynadust3r_jax.train.trainer import train  # pylint: disable=import-outside-toplevel

  config = stereo4d.get_config('tiny')
  config.data.root = a.data
  config.model.img_size = (32, 32)
  config.batch_size, config.grad_accum_steps = 8, 2   # 2 micro-batches of 4 = one example per device
  config.num_steps, config.log_every, config.val_every, config.val_batches = a.steps, 1, 2, 1
  config.checkpoint_every, config.picture_every = 2, 2
  state = train(config, a.workdir)
  assert jax.device_count() == 4 and jax.process_count() == a.num_processes, (jax.device_count(),
                                                                               jax.process_count())
  leaves = jax.tree_util.tree_flatten_with_path(state['params'])[0]
  # replicated (the tiny model's arrays are all below sharding.MIN_FSDP_SIZE): each process has them all
  params = {jax.tree_util.keystr(k): np.asarray(v.addressable_data(0)) for k, v in leaves}
  os.makedirs(a.out, exist_ok=True)
  np.savez(os.path.join(a.out, f'params_{a.process_id}.npz'), **params)
  with open(os.path.join(a.out, f'done_{a.process_id}.json'), 'w') as f:
    json.dump({'step': int(state['step']), 'devices': jax.device_count(), 'local_devices': jax.local_device_count(),
               'processes': jax.process_count()}, f)
  if a.num_processes > 1:
    jax.distributed.shutdown()


if __name__ == '__main__':
  main(sys.argv[1:])
