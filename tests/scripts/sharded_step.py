"""One train step on a (data=4, fsdp=2) mesh of 8 fake CPU devices and on one device: prints the max
relative difference of the new parameters (run by tests/test_train.py in its own process, because the
device count must be set before JAX starts)."""
import json
import os

os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=8'

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from configs import stereo4d  # noqa: E402
from dynadust3r_jax.model import ModelConfig, build_model  # noqa: E402
from dynadust3r_jax.train import sharding  # noqa: E402
from dynadust3r_jax.train.optimizer import learning_rate_schedule, make_optimizer  # noqa: E402
from dynadust3r_jax.train.step import make_train_step  # noqa: E402


def batch(accum, micro, size=32):
  rng = np.random.default_rng(0)
  shape = (accum, micro, size, size)
  b = {'img1': rng.uniform(-1, 1, shape + (3,)), 'img2': rng.uniform(-1, 1, shape + (3,)),
       'query_times': np.tile(np.float32([0.4, 1, 0]), (accum, micro, 1)),
       'pts3d1': rng.normal(0, 1, shape + (3,)) + [0, 0, 4], 'pts3d2': rng.normal(0, 1, shape + (3,)) + [0, 0, 4],
       'valid1': rng.random(shape) < 0.3, 'valid2': rng.random(shape) < 0.3,
       'num_skipped': np.arange(accum * micro, dtype=np.int32).reshape(accum, micro) % 2}
  for name in ('l2m', 'r2m', 'l2r', 'r2l'):
    b[f'target_{name}'] = rng.normal(0, 1, shape + (3,)) + [0, 0, 4]
    b[f'valid_{name}'] = rng.random(shape) < 0.2
  return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in b.items()}


def run(mesh, host_batch):
  config = stereo4d.get_config('tiny')
  cfg = ModelConfig.from_dict(dict(config.model, img_size=(32, 32)))
  graphdef, params, _ = nnx.split(build_model(cfg, 0), nnx.Param, ...)
  run.initial = jax.device_get(params)
  optimizer = make_optimizer(config.optimizer, 10)
  state = {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': optimizer.init(params),
           'data_skipped': jnp.zeros((), jnp.int32)}
  shardings = sharding.state_shardings(state, mesh, min_size=1024)  # tiny model: shard what divides
  step = jax.jit(make_train_step(graphdef, optimizer, learning_rate_schedule(config.optimizer, 10), 0.2),
                 in_shardings=(shardings, sharding.batch_sharding(mesh)), out_shardings=(shardings, None))
  data = {k: jax.device_put(v, sharding.batch_sharding(mesh)) for k, v in host_batch.items()}
  new_state, metrics = step(jax.device_put(state, shardings), data)
  return jax.device_get(new_state['params']), metrics, shardings


def main():
  host_batch = batch(accum=2, micro=8)
  sharded, m8, shardings = run(sharding.make_mesh(4, 2), host_batch)
  single, m1, _ = run(sharding.make_mesh(1, 1, devices=jax.devices()[:1]), host_batch)
  fsdp_split = sum(1 for s in jax.tree.leaves(shardings['params']) if 'fsdp' in str(s.spec))
  diffs = [np.max(np.abs(a - b)) for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single))]
  moved = [np.max(np.abs(b - a)) for a, b in zip(jax.tree.leaves(run.initial), jax.tree.leaves(single))]
  print(json.dumps(dict(max_abs_param_diff=float(max(diffs)), max_update=float(max(moved)),
                        data_skipped=[int(m8['data_skipped_samples']), int(m1['data_skipped_samples'])],
                        loss=[float(m8['loss']), float(m1['loss'])], grad_norm=[float(m8['grad_norm']), float(m1['grad_norm'])],
                        fsdp_sharded_params=fsdp_split)))


if __name__ == '__main__':
  main()
