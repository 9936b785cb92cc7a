"""Read a CroCo / DUSt3R checkpoint: its tensors and the architecture it describes.

Layouts understood:
  * official DUSt3R / training checkpoints (`.pth`): {'model': state_dict, 'args': Namespace(model=
    "<constructor string>"), ...}; CroCo training checkpoints have the same shape;
  * released CroCo v2 (`.pth`): {'model': state_dict, 'croco_kwargs': {...}};
  * unofficial DynaDUSt3R (`.pth`): {'state_dict': ..., 'config': <pickled OmegaConf, kept inert>, ...};
    its architecture is DUSt3R 512 DPT + motion heads, read off the tensor shapes (spec dynadust3r.md §g);
  * Hugging Face model folders: `config.json` (the constructor keywords) + `model.safetensors`
    (or `pytorch_model.bin`, read by the same safe reader as `.pth` files); a VideoMAE folder (config.json with
    model_type 'videomae') is read the same way, its architecture VIDEOMAE (its tensors: convert/videomae.py).
The architecture is read from the checkpoint (constructor parsed with `ast`, never eval'd) plus
tensor shapes for what the constructor does not say (the DPT widths).
"""
import dataclasses
import json
import os

import numpy as np

from dynadust3r_jax.common.torch_checkpoint import CheckpointError, load_torch_checkpoint
from dynadust3r_jax.convert.constructor import parse_constructor
from dynadust3r_jax.model.config import ARCHS, ModelConfig


VIDEOMAE = 'VideoMAE'  # Source.arch of a Hugging Face VideoMAE folder (converted into D4RT: convert/videomae.py)


@dataclasses.dataclass
class Source:
  path: str
  state_dict: dict          # PyTorch key → numpy array
  arch: str                 # the architecture the checkpoint describes: class name + constructor keywords
  kwargs: dict

  def config(self) -> ModelConfig:
    """The checkpoint's architecture as a ModelConfig (CheckpointError if this port cannot build it)."""
    return make_config(self.arch, self.kwargs, self.state_dict, self.path)


def dpt_widths(state_dict) -> dict:
  """feature_dim, last_dim and layer_dims of a DPT head, read off its tensor shapes ({} if no DPT head:
  the official widths, ModelConfig's defaults, apply)."""
  pre = 'downstream_head1.dpt.'
  keys = [pre + 'scratch.refinenet1.out_conv.weight', pre + 'head.2.weight'] + [
      f'{pre}act_postprocess.{k}.0.weight' for k in range(4)]
  if not all(k in state_dict for k in keys):
    return {}
  feature, last, *layers = (state_dict[k].shape[0] for k in keys)
  return dict(dpt_feature_dim=feature, dpt_last_dim=last, dpt_layer_dims=tuple(layers))


def make_config(arch: str, kwargs: dict, state_dict: dict, path: str) -> ModelConfig:
  """ModelConfig from constructor keywords (+ DPT widths from shapes); errors name the file."""
  if arch not in ARCHS:
    raise CheckpointError(f'{path}: checkpoint of another architecture ({arch}); supported: {", ".join(ARCHS)}')
  allowed = {f.name for f in dataclasses.fields(ModelConfig)}
  unknown = sorted(set(kwargs) - allowed)
  if unknown:
    raise CheckpointError(f'{path}: constructor keyword(s) {unknown} of {arch} are not supported')
  if kwargs.get('head_type') == 'dpt':
    kwargs = {**kwargs, **dpt_widths(state_dict)}
  try:
    return ModelConfig(arch=arch, **kwargs)
  except (ValueError, TypeError) as e:
    raise CheckpointError(f'{path}: {e} (give the architecture with --model if the checkpoint misstates it)') from None


