"""CroCo v2 pretraining network (`croco/models/croco.py: CroCoNet`): encoder, one decoder, pixel head.

DUSt3R (`dust3r.py`) subclasses it, as in PyTorch. The ViT blocks are stacked and scanned
(`scan.py`); tokens are (B, N, C) in the configured compute dtype.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from dynadust3r_jax.model import scan
from dynadust3r_jax.model.blocks import Block, DecoderBlock, layer_norm, linear
from dynadust3r_jax.model.config import ModelConfig
from dynadust3r_jax.model.patch_embed import PatchEmbedDust3R


class CroCoNet(nnx.Module):
  # Stacked block containers: the converter stacks `<name>.{i}.*` PyTorch tensors along axis 0.
  stacked_blocks = ('enc_blocks', 'dec_blocks')

  def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    dtype = jnp.dtype(cfg.dtype)
    block_kw = dict(rope_base=cfg.rope_base, attention_impl=cfg.attention_impl, dtype=dtype)
    self.patch_embed = self._make_patch_embed(cfg, dtype, rngs)
    self.enc_blocks = scan.stack(
        lambda r: Block(cfg.enc_embed_dim, cfg.enc_num_heads, cfg.mlp_ratio, **block_kw, rngs=r),
        cfg.enc_depth, rngs)
    self.enc_norm = layer_norm(cfg.enc_embed_dim, dtype=dtype, rngs=rngs)
    self.mask_token = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, 1, cfg.dec_embed_dim)))
    self.decoder_embed = linear(cfg.enc_embed_dim, cfg.dec_embed_dim, dtype=dtype, rngs=rngs)
    self.dec_blocks = scan.stack(
        lambda r: DecoderBlock(cfg.dec_embed_dim, cfg.dec_num_heads, cfg.mlp_ratio, **block_kw, rngs=r),
        cfg.dec_depth, rngs)
    self.dec_norm = layer_norm(cfg.dec_embed_dim, dtype=dtype, rngs=rngs)
    self._set_prediction_head(cfg, dtype, rngs)

  def _make_patch_embed(self, cfg, dtype, rngs):
    return PatchEmbedDust3R(cfg.patch_size, cfg.enc_embed_dim, dtype=dtype, rngs=rngs)

  def _set_prediction_head(self, cfg, dtype, rngs):
    self.prediction_head = linear(cfg.dec_embed_dim, cfg.patch_size ** 2 * 3, dtype=dtype, rngs=rngs)

  def _encode_image(self, img, true_shape=None, mask=None):
    """img (B, H, W, 3) → enc_norm'ed tokens (B, N_visible, C_enc) and all positions (B, N, 2).

    mask (B, N) bool, True = hidden, int(mask_ratio * N) per item as `random_mask` draws it: only
    the visible tokens are encoded (CroCo pretraining). None encodes every token.
    """
    x, pos = self.patch_embed(img.astype(jnp.dtype(self.cfg.dtype)), true_shape)
    pos_vis = pos
    if mask is not None:
      visible = self._visible_indices(mask)
      x = jnp.take_along_axis(x, visible[..., None], axis=1)
      pos_vis = jnp.take_along_axis(pos, visible[..., None], axis=1)
    x, _ = scan.scan(lambda x, blk: (blk(x, pos_vis), None), x, self.enc_blocks,
                     remat_policy=self.cfg.remat_policy)
    return self.enc_norm(x), pos

  def _decoder(self, feat1, pos1, mask1, feat2, pos2):
    """CroCo decoder: image-1 tokens (mask tokens where hidden) attend to image-2 tokens."""
    f1 = self.decoder_embed(feat1)
    f2 = self.decoder_embed(feat2)
    if mask1 is not None:
      b, n = mask1.shape
      full = jnp.broadcast_to(self.mask_token[...].astype(f1.dtype), (b, n, f1.shape[-1]))
      f1 = full.at[jnp.arange(b)[:, None], self._visible_indices(mask1)].set(f1)
    out, _ = scan.scan(lambda x, blk: (blk(x, f2, pos1, pos2), None), f1, self.dec_blocks,
                       remat_policy=self.cfg.remat_policy)
    return self.dec_norm(out)

  def __call__(self, img1, img2, mask1=None):
    """img1, img2 (B, H, W, 3) in [-1, 1] → prediction_head output (B, N, p*p*3) for image 1."""
    feat1, pos1 = self._encode_image(img1, mask=mask1)
    feat2, pos2 = self._encode_image(img2)
    return self.prediction_head(self._decoder(feat1, pos1, mask1, feat2, pos2))

  def _visible_indices(self, mask):
    """(B, N) mask → (B, N_visible) indices of the visible tokens, in token order."""
    n = mask.shape[1]
    return jnp.argsort(mask, axis=1, stable=True)[:, :n - int(self.cfg.mask_ratio * n)]

  def random_mask(self, key, batch: int, n_tokens: int):
    """CroCo's RandomMask: hide int(mask_ratio * N) uniformly chosen tokens per item."""
    order = jnp.argsort(jax.random.uniform(key, (batch, n_tokens)), axis=1)
    return order < int(self.cfg.mask_ratio * n_tokens)
