"""Plain pre-LN transformer blocks of D4RT: no RoPE (D4RT has none), attention via `attention.py`.

CroCo's `blocks.Block` applies 2D RoPE inside its attention, so the D4RT encoder uses its own
`ViTBlock` (VideoMAE's `Block`: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2), reusing CroCo's
`Mlp`, `linear` and `layer_norm` (xavier-uniform weights, zero biases, LayerNorm eps 1e-6). The decoder
block `CrossBlock` has no self-attention: x += CrossAttn(norm1(x), norm_y(F)); x += Mlp(norm2(x)),
with K/V projected from the encoder width C to the decoder width d.

Token tensors are (B, N, C); attention works on (B, N, heads, head_dim).
"""
from flax import nnx

from dynadust3r_jax.model.attention import dot_product_attention
from dynadust3r_jax.model.blocks import Mlp, layer_norm, linear


def split_heads(t, num_heads):
  b, n, c = t.shape
  return t.reshape(b, n, num_heads, c // num_heads)


class SelfAttention(nnx.Module):
  """Fused qkv ([q | k | v] column blocks, head-major inside each), as VideoMAE's `Attention.qkv`.

  VideoMAE has `qkv.weight` without bias plus `q_bias` and `v_bias`: the converter writes
  bias = [q_bias | 0 | v_bias]."""

  def __init__(self, dim, num_heads, *, attention_impl, dtype, rngs):
    self.num_heads = num_heads
    self.attention_impl = attention_impl
    self.qkv = linear(dim, 3 * dim, dtype=dtype, rngs=rngs)
    self.proj = linear(dim, dim, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    b, n, c = x.shape
    qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
    o = dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], impl=self.attention_impl)
    return self.proj(o.reshape(b, n, c))


class ViTBlock(nnx.Module):
  """Encoder block: x + attn(norm1(x)); x + mlp(norm2(x))."""

  def __init__(self, dim, num_heads, mlp_dim, *, attention_impl, dtype, rngs):
    self.norm1 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.attn = SelfAttention(dim, num_heads, attention_impl=attention_impl, dtype=dtype, rngs=rngs)
    self.norm2 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.mlp = Mlp(dim, mlp_dim, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = x + self.attn(self.norm1(x))
    return x + self.mlp(self.norm2(x))


class CrossAttention(nnx.Module):
  """Queries (width d) attend to the scene tokens F (width C): projq d→d, projk/projv C→d, proj d→d."""

  def __init__(self, dim, kv_dim, num_heads, *, attention_impl, dtype, rngs):
    self.num_heads = num_heads
    self.attention_impl = attention_impl
    self.projq = linear(dim, dim, dtype=dtype, rngs=rngs)
    self.projk = linear(kv_dim, dim, dtype=dtype, rngs=rngs)
    self.projv = linear(kv_dim, dim, dtype=dtype, rngs=rngs)
    self.proj = linear(dim, dim, dtype=dtype, rngs=rngs)

  def kv(self, y):
    """Keys and values of the (normalised) scene tokens y (B, N, C): two (B, N, heads, d/heads)."""
    return split_heads(self.projk(y), self.num_heads), split_heads(self.projv(y), self.num_heads)

  def __call__(self, x, k, v):
    b, nq, c = x.shape
    q = split_heads(self.projq(x), self.num_heads)
    o = dot_product_attention(q, k.astype(q.dtype), v.astype(q.dtype), impl=self.attention_impl)
    return self.proj(o.reshape(b, nq, c))


class CrossBlock(nnx.Module):
  """Decoder block (no self-attention among queries): x + cross_attn(norm1(x), norm_y(F)); x + mlp(norm2(x))."""

  def __init__(self, dim, kv_dim, num_heads, mlp_dim, *, attention_impl, dtype, rngs):
    self.norm1 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.norm_y = layer_norm(kv_dim, dtype=dtype, rngs=rngs)
    self.cross_attn = CrossAttention(dim, kv_dim, num_heads, attention_impl=attention_impl, dtype=dtype,
                                     rngs=rngs)
    self.norm2 = layer_norm(dim, dtype=dtype, rngs=rngs)
    self.mlp = Mlp(dim, mlp_dim, dtype=dtype, rngs=rngs)

  def kv(self, feats):
    """This layer's K and V of the scene tokens: the part that depends only on the clip."""
    return self.cross_attn.kv(self.norm_y(feats))

  def __call__(self, x, k, v):
    x = x + self.cross_attn(self.norm1(x), k, v)
    return x + self.mlp(self.norm2(x))
