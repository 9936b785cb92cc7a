"""D4RT model (dynadust3r_jax/model/d4rt): query independence, K/V caching, frame-wise vs global layers,
the tokeniser's Conv3d layout, the patch sampler's pixel convention, Fourier features, head activations,
full-size parameter counts (abstract, nothing allocated) and the attention implementations."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dynadust3r_jax.model import attention
from dynadust3r_jax.model.d4rt import D4RTConfig, abstract_d4rt, build_d4rt, d4rt_config, output_shapes, param_counts
from dynadust3r_jax.model.d4rt.blocks import ViTBlock
from dynadust3r_jax.model.d4rt.encoder import frame_layer, global_layer, sinusoid_table, tubelets
from dynadust3r_jax.model.d4rt.head import D4RTHead, head_outputs
from dynadust3r_jax.model.d4rt.query_embedding import fourier_features, sample_patches

TINY = d4rt_config('tiny')


def _inputs(cfg=TINY, batch=2, num_queries=11, seed=0):
  k = jax.random.split(jax.random.key(seed), 4)
  t, s = cfg.num_frames, cfg.img_size
  video = jax.random.uniform(k[0], (batch, t, s, s, 3), minval=-1, maxval=1)
  ar = jax.random.uniform(k[1], (batch,), minval=0.5, maxval=2.0)
  uv = jax.random.uniform(k[2], (batch, num_queries, 2))
  qt = jax.random.randint(k[3], (batch, num_queries, 3), 0, t)
  return video, ar, uv, qt


class _Jitted:
  """A model's split state and its methods as pure jitted functions of that state (as the hot paths run)."""

  def __init__(self, cfg, seed=0):
    self.graphdef, self.state = nnx.split(build_d4rt(cfg, seed))
    self._fns = {}

  def __getattr__(self, name):
    if name.startswith('_'):
      raise AttributeError(name)
    if name not in self._fns:
      graphdef = self.graphdef
      method = '__call__' if name == 'forward' else name
      self._fns[name] = jax.jit(lambda st, *a: getattr(nnx.merge(graphdef, st), method)(*a))
    return functools.partial(self._fns[name], self.state)


@functools.lru_cache(maxsize=None)
def _jitted(cfg=TINY, seed=0):
  return _Jitted(cfg, seed)


def _close(a, b, tol=1e-5):
  for key in a:
    np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=tol, rtol=tol, err_msg=key)


# ------------------------------------------------------------------------------------------------ config


def test_config_validation_and_json():
  with pytest.raises(ValueError, match='enc_depth=3 must be even'):
    d4rt_config('tiny', enc_depth=3)
  with pytest.raises(ValueError, match="attention_impl='cudnn' needs dtype"):
    d4rt_config('tiny', attention_impl='cudnn')
  with pytest.raises(ValueError, match='no RoPE'):
    d4rt_config('tiny', attention_impl='pallas')
  with pytest.raises(ValueError, match='query_patch_size=8 must be odd'):
    d4rt_config('tiny', query_patch_size=8)
  with pytest.raises(ValueError, match="D4RT size 'XL'"):
    d4rt_config('XL')
  g = d4rt_config('g')
  assert (g.enc_mlp_dim, g.dec_mlp_dim, g.num_tokens, g.fourier_dim, g.query_patch_dim) == (6144, 4480, 6144, 34, 243)
  assert D4RTConfig.from_json(TINY.to_json(), dtype='bfloat16') == TINY.replace(dtype='bfloat16')
  assert D4RTConfig() == g


# ------------------------------------------------------------------------------------------------ sizes


