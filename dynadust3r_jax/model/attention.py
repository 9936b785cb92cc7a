"""Scaled dot-product attention over (batch, tokens, heads, head_dim) tensors, RoPE applied first.

Implementations (config `attention_impl`):
  'xla'    - einsum + float32 softmax: the reference, runs everywhere
             (`pallas_kernels.rope_attention.rope_attention_reference`).
  'cudnn'  - `jax.nn.dot_product_attention(implementation='cudnn')`: fused kernel, GPU only, needs
             bfloat16/float16 inputs. Its layout is (batch, tokens, heads, dim), which is ours.
  'pallas' - `pallas_kernels.rope_attention.rope_attention`: flash attention with RoPE fused into the
             q/k loads (Mosaic GPU kernels on Hopper, bfloat16/float16). On a CPU backend it runs the
             generic Pallas twin in interpret mode (any dtype): slow, for tests.
"""
import jax

from pallas_kernels.rope_attention import attention_reference, rope_2d, rope_attention_reference
from pallas_kernels.rope_attention import rope_attention as fused_rope_attention


def dot_product_attention(q, k, v, *, impl: str = 'xla'):
  """q (B, Nq, H, D), k/v (B, Nk, H, D) → (B, Nq, H, D); scale 1/sqrt(D)."""
  if impl == 'cudnn':
    return jax.nn.dot_product_attention(q, k, v, implementation='cudnn')
  return attention_reference(q, k, v)


def rope_attention(q, k, v, q_pos, k_pos, *, base: float, impl: str = 'xla'):
  """RoPE2D on q (with q_pos) and k (with k_pos), then attention. Positions (B, N, 2) int."""
  if impl == 'pallas':
    return fused_rope_attention(q, k, v, q_pos, k_pos, base=base)
  if impl == 'xla':
    return rope_attention_reference(q, k, v, q_pos, k_pos, base=base)
  return dot_product_attention(rope_2d(q, q_pos, base), rope_2d(k, k_pos, base), v, impl=impl)
