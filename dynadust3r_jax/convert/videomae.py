"""Hugging Face VideoMAE (v1: VideoMAEModel / VideoMAEForPreTraining / VideoMAEForVideoClassification) → the D4RT
encoder (spec d4rt.md §2.2): its architecture (`videomae_config`) and its tensors re-laid out in D4RT's PyTorch-style
naming (`videomae_tensors`). Keys are read with or without the `videomae.` prefix of the task models."""
import numpy as np

from dynadust3r_jax.common.torch_checkpoint import CheckpointError
from dynadust3r_jax.convert.constructor import parse_constructor
from dynadust3r_jax.convert.sources import Source
from dynadust3r_jax.model.d4rt.config import SIZES, D4RTConfig
from dynadust3r_jax.model.d4rt.encoder import sinusoid_table

# Source tensors deliberately not used: the pre-training decoder (+ its input projection and mask token) and the
# classification head (mean-pooling LayerNorm `fc_norm`, `classifier`).
VIDEOMAE_IGNORED_PREFIXES = ('decoder.', 'encoder_to_decoder.', 'mask_token', 'fc_norm.', 'classifier.')
# VideoMAEConfig defaults, for the keys read here that a config.json leaves out.
_VIDEOMAE_DEFAULTS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                          hidden_act='gelu', image_size=224, patch_size=16, num_channels=3, num_frames=16,
                          tubelet_size=2, qkv_bias=True)
_DECODER_FIELDS = ('dec_embed_dim', 'dec_depth', 'dec_num_heads', 'dec_mlp_ratio')
_ENCODER_FIELDS = ('enc_embed_dim', 'enc_depth', 'enc_num_heads', 'enc_mlp_ratio', 'tubelet')
# VideoMAE layer tensor (after `encoder.layer.{j}.`) → D4RT block tensor (PyTorch naming) [, part of qkv]
_VIDEOMAE_LAYER = {
    'attention.attention.query.weight': ('attn.qkv.weight', 0),
    'attention.attention.key.weight': ('attn.qkv.weight', 1),
    'attention.attention.value.weight': ('attn.qkv.weight', 2),
    'attention.attention.q_bias': ('attn.qkv.bias', 0),        # released checkpoints (transformers < 5)
    'attention.attention.v_bias': ('attn.qkv.bias', 2),
    'attention.attention.query.bias': ('attn.qkv.bias', 0),    # saved by transformers >= 5
    'attention.attention.value.bias': ('attn.qkv.bias', 2),
    'attention.output.dense.weight': ('attn.proj.weight', None),
    'attention.output.dense.bias': ('attn.proj.bias', None),
    'intermediate.dense.weight': ('mlp.fc1.weight', None),
    'intermediate.dense.bias': ('mlp.fc1.bias', None),
    'output.dense.weight': ('mlp.fc2.weight', None),
    'output.dense.bias': ('mlp.fc2.bias', None),
    'layernorm_before.weight': ('norm1.weight', None),
    'layernorm_before.bias': ('norm1.bias', None),
    'layernorm_after.weight': ('norm2.weight', None),
    'layernorm_after.bias': ('norm2.bias', None),
}
_VIDEOMAE_TOP = {
    'embeddings.patch_embeddings.projection.weight': 'encoder.patch_embed.proj.weight',
    'embeddings.patch_embeddings.projection.bias': 'encoder.patch_embed.proj.bias',
    'layernorm.weight': 'encoder.norm.weight',
    'layernorm.bias': 'encoder.norm.bias',
}
_POSITION_TABLE = 'embeddings.position_embeddings'  # VideoMAE's fixed sinusoid table, if a file holds it


def _pair(v):
  return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def _videomae_kwargs(source: Source) -> dict:
  """config.json over the VideoMAEConfig defaults; qv_bias (the transformers >= 5 name) read as qkv_bias."""
  hf = {**_VIDEOMAE_DEFAULTS, **source.kwargs}
  if 'qv_bias' in source.kwargs:
    hf['qkv_bias'] = source.kwargs['qv_bias']
  return hf


def _model_type_errors(kwargs: dict, fields: dict) -> list[str]:
  """'field=value (want …)' for each --model keyword whose value is not of its D4RTConfig field's type."""
  bad = []
  for k, v in kwargs.items():
    default = fields[k].default
    if isinstance(default, tuple):
      ok, want = isinstance(v, (list, tuple)) and len(v) == len(default) and all(
          isinstance(x, int) and not isinstance(x, bool) for x in v), f'{len(default)} integers'
    elif isinstance(default, bool):
      ok, want = isinstance(v, bool), 'True or False'
    elif isinstance(default, float):
      ok, want = isinstance(v, (int, float)) and not isinstance(v, bool), 'a number'
    elif isinstance(default, int):
      ok, want = isinstance(v, int) and not isinstance(v, bool), 'an integer'
    else:
      ok, want = isinstance(v, str), 'a string'
    if not ok:
      bad.append(f'{k}={v!r} (want {want})')
  return bad


