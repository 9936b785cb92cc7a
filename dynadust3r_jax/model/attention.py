"""Scaled dot-product attention over (batch, tokens, heads, head_dim) tensors, RoPE applied first.

Implementations (config `attention_impl`):
  'xla'   - einsum + float32 softmax: the reference, runs everywhere.
  'cudnn' - `jax.nn.dot_product_attention(implementation='cudnn')`: fused kernel, GPU only, needs
            bfloat16/float16 inputs. Its layout is (batch, tokens, heads, dim), which is ours.
"""
import jax
import jax.numpy as jnp

from dynadust3r_jax.model.pos_embed import rope_2d


def dot_product_attention(q, k, v, *, impl: str = 'xla'):
  """q (B, Nq, H, D), k/v (B, Nk, H, D) → (B, Nq, H, D); scale 1/sqrt(D)."""
  if impl == 'cudnn':
    return jax.nn.dot_product_attention(q, k, v, implementation='cudnn')
  scale = q.shape[-1] ** -0.5
  logits = jnp.einsum('bqhd,bkhd->bhqk', q, k, preferred_element_type=jnp.float32) * scale
  weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum('bhqk,bkhd->bqhd', weights, v)


def rope_attention(q, k, v, q_pos, k_pos, *, base: float, impl: str = 'xla'):
  """RoPE2D on q (with q_pos) and k (with k_pos), then attention. Positions (B, N, 2) int."""
  return dot_product_attention(rope_2d(q, q_pos, base), rope_2d(k, k_pos, base), v, impl=impl)
