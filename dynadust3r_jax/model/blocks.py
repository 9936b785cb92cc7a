"""Transformer blocks of CroCo (`models/blocks.py`): Mlp, Attention, CrossAttention, Block, DecoderBlock.

Pre-norm ViT blocks with LayerNorm(eps=1e-6), exact GELU, fused qkv ([q | k | v] row blocks,
head-major) and 2D RoPE on queries and keys. Parameters are float32; `dtype` is the compute dtype.
Token tensors are (B, N, C); attention works on (B, N, heads, head_dim).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from dynadust3r_jax.model.attention import rope_attention

# CroCo's `initialize_weights`: xavier-uniform Linear weights, zero biases, LayerNorm (1, 0).
xavier_uniform = nnx.initializers.xavier_uniform()


def linear(d_in, d_out, *, dtype, rngs):
  return nnx.Linear(d_in, d_out, dtype=dtype, param_dtype=jnp.float32, kernel_init=xavier_uniform,
                    bias_init=nnx.initializers.zeros_init(), rngs=rngs)


def layer_norm(dim, *, dtype, rngs):
  return nnx.LayerNorm(dim, epsilon=1e-6, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


class Mlp(nnx.Module):
  def __init__(self, dim, hidden, *, dtype, rngs):
    self.fc1 = linear(dim, hidden, dtype=dtype, rngs=rngs)
    self.fc2 = linear(hidden, dim, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class Attention(nnx.Module):
  """Self-attention with a fused qkv projection."""

  def __init__(self, dim, num_heads, *, rope_base, attention_impl, dtype, rngs):
    self.num_heads = num_heads
    self.rope_base = rope_base
    self.attention_impl = attention_impl
    self.qkv = linear(dim, 3 * dim, dtype=dtype, rngs=rngs)
    self.proj = linear(dim, dim, dtype=dtype, rngs=rngs)

  def __call__(self, x, pos):
    b, n, c = x.shape
    qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    o = rope_attention(q, k, v, pos, pos, base=self.rope_base, impl=self.attention_impl)
    return self.proj(o.reshape(b, n, c))


class CrossAttention(nnx.Module):
  """Queries from this view (positions qpos), keys/values from the other view (kpos)."""

  def __init__(self, dim, num_heads, *, rope_base, attention_impl, dtype, rngs):
    self.num_heads = num_heads
    self.rope_base = rope_base
    self.attention_impl = attention_impl
    self.projq = linear(dim, dim, dtype=dtype, rngs=rngs)
    self.projk = linear(dim, dim, dtype=dtype, rngs=rngs)
    self.projv = linear(dim, dim, dtype=dtype, rngs=rngs)
    self.proj = linear(dim, dim, dtype=dtype, rngs=rngs)

  def __call__(self, query, key, value, qpos, kpos):
    b, nq, c = query.shape
    split = lambda t: t.reshape(t.shape[0], t.shape[1], self.num_heads, c // self.num_heads)
    q, k, v = split(self.projq(query)), split(self.projk(key)), split(self.projv(value))
    o = rope_attention(q, k, v, qpos, kpos, base=self.rope_base, impl=self.attention_impl)
    return self.proj(o.reshape(b, nq, c))


class Block(nnx.Module):
  """Encoder block: x + attn(norm1(x)); x + mlp(norm2(x))."""

  def __init__(self, dim, num_heads, mlp_ratio, *, rope_base, attention_impl, dtype, rngs):
    self.norm1 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.attn = Attention(dim, num_heads, rope_base=rope_base, attention_impl=attention_impl,
                          dtype=dtype, rngs=rngs)
    self.norm2 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.mlp = Mlp(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)

  def __call__(self, x, pos):
    x = x + self.attn(self.norm1(x), pos)
    return x + self.mlp(self.norm2(x))


class DecoderBlock(nnx.Module):
  """Decoder block: self-attention, cross-attention to norm_y(other view), MLP. Returns new x."""

  def __init__(self, dim, num_heads, mlp_ratio, *, rope_base, attention_impl, dtype, rngs):
    kw = dict(rope_base=rope_base, attention_impl=attention_impl, dtype=dtype, rngs=rngs)
    self.norm1 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.attn = Attention(dim, num_heads, **kw)
    self.cross_attn = CrossAttention(dim, num_heads, **kw)
    self.norm2 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.norm3 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.mlp = Mlp(dim, int(dim * mlp_ratio), dtype=dtype, rngs=rngs)
    self.norm_y = layer_norm(dim, dtype=dtype, rngs=rngs)

  def __call__(self, x, y, xpos, ypos):
    x = x + self.attn(self.norm1(x), xpos)
    y_ = self.norm_y(y)
    x = x + self.cross_attn(self.norm2(x), y_, y_, xpos, ypos)
    return x + self.mlp(self.norm3(x))