def videomae_config(source: Source, model: str | None = None):
  """The D4RT architecture of a VideoMAE checkpoint: the encoder from its config.json; the decoder (and any
  other D4RT field) from `model`: a size name of `SIZES` (its decoder), or 'D4RT(size=..., field=value, ...)'
  (fields of D4RTConfig; encoder fields must agree with the checkpoint; img_size and num_frames default to the
  checkpoint's). Without `model`: the decoder of the size whose encoder width equals hidden_size."""
  hf = _videomae_kwargs(source)
  where = f'{source.path}/config.json'
  if hf['hidden_act'] != 'gelu' or hf['num_channels'] != 3:
    raise CheckpointError(f"{where}: hidden_act={hf['hidden_act']!r}, num_channels={hf['num_channels']}; the D4RT "
                          "encoder has exact GELU and RGB input")
  c, inter = hf['hidden_size'], hf['intermediate_size']
  patch, image = _pair(hf['patch_size']), _pair(hf['image_size'])
  if image[0] != image[1]:
    raise CheckpointError(f'{where}: image_size={hf["image_size"]}; D4RT takes square inputs')
  encoder = dict(enc_embed_dim=c, enc_depth=hf['num_hidden_layers'], enc_num_heads=hf['num_attention_heads'],
                 enc_mlp_ratio=inter / c, tubelet=(hf['tubelet_size'], *patch))
  fields = dict(img_size=image[0], num_frames=hf['num_frames'])
  size = None
  if model and '(' not in model:
    size, kwargs = model.strip(), {}
  elif model:
    try:
      name, kwargs = parse_constructor(model)
    except ValueError as e:
      raise CheckpointError(f'--model: {e}') from None
    if name != 'D4RT':
      raise CheckpointError(f'--model: {name}(...) for a VideoMAE checkpoint; give a D4RT size name or D4RT(...)')
    size = kwargs.pop('size', None)
    if size is not None and not isinstance(size, str):
      raise CheckpointError(f'--model: size={size!r}; give a size name of {tuple(SIZES)}')
    unknown = sorted(set(kwargs) - set(D4RTConfig.__dataclass_fields__))
    if unknown:
      raise CheckpointError(f'--model: unknown D4RT field(s) {unknown}')
    bad = _model_type_errors(kwargs, D4RTConfig.__dataclass_fields__)
    if bad:
      raise CheckpointError(f'--model: {", ".join(bad)}')
    for k in _ENCODER_FIELDS:
      if k in kwargs and (tuple(kwargs[k]) if k == 'tubelet' else kwargs[k]) != encoder[k]:
        raise CheckpointError(f'--model: {k}={kwargs[k]!r}, but the checkpoint has {k}={encoder[k]!r}')
  else:
    kwargs = {}
  if size is None:  # the decoder of the size with this encoder width
    size = next((n for n, s in SIZES.items() if s['enc_embed_dim'] == c), None)
    if size is None and not all(k in kwargs for k in _DECODER_FIELDS):
      raise CheckpointError(f'{source.path}: no D4RT size has a {c}-wide encoder; give the decoder with --model '
                            f'(a size name of {tuple(SIZES)} or D4RT(dec_embed_dim=..., ...))')
  if size is not None:
    if size not in SIZES:
      raise CheckpointError(f'--model: D4RT size {size!r}; choose from {tuple(SIZES)}')
    fields.update({k: SIZES[size][k] for k in _DECODER_FIELDS})
  try:
    cfg = D4RTConfig(**{**fields, **kwargs, **encoder})
  except (ValueError, TypeError) as e:
    try:  # the checkpoint's values alone build: the error is a --model keyword's
      D4RTConfig(**{**fields, **encoder})
      where = '--model' if kwargs else where
    except (ValueError, TypeError):
      pass
    raise CheckpointError(f'{where}: {e}') from None
  if cfg.enc_mlp_dim != inter:
    raise CheckpointError(f'{where}: intermediate_size={inter} is not round(hidden_size * ratio) for any ratio')
  return cfg


