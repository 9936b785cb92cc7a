"""Convert a PyTorch CroCo / DUSt3R checkpoint (.pth, or a Hugging Face folder), or a Hugging Face VideoMAE
folder (→ a D4RT whose encoder is VideoMAE's), into a directory that `dynadust3r_jax.load_model` loads: the
library side of convert_weights.py (also used by the training stages job to start DUSt3R's recipe from a
CroCo .pth)."""
import os

import numpy as np
from absl import logging
from flax import nnx

from dynadust3r_jax import console, families, pretrained
from dynadust3r_jax.common.torch_checkpoint import CheckpointError
from dynadust3r_jax.convert import params as conversion
from dynadust3r_jax.convert.sources import read_source
from dynadust3r_jax.model import param_count

LOG_FILE = 'convert.log'  # inside the output directory


def _reader(source):
  """The family that converts this checkpoint's architecture (families/: source_archs)."""
  try:
    return families.for_source(source.arch)
  except ValueError:
    raise CheckpointError(f'{source.path}: checkpoint of another architecture ({source.arch}); supported: '
                          f'{", ".join(families.source_archs())}') from None


def _fresh_modules(missing, converted) -> list[str]:
  """The modules the checkpoint gives nothing to, named at the first depth where none of their parameters is
  converted (e.g. 'decoder', 'encoder.ar_embed')."""
  names = set()
  for path in missing:
    k = next(k for k in range(1, len(path) + 1) if not any(c[:k] == path[:k] for c in converted))
    names.add('.'.join(map(str, path[:k])))
  return sorted(names)


def convert(input_path: str, output_dir: str, *, model: str | None = None, seed: int = 0,
            overwrite: bool = False) -> str:
  """Convert and save; returns the summary line. Raises CheckpointError for user errors.

  The checkpoint's family (families/: `conversion`) says what it becomes: the architecture (`model`, the
  --model flag, may choose another of its family's and leave new heads fresh) and the tensors in the model's
  PyTorch-style layout; convert/params.py maps them onto the network, every key mapped or ignored."""
  if not os.path.exists(input_path):
    raise CheckpointError(f'{input_path}: no such file or directory')
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
    raise CheckpointError(f'{output_dir}: output directory is not empty (use --overwrite to replace it)')
  source = read_source(input_path)
  c = _reader(source).conversion(source, model)
  family = families.of(c.cfg)
  target = family.abstract(c.cfg)
  p = conversion.plan({k: v.shape for k, v in c.tensors.items()}, target, source_name=input_path,
                      allow_missing=c.fresh, allow_unused=c.unused)
  flat = conversion.apply_plan(p, c.tensors, source_name=input_path)
  fresh = ''
  if p.missing:  # a fresh model (seed), overwritten with what the checkpoint has
    network = family.build(c.cfg, seed)
    conversion.assign(network, flat)
    modules = _fresh_modules(p.missing, flat)
    flat = {path: v[...] for path, v in nnx.to_flat_state(nnx.state(network, nnx.Param))}
    n_fresh = sum(int(np.prod(flat[path].shape)) for path in p.missing)
    fresh = f'; {n_fresh:,} parameters freshly initialised (seed {seed}): {", ".join(modules)}'
  ignored = [*c.ignored, *p.ignored]
  n_keys = len(source.state_dict)
  counts = [f'{n_keys - len(ignored) - len(p.aliases)} mapped'] + (
      [f'{len(p.aliases)} aliases'] if p.aliases else []) + [f'{len(ignored)} ignored']
  notes = ''.join(f'; {n}' for n in [*c.notes, *p.notes])
  summary = (f'converted {input_path}: {family.describe_architecture(c.cfg)}, {param_count(target):,} parameters; '
             f'{n_keys} keys: {", ".join(counts)}{fresh}{notes} -> {output_dir}')
  # Written aside and moved into place whole, with its log (orbax's INFO lines included) inside.
  with pretrained.staged_directory(output_dir, overwrite) as staging:
    with console.log_file(os.path.join(staging, LOG_FILE)):
      pretrained.write_pretrained(staging, c.cfg, flat)
      logging.info('%s', summary, extra=console.FILE_ONLY)
      for key in ignored:
        logging.info('ignored %s', key, extra=console.FILE_ONLY)
  return summary
