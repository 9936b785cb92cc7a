"""DUSt3R (`dust3r/model.py: AsymmetricCroCo3DStereo`): a shared ViT encoder, two decoders that
cross-attend to each other layer by layer, and one pixel-wise head per view.

    res1, res2 = model(view1, view2)
    view = {'img': (B, H, W, 3) in [-1, 1], 'true_shape': (B, 2) int (height, width), optional}
    res1 = {'pts3d': (B, H, W, 3), 'conf': (B, H, W)}                  # view 1 in camera 1
    res2 = {'pts3d_in_other_view': (B, H, W, 3), 'conf': (B, H, W)}    # view 2 in camera 1
"""
import jax
import jax.numpy as jnp
from flax import nnx

from dynadust3r_jax.model import scan
from dynadust3r_jax.model.croco import CroCoNet
from dynadust3r_jax.model.heads import head_factory
from dynadust3r_jax.model.patch_embed import PATCH_EMBEDS


class AsymmetricCroCo3DStereo(CroCoNet):
  stacked_blocks = ('enc_blocks', 'dec_blocks', 'dec_blocks2')

  def __init__(self, cfg, *, rngs: nnx.Rngs):
    super().__init__(cfg, rngs=rngs)
    self.dec_blocks2 = nnx.clone(self.dec_blocks)  # PyTorch: deepcopy(self.dec_blocks)
    # with buffers of its own: an array shared by two parameters cannot be donated to a jitted step
    nnx.update(self.dec_blocks2, jax.tree.map(jnp.copy, nnx.state(self.dec_blocks2)))
    self.downstream_head1 = head_factory(cfg, rngs=rngs)
    self.downstream_head2 = head_factory(cfg, rngs=rngs)

  def _make_patch_embed(self, cfg, dtype, rngs):
    return PATCH_EMBEDS[cfg.patch_embed_cls](cfg.patch_size, cfg.enc_embed_dim, dtype=dtype, rngs=rngs)

  def _set_prediction_head(self, cfg, dtype, rngs):
    """DUSt3R has no CroCo prediction head."""

  def _encode_image_pairs(self, img1, img2, true_shape1, true_shape2):
    """Both views through the encoder: one batched call when their shapes agree."""
    if img1.shape == img2.shape:
      shape = None if true_shape1 is None else jnp.concatenate([true_shape1, true_shape2])
      feat, pos = self._encode_image(jnp.concatenate([img1, img2]), shape)
      (feat1, feat2), (pos1, pos2) = jnp.split(feat, 2), jnp.split(pos, 2)
      return feat1, feat2, pos1, pos2
    feat1, pos1 = self._encode_image(img1, true_shape1)
    feat2, pos2 = self._encode_image(img2, true_shape2)
    return feat1, feat2, pos1, pos2

  def _decoder(self, f1, pos1, f2, pos2):
    """→ (dec1, dec2), each [encoder output, block 1 … block L output] with dec_norm on the last."""
    collect = self.cfg.head_type == 'dpt'  # the linear head reads the last layer only

    def layer(carry, blk1, blk2):
      x1, x2 = carry  # both branches read the previous layer of both views
      n1 = blk1(x1, x2, pos1, pos2)
      n2 = blk2(x2, x1, pos2, pos1)
      return (n1, n2), ((n1, n2) if collect else None)

    (x1, x2), ys = scan.scan(layer, (self.decoder_embed(f1), self.decoder_embed(f2)),
                             self.dec_blocks, self.dec_blocks2, remat_policy=self.cfg.remat_policy)
    depth = self.cfg.dec_depth
    hidden1 = [ys[0][i] for i in range(depth - 1)] if collect else [None] * (depth - 1)
    hidden2 = [ys[1][i] for i in range(depth - 1)] if collect else [None] * (depth - 1)
    return [f1, *hidden1, self.dec_norm(x1)], [f2, *hidden2, self.dec_norm(x2)]

  def _downstream_head(self, head, decout, true_shape, img_hw):
    """Run a head; with landscape_only, portrait items (per true_shape) are predicted in their
    own orientation and transposed back into the landscape layout (`transpose_to_landscape`)."""
    h, w = min(img_hw), max(img_hw)
    if not self.cfg.landscape_only:
      return head(decout, img_hw)
    if true_shape is None or h == w:
      return head(decout, (h, w))
    portrait = true_shape[:, 1] < true_shape[:, 0]

    def mixed():
      land = head(decout, (h, w))
      port = jax.tree.map(lambda a: jnp.swapaxes(a, 1, 2), head(decout, (w, h)))
      pick = lambda a, b: jnp.where(portrait.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)
      return jax.tree.map(pick, land, port)

    return jax.lax.cond(jnp.any(portrait), mixed, lambda: head(decout, (h, w)))

  def _decode_pair(self, view1, view2):
    """Encoder + decoders → the head inputs of both views: (dec1, dec2)."""
    shape1, shape2 = view1.get('true_shape'), view2.get('true_shape')
    if (shape1 is None) != (shape2 is None):
      raise ValueError("give 'true_shape' for both views or for neither")
    feat1, feat2, pos1, pos2 = self._encode_image_pairs(view1['img'], view2['img'], shape1, shape2)
    return self._decoder(feat1, pos1, feat2, pos2)

  def _point_heads(self, view1, view2, dec1, dec2):
    res1 = self._downstream_head(self.downstream_head1, dec1, view1.get('true_shape'), view1['img'].shape[1:3])
    res2 = self._downstream_head(self.downstream_head2, dec2, view2.get('true_shape'), view2['img'].shape[1:3])
    res2['pts3d_in_other_view'] = res2.pop('pts3d')
    return res1, res2

  def __call__(self, view1, view2):
    return self._point_heads(view1, view2, *self._decode_pair(view1, view2))
