"""DPT head of DUSt3R (`dust3r/heads/dpt_head.py`, `croco/models/dpt_block.py`), NHWC, float32.

Module tree = PyTorch's: `dpt.act_postprocess.{0..3}.{0,1}`, `dpt.scratch.layer_rn.{0..3}`,
`dpt.scratch.refinenet{1..4}.{resConfUnit1,resConfUnit2,out_conv}`, `dpt.head.{0,2,4}`
(`head.1` is the ×2 upsampling and `head.3` the ReLU: parameter-free, kept as None so the indices
match). The `scratch.layer{1..4}_rn` aliases of PyTorch state dicts are not duplicated here.

Hooked decoder outputs (4 token maps) are reassembled at 4×, 2×, 1× and ½× the token grid,
projected to `feature_dim`, fused coarse-to-fine by the refinenets (each ends with a bilinear ×2,
align_corners=True), and the head brings the map to full resolution.
"""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dynadust3r_jax.model.heads.common import conv, tokens_to_grid, torch_default_init
from dynadust3r_jax.model.heads.postprocess import postprocess


def upsample2x_align_corners(x):
  """Bilinear ×2 of (B, H, W, C) with align_corners=True: output pixel i samples i*(n-1)/(2n-1)."""
  for axis in (1, 2):
    n = x.shape[axis]
    src = np.arange(2 * n) * ((n - 1) / (2 * n - 1))
    i0 = np.floor(src).astype(np.int32)
    i1 = np.minimum(i0 + 1, n - 1)
    shape = [1, 1, 1, 1]
    shape[axis] = 2 * n
    frac = jnp.asarray((src - i0).astype(np.float32).reshape(shape))
    x = jnp.take(x, i0, axis=axis) * (1 - frac) + jnp.take(x, i1, axis=axis) * frac
  return x


class ConvTranspose(nnx.Module):
  """ConvTranspose2d with kernel = stride and no padding: each input pixel paints one k×k block.

  `kernel` keeps PyTorch's layout (C_in, C_out, k, k); written as an einsum (no kernel flip to get
  wrong) followed by depth-to-space.
  """

  def __init__(self, c_in, c_out, k, *, rngs):
    init = torch_default_init(c_out * k * k)  # PyTorch computes ConvTranspose fan-in from dim 1
    self.kernel = nnx.Param(init(rngs.params(), (c_in, c_out, k, k)))
    self.bias = nnx.Param(init(rngs.params(), (c_out,)))

  def __call__(self, x):
    b, h, w, _ = x.shape
    _, c_out, k, _ = self.kernel.shape
    y = jnp.einsum('byxc,coij->byixjo', x, self.kernel[...])
    return y.reshape(b, h * k, w * k, c_out) + self.bias[...]


class ResidualConvUnit(nnx.Module):  # ResidualConvUnit_custom (no batch norm)
  def __init__(self, features, *, rngs):
    self.conv1 = conv(features, features, 3, rngs=rngs)
    self.conv2 = conv(features, features, 3, rngs=rngs)

  def __call__(self, x):
    return x + self.conv2(jax.nn.relu(self.conv1(jax.nn.relu(x))))


class FeatureFusionBlock(nnx.Module):  # FeatureFusionBlock_custom
  def __init__(self, features, *, rngs):
    self.out_conv = conv(features, features, 1, rngs=rngs)
    self.resConfUnit1 = ResidualConvUnit(features, rngs=rngs)  # unused by refinenet4 (as in PyTorch)
    self.resConfUnit2 = ResidualConvUnit(features, rngs=rngs)

  def __call__(self, x, skip=None):
    if skip is not None:
      x = x + self.resConfUnit1(skip)
    x = upsample2x_align_corners(self.resConfUnit2(x))
    return self.out_conv(x)


class Scratch(nnx.Module):
  def __init__(self, layer_dims, feature_dim, *, rngs):
    self.layer_rn = nnx.List([conv(d, feature_dim, 3, use_bias=False, rngs=rngs) for d in layer_dims])
    self.refinenet1 = FeatureFusionBlock(feature_dim, rngs=rngs)
    self.refinenet2 = FeatureFusionBlock(feature_dim, rngs=rngs)
    self.refinenet3 = FeatureFusionBlock(feature_dim, rngs=rngs)
    self.refinenet4 = FeatureFusionBlock(feature_dim, rngs=rngs)