def dynadust3r_kwargs(state_dict) -> dict:
  """Constructor keywords of an unofficial DynaDUSt3R state dict, from its shapes. Head counts assume
  the 64-wide heads of every released CroCo/DUSt3R model; the rest is the training config of spec §a.1."""
  def depth(prefix):
    return 1 + max((int(k.split('.')[1]) for k in state_dict if k.startswith(prefix + '.')), default=-1)
  try:
    enc, dec = state_dict['patch_embed.proj.weight'], state_dict['decoder_embed.weight']
    time_dim = state_dict['motion_head1.dpt.linear_projections.0.0.weight'].shape[1]
  except KeyError as e:
    raise CheckpointError(f'not a DynaDUSt3R state dict: {e.args[0]} missing') from None
  return dict(pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', img_size=(512, 512), head_type='dpt',
              enc_embed_dim=enc.shape[0], enc_depth=depth('enc_blocks'), enc_num_heads=enc.shape[0] // 64,
              dec_embed_dim=dec.shape[0], dec_depth=depth('dec_blocks'), dec_num_heads=dec.shape[0] // 64,
              patch_size=enc.shape[2], time_pos_emb_dim=time_dim)


def _from_torch(path) -> Source:
  ckpt = load_torch_checkpoint(path)
  if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):  # unofficial DynaDUSt3R
    state_dict = {k.removeprefix('module.'): v for k, v in ckpt['state_dict'].items()}
    try:
      kwargs = dynadust3r_kwargs(state_dict)
    except CheckpointError as e:
      raise CheckpointError(f'{path}: {e}') from None
    return Source(path, state_dict, 'DynaDUSt3R', kwargs)
  if not isinstance(ckpt, dict) or not isinstance(ckpt.get('model'), dict):
    keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
    raise CheckpointError(f"{path}: not a CroCo/DUSt3R/DynaDUSt3R checkpoint (expected a dict with 'model' and "
                          f"'args' or 'croco_kwargs', or 'state_dict'; found {keys})")
  state_dict = {k: v for k, v in ckpt['model'].items()}
  bad = [k for k, v in state_dict.items() if not isinstance(v, np.ndarray)]
  if bad:
    raise CheckpointError(f"{path}: 'model' entries that are not tensors: {bad[:5]}")
  if 'croco_kwargs' in ckpt:
    return Source(path, state_dict, 'CroCoNet', dict(ckpt['croco_kwargs']))
  model_string = getattr(ckpt.get('args'), 'model', None)
  if not isinstance(model_string, str):
    raise CheckpointError(f"{path}: no architecture found (expected ckpt['args'].model, a constructor string, "
                          "or ckpt['croco_kwargs'])")
  try:
    arch, kwargs = parse_constructor(model_string)
  except ValueError as e:
    raise CheckpointError(f'{path}: args.model: {e}') from None
  return Source(path, state_dict, arch, kwargs)


def _from_hf_folder(path) -> Source:
  config_file = os.path.join(path, 'config.json')
  safetensors_file = os.path.join(path, 'model.safetensors')
  bin_file = os.path.join(path, 'pytorch_model.bin')
  if not os.path.isfile(config_file) or not (os.path.isfile(safetensors_file) or os.path.isfile(bin_file)):
    raise CheckpointError(f'{path}: a model folder needs config.json and model.safetensors (or pytorch_model.bin)')
  if not os.path.isfile(safetensors_file):
    state_dict = dict(load_torch_checkpoint(bin_file))
  else:
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    try:
      state_dict = load_file(safetensors_file)
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's file
      raise CheckpointError(f'{safetensors_file}: unreadable ({type(e).__name__}: {e})') from None
  try:
    with open(config_file) as f:
      kwargs = json.load(f)
  except ValueError as e:
    raise CheckpointError(f'{config_file}: not valid JSON ({e})') from None
  if isinstance(kwargs, dict) and kwargs.get('model_type') == 'videomae':
    return Source(path, state_dict, VIDEOMAE, kwargs)
  arch = 'AsymmetricCroCo3DStereo' if 'head_type' in kwargs else 'CroCoNet'
  return Source(path, state_dict, arch, kwargs)


def read_source(path: str) -> Source:
  """The tensors and architecture of a checkpoint file or Hugging Face model folder."""
  if os.path.isdir(path):
    return _from_hf_folder(path)
  return _from_torch(path)
