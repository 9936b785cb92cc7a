"""Training-step speed and model FLOP utilisation (MFU), one JSON line per configuration.

  python benchmarks/train_step.py --variant=tiny --batch_sizes=4           # CPU-sized
  python benchmarks/train_step.py --batch_sizes=8,16,32 --dtype=bfloat16   # full size (GPU)

FLOPs per step = 3 × the analytic forward count (model/flops.py) × pairs; MFU is against the device's
dense bf16 peak. A baseline is measured in the same run: the same step in float32 with the XLA
attention and no rematerialisation (`ratio_vs_baseline`).
"""
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from configs import stereo4d
from dynadust3r_jax.model import ModelConfig, build_model
from dynadust3r_jax.model.flops import dust3r_forward_flops
from dynadust3r_jax.train.optimizer import learning_rate_schedule, make_optimizer
from dynadust3r_jax.train.step import make_train_step

flags.DEFINE_string('variant', '', "configs/stereo4d.py variant: '' (full size) or 'tiny'.")
flags.DEFINE_list('batch_sizes', ['8'], 'Pairs per step (per device).')
flags.DEFINE_string('dtype', None, 'Compute dtype (default: the config\'s).')
flags.DEFINE_string('attention_impl', None, "Attention ('xla', 'cudnn'; default: the config's).")
flags.DEFINE_string('remat_policy', None, 'Rematerialisation policy (default: the config\'s).')
flags.DEFINE_integer('size', None, 'Image side (default: the config\'s img_size).')
flags.DEFINE_integer('iters', 5, 'Timed steps after two warm-up steps.')
FLAGS = flags.FLAGS
BF16_PEAK_TFLOPS = {'H100': 989.0, 'H200': 989.0, 'A100': 312.0}


def random_batch(batch, size, rng):
  shape = (1, batch, size, size)
  b = {'img1': rng.uniform(-1, 1, shape + (3,)), 'img2': rng.uniform(-1, 1, shape + (3,)),
       'query_times': np.tile(np.float32([0.5, 1, 0]), (1, batch, 1)),
       'pts3d1': rng.normal(0, 1, shape + (3,)) + [0, 0, 4], 'pts3d2': rng.normal(0, 1, shape + (3,)) + [0, 0, 4],
       'valid1': rng.random(shape) < 0.1, 'valid2': rng.random(shape) < 0.1,
       'num_skipped': np.zeros((1, batch), np.int32)}
  for name in ('l2m', 'r2m', 'l2r', 'r2l'):
    b[f'target_{name}'] = rng.normal(0, 1, shape + (3,)) + [0, 0, 4]
    b[f'valid_{name}'] = rng.random(shape) < 0.05
  return {k: jnp.asarray(v, jnp.float32 if v.dtype == np.float64 else v.dtype) for k, v in b.items()}


def time_step(config, cfg, batch, size):
  graphdef, params, _ = nnx.split(build_model(cfg, 0), nnx.Param, ...)
  optimizer = make_optimizer(config.optimizer, config.num_steps)
  step = jax.jit(make_train_step(graphdef, optimizer, learning_rate_schedule(config.optimizer, config.num_steps),
                                 config.loss_alpha), donate_argnums=0)
  state = {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': optimizer.init(params),
           'data_skipped': jnp.zeros((), jnp.int32)}
  data = random_batch(batch, size, np.random.default_rng(0))
  for _ in range(2):
    state, metrics = step(state, data)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(FLAGS.iters):
    state, metrics = step(state, data)
  jax.block_until_ready(metrics)
  return (time.perf_counter() - start) / FLAGS.iters


def main(argv):
  del argv
  config = stereo4d.get_config(FLAGS.variant)
  overrides = {k: v for k, v in dict(dtype=FLAGS.dtype, attention_impl=FLAGS.attention_impl,
                                     remat_policy=FLAGS.remat_policy).items() if v}
  cfg = ModelConfig.from_dict({**dict(config.model), **overrides})
  baseline = cfg.replace(dtype='float32', attention_impl='xla', remat_policy='none')
  size = FLAGS.size or cfg.img_size[0]
  kind = jax.devices()[0].device_kind
  peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in kind), None)
  for batch in map(int, FLAGS.batch_sizes):
    flops = 3 * batch * dust3r_forward_flops(cfg, size, size)
    seconds = time_step(config, cfg, batch, size)
    base_seconds = seconds if baseline == cfg else time_step(config, baseline, batch, size)
    row = dict(bench='train_step', arch=cfg.arch, size=size, batch=batch, dtype=cfg.dtype,
               attention=cfg.attention_impl, remat=cfg.remat_policy, device=kind,
               ms_per_step=round(seconds * 1e3, 1), pairs_per_s=round(batch / seconds, 3),
               tflop_per_step=round(flops / 1e12, 3), tflops=round(flops / seconds / 1e12, 3),
               baseline_ms_per_step=round(base_seconds * 1e3, 1), ratio_vs_baseline=round(base_seconds / seconds, 3))
    if peak:
      row['mfu'] = round(row['tflops'] / peak, 4)
    print(json.dumps(row), flush=True)


if __name__ == '__main__':
  app.run(main)
