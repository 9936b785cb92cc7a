"""LinearPts3d (`dust3r/heads/linear_head.py`): one Linear per token → a p×p patch of (x, y, z, conf)."""
from flax import nnx

from dynadust3r_jax.model.heads.common import linear, tokens_to_grid
from dynadust3r_jax.model.heads.postprocess import postprocess


class LinearPts3d(nnx.Module):
  def __init__(self, dec_embed_dim, patch_size, *, depth_mode, conf_mode, rngs):
    self.patch_size = patch_size
    self.depth_mode = depth_mode
    self.conf_mode = conf_mode
    self.proj = linear(dec_embed_dim, (3 + bool(conf_mode)) * patch_size ** 2, rngs=rngs)

  def __call__(self, decout, img_hw):
    """decout: list of (B, N, C) decoder outputs (only the last is used); img_hw = (H, W)."""
    p = self.patch_size
    h, w = img_hw[0] // p, img_hw[1] // p
    feat = self.proj(tokens_to_grid(decout[-1], (h, w)))     # (B, h, w, C*p*p), channel = c*p*p + i*p + j
    b, c = feat.shape[0], feat.shape[-1] // (p * p)
    # pixel_shuffle: channel (c, i, j) of token (ty, tx) → pixel (ty*p + i, tx*p + j), channel c
    feat = feat.reshape(b, h, w, c, p, p).transpose(0, 1, 4, 2, 5, 3).reshape(b, h * p, w * p, c)
    return postprocess(feat, self.depth_mode, self.conf_mode)
