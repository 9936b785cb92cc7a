"""2D rotary position embedding of CroCo v2 (`models/pos_embed.py: RoPE2D`), and the token grid.

A head vector t (D values) at token position (y, x) is split into halves [t_y | t_x]; t_y is
rotated by angles y * w_k and t_x by x * w_k, with w_k = base^(-2k / (D/2)), k < D/4, using the
rotate-half pairing (element k with element k + D/4 inside each half). Angles, cos and sin are
computed in float32 whatever the token dtype (the PyTorch fallback casts angles to the token dtype
first and loses precision under bf16; cuRoPE keeps float32, as here).
"""
import jax.numpy as jnp
import numpy as np


def position_grid(h: int, w: int) -> np.ndarray:
  """(h*w, 2) int32 token positions (y, x), row-major: `PositionGetter` of CroCo."""
  y, x = np.meshgrid(np.arange(h, dtype=np.int32), np.arange(w, dtype=np.int32), indexing='ij')
  return np.stack([y.ravel(), x.ravel()], axis=-1)


def _rope_1d(t, pos, base):
  """t (..., N, H, D'), pos (..., N) int → t rotated by pos * w_k, rotate-half pairing."""
  d = t.shape[-1]
  inv_freq = 1.0 / (base ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))  # (D'/2,)
  angles = pos.astype(jnp.float32)[..., None] * inv_freq                   # (..., N, D'/2)
  angles = jnp.concatenate([angles, angles], axis=-1)[..., None, :]          # (..., N, 1, D')
  t32 = t.astype(jnp.float32)
  t1, t2 = jnp.split(t32, 2, axis=-1)
  rotated = jnp.concatenate([-t2, t1], axis=-1)
  return (t32 * jnp.cos(angles) + rotated * jnp.sin(angles)).astype(t.dtype)


def rope_2d(tokens, positions, base: float = 100.0):
  """Apply RoPE2D. tokens (B, N, H, D); positions (B, N, 2) int (y, x). Returns tokens' shape."""
  t_y, t_x = jnp.split(tokens, 2, axis=-1)
  return jnp.concatenate([_rope_1d(t_y, positions[..., 0], base),
                          _rope_1d(t_x, positions[..., 1], base)], axis=-1)
