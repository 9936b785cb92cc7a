"""DynaDUSt3R's time-conditioned motion head (unofficial `heads/motion_dpt_head.py`, spec §a.2).

The DUSt3R DPT head, plus per DPT level a SiLU MLP of the query time's sinusoidal embedding whose
output (B, feature_dim) is added to the level's map after `layer_rn`. The head predicts, per pixel, the
3D displacement of that pixel's point from its frame's time to the query time (+ a confidence).
Module tree = PyTorch's: `dpt.linear_projections.{0..3}.{0,2}` (`.1` is the parameter-free SiLU).
"""
import math

import jax
import jax.numpy as jnp
from flax import nnx

from dynadust3r_jax.model.heads.common import linear
from dynadust3r_jax.model.heads.dpt_head import DPTOutputAdapter, dpt_kwargs
from dynadust3r_jax.model.heads.postprocess import postprocess


def timestep_embedding(t, dim: int, max_period: float = 10000.0):
  """(B,) times in [0, 1] → (B, dim) [cos(t·w_k), sin(t·w_k)], w_k = max_period^(-k / (dim/2)).

  diffusers' `get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=0)` on the raw time.
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  angles = t.astype(jnp.float32)[:, None] * freqs
  return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


class MotionDPTOutputAdapter(DPTOutputAdapter):
  def __init__(self, *, time_dim, rngs, **kwargs):
    super().__init__(rngs=rngs, **kwargs)
    self.time_dim = time_dim
    features = kwargs['feature_dim']
    # The last layer starts at zero: a motion head initialised from a point head computes exactly the
    # point head's function until the time MLPs learn (spec §g, "initialise the way the paper does").
    zero = nnx.initializers.zeros_init()
    self.linear_projections = nnx.List([
        nnx.List([linear(time_dim, features, rngs=rngs), None,
                  nnx.Linear(features, features, kernel_init=zero, bias_init=zero, rngs=rngs)])
        for _ in range(4)])

  def __call__(self, decout, img_hw, times):
    emb = timestep_embedding(times, self.time_dim)
    level_bias = [mlp[2](jax.nn.silu(mlp[0](emb))) for mlp in self.linear_projections]
    return super().__call__(decout, img_hw, level_bias)


class PixelwiseTaskWithMotionDPT(nnx.Module):
  """Motion DPT head + post-processing → {'pts3d': displacement (B, H, W, 3), 'conf': (B, H, W)}."""

  def __init__(self, cfg, *, rngs):
    self.depth_mode = cfg.motion_depth_mode
    self.conf_mode = cfg.motion_conf_mode
    self.dpt = MotionDPTOutputAdapter(num_channels=3 + bool(cfg.motion_conf_mode), time_dim=cfg.time_pos_emb_dim,
                                      rngs=rngs, **dpt_kwargs(cfg))

  def __call__(self, decout, img_hw, times):
    return postprocess(self.dpt(decout, img_hw, times), self.depth_mode, self.conf_mode)
