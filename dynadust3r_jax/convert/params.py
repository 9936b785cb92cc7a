"""PyTorch state dict → Flax NNX parameters of the same module tree (a re-layout, no name table).

A key `a.b.3.c.weight` names module `a.b.3.c` and its tensor `weight`. Integer parts are list
indices (`nnx.List`), except right after a stacked-block container (`enc_blocks`, `dec_blocks`,
`dec_blocks2`), where they are the layer index: those tensors are stacked along a new axis 0.
The leaf and its layout follow from the Flax module type found at that path:
  nnx.Linear     weight (out, in)        → kernel (in, out)
  nnx.Conv       weight (out, in, kh, kw) → kernel (kh, kw, in, out)
  nnx.LayerNorm  weight                  → scale
  ConvTranspose  weight (in, out, k, k)  → kernel, same layout (see heads/dpt_head.py)
  a bare Param (mask_token)              → same name and layout
Biases keep their name and layout.

Stacked containers may be nested (D4RT's `encoder.frame_blocks`, `encoder.global_blocks`, `decoder.blocks`).
A VideoMAE checkpoint is first renamed into D4RT keys by `sources.videomae_tensors` (its mapping and ignore
list `VIDEOMAE_IGNORED_PREFIXES` are documented there).

Source keys that have no parameter here are errors, except the documented ignore list:
  * `prediction_head.*`  - CroCo's pretraining head, which DUSt3R drops;
  * `<head>.dpt.scratch.layer{1..4}_rn.weight` - aliases of `scratch.layer_rn.{0..3}.weight`
    (the same tensor registered twice in PyTorch); when the alias is the only copy (Hugging Face
    safetensors de-duplicate shared tensors) it is used as `layer_rn.{k-1}`.
Parts missing from the source are initialised from their twins (`INIT_FROM`): as in
`AsymmetricCroCo3DStereo.load_state_dict`, `dec_blocks2` from `dec_blocks` (a CroCo checkpoint); and, as
the DynaDUSt3R paper initialises its motion heads, `motion_head{i}.dpt` from `downstream_head{i}.dpt` (a
DUSt3R checkpoint; the time MLPs `linear_projections` then keep their fresh init, last layer zero).

`plan()` works on shapes only (full-size manifests check without memory); `apply_plan()` moves data.
"""
import dataclasses
import re

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dynadust3r_jax.common.torch_checkpoint import CheckpointError
from dynadust3r_jax.model.heads.dpt_head import ConvTranspose

_ALIAS = re.compile(r'^(.*\.dpt\.scratch\.)layer([1-4])_rn\.weight$')
IGNORED_PREFIXES = ('prediction_head.',)
# (prefix of the model's parameters, prefix of the source tensors that initialise them when the source
# has none of the first)
INIT_FROM = (('dec_blocks2.', 'dec_blocks.'), ('motion_head1.dpt.', 'downstream_head1.dpt.'),
             ('motion_head2.dpt.', 'downstream_head2.dpt.'))

# layout name → (transform of a numpy array, transform of a PyTorch shape)
_LAYOUTS = {
    'same': (lambda a: a, lambda s: tuple(s)),
    'linear': (lambda a: a.T, lambda s: tuple(s[::-1])),
    'conv': (lambda a: a.transpose(2, 3, 1, 0), lambda s: (s[2], s[3], s[1], s[0])),
}
_INVERSE_SHAPE = {  # Flax shape → PyTorch shape, for error messages
    'same': lambda s: tuple(s),
    'linear': lambda s: tuple(s[::-1]),
    'conv': lambda s: (s[3], s[2], s[0], s[1]),
}


@dataclasses.dataclass
class Assignment:
  """One Flax parameter from one PyTorch tensor, or from a stack of them (one per layer)."""
  target: tuple
  sources: tuple[str, ...]
  layout: str
  stacked: bool


@dataclasses.dataclass
class Plan:
  assignments: list[Assignment]
  ignored: list[str]          # source keys deliberately not used
  aliases: dict[str, str]     # alias key → the key it duplicates (values checked equal)
  missing: list[tuple]        # Flax parameters no source tensor provides
  notes: list[str]


