"""The D4RT video encoder (spec §2.2): tubelet tokens + a fixed sinusoidal table, an aspect-ratio token,
interleaved frame-wise / global ViT layers, a final LayerNorm. F = encoder(video, aspect_ratio) (B, N, C).

Tokeniser. A video (B, T, H, W, 3) is cut into tubelets of (2, 16, 16) pixels: token (t', y', x') holds
frames 2t'..2t'+1, rows 16y'.., columns 16x'.. Tokens are ordered row-major over (t', y', x') (VideoMAE's
`x.flatten(2)` of the Conv3d output (B, C, T', H', W')), N = T/2 * H/16 * W/16. Each token's 1536 values
are flattened in the order (dt, dy, dx, c) and go through one Dense (`patch_embed.proj`), which is a Conv3d
with stride = kernel. A VideoMAE Conv3d kernel W (out, 3, 2, 16, 16) = (out, c, dt, dy, dx) becomes
`patch_embed.proj.kernel` = W.transpose(2, 3, 4, 1, 0).reshape(2 * 16 * 16 * 3, out); the bias is copied.

Positional encoding: VideoMAE's fixed `get_sinusoid_encoding_table(N, C)` over the flattened token index
(no parameter; computed for the input's grid, so the same table as VideoMAE's for the configured clip).

Aspect-ratio token: `ar_embed` = Dense(1 → C) of the original W/H, no positional encoding. It takes part in
the global layers only (frame-wise layers leave it untouched, attention and MLP alike), sits before the
video tokens, and is dropped from F (inferred, spec §2.2, as MO).

Layers (inferred, spec §2.2 "recommended"): layer 2i is frame-wise (self-attention inside each 2-frame
slab: tokens reshaped to (B * T/2, H/16 * W/16, C)), layer 2i + 1 is global (all slabs + the AR token).
Both kinds are stacked and scanned together, one (frame, global) pair per scan step: VideoMAE's
`blocks.{2i}` → `frame_blocks[i]`, `blocks.{2i+1}` → `global_blocks[i]`. The final LayerNorm is `norm`.
With `frame_attention=False` both layers of a pair are global and the AR token is left out: VideoMAE's
encoder exactly (the parity check of a converted VideoMAE checkpoint).
"""
import functools

import jax.numpy as jnp
import numpy as np
from flax import nnx

from dynadust3r_jax.model import scan
from dynadust3r_jax.model.blocks import layer_norm, linear
from dynadust3r_jax.model.d4rt.blocks import ViTBlock
from dynadust3r_jax.model.d4rt.config import D4RTConfig


@functools.lru_cache(maxsize=8)
def sinusoid_table(n_position: int, dim: int) -> np.ndarray:
  """VideoMAE's `get_sinusoid_encoding_table`: (n_position, dim) float32, angle = pos / 10000^(2 (j//2) / dim),
  sin on even channels, cos on odd ones. Computed in float64 as VideoMAE does (float32 sines of angles up to
  ~6000 rad would be off by ~4e-4), so under jit it is a constant of the compiled function (read-only)."""
  pos = np.arange(n_position, dtype=np.float64)[:, None]
  j = np.arange(dim)
  angles = pos / np.power(10000, 2 * (j // 2) / dim)[None, :]
  table = np.where(j % 2 == 0, np.sin(angles), np.cos(angles)).astype(np.float32)
  table.flags.writeable = False
  return table


def tubelets(video, tubelet):
  """(B, T, H, W, 3) → (B, T/t * H/h * W/w, t*h*w*3): token order (t', y', x'), values (dt, dy, dx, c)."""
  b, n_t, height, width, c = video.shape
  t, h, w = tubelet
  if n_t % t or height % h or width % w:
    raise ValueError(f'video of {n_t} frames of {height}x{width} is not a whole number of {t}x{h}x{w} tubelets')
  x = video.reshape(b, n_t // t, t, height // h, h, width // w, w, c)
  x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7)
  return x.reshape(b, (n_t // t) * (height // h) * (width // w), t * h * w * c)


class TubeletEmbed(nnx.Module):
  def __init__(self, cfg: D4RTConfig, *, dtype, rngs):
    self.tubelet = cfg.tubelet
    self.proj = linear(cfg.patch_dim, cfg.enc_embed_dim, dtype=dtype, rngs=rngs)

  def __call__(self, video):
    return self.proj(tubelets(video, self.tubelet))


def frame_layer(block, x, num_slabs: int):
  """A frame-wise layer: `block` on each temporal slab's tokens alone. x (B, num_slabs * S, C)."""
  b, n, c = x.shape
  return block(x.reshape(b * num_slabs, n // num_slabs, c)).reshape(b, n, c)


def global_layer(block, x, ar_token):
  """A global layer: `block` over the AR token (B, 1, C) and all video tokens x (B, N, C)."""
  y = block(jnp.concatenate([ar_token, x], axis=1))
  return y[:, 1:], y[:, :1]


class D4RTEncoder(nnx.Module):
  def __init__(self, cfg: D4RTConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    dtype = jnp.dtype(cfg.dtype)
    self.patch_embed = TubeletEmbed(cfg, dtype=dtype, rngs=rngs)
    self.ar_embed = linear(1, cfg.enc_embed_dim, dtype=dtype, rngs=rngs)
    make = lambda r: ViTBlock(cfg.enc_embed_dim, cfg.enc_num_heads, cfg.enc_mlp_dim,
                              attention_impl=cfg.attention_impl, dtype=dtype, rngs=r)
    self.frame_blocks = scan.stack(make, cfg.enc_depth // 2, rngs)
    self.global_blocks = scan.stack(make, cfg.enc_depth // 2, rngs)
    self.norm = layer_norm(cfg.enc_embed_dim, dtype=dtype, rngs=rngs)

  def __call__(self, video, aspect_ratio):
    """video (B, T, H, W, 3) in [-1, 1], aspect_ratio (B,) original W/H → F (B, N, C), compute dtype."""
    dtype = jnp.dtype(self.cfg.dtype)
    b, n_t = video.shape[:2]
    num_slabs = n_t // self.cfg.tubelet[0]
    x = self.patch_embed(video.astype(dtype))
    x = x + jnp.asarray(sinusoid_table(x.shape[1], x.shape[2]), dtype)[None]
    if not self.cfg.frame_attention:  # VideoMAE: layers 2i, 2i + 1 both global, no AR token
      x, _ = scan.scan(lambda x, frame_block, global_block: (global_block(frame_block(x)), None), x,
                       self.frame_blocks, self.global_blocks, remat_policy=self.cfg.remat_policy)
      return self.norm(x)
    ar = self.ar_embed(jnp.asarray(aspect_ratio, jnp.float32).reshape(b, 1, 1).astype(dtype))

    def pair(carry, frame_block, global_block):
      x, ar = carry
      x = frame_layer(frame_block, x, num_slabs)
      return global_layer(global_block, x, ar), None

    (x, _), _ = scan.scan(pair, (x, ar), self.frame_blocks, self.global_blocks,
                          remat_policy=self.cfg.remat_policy)
    return self.norm(x)