def _expected_counts(cfg):
  """The spec's arithmetic (§2.3), with biases and LayerNorms."""
  c, d, m_e, m_d = cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.enc_mlp_dim, cfg.dec_mlp_dim
  vit_block = (3 * c * c + 3 * c) + (c * c + c) + (2 * c * m_e + m_e + c) + 4 * c
  encoder = cfg.patch_dim * c + c + 2 * c + cfg.enc_depth * vit_block + 2 * c
  cross_block = (d * d + d) + 2 * (c * d + d) + (d * d + d) + (2 * d * m_d + m_d + d) + 4 * d + 2 * c
  query = (cfg.fourier_dim + 1) * d + 3 * cfg.num_frames * d + (cfg.query_patch_dim + 1) * d + 2 * d
  head = 2 * d + 13 * d + 13
  return encoder, query + cfg.dec_depth * cross_block + head


@pytest.mark.parametrize('size', ['g', 'L', 'B', 'tiny'])
def test_param_counts_match_arithmetic(size):
  cfg = d4rt_config(size)
  counts = param_counts(cfg)
  assert (counts['encoder'], counts['decoder_total']) == _expected_counts(cfg)


def test_full_size_param_counts_match_paper():
  counts = param_counts(d4rt_config('g'))
  print('D4RT-g parameters:', {k: f'{v / 1e6:.1f}M' for k, v in counts.items()})
  assert abs(counts['encoder'] / 1.0e9 - 1) < 0.05           # "ViT-g, 1B params"
  assert abs(counts['decoder_total'] / 144e6 - 1) < 0.03     # "8 layers, 144M params"
  assert abs(counts['decoder'] / 144.2e6 - 1) < 0.03         # the spec's 8 x 11 d^2
  assert abs(param_counts(d4rt_config('B'))['encoder'] / 86e6 - 1) < 0.05   # ViT-B


def test_full_size_shapes_abstract():
  cfg = d4rt_config('g', dtype='bfloat16')
  shapes = output_shapes(cfg, batch=1, num_queries=2048)
  assert shapes == {'F': (1, 6144, 1408), 'xyz': (1, 2048, 3), 'uv': (1, 2048, 2), 'vis_logit': (1, 2048),
                    'disp': (1, 2048, 3), 'normal': (1, 2048, 3), 'conf': (1, 2048)}
  model = abstract_d4rt(cfg)
  assert model.encoder.patch_embed.proj.kernel.shape == (1536, 1408)
  assert model.encoder.frame_blocks.attn.qkv.kernel.shape == (20, 1408, 3 * 1408)
  assert model.encoder.global_blocks.mlp.fc1.kernel.shape == (20, 1408, 6144)
  assert model.decoder.blocks.cross_attn.projk.kernel.shape == (8, 1408, 1280)
  assert model.query_embed.src_embed.shape == (48, 1280)
  assert model.head.proj.kernel.shape == (1280, 13)
  assert model.encoder.frame_blocks.attn.qkv.kernel.dtype == jnp.float32   # params float32 under bf16


# ------------------------------------------------------------------------------------------------ queries


