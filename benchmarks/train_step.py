"""Training-step speed, model FLOP utilisation (MFU) and memory, one JSON line per configuration.

  python -m benchmarks.train_step --variant=tiny --batch_sizes=4           # CPU-sized
  python -m benchmarks.train_step --batch_sizes=8,16,32 --dtype=bfloat16   # full size (GPU)
  python -m benchmarks.train_step --fsdp=8                                 # FSDP over 8 devices

The step is the trainer's: the jitted `make_train_step` on random data (one micro-batch), parameters
and optimiser state placed on a (data, fsdp) mesh over all devices (dynadust3r_jax/train/sharding.py;
fsdp=1 is data parallelism), traced under that mesh as the trainer runs it. Batch sizes are per device.
FLOPs per step = 3 × the analytic forward count (model/flops.py) × pairs; MFU is against the bf16 rate
(the measured one when given, else the datasheet's). A baseline is measured in the same run (CLI: the
same step in float32 with the XLA attention and no rematerialisation, at each batch size).

Each line: {"bench": "train_step", "arch", "size", "batch" (global), "dtype", "attention", "remat",
"mesh" ('data' or 'fsdp'), "devices", "ms_per_step", "pairs_per_s", "tflop_per_step", "tflops", "mfu",
"compile_s", "peak_gib" (XLA's buffer assignment: arguments + outputs + temporaries - donated aliases),
"temp_gib", "baseline_ms_per_step", "ratio_vs_baseline" (pairs/s over the baseline's at the same batch,
else the first baseline's)}; a configuration that does not run (out of memory, FSDP on one device) or
that the time budget leaves out gets {"skipped": reason}.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from benchmarks.common import bf16_peak_tflops, print_row
from configs import stereo4d
from dynadust3r_jax import families
from dynadust3r_jax.model import ModelConfig, abstract_model, build_model
from dynadust3r_jax.model.flops import dust3r_forward_flops
from dynadust3r_jax.train import sharding
from dynadust3r_jax.train.optimizer import learning_rate_schedule, make_optimizer
from dynadust3r_jax.train.step import make_train_step

RUNTIME = ('dtype', 'attention_impl', 'remat_policy')


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
  return {k: np.asarray(v, np.float32 if v.dtype == np.float64 else v.dtype) for k, v in b.items()}


def time_step(config, cfg, params, batch, size, *, fsdp=1, iters=5) -> dict:
  """{'seconds' per step, 'compile_s', 'peak_gib', 'temp_gib'} of the train step on a copy of `params`
  (the nnx.State of any runtime variant of cfg's network: the step donates its copy); batch is global."""
  start = time.perf_counter()
  mesh = sharding.make_mesh(data=-1, fsdp=fsdp)
  graphdef, _, _ = nnx.split(abstract_model(cfg), nnx.Param, ...)
  params = jax.tree.map(jnp.copy, params)
  optimizer = make_optimizer(config.optimizer, config.num_steps)
  state = {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': optimizer.init(params),
           'data_skipped': jnp.zeros((), jnp.int32)}
  state_shardings = sharding.state_shardings(state, mesh)
  state = jax.device_put(state, state_shardings)
  data = jax.device_put(random_batch(batch, size, np.random.default_rng(0)), sharding.batch_sharding(mesh))
  step = jax.jit(make_train_step(graphdef, optimizer, learning_rate_schedule(config.optimizer, config.num_steps),
                                 families.of(cfg).train_loss(config)),
                 in_shardings=(state_shardings, sharding.batch_sharding(mesh)), out_shardings=(state_shardings, None),
                 donate_argnums=0)
  with jax.set_mesh(mesh):  # as the trainer traces its step: the 'pallas' attention runs per device under it
    compiled = step.lower(state, data).compile()
  compile_s = time.perf_counter() - start
  mem = compiled.memory_analysis()
  for _ in range(2):
    state, metrics = compiled(state, data)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(iters):
    state, metrics = compiled(state, data)
  jax.block_until_ready(metrics)
  out = {'seconds': (time.perf_counter() - start) / iters, 'compile_s': round(compile_s, 1)}
  if mem is not None:
    gib = lambda n: round(n / 2 ** 30, 2)
    out.update(peak_gib=gib(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                            - mem.alias_size_in_bytes), temp_gib=gib(mem.temp_size_in_bytes))
  return out


def run(configs, *, baselines=(), variant='', size=None, iters=5, peak_tflops=None, budget=None, emit=print_row):
  """Measures `baselines`, then `configs`: dicts with 'batch' (per device) and optionally 'dtype',
  'attention_impl', 'remat_policy' (default: the config variant's) and 'fsdp' (1: data parallel;
  -1: all devices). Emits one line per configuration (see the module docstring)."""
  config = stereo4d.get_config(variant)
  base_cfg = ModelConfig.from_dict(dict(config.model))
  size = size or base_cfg.img_size[0]
  devices = jax.device_count()
  kind = jax.devices()[0].device_kind
  peak, peak_source = bf16_peak_tflops(peak_tflops)
  measured, last_s = {}, 0.0   # batch -> pairs/s of its baseline; the last configuration's wall time
  results = {}                 # (cfg, batch, fsdp) -> time_step's result: a config equal to a baseline runs once
  params = None                # initialised once: dtype, attention and remat leave the parameters as they are
  for is_baseline, spec in [(True, s) for s in baselines] + [(False, s) for s in configs]:
    cfg = base_cfg.replace(**{k: spec[k] for k in RUNTIME if k in spec})
    fsdp = devices if spec.get('fsdp', 1) == -1 else spec.get('fsdp', 1)
    batch = spec['batch'] * devices
    row = dict(bench='train_step', arch=cfg.arch, size=size, batch=batch, dtype=cfg.dtype,
               attention=cfg.attention_impl, remat=cfg.remat_policy, mesh='fsdp' if fsdp > 1 else 'data',
               devices=devices, device=kind, baseline=is_baseline)
    if spec.get('fsdp', 1) != 1 and devices == 1:
      emit(dict(row, mesh='fsdp', skipped='1 device: an FSDP mesh of 1 is the data-parallel run (on a machine '
                                          'of several GPUs this row shards parameters and optimiser state)'))
      continue
    key = (cfg, batch, fsdp)
    if key not in results:
      if budget and not budget.allows(1.2 * last_s):
        emit(dict(row, skipped=f'time budget ({budget.left():.0f} s left, the last configuration took {last_s:.0f} s)'))
        continue
      start = time.perf_counter()
      try:
        if params is None:
          _, params, _ = nnx.split(build_model(base_cfg, 0), nnx.Param, ...)
        results[key] = time_step(config, cfg, params, batch, size, fsdp=fsdp, iters=iters)
      except Exception as e:  # out of memory, an unsupported kernel: say so, keep the others
        emit(dict(row, skipped=f'{type(e).__name__}: {str(e)[:300]}'))
        continue
      finally:
        last_s = time.perf_counter() - start
    result = dict(results[key])
    seconds = result.pop('seconds')
    flops = 3 * batch * dust3r_forward_flops(cfg, size, size)
    row.update(ms_per_step=round(seconds * 1e3, 1), pairs_per_s=round(batch / seconds, 3),
               tflop_per_step=round(flops / 1e12, 3), tflops=round(flops / seconds / 1e12, 3), **result)
    if peak:
      row.update(mfu=round(row['tflops'] / peak, 4), peak_tflops=peak, peak_source=peak_source)
    if is_baseline:
      measured.setdefault(batch, (row['pairs_per_s'], row['ms_per_step']))
    elif measured:
      pairs_per_s, ms = measured.get(batch, next(iter(measured.values())))
      row.update(baseline_ms_per_step=ms, ratio_vs_baseline=round(row['pairs_per_s'] / pairs_per_s, 3))
    emit(row)


def main(argv):
  del argv
  f = flags.FLAGS
  spec = {k: v for k, v in dict(dtype=f.dtype, attention_impl=f.attention_impl, remat_policy=f.remat_policy).items()
          if v}
  batches = [int(b) for b in f.batch_sizes]
  baselines = [dict(batch=b, dtype='float32', attention_impl='xla', remat_policy='none') for b in batches]
  run([dict(spec, batch=b, fsdp=f.fsdp) for b in batches], baselines=baselines if f.baseline else (),
      variant=f.variant, size=f.size, iters=f.iters)


if __name__ == '__main__':
  flags.DEFINE_string('variant', '', "configs/stereo4d.py variant: '' (full size) or 'tiny'.")
  flags.DEFINE_list('batch_sizes', ['8'], 'Pairs per step (per device).')
  flags.DEFINE_string('dtype', None, 'Compute dtype (default: the config\'s).')
  flags.DEFINE_string('attention_impl', None, "Attention ('xla', 'cudnn', 'pallas'; default: the config's).")
  flags.DEFINE_string('remat_policy', None, 'Rematerialisation policy (default: the config\'s).')
  flags.DEFINE_integer('size', None, 'Image side (default: the config\'s img_size).')
  flags.DEFINE_integer('iters', 5, 'Timed steps after two warm-up steps.')
  flags.DEFINE_integer('fsdp', 1, 'FSDP axis size of the mesh (1: data parallel; -1: all devices).')
  flags.DEFINE_bool('baseline', True, 'Also measure the float32 / XLA attention / no-remat baseline.')
  app.run(main)
