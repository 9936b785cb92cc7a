"""The D4RT network (spec §2-§4): encoder → F once per clip; independent queries decoded against F.

Module tree (parameter paths, for the converter):
  encoder.patch_embed.proj          Dense(2*16*16*3 → C)   (a VideoMAE Conv3d re-laid out: encoder.py)
  encoder.ar_embed                  Dense(1 → C)           the aspect-ratio token
  encoder.frame_blocks[i]           ViTBlock, layer 2i     (stacked: leading axis enc_depth/2)
  encoder.global_blocks[i]          ViTBlock, layer 2i+1   (stacked)
  encoder.norm                      LayerNorm(C)
  query_embed.{fourier_proj, src_embed, tgt_embed, cam_embed, patch_proj, norm}
  decoder.blocks[m]                 CrossBlock {norm1, norm_y, cross_attn.{projq, projk, projv, proj}, norm2, mlp}
  head.{norm, proj}                 LayerNorm(d), Dense(d → 13)

Inputs: video (B, T, H, W, 3) float in [-1, 1] (T even, H, W multiples of 16; 48 x 256^2 in the paper),
aspect_ratio (B,) the original W/H, query_uv (B, Q, 2) float32 in [0, 1] (pixel j's centre at (j + 0.5)/W),
query_t (B, Q, 3) int32 [t_src, t_tgt, t_cam] in 0..T-1 (clip positions, T <= num_frames).
Outputs: {'xyz' (B,Q,3), 'uv' (B,Q,2), 'vis_logit' (B,Q), 'disp' (B,Q,3), 'normal' (B,Q,3), 'conf' (B,Q)},
float32. The query embedding and the head run in float32; encoder and decoder blocks in cfg.dtype.

For jitted hot paths, split the module (`nnx.split`) and merge inside the jitted function, e.g.
`jax.jit(lambda state, *a: nnx.merge(graphdef, state).decode_with_kv(*a))`.
"""
import numpy as np
import jax
from flax import nnx

from dynadust3r_jax.model import param_count
from dynadust3r_jax.model.cpu_bfloat16 import warn_if_bfloat16_on_cpu
from dynadust3r_jax.model.d4rt.config import D4RTConfig
from dynadust3r_jax.model.d4rt.decoder import D4RTDecoder
from dynadust3r_jax.model.d4rt.encoder import D4RTEncoder
from dynadust3r_jax.model.d4rt.head import D4RTHead
from dynadust3r_jax.model.d4rt.query_embedding import QueryEmbedding


class D4RT(nnx.Module):
  stacked_blocks = ('encoder.frame_blocks', 'encoder.global_blocks', 'decoder.blocks')

  def __init__(self, cfg: D4RTConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.encoder = D4RTEncoder(cfg, rngs=rngs)
    self.query_embed = QueryEmbedding(cfg, rngs=rngs)
    self.decoder = D4RTDecoder(cfg, rngs=rngs)
    self.head = D4RTHead(cfg, rngs=rngs)

  def encode(self, video, aspect_ratio):
    """The global scene representation F (B, N, C), compute dtype."""
    return self.encoder(video, aspect_ratio)

  def embed_queries(self, video, query_uv, query_t):
    """Query tokens (B, Q, d) float32."""
    self._check_times(video)
    return self.query_embed(video, query_uv, query_t)

  def scene_kv(self, feats):
    """Every decoder layer's K/V of F, computed once per clip: {'k', 'v'} (M, B, N, heads, d/heads)."""
    return self.decoder.scene_kv(feats)

  def decode_with_kv(self, kv, video, query_uv, query_t):
    """Decode queries against cached `scene_kv(F)`; any query chunk gives the same per-query outputs."""
    x = self.decoder(self.embed_queries(video, query_uv, query_t), kv)
    return self.head(x)

  def decode(self, feats, video, query_uv, query_t):
    return self.decode_with_kv(self.scene_kv(feats), video, query_uv, query_t)

  def __call__(self, video, aspect_ratio, query_uv, query_t):
    return self.decode(self.encode(video, aspect_ratio), video, query_uv, query_t)

  def _check_times(self, video):
    if video.shape[1] > self.cfg.num_frames:
      raise ValueError(f'video of {video.shape[1]} frames: the query time tables hold num_frames='
                       f'{self.cfg.num_frames}')


def build_d4rt(cfg: D4RTConfig, seed: int = 0) -> D4RT:
  warn_if_bfloat16_on_cpu(cfg.dtype)
  return D4RT(cfg, rngs=nnx.Rngs(seed))


def abstract_d4rt(cfg: D4RTConfig) -> D4RT:
  """The network's structure with ShapeDtypeStruct parameters (no memory, no compute)."""
  return nnx.eval_shape(lambda: build_d4rt(cfg))


def param_counts(cfg: D4RTConfig) -> dict:
  """Parameter counts of the parts, from the abstract model. 'decoder_total' = query embedding + decoder
  blocks + head (what the paper's "decoder, 144M" covers, inferred)."""
  model = abstract_d4rt(cfg)
  counts = {name: param_count(getattr(model, name)) for name in ('encoder', 'query_embed', 'decoder', 'head')}
  counts['decoder_total'] = counts['query_embed'] + counts['decoder'] + counts['head']
  counts['total'] = counts['encoder'] + counts['decoder_total']
  return counts


def output_shapes(cfg: D4RTConfig, batch: int = 1, num_queries: int = 2048) -> dict:
  """Shapes of F and of the outputs for a configured clip, via jax.eval_shape (nothing computed)."""
  model = abstract_d4rt(cfg)
  graphdef, state = nnx.split(model)
  t, s = cfg.num_frames, cfg.img_size
  args = (jax.ShapeDtypeStruct((batch, t, s, s, 3), np.float32), jax.ShapeDtypeStruct((batch,), np.float32),
          jax.ShapeDtypeStruct((batch, num_queries, 2), np.float32),
          jax.ShapeDtypeStruct((batch, num_queries, 3), np.int32))

  def run(state, video, ar, uv, qt):
    m = nnx.merge(graphdef, state)
    feats = m.encode(video, ar)
    return feats, m.decode(feats, video, uv, qt)

  feats, out = jax.eval_shape(run, state, *args)
  return {'F': feats.shape, **{k: v.shape for k, v in out.items()}}
