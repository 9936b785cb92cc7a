"""A converted model directory: `config.json` (the architecture) + `params/` (an orbax checkpoint).

    model = dynadust3r_jax.load_model('ckpt/dust3r_512_dpt')
    res1, res2 = model(view1, view2)          # DUSt3R: views {'img': (B,H,W,3), 'true_shape': (B,2)}
    out = model(img1, img2)                   # CroCo: prediction-head output (B, N, p*p*3)

    d4rt = dynadust3r_jax.load_model('ckpt/d4rt')  # D4RT (config.json has "arch": "D4RT"), e.g. from VideoMAE
    out = d4rt(video, aspect_ratio, query_uv, query_t)

Models load as `dust3r.model.load_model` does for inference: PatchEmbedDust3R and no head
transposition (`for_inference=False` keeps the training-time patch embedding and head wrapping).
"""
import contextlib
import json
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from dynadust3r_jax import distributed, families
from dynadust3r_jax.model import ModelConfig, param_count  # noqa: F401 - param_count: re-exported

CONFIG_FILE = 'config.json'
PARAMS_DIR = 'params'
CHECKPOINTS_DIR = 'checkpoints'  # a training workdir's (dynadust3r_jax/train/checkpoint.py)
BEST_METRIC = 'val_loss'         # what a training checkpoint records; its best step has the lowest


def checkpoint_options(**options) -> ocp.CheckpointManagerOptions:
  """Orbax options of a training workdir's checkpoints/ (written by train/checkpoint.py, read by load_model):
  the best step is the one with the lowest BEST_METRIC."""
  return ocp.CheckpointManagerOptions(best_fn=lambda m: m[BEST_METRIC], best_mode='min', **options)


def _nested(flat: dict) -> dict:
  out = {}
  for path, value in flat.items():
    node = out
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = value
  return out


@contextlib.contextmanager
def staged_directory(directory: str, overwrite: bool = True):
  """Yields `DIR.partial` to fill; when the block ends it becomes DIR, as a whole. A failure removes it,
  and a kill leaves only `DIR.partial` (cleared by the next attempt), never a half-written DIR that
  `load_model` would trust. An existing non-empty DIR is replaced only with `overwrite`."""
  directory = os.path.abspath(directory)
  staging = directory + '.partial'
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  try:
    yield staging
    if os.path.isdir(directory):
      if os.listdir(directory) and not overwrite:
        raise FileExistsError(f'{directory}: output directory is not empty (use --overwrite to replace it)')
      shutil.rmtree(directory)
    os.rename(staging, directory)
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def write_pretrained(directory: str, cfg: ModelConfig, params: dict):
  """Write cfg's architecture and `params` ({Flax path tuple: array} or a nested dict) into `directory`."""
  if params and isinstance(next(iter(params)), tuple):
    params = _nested(params)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(os.path.abspath(directory), PARAMS_DIR), params, force=True)
  checkpointer.wait_until_finished()
  write_config(directory, cfg)


def write_config(directory: str, cfg: ModelConfig):
  """DIR/config.json: the architecture, "arch" first (written aside, then moved into place whole)."""
  path = os.path.join(directory, CONFIG_FILE)
  text = json.dumps({'arch': cfg.arch, **cfg.architecture()}, indent=1)
  with open(path + '.tmp', 'w') as f:
    f.write(text)
  os.replace(path + '.tmp', path)


def save_pretrained(directory: str, cfg: ModelConfig, params: dict, overwrite: bool = True):
  """`write_pretrained` into a staged directory: `directory` appears complete or not at all."""
  with staged_directory(directory, overwrite) as staging:
    write_pretrained(staging, cfg, params)


class Predictor:
  """A loaded network with a jitted, functional forward (split NNX state + `jax.jit`): the model handle the jobs
  and the evaluation protocols pass around; its family (families/) answers what differs between models."""

  def __init__(self, module: nnx.Module):
    self.module = module
    self.config: ModelConfig = module.cfg
    self.family = families.of(self.config)
    self.graphdef, self.state = nnx.split(module)
    self._forward = jax.jit(lambda state, *args: nnx.merge(self.graphdef, state)(*args))

  def __call__(self, *args):
    return self._forward(self.state, *args)

  def on_mesh(self, mesh):
    """The same forward over every device of `mesh` (of one or several processes): the parameters replicated on
    each, a call's host inputs split along their batch axis over all the devices (its size a multiple of their
    count), the outputs sharded alike."""
    replicated = jax.sharding.NamedSharding(mesh, jax.P())
    state = jax.tree.map(lambda x: distributed.put(np.asarray(x), replicated), self.state)
    split = jax.sharding.NamedSharding(mesh, jax.P(tuple(mesh.axis_names)))
    return lambda *args: self._forward(state, *(jax.tree.map(lambda x: distributed.put(x, split), a) for a in args))


