"""D4RT query tokens (spec §3), all in float32:

  q = LayerNorm( fourier_proj(Fourier(u, v)) + src_embed[t_src] + tgt_embed[t_tgt] + cam_embed[t_cam]
                 + patch_proj(9x9 RGB patch of frame t_src around (u, v)) )

- Fourier(u, v) (34 values for 8 bands): [u, v, sin(2^k pi u), sin(2^k pi v) for k = 0..7 (k-major, then u/v),
  cos(...) in the same order], deterministic sinusoids as the paper cites (Vaswani) with OD's octave bands
  (inferred), computed on (u, v) in [0, 1].
- Three learned (num_frames, d) tables indexed by position in the clip (normal init, std 0.02).
  Times outside 0..num_frames-1 (negative ones too) read NaN rather than a clamped or wrapped row.
- The patch: bilinear samples of the input video (the [-1, 1] values the encoder sees) at offsets -4..+4 px
  around (u, v), with pixel j's centre at (j + 0.5) / W (so u = (j + 0.5) / W samples pixel j exactly),
  edge padding (coordinates clamped to the image); flattened (dy, dx, c) row-major → 243 → one Linear.
  The paper's Fig. 7 says "Patch → MLP" and "Fourier → MLP": a single Linear each is our choice.
- The final LayerNorm `norm` follows OD and LR (inferred; not in the paper).
"""
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dynadust3r_jax.model.blocks import layer_norm, linear
from dynadust3r_jax.model.d4rt.config import D4RTConfig


def fourier_features(uv, num_bands: int):
  """uv (..., 2) → (..., 2 + 4 * num_bands) float32: [uv, sin(2^k pi uv), cos(2^k pi uv)]."""
  uv = jnp.asarray(uv, jnp.float32)
  freqs = jnp.asarray(np.pi * 2.0 ** np.arange(num_bands), jnp.float32)
  angles = (uv[..., None, :] * freqs[:, None]).reshape(*uv.shape[:-1], 2 * num_bands)
  return jnp.concatenate([uv, jnp.sin(angles), jnp.cos(angles)], axis=-1)


def sample_patches(video, uv, t_src, size: int):
  """Bilinear (size x size) RGB patches centred on uv in frame t_src, edge-padded, float32.

  video (B, T, H, W, C); uv (B, Q, 2) in [0, 1] with pixel j's centre at (j + 0.5) / W; t_src (B, Q) int.
  Returns (B, Q, size, size, C): entry [dy, dx] is the sample at pixel offset (dy - size//2, dx - size//2).
  """
  b, n_t, height, width, c = video.shape
  q = uv.shape[1]
  r = size // 2
  offsets = jnp.arange(-r, r + 1, dtype=jnp.float32)
  uv = jnp.asarray(uv, jnp.float32)
  x = uv[..., 0, None] * width - 0.5 + offsets          # (B, Q, size) continuous pixel coordinates
  y = uv[..., 1, None] * height - 0.5 + offsets
  x0, y0 = jnp.floor(x), jnp.floor(y)
  fx, fy = x - x0, y - y0
  x0 = x0.astype(jnp.int32)
  y0 = y0.astype(jnp.int32)
  xs = jnp.clip(jnp.stack([x0, x0 + 1]), 0, width - 1)   # (2, B, Q, size)
  ys = jnp.clip(jnp.stack([y0, y0 + 1]), 0, height - 1)
  t = jnp.asarray(t_src, jnp.int32)[None, None, :, :, None, None]
  # flat index (corner_y, corner_x, B, Q, dy, dx) into (B, T*H*W)
  idx = (t * height + ys[:, None, :, :, :, None]) * width + xs[None, :, :, :, None, :]
  flat = video.reshape(b, n_t * height * width, c).astype(jnp.float32)
  idx = idx.transpose(2, 0, 1, 3, 4, 5).reshape(b, -1, 1)
  vals = jnp.take_along_axis(flat, idx, axis=1).reshape(b, 2, 2, q, size, size, c)
  wx = jnp.stack([1 - fx, fx])[:, :, :, None, :, None]   # (2, B, Q, 1, size, 1) over dx
  wy = jnp.stack([1 - fy, fy])[:, :, :, :, None, None]   # (2, B, Q, size, 1, 1) over dy
  vals = vals.transpose(1, 2, 0, 3, 4, 5, 6)              # (cy, cx, B, Q, size, size, C)
  return (wy[:, None] * wx[None] * vals).sum((0, 1))


class QueryEmbedding(nnx.Module):
  def __init__(self, cfg: D4RTConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    d, f32 = cfg.dec_embed_dim, jnp.float32
    self.fourier_proj = linear(cfg.fourier_dim, d, dtype=f32, rngs=rngs)
    init = nnx.initializers.normal(0.02)
    self.src_embed = nnx.Param(init(rngs.params(), (cfg.num_frames, d), f32))
    self.tgt_embed = nnx.Param(init(rngs.params(), (cfg.num_frames, d), f32))
    self.cam_embed = nnx.Param(init(rngs.params(), (cfg.num_frames, d), f32))
    self.patch_proj = linear(cfg.query_patch_dim, d, dtype=f32, rngs=rngs)
    self.norm = layer_norm(d, dtype=f32, rngs=rngs)

  def __call__(self, video, query_uv, query_t):
    """video (B, T, H, W, 3), query_uv (B, Q, 2) in [0, 1], query_t (B, Q, 3) int [t_src, t_tgt, t_cam]
    → query tokens (B, Q, d) float32."""
    cfg = self.cfg
    query_t = jnp.asarray(query_t, jnp.int32)
    b, q = query_uv.shape[:2]
    x = self.fourier_proj(fourier_features(query_uv, cfg.fourier_bands))
    # a time outside 0..num_frames-1 (negative ones too) reads a row of NaN, not a wrapped or clamped row
    safe_t = jnp.where(query_t < 0, cfg.num_frames, query_t)
    for table, i in ((self.src_embed, 0), (self.tgt_embed, 1), (self.cam_embed, 2)):
      x = x + jnp.take(table[...], safe_t[..., i], axis=0, mode='fill', fill_value=jnp.nan)
    patches = sample_patches(video, query_uv, query_t[..., 0], cfg.query_patch_size)
    x = x + self.patch_proj(patches.reshape(b, q, cfg.query_patch_dim))
    return self.norm(x)
