"""2D rotary position embedding of CroCo v2 (`models/pos_embed.py: RoPE2D`), and the token grid.

A head vector t (D values) at token position (y, x) is split into halves [t_y | t_x]; t_y is
rotated by angles y * w_k and t_x by x * w_k, with w_k = base^(-2k / (D/2)), k < D/4, using the
rotate-half pairing (element k with element k + D/4 inside each half). Angles, cos and sin are
computed in float32 whatever the token dtype (the PyTorch fallback casts angles to the token dtype
first and loses precision under bf16; cuRoPE keeps float32, as here).

The math lives in `pallas_kernels/rope_tiling.py` (one copy, shared by the fused Pallas kernels and
the XLA path); `rope_2d`, its XLA form, is re-exported from `pallas_kernels/rope_attention.py`.
"""
import numpy as np

from pallas_kernels.rope_attention import rope_2d  # noqa: F401  (re-exported)


def position_grid(h: int, w: int) -> np.ndarray:
  """(h*w, 2) int32 token positions (y, x), row-major: `PositionGetter` of CroCo."""
  y, x = np.meshgrid(np.arange(h, dtype=np.int32), np.arange(w, dtype=np.int32), indexing='ij')
  return np.stack([y.ravel(), x.ravel()], axis=-1)
