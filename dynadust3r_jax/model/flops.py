"""Analytic FLOPs of a DUSt3R forward pass (matmuls, attention and convolutions; 2 FLOPs per
multiply-add). XLA's cost analysis counts a scanned block once, not once per layer, so benchmarks
and MFU figures use this count instead."""
import math

from dynadust3r_jax.model.config import ModelConfig


def _vit_block(n, n_kv, dim, mlp_ratio, cross):
  """One pre-norm block over n query tokens: self-attention (+ cross-attention to n_kv tokens) + MLP."""
  flops = 2 * n * dim * 3 * dim + 2 * n * dim * dim + 4 * n * n * dim       # qkv, proj, QK^T and AV
  if cross:
    flops += 2 * (2 * n + 2 * n_kv) * dim * dim + 4 * n * n_kv * dim       # projq/proj, projk/projv, attention
  return flops + 4 * n * dim * int(dim * mlp_ratio)                          # fc1 + fc2


def _conv(h, w, c_in, c_out, k=1):
  return 2 * h * w * c_in * c_out * k * k


def _dpt_head(cfg: ModelConfig, h, w):
  """DPT head on an h×w token grid (spec dust3r.md §1.8)."""
  f, last = cfg.dpt_feature_dim, cfg.dpt_last_dim
  d0, d1, d2, d3 = cfg.dpt_layer_dims
  ce, cd = cfg.enc_embed_dim, cfg.dec_embed_dim
  h3, w3 = math.ceil(h / 2), math.ceil(w / 2)
  rcu = lambda hh, ww: 2 * _conv(hh, ww, f, f, 3)
  flops = (_conv(h, w, ce, d0) + _conv(h, w, d0, d0 * 16)                   # reassemble 4× (ConvTranspose k=4)
           + _conv(h, w, cd, d1) + _conv(h, w, d1, d1 * 4)                   # 2×
           + _conv(h, w, cd, d2)                                             # 1×
           + _conv(h, w, cd, d3) + _conv(h3, w3, d3, d3, 3))                 # ½× (stride-2 conv)
  flops += (_conv(4 * h, 4 * w, d0, f, 3) + _conv(2 * h, 2 * w, d1, f, 3)  # layer_rn
            + _conv(h, w, d2, f, 3) + _conv(h3, w3, d3, f, 3))
  flops += rcu(h3, w3) + _conv(2 * h3, 2 * w3, f, f)                         # refinenet4
  for scale in (1, 2, 4):                                                    # refinenet3, 2, 1
    flops += 2 * rcu(scale * h, scale * w) + _conv(2 * scale * h, 2 * scale * w, f, f)
  return flops + (_conv(8 * h, 8 * w, f, f // 2, 3) + _conv(16 * h, 16 * w, f // 2, last, 3)
                  + _conv(16 * h, 16 * w, last, 3 + cfg.has_conf))


def dust3r_forward_flops(cfg: ModelConfig, height: int, width: int) -> int:
  """FLOPs of one pair (two views of height×width) through AsymmetricCroCo3DStereo, or through
  DynaDUSt3R with its training queries (two motion-head evaluations per view)."""
  p = cfg.patch_size
  h, w = height // p, width // p
  n = h * w
  per_view = _conv(h, w, 3, cfg.enc_embed_dim, p)                            # patch embedding
  per_view += cfg.enc_depth * _vit_block(n, 0, cfg.enc_embed_dim, cfg.mlp_ratio, cross=False)
  per_view += 2 * n * cfg.enc_embed_dim * cfg.dec_embed_dim                  # decoder_embed
  per_view += cfg.dec_depth * _vit_block(n, n, cfg.dec_embed_dim, cfg.mlp_ratio, cross=True)
  if cfg.head_type == 'linear':
    per_view += 2 * n * cfg.dec_embed_dim * (3 + cfg.has_conf) * p * p
  else:
    per_view += _dpt_head(cfg, h, w)
  if cfg.arch == 'DynaDUSt3R':
    per_view += 2 * _dpt_head(cfg, h, w)
  return 2 * per_view
