"""Patch embeddings of DUSt3R (`dust3r/patch_embed.py`): PatchEmbedDust3R and ManyAR_PatchEmbed.

Both own one stride-p convolution `proj` (3 → C) and return tokens (B, h*w, C), row-major, with
their (y, x) grid positions (B, h*w, 2).
  PatchEmbedDust3R  - the image as given, any H, W multiple of p (inference; portrait natively).
  ManyAR_PatchEmbed - training batches stored landscape (W >= H); items whose `true_shape` is
                      portrait (height > width) are stored transposed, so they are embedded from
                      the transposed-back image with a (W/p, H/p) position grid.
"""
import jax.numpy as jnp
from flax import nnx

from dynadust3r_jax.model.pos_embed import position_grid

# PatchEmbed._init_weights: xavier-uniform on the (C, 3*p*p) view of the conv weight.
_proj_init = nnx.initializers.variance_scaling(1.0, 'fan_avg', 'uniform', in_axis=(0, 1, 2), out_axis=-1)


class PatchEmbed(nnx.Module):
  def __init__(self, patch_size: int, embed_dim: int, *, dtype, rngs: nnx.Rngs):
    self.patch_size = patch_size
    self.proj = nnx.Conv(3, embed_dim, (patch_size, patch_size), strides=patch_size, padding='VALID',
                         dtype=dtype, param_dtype=jnp.float32, kernel_init=_proj_init,
                         bias_init=nnx.initializers.zeros_init(), rngs=rngs)

  def check_shape(self, img):
    _, h, w, _ = img.shape
    p = self.patch_size
    if h % p or w % p:
      raise ValueError(f'image size {h}x{w} (HxW) must be a multiple of the patch size {p}')

  def tokens(self, img):
    """img (B, H, W, 3) → (B, H/p * W/p, C) and the (H/p, W/p) grid positions (B, N, 2)."""
    x = self.proj(img)
    b, h, w, c = x.shape
    pos = jnp.broadcast_to(position_grid(h, w), (b, h * w, 2))
    return x.reshape(b, h * w, c), pos


class PatchEmbedDust3R(PatchEmbed):
  def __call__(self, img, true_shape=None):
    self.check_shape(img)
    return self.tokens(img)


class ManyAR_PatchEmbed(PatchEmbed):  # noqa: N801  (PyTorch class name)
  def __call__(self, img, true_shape=None):
    """true_shape None: every item is as stored (DUSt3R's forward defaults it to the image shape)."""
    self.check_shape(img)
    _, h, w, _ = img.shape
    if w < h:
      raise ValueError(f'ManyAR_PatchEmbed needs landscape batches (W >= H), got {h}x{w} (HxW); '
                       'store portrait images transposed and mark them in true_shape')
    x_land, pos_land = self.tokens(img)
    if true_shape is None:
      return x_land, pos_land
    x_port, pos_port = self.tokens(jnp.swapaxes(img, 1, 2))
    portrait = (true_shape[:, 1] < true_shape[:, 0])[:, None, None]
    return jnp.where(portrait, x_port, x_land), jnp.where(portrait, pos_port, pos_land)


PATCH_EMBEDS = {'PatchEmbedDust3R': PatchEmbedDust3R, 'ManyAR_PatchEmbed': ManyAR_PatchEmbed}
