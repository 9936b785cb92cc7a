"""The D4RT decoder (spec §4): M cross-attention blocks over the scene tokens F, no query self-attention.

Every query token attends to F only, so a query's output does not depend on the other queries, and the
queries can be decoded in any chunking. The expensive, query-independent part is each layer's K and V of
norm_y(F) (projected from C to d): `scene_kv(F)` computes them once per clip, `__call__(x, kv)` reuses them
for any number of query chunks.
"""
import jax.numpy as jnp
from flax import nnx

from dynadust3r_jax.model import scan
from dynadust3r_jax.model.d4rt.blocks import CrossBlock
from dynadust3r_jax.model.d4rt.config import D4RTConfig


class D4RTDecoder(nnx.Module):
  def __init__(self, cfg: D4RTConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    dtype = jnp.dtype(cfg.dtype)
    self.blocks = scan.stack(
        lambda r: CrossBlock(cfg.dec_embed_dim, cfg.enc_embed_dim, cfg.dec_num_heads, cfg.dec_mlp_dim,
                             attention_impl=cfg.attention_impl, dtype=dtype, rngs=r),
        cfg.dec_depth, rngs)

  def scene_kv(self, feats):
    """F (B, N, C) → {'k', 'v'}: each (M, B, N, heads, d/heads), every layer's K/V of F (compute dtype)."""
    feats = feats.astype(jnp.dtype(self.cfg.dtype))
    _, (k, v) = scan.scan(lambda f, blk: (f, blk.kv(f)), feats, self.blocks, remat_policy='none')
    return {'k': k, 'v': v}

  def __call__(self, x, kv):
    """Query tokens x (B, Q, d) and `scene_kv(F)` → decoded tokens (B, Q, d), compute dtype."""
    x = x.astype(jnp.dtype(self.cfg.dtype))
    x, _ = scan.scan(lambda x, blk, layer_kv: (blk(x, *layer_kv), None), x, self.blocks, xs=(kv['k'], kv['v']),
                     remat_policy=self.cfg.remat_policy)
    return x
