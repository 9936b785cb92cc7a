"""DynaDUSt3R: DUSt3R + two time-conditioned motion heads (spec dynadust3r.md §a).

    res1, res2 = model(view1, view2, query_times)      # query_times (B, 3) = [t_mid, 1, 0] per pair
    res1: 'pts3d', 'conf' (as DUSt3R) + 'motion_l2m', 'conf_l2m', 'motion_l2r', 'conf_l2r'
    res2: 'pts3d_in_other_view', 'conf' + 'motion_r2m', 'conf_r2m', 'motion_r2l', 'conf_r2l'

A motion output is the displacement (B, H, W, 3), in camera-1 coordinates, of each pixel's point from
its own frame's time (0 for view 1, 1 for view 2) to the query time; pointmap + displacement is the
point's position then. Only the useful queries are computed — view 1 at t_mid and 1, view 2 at t_mid and
0 — both in one head call (the decoder features repeated along the batch).
"""
import jax
import jax.numpy as jnp

from dynadust3r_jax.common.motion_terms import view_queries
from dynadust3r_jax.model.dust3r import AsymmetricCroCo3DStereo
from dynadust3r_jax.model.heads.motion_dpt_head import PixelwiseTaskWithMotionDPT


class DynaDUSt3R(AsymmetricCroCo3DStereo):

  def __init__(self, cfg, *, rngs):
    super().__init__(cfg, rngs=rngs)
    self.motion_head1 = PixelwiseTaskWithMotionDPT(cfg, rngs=rngs)
    self.motion_head2 = PixelwiseTaskWithMotionDPT(cfg, rngs=rngs)

  def _motion(self, head, view, decout, query_times, queries):
    """All `queries` of one view in one head call: features repeated along the batch axis."""
    q = len(queries)
    times = jnp.concatenate([query_times[:, col] for _, col in queries])          # (Q*B,)
    repeat = lambda x: None if x is None else jnp.concatenate([x] * q)
    tiled = [repeat(x) for x in decout]
    out = self._downstream_head(lambda d, hw: head(d, hw, times), tiled, repeat(view.get('true_shape')),
                                view['img'].shape[1:3])
    res = {}
    for i, (name, _) in enumerate(queries):
      part = jax.tree.map(lambda a: jnp.split(a, q)[i], out)
      res[f'motion_{name}'] = part['pts3d']
      if 'conf' in part:
        res[f'conf_{name}'] = part['conf']
    return res

  def __call__(self, view1, view2, query_times=None):
    dec1, dec2 = self._decode_pair(view1, view2)
    res1, res2 = self._point_heads(view1, view2, dec1, dec2)
    if query_times is not None:
      res1.update(self._motion(self.motion_head1, view1, dec1, query_times, view_queries(1)))
      res2.update(self._motion(self.motion_head2, view2, dec2, query_times, view_queries(2)))
    return res1, res2
