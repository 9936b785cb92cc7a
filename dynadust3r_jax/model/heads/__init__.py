"""Pixel-wise prediction heads of DUSt3R."""
from dynadust3r_jax.model.heads.dpt_head import create_dpt_head
from dynadust3r_jax.model.heads.linear_head import LinearPts3d


def head_factory(cfg, *, rngs):
  """`dust3r.heads.head_factory`: the head for cfg.head_type ('linear' or 'dpt')."""
  if cfg.head_type == 'linear':
    return LinearPts3d(cfg.dec_embed_dim, cfg.patch_size, depth_mode=cfg.depth_mode,
                       conf_mode=cfg.conf_mode, rngs=rngs)
  return create_dpt_head(cfg, rngs=rngs)