def load_config(directory: str, **runtime) -> ModelConfig:
  """The architecture in DIR/config.json; a missing or incomplete file is one error naming what is wrong.
  Every architecture field is required (a field added to ModelConfig later needs a default here)."""
  path = os.path.join(directory, CONFIG_FILE)
  remedy = 'convert it again with `python convert_weights.py --input=... --output=DIR --overwrite`'
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{directory}: not a converted model directory (no {CONFIG_FILE}); '
                            'make one with `python convert_weights.py --input=... --output=DIR`')
  try:
    with open(path) as f:
      fields = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'{path}: unreadable ({type(e).__name__}: {e}); {remedy}') from None
  if not isinstance(fields, dict):
    raise ValueError(f'{path}: not a JSON object of model fields; {remedy}')
  try:
    cls = families.for_arch(fields.get('arch', ModelConfig.arch)).config_class
  except ValueError as e:
    raise ValueError(f'{path}: {e}; {remedy}') from None
  if 'arch' not in cls.architecture_fields():  # a class of one architecture: "arch" is not a field
    fields = {k: v for k, v in fields.items() if k != 'arch'}
  missing = [name for name in cls.architecture_fields() if name not in fields]
  if missing:
    raise ValueError(f'{path}: missing field(s) {missing} (the file is incomplete); {remedy}')
  return cls.from_dict(fields, **runtime)


def runtime_defaults(dtype: str = 'auto', attention_impl: str = 'auto') -> tuple[str, str]:
  """(dtype, attention_impl) with 'auto' resolved by backend: bfloat16 + cudnn on a GPU, float32 + xla else."""
  on_gpu = jax.default_backend() == 'gpu'
  return (dtype if dtype != 'auto' else ('bfloat16' if on_gpu else 'float32'),
          attention_impl if attention_impl != 'auto' else ('cudnn' if on_gpu else 'xla'))


def load_model(directory: str, *, for_inference: bool = True, dtype: str | None = None,
               attention_impl: str | None = None, remat_policy: str | None = None,
               step: int | None = None) -> Predictor:
  """Load a converted directory (config.json + params/, from convert_weights.py or save_pretrained) or a
  training workdir (config.json + checkpoints/, from main.py: its best checkpoint by validation loss, else
  its latest, or `step`) as a callable model."""
  runtime = {k: v for k, v in dict(dtype=dtype, attention_impl=attention_impl,
                                   remat_policy=remat_policy).items() if v is not None}
  cfg = load_config(directory, **runtime)
  params_dir, checkpoints_dir = (os.path.join(os.path.abspath(directory), d) for d in (PARAMS_DIR, CHECKPOINTS_DIR))
  if not os.path.isdir(params_dir) and not os.path.isdir(checkpoints_dir):
    raise FileNotFoundError(f'{directory}: no {PARAMS_DIR}/ folder (the parameters) nor {CHECKPOINTS_DIR}/ (a '
                            'training workdir); convert it again with `python convert_weights.py --input=... '
                            '--output=DIR --overwrite`')
  family = families.of(cfg)
  if for_inference:
    cfg = family.for_inference(cfg)
  graphdef, state = nnx.split(family.abstract(cfg), nnx.Param)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])  # this process's first
  if os.path.isdir(params_dir):
    target = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=device), nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, ocp.StandardCheckpointer().restore(params_dir, target))
  else:
    target = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=device), state)
    state = _training_params(checkpoints_dir, target, step)
  return Predictor(nnx.merge(graphdef, state))


def model_from_config(config):
  """load_model(config.checkpoint) with config.dtype / attention_impl ('auto': by backend), for a job config of
  the reconstruct or evaluate job; one error for a model its family cannot run there (CroCo: no 3D head)."""
  dtype, attention = runtime_defaults(config.dtype, config.attention_impl)
  model = load_model(config.checkpoint, dtype=dtype, attention_impl=attention)
  model.family.check_inference(config)
  return model


def _training_params(directory: str, target, step: int | None):
  """The parameters of a training run's checkpoint (the `params` of its `state` item, nothing else read)."""
  with ocp.CheckpointManager(directory, options=checkpoint_options(create=False), item_names=('state',)) as manager:
    steps = manager.all_steps()
    if step is None:
      step = manager.best_step() if manager.best_step() is not None else manager.latest_step()
    if step not in steps:
      raise FileNotFoundError(f'{directory}: no checkpoint of step {step} (steps: {sorted(steps)})')
    restore = ocp.args.PyTreeRestore(item={'params': target}, partial_restore=True,
                                     restore_args=ocp.checkpoint_utils.construct_restore_args({'params': target}))
    logging.info('%s: parameters of step %d', directory, step)
    return manager.restore(step, args=ocp.args.Composite(state=restore))['state']['params']