def test_queries_are_independent_and_chunkable():
  m = _jitted()
  video, ar, uv, qt = _inputs(num_queries=12)
  full = m.forward(video, ar, uv, qt)
  kv = m.scene_kv(m.encode(video, ar))
  assert kv['k'].shape == (TINY.dec_depth, 2, TINY.num_tokens, TINY.dec_num_heads, 64 // TINY.dec_num_heads)
  _close(full, m.decode_with_kv(kv, video, uv, qt))
  chunks = [m.decode_with_kv(kv, video, uv[:, a:a + 4], qt[:, a:a + 4]) for a in (0, 4, 8)]
  _close(full, {k: jnp.concatenate([c[k] for c in chunks], axis=1) for k in full})
  for i in (0, 7):
    one = m.decode_with_kv(kv, video, uv[:, i:i + 1], qt[:, i:i + 1])
    _close({k: v[:, i:i + 1] for k, v in full.items()}, one)
  # Other queries changed: query 3's outputs stay the same.
  uv2 = jax.random.uniform(jax.random.key(9), uv.shape).at[:, 3].set(uv[:, 3])
  qt2 = ((qt + 5) % TINY.num_frames).at[:, 3].set(qt[:, 3])
  other = m.decode_with_kv(kv, video, uv2, qt2)
  _close({k: v[:, 3] for k, v in full.items()}, {k: v[:, 3] for k, v in other.items()})
  assert not np.allclose(full['xyz'][:, 4], other['xyz'][:, 4])


def test_each_query_input_matters():
  forward = _jitted().forward
  video, ar, uv, qt = _inputs(num_queries=3)
  base = forward(video, ar, uv, qt)['xyz']
  for i in range(3):   # t_src (time table + patch frame), t_tgt, t_cam
    changed = forward(video, ar, uv, qt.at[..., i].set((qt[..., i] + 1) % TINY.num_frames))['xyz']
    assert np.abs(changed - base).max(-1).min() > 1e-6
  assert np.abs(forward(video, ar, uv * 0.9, qt)['xyz'] - base).max(-1).min() > 1e-6
  assert np.abs(forward(video, ar * 1.5, uv, qt)['xyz'] - base).max(-1).min() > 1e-6   # the AR token


# ------------------------------------------------------------------------------------------------ encoder


def test_frame_layers_are_per_slab_and_global_layers_mix():
  c, slabs, per_slab = 32, 4, 16
  block = ViTBlock(c, 4, 64, attention_impl='xla', dtype=jnp.float32, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (2, slabs * per_slab, c))
  # change slab 1 only (by a non-constant offset: LayerNorm removes a constant one)
  x2 = x.at[:, per_slab:2 * per_slab].add(jax.random.normal(jax.random.key(2), (2, per_slab, c)))
  ar = jax.random.normal(jax.random.key(1), (2, 1, c))
  y, y2 = frame_layer(block, x, slabs), frame_layer(block, x2, slabs)
  np.testing.assert_array_equal(np.asarray(y[:, :per_slab]), np.asarray(y2[:, :per_slab]))
  np.testing.assert_array_equal(np.asarray(y[:, 2 * per_slab:]), np.asarray(y2[:, 2 * per_slab:]))
  assert not np.allclose(y[:, per_slab:2 * per_slab], y2[:, per_slab:2 * per_slab])
  # frame_layer = the block on each slab alone
  np.testing.assert_allclose(np.asarray(y[:, :per_slab]), np.asarray(block(x[:, :per_slab])), atol=1e-6)
  (g, g_ar), (g2, g2_ar) = global_layer(block, x, ar), global_layer(block, x2, ar)
  assert g.shape == x.shape and g_ar.shape == ar.shape
  assert np.abs(g[:, :per_slab] - g2[:, :per_slab]).max(-1).min() > 1e-4 and np.abs(g_ar - g2_ar).min() > 1e-6
  # the AR token is attended to in global layers
  g3, _ = global_layer(block, x, jax.random.normal(jax.random.key(3), ar.shape))
  assert np.abs(g3 - g).max(-1).min() > 1e-4


def test_encoder_mixes_slabs_through_global_layers():
  encode = _jitted().encode
  video, ar, _, _ = _inputs(batch=1)
  feats = encode(video, ar)
  assert feats.shape == (1, TINY.num_tokens, TINY.enc_embed_dim) and feats.dtype == jnp.float32
  feats2 = encode(video.at[:, 2:4].set(0.0), ar)   # frames of slab 1
  # slab 0's tokens (16 per slab at 64^2) change
  assert np.abs(feats2[:, :16] - feats[:, :16]).max(-1).min() > 1e-4


def test_tubelet_dense_equals_videomae_conv3d():
  """The documented re-layout: Conv3d kernel (out, 3, 2, 16, 16)
  → kernel.transpose(2, 3, 4, 1, 0).reshape(1536, out)."""
  out = 4
  rng = np.random.default_rng(0)
  video = rng.normal(size=(2, 4, 32, 48, 3)).astype(np.float32)
  w = rng.normal(size=(out, 3, 2, 16, 16)).astype(np.float32)
  # Conv3d with stride = kernel, output (B, out, T', H', W') flattened over (t', y', x') as VideoMAE does
  conv = np.zeros((2, out, 2, 2, 3))
  for t in range(2):
    for y in range(2):
      for x in range(3):
        cube = video[:, 2 * t:2 * t + 2, 16 * y:16 * y + 16, 16 * x:16 * x + 16].transpose(0, 4, 1, 2, 3)
        conv[:, :, t, y, x] = np.einsum('bcdhw,ocdhw->bo', cube, w)
  conv = conv.reshape(2, out, -1).transpose(0, 2, 1)     # x.flatten(2).transpose(1, 2)
  dense = np.asarray(tubelets(jnp.asarray(video), (2, 16, 16))) @ w.transpose(2, 3, 4, 1, 0).reshape(-1, out)
  assert dense.shape == (2, 2 * 2 * 3, out)
  np.testing.assert_allclose(dense, conv, atol=1e-3)
  video = jnp.asarray(video)
  with pytest.raises(ValueError, match='whole number'):
    tubelets(video[:, :3], (2, 16, 16))


def test_sinusoid_table_is_videomaes():
  n, d = 10, 12
  # VideoMAE's get_sinusoid_encoding_table, verbatim in numpy
  table = np.array([[pos / np.power(10000, 2 * (j // 2) / d) for j in range(d)] for pos in range(n)])
  table[:, 0::2] = np.sin(table[:, 0::2])
  table[:, 1::2] = np.cos(table[:, 1::2])
  np.testing.assert_allclose(sinusoid_table(n, d), table.astype(np.float32), atol=1e-6)


# ------------------------------------------------------------------------------------------------ query embedding


def test_patch_sampler_pixel_centres_and_bilinear():
  h, w = 12, 20
  video = jax.random.normal(jax.random.key(0), (1, 3, h, w, 3))
  j, i, t = 7, 5, 2
  uv = jnp.array([[[(j + 0.5) / w, (i + 0.5) / h]]], jnp.float32)
  p = np.asarray(sample_patches(video, uv, jnp.array([[t]]), 9))[0, 0]
  assert p.shape == (9, 9, 3)
  np.testing.assert_allclose(p, np.asarray(video[0, t, i - 4:i + 5, j - 4:j + 5]), atol=1e-6)
  v = np.asarray(video[0, t])
  # halfway between pixel columns j and j+1: the mean of the two; diagonally: the mean of four
  half = sample_patches(video, uv + jnp.array([0.5 / w, 0.0]), jnp.array([[t]]), 1)[0, 0, 0, 0]
  np.testing.assert_allclose(half, (v[i, j] + v[i, j + 1]) / 2, atol=1e-6)
  diag = sample_patches(video, uv + jnp.array([0.5 / w, 0.5 / h]), jnp.array([[t]]), 1)[0, 0, 0, 0]
  np.testing.assert_allclose(diag, (v[i, j] + v[i, j + 1] + v[i + 1, j] + v[i + 1, j + 1]) / 4, atol=1e-6)
  # edge padding: around pixel (0, 0) the out-of-image offsets repeat the border pixels
  corner = np.asarray(sample_patches(video, jnp.array([[[0.5 / w, 0.5 / h]]]), jnp.array([[t]]), 9))[0, 0]
  np.testing.assert_allclose(corner[:4, :4], np.broadcast_to(v[0, 0], (4, 4, 3)), atol=1e-6)
  np.testing.assert_allclose(corner[4:, 4:], v[:5, :5], atol=1e-6)
  np.testing.assert_allclose(corner[:4, 4:], np.broadcast_to(v[0, :5], (4, 5, 3)), atol=1e-6)


def test_patch_sampler_batches_and_frames():
  video = jax.random.normal(jax.random.key(0), (2, 4, 8, 8, 3))
  uv = jnp.array([[[0.5 / 8, 1.5 / 8], [7.5 / 8, 7.5 / 8]], [[3.5 / 8, 2.5 / 8], [0.0, 1.0]]])
  t = jnp.array([[0, 3], [1, 2]])
  p = sample_patches(video, uv, t, 1)[..., 0, 0, :]
  np.testing.assert_allclose(p[0, 0], video[0, 0, 1, 0], atol=1e-6)
  np.testing.assert_allclose(p[0, 1], video[0, 3, 7, 7], atol=1e-6)
  np.testing.assert_allclose(p[1, 0], video[1, 1, 2, 3], atol=1e-6)
  np.testing.assert_allclose(p[1, 1], video[1, 2, 7, 0], atol=1e-6)   # (0, 1): the clamped corner pixel


def test_fourier_features_float32_and_deterministic():
  uv = jnp.array([[0.5, 0.25]], jnp.bfloat16)
  f = fourier_features(uv, 8)
  assert f.shape == (1, 34) and f.dtype == jnp.float32
  np.testing.assert_allclose(f[0, :2], [0.5, 0.25])
  np.testing.assert_allclose(f[0, 2:4], [1.0, np.sin(np.pi / 4)], atol=1e-6)        # sin(pi u), sin(pi v)
  np.testing.assert_allclose(f[0, 18:20], [0.0, np.cos(np.pi / 4)], atol=1e-6)      # cos(pi u), cos(pi v)
  np.testing.assert_allclose(f[0, 4:6], [0.0, 1.0], atol=1e-6)                     # sin(2 pi u), sin(2 pi v)
  np.testing.assert_array_equal(np.asarray(f), np.asarray(fourier_features(uv, 8)))
  # inside a bfloat16 model the query embedding and the head stay float32
  cfg = TINY.replace(dtype='bfloat16')
  model = _jitted(cfg)
  video, ar, uv, qt = _inputs(cfg, num_queries=6)
  assert jax.eval_shape(model.embed_queries, video, uv, qt).dtype == jnp.float32
  feats = jax.eval_shape(model.encode, video, ar)
  assert feats.dtype == jnp.bfloat16
  out = model.forward(video, ar, uv, qt)
  assert all(v.dtype == jnp.float32 for v in out.values())
  ref = _jitted().forward(video, ar, uv, qt)               # same seed, float32
  np.testing.assert_allclose(out['xyz'], ref['xyz'], atol=0.1)


def test_out_of_range_times_are_nan():
  video, _, uv, qt = _inputs(num_queries=2)
  tokens = _jitted().embed_queries(video, uv, qt.at[0, 0, 1].set(TINY.num_frames).at[1, 1, 2].set(-1))
  assert np.isnan(tokens[0, 0]).all() and np.isnan(tokens[1, 1]).all()
  assert np.isfinite(tokens[0, 1]).all() and np.isfinite(tokens[1, 0]).all()


# ------------------------------------------------------------------------------------------------ head


def test_head_activations():
  zero = head_outputs(jnp.zeros((2, 5, 13)))
  np.testing.assert_array_equal(zero['xyz'], np.broadcast_to([0.0, 0.0, 1.0], (2, 5, 3)))
  np.testing.assert_array_equal(zero['conf'], 2.0)
  assert np.isfinite(zero['normal']).all()
  raw = 10 * jax.random.normal(jax.random.key(0), (2, 5, 13))
  out = head_outputs(raw.at[0, 0, 12].set(1e4).at[0, 1, 12].set(-1e4))
  assert (out['conf'] >= 1).all() and np.isfinite(out['conf']).all()
  np.testing.assert_allclose(np.linalg.norm(out['normal'], axis=-1), 1.0, atol=1e-6)
  r = np.asarray(raw.at[0, 0, 12].set(1e4).at[0, 1, 12].set(-1e4), np.float64)  # the formulas, from the raw output
  np.testing.assert_allclose(out['xyz'], r[..., 0:3] + [0.0, 0.0, 1.0], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(out['normal'], r[..., 9:12] / np.linalg.norm(r[..., 9:12], axis=-1, keepdims=True),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out['conf'], 1 + np.exp(np.minimum(r[..., 12], 20.0)), rtol=1e-5)
  np.testing.assert_allclose(head_outputs(jnp.asarray(r, jnp.float32), conf_logit_max=3.0)['conf'],
                             1 + np.exp(np.minimum(r[..., 12], 3.0)), rtol=1e-5)
  np.testing.assert_array_equal(out['uv'], raw[..., 3:5])
  np.testing.assert_array_equal(out['vis_logit'], raw[..., 5])
  np.testing.assert_array_equal(out['disp'], raw[..., 6:9])
  assert {k: v.shape for k, v in out.items()} == {'xyz': (2, 5, 3), 'uv': (2, 5, 2), 'vis_logit': (2, 5),
                                                  'disp': (2, 5, 3), 'normal': (2, 5, 3), 'conf': (2, 5)}


def test_zero_head_module_gives_unit_depth():
  head = D4RTHead(TINY, rngs=nnx.Rngs(0))
  head.proj.kernel[...] = jnp.zeros_like(head.proj.kernel[...])
  head.proj.bias[...] = jnp.zeros_like(head.proj.bias[...])
  out = head(jax.random.normal(jax.random.key(0), (2, 4, TINY.dec_embed_dim)))
  np.testing.assert_array_equal(out['xyz'], np.broadcast_to([0.0, 0.0, 1.0], (2, 4, 3)))
  np.testing.assert_array_equal(out['conf'], 2.0)


def test_model_outputs_normal_unit_and_conf_at_least_one():
  out = _jitted().forward(*_inputs(num_queries=12))
  np.testing.assert_allclose(np.linalg.norm(out['normal'], axis=-1), 1.0, atol=1e-5)
  assert (out['conf'] >= 1).all()


# ------------------------------------------------------------------------------------------------ runtime


def test_remat_gives_same_outputs_and_gradients():
  video, ar, uv, qt = _inputs(num_queries=4)

  def loss_and_grad(cfg):
    graphdef, state = nnx.split(build_d4rt(cfg))
    loss = lambda st: jnp.mean(nnx.merge(graphdef, st)(video, ar, uv, qt)['xyz'] ** 2)
    return jax.jit(jax.value_and_grad(loss))(state)

  small = TINY.replace(enc_depth=2, dec_depth=1)
  (l0, g0), (l1, g1) = loss_and_grad(small), loss_and_grad(small.replace(remat_policy='full'))
  np.testing.assert_allclose(l0, l1, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert all(np.isfinite(a).all() for a in jax.tree.leaves(g0))
  # gradients reach the encoder's first layer and the query tables
  assert np.abs(g0['encoder']['patch_embed']['proj']['kernel'][...]).max() > 0
  assert np.abs(g0['query_embed']['cam_embed'][...]).max() > 0


def test_xla_and_cudnn_attention_agree(monkeypatch):
  """On a GPU both run as configured. On CPU (no cuDNN) jax.nn.dot_product_attention runs its 'xla'
  implementation instead, which still checks that the 'cudnn' path's layout and wiring are right."""
  if jax.default_backend() != 'gpu':
    real = jax.nn.dot_product_attention
    monkeypatch.setattr(attention.jax.nn, 'dot_product_attention',
                        lambda *a, implementation=None, **k: real(*a, implementation='xla', **k))
  cfg = TINY.replace(dtype='bfloat16')
  inputs = _inputs(cfg, num_queries=6)
  xla = _jitted(cfg).forward(*inputs)
  cudnn = _Jitted(cfg.replace(attention_impl='cudnn')).forward(*inputs)   # traced here, under the patch
  for key in xla:
    np.testing.assert_allclose(np.asarray(xla[key]), np.asarray(cudnn[key]), atol=0.05, rtol=0.05, err_msg=key)
