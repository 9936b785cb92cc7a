"""What every `rope_attention` kernel shares: the RoPE2D tables and the rotation of a tile, the tile sizes,
and the elementwise online-softmax algebra of a tile. Written once here so that the generic pl.pallas_call
twin (`rope_attention.py`) and the Mosaic GPU kernels (`rope_attention_mgpu.py`) compute the same thing;
the matmuls and the memory movement are each backend's own.

RoPE2D (spec dust3r.md §1.4): a head vector is split into halves [y | x]; inside a half of size D/2, element
j < D/4 pairs with j + D/4 (rotate-half) and the pair turns by p * w_j, w_j = base^(-2j / (D/2)), with p the
token's y (first half) or x (second half). Angles, cos and sin are float32 whatever the token dtype. As a
table per token, `rope_tables` gives cs = [cos_y | cos_x | sin_y | sin_x] (each D/4 wide), and the rotation
of a (rows, D) tile with quarters t0..t3 is

    [t0 cy - t1 sy | t1 cy + t0 sy | t2 cx - t3 sx | t3 cx + t2 sx]        (`rotate`)

RoPE is orthogonal per token, so its transpose is the rotation by -angle (`rotate(..., inverse=True)`).
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
from jax import lax

LOG2E = math.log2(math.e)


# ------------------------------------------------------------------------------------------------
# RoPE2D tables and the rotation of a tile

def rope_tables(positions, head_dim: int, base: float = 100.0):
  """(B, N, 2) int (y, x) positions → (B, N, head_dim) float32 [cos_y | cos_x | sin_y | sin_x]."""
  if head_dim % 4:
    raise ValueError(f'head_dim={head_dim} must be a multiple of 4 for 2D RoPE')
  half = head_dim // 2
  inv_freq = 1.0 / (base ** (jnp.arange(0, half, 2, dtype=jnp.float32) / half))   # (D/4,)
  angles = positions.astype(jnp.float32)[..., None] * inv_freq                    # (B, N, 2, D/4)
  angles = angles.reshape(*angles.shape[:-2], half)                               # [y freqs | x freqs]
  return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def rotate(x, cs, *, inverse: bool = False):
  """Rotate the rows of a float32 (..., D) tile by a (..., D) table (the layout of `rope_tables`).

  Static, tile-aligned column slices and one concatenation: no gather, so the same code runs in a
  generic Pallas kernel, in a Mosaic GPU kernel (register slices of the WGMMA layout) and in XLA."""
  d = x.shape[-1]
  q = d // 4
  quarter = lambda t, i: t[..., i * q:(i + 1) * q]
  x0, x1, x2, x3 = (quarter(x, i) for i in range(4))
  cy, cx, sy, sx = (quarter(cs, i) for i in range(4))
  if inverse:
    sy, sx = -sy, -sx
  return jnp.concatenate([x0 * cy - x1 * sy, x1 * cy + x0 * sy, x2 * cx - x3 * sx, x3 * cx + x2 * sx], axis=-1)


# ------------------------------------------------------------------------------------------------
# Tile sizes

@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Tile sizes. Mosaic GPU: a CTA holds `compute_wgs` warpgroups of `block_q` query rows (forward, dq)
  or `block_kv_bwd` key rows (dk/dv); wgmma needs multiples of 64 rows. The generic twin runs one
  program per tile (compute_wgs is ignored there). Tune per GPU generation in `default_block_sizes`."""
  block_q: int = 64          # forward: query rows per compute warpgroup
  block_kv: int = 128        # forward: keys per step of the k loop
  block_q_bwd: int = 64      # dq: query rows per warpgroup; dk/dv: queries per step of the q loop
  block_kv_bwd: int = 64     # dk/dv: key rows per warpgroup; dq: keys per step of the k loop
  compute_wgs: int = 2       # compute warpgroups per CTA (Mosaic GPU)
  num_stages: int = 2        # TMA pipeline depth of the producer warpgroup (Mosaic GPU)

  def q_multiple(self, backend: str) -> int:
    wgs = self.compute_wgs if backend == 'mosaic_gpu' else 1
    return math.lcm(self.block_q * wgs, self.block_q_bwd * wgs)

  def k_multiple(self, backend: str) -> int:
    wgs = self.compute_wgs if backend == 'mosaic_gpu' else 1
    return math.lcm(self.block_kv, self.block_kv_bwd * wgs)