def _param_shapes(model) -> dict[tuple, tuple]:
  return {path: tuple(v.shape) for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def _module_types(model) -> dict[tuple, type]:
  return {path: type(node) for path, node in nnx.iter_graph(model) if isinstance(node, nnx.Module)}


def _leaf(module_type, name):
  """(Flax leaf name, layout) of PyTorch tensor `name` of a module of this type."""
  if name == 'bias':
    return 'bias', 'same'
  if name != 'weight':
    return None
  if issubclass(module_type, nnx.Linear):
    return 'kernel', 'linear'
  if issubclass(module_type, nnx.Conv):
    return 'kernel', 'conv'
  if issubclass(module_type, nnx.LayerNorm):
    return 'scale', 'same'
  if issubclass(module_type, ConvTranspose):
    return 'kernel', 'same'
  return None


def _parts(key):
  return [int(p) if p.isdigit() else p for p in key.split('.')]


def plan(source_shapes: dict[str, tuple], model, *, source_name: str,
         allow_missing: tuple[str, ...] = (), allow_unused: tuple[str, ...] = ()) -> Plan:
  """Match every source key to a parameter of `model` (shapes only). Raises CheckpointError.

  allow_missing / allow_unused: key prefixes of model parameters that may stay unassigned, and of
  source tensors that may go unused (initialising a new head from another model's backbone).
  """
  targets = _param_shapes(model)
  modules = _module_types(model)
  stacked_containers = getattr(model, 'stacked_blocks', ())
  keys = dict(source_shapes)
  origin = {k: k for k in keys}  # name used for matching → the source key holding the tensor
  ignored, aliases, notes, unknown = [], {}, [], []

  for key in list(keys):
    m = _ALIAS.match(key)
    if m:
      canonical = f'{m.group(1)}layer_rn.{int(m.group(2)) - 1}.weight'
      if canonical in keys:
        aliases[key] = canonical
      else:
        keys[canonical], origin[canonical] = keys[key], key
        notes.append(f'{key} used as {canonical}')
      del keys[key]
  model_prefixes = {'.'.join(map(str, path)) + '.' for path in modules if path}
  for target, twin in INIT_FROM:
    if target in model_prefixes and not any(k.startswith(target) for k in keys):
      copies = {target + k[len(twin):]: k for k in keys if k.startswith(twin)}
      if copies:
        for copy, k in copies.items():
          keys[copy], origin[copy] = keys[k], origin[k]
        notes.append(f'{target[:-1]} initialised from {twin[:-1]}')

  containers = [c.split('.') for c in stacked_containers]  # a container may be nested: 'encoder.frame_blocks'
  groups: dict[tuple, dict] = {}
  for key, shape in keys.items():
    parts = _parts(key)
    layer = None
    for c in containers:
      n = len(c)
      if parts[:n] == c and len(parts) > n + 1 and isinstance(parts[n], int):
        layer, parts = parts[n], parts[:n] + parts[n + 1:]
        break
    module_path, name = tuple(parts[:-1]), parts[-1]
    if module_path in modules and module_path:
      leaf = _leaf(modules[module_path], name)
      target = module_path + (leaf[0],) if leaf else None
      layout = leaf[1] if leaf else None
    else:
      target, layout = tuple(parts), 'same'
    if target not in targets:
      if any(key.startswith(p) for p in IGNORED_PREFIXES + allow_unused):
        ignored.append(key)
      else:
        unknown.append(key)
      continue
    group = groups.setdefault(target, {'layout': layout, 'layers': {}, 'shape': shape})
    group['layers'][layer] = key

  if unknown:
    raise CheckpointError(f'{source_name}: {len(unknown)} key(s) match no parameter of '
                          f'{type(model).__name__}: {_short(unknown)}')

  assignments = []
  for target, g in groups.items():
    layers, layout = g['layers'], g['layout']
    stacked = None not in layers
    if stacked:
      n = targets[target][0]
      if sorted(layers) != list(range(n)):
        container = next('.'.join(c) for c in containers if list(target[:len(c)]) == c)
        raise CheckpointError(f'{source_name}: {container} has layers {sorted(layers)}, the model has '
                              f'{n} (0..{n - 1})')
      sources = tuple(layers[i] for i in range(n))
    else:
      sources = (layers[None],)
    for src in sources:
      got = _LAYOUTS[layout][1](keys[src])
      want = targets[target][1:] if stacked else targets[target]
      if tuple(got) != tuple(want):
        raise CheckpointError(
            f'{source_name}: {origin[src]} has shape {tuple(keys[src])}, the model expects '
            f'{_INVERSE_SHAPE[layout](want)} (architecture mismatch?)')
    assignments.append(Assignment(target, tuple(origin[k] for k in sources), layout, stacked))

  missing = [t for t in targets if t not in groups]
  not_allowed = [t for t in missing if not any('.'.join(map(str, t)).startswith(p) for p in allow_missing)]
  if not_allowed:
    names = ['.'.join(map(str, t)) for t in not_allowed]
    raise CheckpointError(f'{source_name}: {len(names)} parameter(s) of {type(model).__name__} are not in '
                          f'the checkpoint: {_short(names)}')
  return Plan(assignments, ignored, aliases, missing, notes)


def apply_plan(p: Plan, state_dict: dict, *, source_name: str) -> dict[tuple, np.ndarray]:
  """Flat {Flax path: float32 array} from the source tensors, per the plan."""
  for alias, canonical in p.aliases.items():
    if not np.array_equal(state_dict[alias], state_dict[canonical]):
      raise CheckpointError(f'{source_name}: {alias} should be an alias of {canonical} but differs')
  out = {}
  for a in p.assignments:
    transform = _LAYOUTS[a.layout][0]
    arrays = [np.asarray(transform(state_dict[k]), dtype=np.float32) for k in a.sources]
    out[a.target] = np.stack(arrays) if a.stacked else arrays[0]
  return out


def assign(model, flat: dict):
  """Write {Flax path: array} into the model's parameters; parameters not in `flat` keep their values."""
  params = nnx.state(model, nnx.Param)
  for path, var in nnx.to_flat_state(params):
    if path in flat:
      var.set_value(jnp.asarray(flat[path]))
  nnx.update(model, params)


def _short(names, n=6):
  names = list(names)
  return ', '.join(names[:n]) + (f' … (+{len(names) - n} more)' if len(names) > n else '')
