"""RoPE2D and attention against independent definitions (numpy), and the layout of the cuDNN path."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynadust3r_jax.model.attention import dot_product_attention
from dynadust3r_jax.model.config import ModelConfig
from dynadust3r_jax.model.pos_embed import position_grid, rope_2d


def _rope_numpy(t, pos, base=100.0):
  """Per-vector definition (spec dust3r.md §1.4): halves [y | x], pairs (k, k + D/4) in each half."""
  out = np.empty_like(t, dtype=np.float64)
  d_half = t.shape[-1] // 2
  q = d_half // 2
  for b, n, h in np.ndindex(*t.shape[:3]):
    for half, p in ((0, pos[b, n, 0]), (1, pos[b, n, 1])):
      seg = t[b, n, h, half * d_half:(half + 1) * d_half].astype(np.float64)
      for k in range(q):
        w = base ** (-2 * k / d_half)
        u, v = seg[k], seg[k + q]
        out[b, n, h, half * d_half + k] = u * np.cos(p * w) - v * np.sin(p * w)
        out[b, n, h, half * d_half + k + q] = v * np.cos(p * w) + u * np.sin(p * w)
  return out


def test_position_grid_is_row_major_y_x():
  np.testing.assert_array_equal(position_grid(2, 3), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])


@pytest.mark.parametrize('head_dim', [16, 32, 64])
def test_rope_matches_definition(head_dim):
  rng = np.random.default_rng(head_dim)
  t = rng.normal(size=(2, 6, 3, head_dim)).astype(np.float32)
  pos = rng.integers(0, 40, size=(2, 6, 2)).astype(np.int32)
  np.testing.assert_allclose(rope_2d(jnp.asarray(t), jnp.asarray(pos)), _rope_numpy(t, pos), rtol=1e-5, atol=1e-5)


def test_rope_preserves_relative_position_scores():
  """<R(p)q, R(p')k> depends on p - p' only: the property RoPE exists for."""
  rng = np.random.default_rng(1)
  q, k = (jnp.asarray(rng.normal(size=(1, 1, 1, 64)), jnp.float32) for _ in range(2))
  score = lambda pq, pk: float(jnp.sum(rope_2d(q, jnp.asarray([[pq]])) * rope_2d(k, jnp.asarray([[pk]]))))
  assert score((3, 5), (1, 2)) == pytest.approx(score((10, 9), (8, 6)), rel=1e-5)
  assert score((3, 5), (1, 2)) != pytest.approx(score((3, 5), (2, 1)), rel=1e-3)


def test_attention_matches_numpy_and_jax_layout():
  """Our einsum path equals softmax(q k^T / sqrt(D)) v, and jax.nn.dot_product_attention (the API of
  the cuDNN path) reads the same (batch, tokens, heads, dim) layout."""
  rng = np.random.default_rng(0)
  q = rng.normal(size=(2, 5, 3, 8)).astype(np.float32)
  k, v = (rng.normal(size=(2, 7, 3, 8)).astype(np.float32) for _ in range(2))
  logits = np.einsum('bqhd,bkhd->bhqk', q, k) / np.sqrt(8)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  want = np.einsum('bhqk,bkhd->bqhd', weights, v)
  np.testing.assert_allclose(dot_product_attention(q, k, v), want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(jax.nn.dot_product_attention(q, k, v), want, rtol=1e-5, atol=1e-6)


def test_cudnn_needs_half_precision():
  with pytest.raises(ValueError, match="attention_impl='cudnn' needs dtype"):
    ModelConfig(pos_embed='RoPE100', attention_impl='cudnn')
  ModelConfig(pos_embed='RoPE100', attention_impl='cudnn', dtype='bfloat16')
