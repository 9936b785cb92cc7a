"""The D4RT output head (spec §4): final LayerNorm + Dense(d → 13), float32, split as Fig. 7:

  xyz [0:3] (+1 on z: the predicted depth starts near 1, not 0; MO after the authors), uv [3:5],
  vis_logit [5], disp [6:9], normal [9:12] (normalised to unit length), conf [12] → 1 + exp(min(x, 20))
  (DUSt3R's confidence, which the -0.2 log c term of the loss implies; inferred, spec §4).
One Dense equals six separate linear projections (its columns are theirs, in this order).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from dynadust3r_jax.model.blocks import layer_norm, linear
from dynadust3r_jax.model.d4rt.config import HEAD_DIM, HEAD_SPLITS, D4RTConfig


def head_outputs(raw, conf_logit_max: float = 20.0):
  """raw (..., 13) float32 → {'xyz', 'uv', 'vis_logit', 'disp', 'normal', 'conf'}."""
  part = {name: raw[..., a:b] for name, (a, b) in HEAD_SPLITS.items()}
  normal = part['normal']
  normal = normal * jax.lax.rsqrt(jnp.maximum(jnp.sum(normal * normal, axis=-1, keepdims=True), 1e-12))
  return {
      'xyz': part['xyz'] + jnp.asarray([0.0, 0.0, 1.0], raw.dtype),
      'uv': part['uv'],
      'vis_logit': part['vis_logit'][..., 0],
      'disp': part['disp'],
      'normal': normal,
      'conf': 1.0 + jnp.exp(jnp.minimum(part['conf'][..., 0], conf_logit_max)),
  }


class D4RTHead(nnx.Module):
  def __init__(self, cfg: D4RTConfig, *, rngs: nnx.Rngs):
    self.conf_logit_max = cfg.conf_logit_max
    self.norm = layer_norm(cfg.dec_embed_dim, dtype=jnp.float32, rngs=rngs)
    self.proj = linear(cfg.dec_embed_dim, HEAD_DIM, dtype=jnp.float32, rngs=rngs)

  def __call__(self, x):
    return head_outputs(self.proj(self.norm(x.astype(jnp.float32))), self.conf_logit_max)
