"""Training stages in a row (`main.py` with a config whose mode is 'train_stages', e.g. configs/dust3r.py:demo):
DUSt3R's recipe CroCo → 224 linear → 512 linear → 512 DPT as one command.

Stage k trains in WORKDIR/<name> (config.stages[name], in config.stage_order) and starts from stage k−1's
workdir (its best checkpoint: load_model reads a training workdir; the trainer loads what matches and
initialises the rest, e.g. the DPT head); the first from config.init_checkpoint, which may also be a PyTorch
.pth (a CroCo v2 checkpoint), converted first into WORKDIR/init with the first stage's architecture. The same
command again resumes: finished stages are skipped by their own trainers' resume, the running one continues.
"""
import os

from absl import logging

from dynadust3r_jax.convert.checkpoint import convert
from dynadust3r_jax.model.config import RUNTIME_FIELDS
from dynadust3r_jax.train.trainer import train


def constructor(model) -> str:
  """The PyTorch constructor string of a config.model (what convert_weights.py --model takes)."""
  runtime = ('arch', *RUNTIME_FIELDS)
  args = ', '.join(f'{k}={v!r}' for k, v in model.items() if k not in runtime)
  return f'{model.arch}({args})'


def _first_init(config, first, workdir):
  source = config.init_checkpoint
  if not source.endswith('.pth'):
    return source
  out = os.path.join(workdir, 'init')
  if not os.path.isdir(out):
    logging.info('stage %s: converting %s with its architecture into %s', config.stage_order[0], source, out)
    convert(source, out, model=constructor(first.model))
  return out


def train_stages(config, workdir: str):
  unknown = [n for n in config.stage_order if n not in config.stages]
  if unknown:
    raise ValueError(f'config.stage_order names {unknown}, not in config.stages ({sorted(config.stages)})')
  previous = None
  for name in config.stage_order:
    stage = config.stages[name]
    stage.init_checkpoint = previous or (_first_init(config, stage, workdir) if config.init_checkpoint else '')
    logging.info('stage %s: %d steps from %s', name, stage.num_steps, stage.init_checkpoint or 'scratch')
    train(stage, os.path.join(workdir, name))
    previous = os.path.join(workdir, name)
