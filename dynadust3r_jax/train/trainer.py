"""The training loop: data → sharded jitted step → metrics, validation, pictures, checkpoints.

Resumes from the latest checkpoint in `workdir` (state, optimiser, step and the data iterator's
position, so the resumed run sees exactly the batches it would have seen); on SIGTERM (preemption) it
saves and exits cleanly. Writes `metrics.jsonl` (one JSON object per logged step), TensorBoard events
(`tensorboard/`), pictures (`pictures/`) and checkpoints (`checkpoints/`).
"""
import dataclasses
import functools
import json
import os
import signal
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx
from tensorboardX import SummaryWriter
from tqdm import tqdm

from data import pipeline
from dynadust3r_jax import distributed, families
from dynadust3r_jax.pretrained import load_config, load_model, write_config
from dynadust3r_jax.train import datasets, sharding
from dynadust3r_jax.train.checkpoint import Checkpoints
from dynadust3r_jax.train.optimizer import learning_rate_schedule, make_optimizer
from dynadust3r_jax.train.step import make_eval_step, make_train_step

# validation metrics on the console (metrics.jsonl has them all)
SUMMARY_METRICS = ('loss', 'avg_3d_error', 'avg_motion_pc_error', 'epe3d', 'delta_0.10', 'view1_abs_rel',
                   'view1_delta_1.25', 'RRA@15', 'RTA@15', 'mAA@30')


def _check_init_checkpoint(config, cfg):
  """config.init_checkpoint's config.json (not its weights): a path without a model or a checkpoint of another
  config class is one error, before any data is made or anything compiles."""
  init = load_config(config.init_checkpoint)
  if type(init) is not type(cfg):
    raise ValueError(f'config.init_checkpoint={config.init_checkpoint}: a {type(init).__name__} '
                     f'checkpoint for a {type(cfg).__name__} model (config.model_family)')


def _initial_params(config, family, cfg):
  model = family.build(cfg, config.seed)
  if config.init_checkpoint:
    pretrained = load_model(config.init_checkpoint, for_inference=False)
    if pretrained.config.architecture() == cfg.architecture():
      nnx.update(model, nnx.state(pretrained.module, nnx.Param))
    else:
      _load_matching(model, pretrained.module, config.init_checkpoint)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  assert not jax.tree.leaves(rest), 'the model holds non-parameter state'
  return graphdef, params


def _load_matching(model, pretrained, source):
  """Another architecture's parameters, as DUSt3R's `load_state_dict(strict=False)` between its stages: every
  parameter of the same name and shape is copied, the others (a new head) keep their initialisation."""
  new = nnx.to_flat_state(nnx.state(model, nnx.Param))
  old = dict(nnx.to_flat_state(nnx.state(pretrained, nnx.Param)))
  loaded = {path: old[path][...] for path, v in new if path in old and old[path].shape == v.shape}
  if not loaded:
    raise ValueError(f'config.init_checkpoint={source}: no parameter matches config.model by name and shape '
                     '(another model family?)')
  nnx.update(model, nnx.from_flat_state({path: nnx.Param(value) for path, value in loaded.items()}))
  fresh = sorted({'.'.join(map(str, path[:2])) for path, _ in new if path not in loaded})
  logging.info('init from %s: %d of %d parameter arrays loaded (same name and shape); freshly initialised: %s; '
               'not used: %d', source, len(loaded), len(new), ', '.join(fresh) or 'none', len(old) - len(loaded))


class _Preemption:
  """SIGTERM → finish the current step, checkpoint, exit (inside `with`; the old handler returns after)."""

  def __enter__(self):
    self.requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc):
    signal.signal(signal.SIGTERM, self._previous)

  def _handle(self, *_):
    self.requested = True