# Starting points for Hopper (H100/H200: 227 KiB of SMEM per CTA, checked at lowering time); the benchmark
# (benchmarks/attention.py --block_q=... etc.) is where they get tuned on a GPU.
_DEFAULT_BLOCKS = {
    'H100': BlockSizes(block_q=64, block_kv=128, block_q_bwd=64, block_kv_bwd=64),
    'H200': BlockSizes(block_q=64, block_kv=128, block_q_bwd=64, block_kv_bwd=64),
}
# head_dim 128: the f32 RoPE tables double the SMEM of a k tile; one compute warpgroup and 64-key steps fit.
_WIDE_HEAD_BLOCKS = BlockSizes(block_q=64, block_kv=64, block_q_bwd=64, block_kv_bwd=64, compute_wgs=1)
# The generic twin in interpret mode: small tiles keep the CPU tests fast and exercise several k steps.
_INTERPRET_BLOCKS = BlockSizes(block_q=32, block_kv=32, block_q_bwd=32, block_kv_bwd=32, compute_wgs=1)


def default_block_sizes(device_kind: str | None = None, *, head_dim: int = 64,
                        backend: str = 'mosaic_gpu') -> BlockSizes:
  """Block sizes for a backend, head dim and device kind (`jax.devices()[0].device_kind`, e.g.
  'NVIDIA H100 80GB HBM3'; None: the default device). The generic twin gets small interpret tiles."""
  if backend == 'generic':
    return _INTERPRET_BLOCKS
  if head_dim > 64:
    return _WIDE_HEAD_BLOCKS
  kind = device_kind if device_kind is not None else jax.devices()[0].device_kind
  return next((blk for name, blk in _DEFAULT_BLOCKS.items() if name in kind), BlockSizes())


# ------------------------------------------------------------------------------------------------
# Online-softmax algebra of a tile (elementwise + reductions)

def mask_keys(s, k_start, nk: int, iota=None):
  """Logits of keys >= nk (padding) → a large negative (finite: no inf - inf in the rescaling)."""
  iota = iota or (lambda shape, dim: lax.broadcasted_iota(jnp.int32, shape, dim))
  cols = k_start + iota(s.shape, 1)
  return jnp.where(cols < nk, s, jnp.finfo(jnp.float32).min)


def softmax_step(s2, m, l, acc):
  """One online-softmax step in base 2. s2 = logits * log2(e) / sqrt(D) (rows, keys), m/l (rows,),
  acc (rows, D). Returns p (unnormalised probabilities), new m, l and the rescaled acc."""
  m_new = jnp.maximum(m, s2.max(axis=1))
  alpha = jnp.exp2(m - m_new)
  p = jnp.exp2(s2 - per_row(m_new, s2.shape))
  l = l * alpha + p.sum(axis=1)
  acc = acc * per_row(alpha, acc.shape)
  return p, m_new, l, acc


def finish(acc, m, l):
  """o = acc / l, lse2 = m + log2(l) (the base-2 logsumexp of the scaled logits)."""
  o = acc * per_row(1.0 / l, acc.shape)
  return o, m + jnp.log2(l)


def per_row(x, shape):
  """A (rows,) vector broadcast to a (rows, cols) tile: one value per row."""
  return lax.broadcast_in_dim(x, shape, [0])


def per_col(x, shape):
  """A (cols,) vector broadcast to a (rows, cols) tile: one value per column."""
  return lax.broadcast_in_dim(x, shape, [1])