def videomae_tensors(source: Source, cfg):
  """The VideoMAE tensors re-laid out in D4RT PyTorch-style naming, every key accounted for.

  Returns (tensors {D4RT key: array}, ignored [source keys], notes). Raises CheckpointError naming the key for
  an unknown key, a shape that disagrees with the config, or a layer/part that is missing. Mapping (keys with or
  without the `videomae.` prefix): embeddings.patch_embeddings.projection (Conv3d (C, 3, 2, 16, 16)) →
  encoder.patch_embed.proj (Dense of the (dt, dy, dx, c) tubelet values: W.transpose(2, 3, 4, 1, 0)); layer j
  → frame_blocks[j // 2] (j even) / global_blocks[j // 2] (j odd) with query/key/value fused into attn.qkv
  (bias [q_bias | 0 | v_bias]), attention.output.dense → attn.proj, intermediate.dense → mlp.fc1,
  output.dense → mlp.fc2, layernorm_before/after → norm1/norm2; layernorm → encoder.norm."""
  c, n_layers = cfg.enc_embed_dim, cfg.enc_depth
  t, ph, pw = cfg.tubelet
  layer_shapes = {'attn.qkv.weight': (c, c), 'attn.qkv.bias': (c,), 'attn.proj.weight': (c, c),
                  'attn.proj.bias': (c,), 'mlp.fc1.weight': (cfg.enc_mlp_dim, c), 'mlp.fc1.bias': (cfg.enc_mlp_dim,),
                  'mlp.fc2.weight': (c, cfg.enc_mlp_dim), 'mlp.fc2.bias': (c,)}
  top_shapes = {'encoder.patch_embed.proj.weight': (c, 3, t, ph, pw)}
  out, parts, ignored, unknown, notes = {}, {}, [], [], []

  def check(key, value, want):
    if tuple(value.shape) != tuple(want):
      raise CheckpointError(f'{source.path}: {key} has shape {tuple(value.shape)}, the model expects {tuple(want)} '
                            '(config.json and the tensors disagree?)')

  for key, value in source.state_dict.items():
    name = key.removeprefix('videomae.')
    if name.startswith('encoder.layer.'):
      j, _, rest = name[len('encoder.layer.'):].partition('.')
      if not j.isdigit() or rest not in _VIDEOMAE_LAYER:
        unknown.append(key)
        continue
      j = int(j)
      if j >= n_layers:
        raise CheckpointError(f'{source.path}: {key}: layer {j}, but config.json has num_hidden_layers={n_layers}')
      target, part = _VIDEOMAE_LAYER[rest]
      check(key, value, layer_shapes.get(target, (c,)))
      target = f'encoder.{("frame_blocks", "global_blocks")[j % 2]}.{j // 2}.{target}'
      if part is None:
        out[target] = value
      elif part in parts.setdefault(target, {}):
        raise CheckpointError(f'{source.path}: {key} duplicates {parts[target][part][0]}')
      else:
        parts[target][part] = (key, value)
    elif name in _VIDEOMAE_TOP:
      target = _VIDEOMAE_TOP[name]
      check(key, value, top_shapes.get(target, (c,)))
      out[target] = value
    elif name == _POSITION_TABLE:
      flat = value.reshape(-1, value.shape[-1])
      if flat.shape[1] != c or not np.allclose(flat, sinusoid_table(flat.shape[0], c), atol=1e-5):
        raise CheckpointError(f'{source.path}: {key} is not the fixed sinusoid table D4RT computes')
      ignored.append(key)
    elif any(name.startswith(p) for p in VIDEOMAE_IGNORED_PREFIXES):
      ignored.append(key)
    else:
      unknown.append(key)
  if unknown:
    raise CheckpointError(f'{source.path}: {len(unknown)} key(s) match no parameter of the D4RT encoder and are '
                          f'not on the VideoMAE ignore list: {", ".join(unknown[:6])}'
                          + (f' … (+{len(unknown) - 6} more)' if len(unknown) > 6 else ''))
  if 'encoder.patch_embed.proj.weight' in out:
    w = out['encoder.patch_embed.proj.weight']
    out['encoder.patch_embed.proj.weight'] = w.transpose(2, 3, 4, 1, 0).reshape(-1, w.shape[0]).T
  zero_bias = 0
  for i in range(n_layers):
    prefix = f'encoder.{("frame_blocks", "global_blocks")[i % 2]}.{i // 2}.attn.qkv.'
    got = parts.get(prefix + 'weight', {})
    if len(got) != 3:
      raise CheckpointError(f'{source.path}: layer {i} lacks its attention query/key/value weights '
                            f'(found {sorted(k for k, _ in got.values())})')
    out[prefix + 'weight'] = np.concatenate([got[p][1] for p in range(3)], axis=0)
    bias = parts.get(prefix + 'bias', {})
    if not bias:
      zero_bias += 1
    elif len(bias) != 2:
      raise CheckpointError(f'{source.path}: layer {i} has {[k for k, _ in bias.values()]} but not both the query '
                            'and value biases')
    qb = bias[0][1] if bias else np.zeros(c, np.float32)
    vb = bias[2][1] if bias else np.zeros(c, np.float32)
    out[prefix + 'bias'] = np.concatenate([qb, np.zeros_like(qb), vb])
  if zero_bias and _videomae_kwargs(source)['qkv_bias']:
    raise CheckpointError(f'{source.path}: config.json says qkv_bias, but {zero_bias} layer(s) have no '
                          'q_bias/v_bias (or query.bias/value.bias)')
  if zero_bias:
    notes.append(f'qkv biases of {zero_bias} layer(s) zero (no q_bias/v_bias in the checkpoint)')
  return out, ignored, notes