class DPTOutputAdapter(nnx.Module):  # DPTOutputAdapter_fix
  def __init__(self, *, num_channels, hooks, dim_tokens, layer_dims, feature_dim, last_dim, patch_size,
               rngs):
    self.hooks = tuple(hooks)
    self.patch_size = patch_size
    d0, d1, d2, d3 = layer_dims
    t0, t1, t2, t3 = dim_tokens
    self.act_postprocess = nnx.List([
        nnx.List([conv(t0, d0, 1, rngs=rngs), ConvTranspose(d0, d0, 4, rngs=rngs)]),   # 4× grid
        nnx.List([conv(t1, d1, 1, rngs=rngs), ConvTranspose(d1, d1, 2, rngs=rngs)]),   # 2× grid
        nnx.List([conv(t2, d2, 1, rngs=rngs)]),                                        # 1× grid
        nnx.List([conv(t3, d3, 1, rngs=rngs), conv(d3, d3, 3, stride=2, rngs=rngs)]),  # ½× grid (ceil)
    ])
    self.scratch = Scratch(layer_dims, feature_dim, rngs=rngs)
    self.head = nnx.List([
        conv(feature_dim, feature_dim // 2, 3, rngs=rngs),
        None,  # Interpolate(scale_factor=2, bilinear, align_corners=True)
        conv(feature_dim // 2, last_dim, 3, rngs=rngs),
        None,  # ReLU
        conv(last_dim, num_channels, 1, rngs=rngs),
    ])

  def __call__(self, decout, img_hw, level_bias=None):
    """decout: list of (B, N, C_i) token maps; img_hw = (H, W) → (B, H, W, num_channels).

    level_bias: optional 4 × (B, feature_dim) added to each level after `layer_rn` (the time
    conditioning of DynaDUSt3R's motion heads).
    """
    grid = (img_hw[0] // self.patch_size, img_hw[1] // self.patch_size)
    layers = []
    for stage, hook in zip(self.act_postprocess, self.hooks):
      x = tokens_to_grid(decout[hook], grid)
      for layer in stage:
        x = layer(x)
      layers.append(x)
    layers = [rn(x) for rn, x in zip(self.scratch.layer_rn, layers)]
    if level_bias is not None:
      layers = [x + b[:, None, None, :] for x, b in zip(layers, level_bias)]
    l0, l1, l2, l3 = layers
    # "_fix": refinenet4 doubles ceil(h/2); crop back to the 1× grid (matters for odd h or w).
    path = self.scratch.refinenet4(l3)[:, :l2.shape[1], :l2.shape[2]]
    path = self.scratch.refinenet3(path, l2)
    path = self.scratch.refinenet2(path, l1)
    path = self.scratch.refinenet1(path, l0)
    x = upsample2x_align_corners(self.head[0](path))
    return self.head[4](jax.nn.relu(self.head[2](x)))


class PixelwiseTaskWithDPT(nnx.Module):
  """DPT head + post-processing to (pts3d, conf)."""

  def __init__(self, *, depth_mode, conf_mode, rngs, **dpt_kwargs):
    self.depth_mode = depth_mode
    self.conf_mode = conf_mode
    self.dpt = DPTOutputAdapter(num_channels=3 + bool(conf_mode), rngs=rngs, **dpt_kwargs)

  def __call__(self, decout, img_hw):
    return postprocess(self.dpt(decout, img_hw), self.depth_mode, self.conf_mode)


def dpt_kwargs(cfg):
  """The DPTOutputAdapter arguments of `create_dpt_head`, widths from the config (official: 256 / 128 /
  96..768)."""
  return dict(hooks=cfg.dpt_hooks,
              dim_tokens=(cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.dec_embed_dim, cfg.dec_embed_dim),
              layer_dims=cfg.dpt_layer_dims, feature_dim=cfg.dpt_feature_dim, last_dim=cfg.dpt_last_dim,
              patch_size=cfg.patch_size)


def create_dpt_head(cfg, *, rngs):
  """`create_dpt_head` of DUSt3R."""
  return PixelwiseTaskWithDPT(depth_mode=cfg.depth_mode, conf_mode=cfg.conf_mode, rngs=rngs, **dpt_kwargs(cfg))