def _micro_batches(x, accum):
  """(local_batch, ...) → (accum, local_batch // accum, ...): micro-batch j takes every accum-th example
  from j on. Each host's batch is its contiguous slice of the step's global batch (make_dataset), so
  micro-batch j of the global batch is then the same examples in the same order whatever the number of
  hosts (a contiguous split per host would put other examples together with several hosts than with one)."""
  return np.swapaxes(x.reshape((x.shape[0] // accum, accum) + x.shape[1:]), 0, 1)


def _to_device(batch, keys, batch_sharding, accum=None):
  """The entries `keys` of a host batch (local_batch, ...) → global arrays sharded over the mesh, split into
  (accum, micro_batch, ...) by `_micro_batches` when accum is given."""
  def put(x):
    if accum is not None:
      x = _micro_batches(x, accum)
    return jax.make_array_from_process_local_data(batch_sharding, x)
  return {k: put(batch[k]) for k in keys if k in batch}


def _count(params) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def _truncate_metrics(path, step):
  """Drop logged lines past `step` (written after the checkpoint a resumed run restarts from)."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = [line for line in f if line.strip() and json.loads(line)['step'] <= step]
  with open(path, 'w') as f:
    f.writelines(lines)


def _batch_split(config) -> tuple[int, int]:
  """(examples per host, micro-batches per step), or one error for a batch that does not split evenly."""
  local_batch, accum = config.batch_size // jax.process_count(), config.grad_accum_steps
  if config.batch_size % jax.process_count() or local_batch % accum or (local_batch // accum) % (
      jax.local_device_count()):
    raise ValueError(f'config.batch_size={config.batch_size} must split into {jax.process_count()} hosts x '
                     f'{accum} micro-batches x a multiple of {jax.local_device_count()} local devices')
  return local_batch, accum


@dataclasses.dataclass
class _Steps:
  """A run's compiled work: one training step on a host batch, the validation of parameters."""
  train: Callable      # (state, host batch) -> (state, metrics)
  validate: Callable   # params -> {val_<metric>: value}


def _steps(config, family, graphdef, optimizer, schedule, mesh, state_shardings, val_sets) -> _Steps:
  """The jitted training step (sharded over the mesh, state donated) and the validation over every test set."""
  train_step = jax.jit(make_train_step(graphdef, optimizer, schedule, family.train_loss(config)),
                       in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
                       out_shardings=(state_shardings, None), donate_argnums=0)
  eval_step = jax.jit(make_eval_step(graphdef, family.validation(config)))
  # The steps run under the mesh: attention_impl='pallas' reads it to run its kernel per device.
  train_step, eval_step = sharding.under_mesh(train_step, mesh), sharding.under_mesh(eval_step, mesh)
  to_train_device = functools.partial(_to_device, keys=family.batch_keys, batch_sharding=sharding.batch_sharding(mesh),
                                      accum=config.grad_accum_steps)
  to_eval_device = functools.partial(_to_device, keys=family.batch_keys,
                                     batch_sharding=sharding.batch_sharding(mesh, batch_axis=0))

  def validate(params):
    """val_<metric> of each test set (val_<set>_<metric> when there are several names); with named test sets
    (the multi-view recipe) val_loss is the mean of their test criterion (DUSt3R selects checkpoints by it)."""
    out = {}
    for name, ds in val_sets.items():
      it = pipeline.make_iterator(ds)
      values = [eval_step(params, to_eval_device(next(it))) for _ in range(config.val_batches)]
      out.update({f'val_{name + "_" if name else ""}{k}': float(np.mean([v[k] for v in values])) for k in values[0]})
    if '' not in val_sets:
      out['val_loss'] = float(np.mean([out[f'val_{name}_test_loss'] for name in val_sets]))
    return out

  return _Steps(train=lambda state, batch: train_step(state, to_train_device(batch)), validate=validate)


class _Outputs:
  """What a run writes: metrics.jsonl and TensorBoard (process 0: the files are shared), pictures, checkpoints."""

  def __init__(self, workdir, checkpoints, draw_pictures, picture_batches):
    self.workdir, self.checkpoints = workdir, checkpoints
    self.draw_pictures, self.picture_batches = draw_pictures, picture_batches
    self.metrics_path = os.path.join(workdir, 'metrics.jsonl')
    self.writer = SummaryWriter(os.path.join(workdir, 'tensorboard')) if distributed.is_writer() else None

  def log(self, metrics_file, step: int, record: dict):
    if not record or self.writer is None:
      return
    record['step'] = step
    metrics_file.write(json.dumps(record) + '\n')
    metrics_file.flush()
    for k, v in record.items():
      if k != 'step':
        self.writer.add_scalar(k, v, step)

  def picture(self, step: int, params, val_loss):
    if self.writer is None:
      return
    image = self.draw_pictures(params, next(pipeline.make_iterator(self.picture_batches)),
                               os.path.join(self.workdir, 'pictures', f'step_{step:07d}.png'), step, val_loss)
    self.writer.add_image('pictures', image, step, dataformats='HWC')

  def close(self):
    self.checkpoints.close()
    if self.writer:
      self.writer.close()


def train(config, workdir: str):
  os.makedirs(workdir, exist_ok=True)
  # The data first: making the demo's clips runs ffmpeg subprocesses, which fork safely only before
  # JAX starts its backend threads.
  family, cfg = families.for_training(config)  # (its errors before any data is made)
  learning_rate_schedule(config.optimizer, config.num_steps)  # (likewise)
  if config.init_checkpoint:
    _check_init_checkpoint(config, cfg)
  sources = datasets.prepare(config, workdir)
  distributed.maybe_initialize()
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
  local_batch, accum = _batch_split(config)
  train_ds, val_sets = datasets.make(config, sources, family.data_options(cfg), local_batch=local_batch,
                                     accum=accum, shard_index=jax.process_index(), shard_count=jax.process_count())
  data_iter = pipeline.make_iterator(train_ds, num_workers=config.data.num_workers)

  graphdef, params = _initial_params(config, family, cfg)
  if distributed.is_writer():  # the architecture, so that load_model(workdir) loads a checkpoint of this run
    write_config(workdir, cfg)
  logging.info('model: %s, %s parameters (%s, attention %s, remat %s); %d devices, mesh data=%d x fsdp=%d; '
               'batch %d in %d micro-batch(es)', family.arch, f'{_count(params):,}', cfg.dtype, cfg.attention_impl,
               cfg.remat_policy, jax.device_count(), mesh.shape['data'], mesh.shape['fsdp'], config.batch_size,
               accum)
  optimizer = make_optimizer(config.optimizer, config.num_steps)
  schedule = learning_rate_schedule(config.optimizer, config.num_steps)
  state = {'step': jnp.zeros((), jnp.int32), 'params': params, 'opt_state': optimizer.init(params),
           'data_skipped': jnp.zeros((), jnp.int32)}
  state_shardings = sharding.state_shardings(state, mesh)
  state = jax.device_put(state, state_shardings)

  checkpoints = Checkpoints(os.path.join(os.path.abspath(workdir), 'checkpoints'), keep_best=config.keep_best)
  if checkpoints.latest_step() is not None:
    state = checkpoints.restore(checkpoints.latest_step(), jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, state_shardings), data_iter)
    logging.info('resumed from step %d', int(state['step']))
  outputs = _Outputs(workdir, checkpoints, family.pictures(graphdef), next(iter(val_sets.values())))
  if distributed.is_writer():  # the file is shared: one writer
    _truncate_metrics(outputs.metrics_path, int(state['step']))

  steps = _steps(config, family, graphdef, optimizer, schedule, mesh, state_shardings, val_sets)
  try:
    return _loop(config, state, data_iter, steps, outputs)
  finally:
    outputs.close()


def _loop(config, state, data_iter, steps: _Steps, outputs: _Outputs):
  start = int(state['step'])
  logging.info('training steps %d..%d; metrics -> %s', start + 1, config.num_steps, outputs.metrics_path)
  with _Preemption() as preemption, open(outputs.metrics_path, 'a') as metrics_file, tqdm(
      total=config.num_steps, initial=start, unit='step', disable=not distributed.is_writer()) as progress:
    for step in range(start + 1, config.num_steps + 1):
      state, metrics = steps.train(state, next(data_iter))
      progress.update(1)
      last = step == config.num_steps
      record = {}
      if step % config.log_every == 0 or last:
        record = {k: float(v) for k, v in jax.device_get(metrics).items()}
      if step % config.val_every == 0 or last:
        record.update(steps.validate(state['params']))
        _log_validation(step, record, outputs.metrics_path)
      outputs.log(metrics_file, step, record)
      if record:
        progress.set_postfix(loss=f"{record.get('loss', float('nan')):.4f}")
      if step % config.picture_every == 0:
        outputs.picture(step, state['params'], record.get('val_loss'))
      if step % config.checkpoint_every == 0 or last or preemption.requested:
        outputs.checkpoints.save(step, state, data_iter, record.get('val_loss'))
        logging.info('step %d: checkpoint -> %s/%d', step, outputs.checkpoints.directory, step)
      if preemption.requested:
        logging.warning('SIGTERM: checkpoint saved at step %d, exiting', step)
        break
  return state


def _log_validation(step: int, record: dict, metrics_path: str):
  """The SUMMARY_METRICS of a validation on the console (+ per test set)."""
  shown = [k for name in SUMMARY_METRICS for k in record if k == f'val_{name}' or
           (k.startswith('val_') and k.endswith(f'_{name}') and name != 'loss')]
  logging.info('step %d validation: %s (all in %s)', step,
               ', '.join(f'{k[len("val_"):]} {record[k]:.4g}' for k in shown), metrics_path)
