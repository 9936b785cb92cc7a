"""Convert a PyTorch CroCo / DUSt3R checkpoint (.pth, or a Hugging Face folder), or a Hugging Face VideoMAE
folder (→ a D4RT whose encoder is VideoMAE's), into a directory that `dynadust3r_jax.load_model` loads: the
library side of convert_weights.py (also used by the training stages job to start DUSt3R's recipe from a
CroCo .pth)."""
import os

import numpy as np
from absl import logging
from flax import nnx

from dynadust3r_jax import console, pretrained
from dynadust3r_jax.common.torch_checkpoint import CheckpointError
from dynadust3r_jax.convert import params as conversion
from dynadust3r_jax.convert.constructor import parse_constructor
from dynadust3r_jax.convert.sources import VIDEOMAE, make_config, read_source, videomae_config, videomae_tensors
from dynadust3r_jax.model import abstract_model, build_model, param_count

LOG_FILE = 'convert.log'  # inside the output directory

# With --model, parameters that may be left to their fresh initialisation and source tensors that
# may go unused (DUSt3R `load_state_dict(strict=False)` when starting a new head).
_HEADS = ('downstream_head', 'prediction_head', 'motion_head')


def describe(cfg) -> str:
  kind = {'CroCoNet': 'CroCo v2', 'DynaDUSt3R': f'DynaDUSt3R, time embedding {cfg.time_pos_emb_dim}'}.get(
      cfg.arch, f'DUSt3R {cfg.head_type} head')
  return (f'{cfg.arch} ({kind}; encoder {cfg.enc_depth}x{cfg.enc_embed_dim}/{cfg.enc_num_heads}h, '
          f'decoder {cfg.dec_depth}x{cfg.dec_embed_dim}/{cfg.dec_num_heads}h)')


def convert(input_path: str, output_dir: str, *, model: str | None = None, seed: int = 0,
            overwrite: bool = False) -> str:
  """Convert and save; returns the summary line. Raises CheckpointError for user errors."""
  if not os.path.exists(input_path):
    raise CheckpointError(f'{input_path}: no such file or directory')
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
    raise CheckpointError(f'{output_dir}: output directory is not empty (use --overwrite to replace it)')
  source = read_source(input_path)
  if source.arch == VIDEOMAE:
    return convert_videomae(source, output_dir, model=model, seed=seed, overwrite=overwrite)
  allow = ()
  if not model:
    cfg = source.config()
  else:
    try:
      arch, kwargs = parse_constructor(model)
    except ValueError as e:
      raise CheckpointError(f'--model: {e}') from None
    cfg = make_config(arch, kwargs, source.state_dict, '--model')
    allow = _HEADS
  shapes = {k: v.shape for k, v in source.state_dict.items()}
  target = abstract_model(cfg)
  p = conversion.plan(shapes, target, source_name=input_path, allow_missing=allow, allow_unused=allow)
  flat = conversion.apply_plan(p, source.state_dict, source_name=input_path)
  if p.missing:  # only with --model: a fresh model, overwritten with what the checkpoint has
    model = build_model(cfg, seed)
    conversion.assign(model, flat)
    flat = {path: v[...] for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  n_keys = len(source.state_dict)
  used = len({k for a in p.assignments for k in a.sources})
  fresh = f', {len(p.missing)} parameters freshly initialised (seed {seed})' if p.missing else ''
  notes = ''.join(f'; {n}' for n in p.notes)
  summary = (f'converted {input_path}: {describe(cfg)}, {param_count(target):,} parameters; {n_keys} keys: '
             f'{used} mapped, {len(p.aliases)} aliases, {len(p.ignored)} ignored{fresh}{notes} -> {output_dir}')
  # Written aside and moved into place whole, with its log (orbax's INFO lines included) inside.
  with pretrained.staged_directory(output_dir, overwrite) as staging:
    with console.log_file(os.path.join(staging, LOG_FILE)):
      pretrained.write_pretrained(staging, cfg, flat)
      logging.info('%s', summary, extra=console.FILE_ONLY)
  return summary


# D4RT parameters a VideoMAE checkpoint does not provide: freshly initialised (seed) and reported.
_D4RT_FRESH = ('encoder.ar_embed.', 'query_embed.', 'decoder.', 'head.')


def convert_videomae(source, output_dir: str, *, model: str | None = None, seed: int = 0,
                     overwrite: bool = False) -> str:
  """A Hugging Face VideoMAE folder → a D4RT directory: encoder from VideoMAE (every key mapped or ignored,
  sources.videomae_tensors), the aspect-ratio token, query embedding, decoder and head freshly initialised."""
  from dynadust3r_jax.model.d4rt import abstract_d4rt, build_d4rt  # pylint: disable=import-outside-toplevel
  cfg = videomae_config(source, model)
  tensors, ignored, notes = videomae_tensors(source, cfg)
  allow = _D4RT_FRESH
  if 'encoder.norm.weight' not in tensors:  # use_mean_pooling: VideoMAE's encoder has no final LayerNorm
    allow += ('encoder.norm.',)
    notes.append('encoder.norm fresh (scale 1, bias 0): the checkpoint mean-pools, no final layernorm')
  target = abstract_d4rt(cfg)
  p = conversion.plan({k: v.shape for k, v in tensors.items()}, target, source_name=source.path,
                      allow_missing=allow)
  d4rt = build_d4rt(cfg, seed)
  conversion.assign(d4rt, conversion.apply_plan(p, tensors, source_name=source.path))
  flat = {path: v[...] for path, v in nnx.to_flat_state(nnx.state(d4rt, nnx.Param))}
  fresh = sorted({'.'.join(map(str, t[:2 if t[0] == 'encoder' else 1])) for t in p.missing})
  n_fresh = sum(int(np.prod(flat[t].shape)) for t in p.missing)
  arch = ', '.join(source.kwargs.get('architectures') or ['VideoMAE'])
  summary = (f'converted {source.path}: {arch} -> D4RT (encoder {cfg.enc_depth}x{cfg.enc_embed_dim}/'
             f'{cfg.enc_num_heads}h, tubelet {"x".join(map(str, cfg.tubelet))}; decoder {cfg.dec_depth}x'
             f'{cfg.dec_embed_dim}/{cfg.dec_num_heads}h; {cfg.num_frames} frames at {cfg.img_size}^2), '
             f'{param_count(target):,} parameters; {len(source.state_dict)} keys: '
             f'{len(source.state_dict) - len(ignored)} mapped, {len(ignored)} ignored; {n_fresh:,} parameters '
             f'freshly initialised (seed {seed}): {", ".join(fresh)}{"".join(f"; {n}" for n in notes)} '
             f'-> {output_dir}')
  with pretrained.staged_directory(output_dir, overwrite) as staging:
    with console.log_file(os.path.join(staging, LOG_FILE)):
      pretrained.write_pretrained(staging, cfg, flat)
      logging.info('%s', summary, extra=console.FILE_ONLY)
      for key in ignored:
        logging.info('ignored %s', key, extra=console.FILE_ONLY)
  return summary
