"""One train step on a (data=4, fsdp=2) mesh of 8 fake CPU devices against a second run of the same step:
prints one JSON line (losses, gradient norms, differences of the new parameters, shard_maps in the step's
program). Run by the tests in their own process, because the device count must be set before JAX starts:
  python -m tests.scripts.sharded_step          against one device (tests/test_train.py)
  python -m tests.scripts.sharded_step pallas   attention_impl='pallas' (interpret mode) against 'xla', both
                                                on the 8 devices (tests/test_sharded_pallas.py)
"""
import json
import os
import sys

os.environ['XLA_FLAGS'] = os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8'

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from configs import stereo4d  # noqa: E402
from dynadust3r_jax import families  # noqa: E402
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


def run(mesh, host_batch, attention_impl='xla'):
  config = stereo4d.get_config('tiny')
  cfg = ModelConfig.from_dict(dict(config.model, img_size=(32, 32), attention_impl=attention_impl))
  graphdef, params, _ = nnx.split(build_model(cfg, 0), nnx.Param, ...)
  run.initial = jax.device_get(params)
  optimizer = make_optimizer(config.optimizer, 10)
  state = {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': optimizer.init(params),
           'data_skipped': jnp.zeros((), jnp.int32)}
  shardings = sharding.state_shardings(state, mesh, min_size=1024)  # tiny model: shard what divides
  train_step = make_train_step(graphdef, optimizer, learning_rate_schedule(config.optimizer, 10),
                               families.of(cfg).train_loss(config))
  step = jax.jit(train_step, in_shardings=(shardings, sharding.batch_sharding(mesh)),
                 out_shardings=(shardings, None))
  data = {k: jax.device_put(v, sharding.batch_sharding(mesh)) for k, v in host_batch.items()}
  state = jax.device_put(state, shardings)
  new_state, metrics = sharding.under_mesh(step, mesh)(state, data)
  # the per-device kernels of attention_impl='pallas' (model/attention.py) show as shard_maps in the program
  shard_maps = sharding.under_mesh(step.lower, mesh)(state, data).as_text().count('sdy.manual_computation')
  return jax.device_get(new_state['params']), metrics, shardings, shard_maps


def main(argv):
  host_batch = batch(accum=2, micro=8)
  mesh = sharding.make_mesh(4, 2)
  if argv == ['pallas']:
    got, m_got, shardings, shard_maps = run(mesh, host_batch, attention_impl='pallas')
    want, m_want, _, _ = run(mesh, host_batch, attention_impl='xla')
  else:
    got, m_got, shardings, shard_maps = run(mesh, host_batch)
    want, m_want, _, _ = run(sharding.make_mesh(1, 1, devices=jax.devices()[:1]), host_batch)
  fsdp_split = sum(1 for s in jax.tree.leaves(shardings['params']) if 'fsdp' in str(s.spec))
  diffs = [np.abs(a - b) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))]
  max_update = max(np.max(np.abs(b - a)) for a, b in zip(jax.tree.leaves(run.initial), jax.tree.leaves(want)))
  off = sum(np.sum(d > 0.01 * max_update) for d in diffs) / sum(d.size for d in diffs)
  both = lambda name, cast=float: [cast(m_got[name]), cast(m_want[name])]
  print(json.dumps(dict(max_abs_param_diff=float(max(np.max(d) for d in diffs)), max_update=float(max_update),
                        params_off=float(off),
                        data_skipped=both('data_skipped_samples', int), loss=both('loss'),
                        grad_norm=both('grad_norm'), fsdp_sharded_params=fsdp_split, shard_maps=shard_maps)))


if __name__ == '__main__':
  main(sys.argv[1:])
