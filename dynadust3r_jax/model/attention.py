"""Scaled dot-product attention over (batch, tokens, heads, head_dim) tensors, RoPE applied first.

Implementations (config `attention_impl`):
  'xla'    - einsum + float32 softmax: the reference, runs everywhere
             (`pallas_kernels.rope_attention.rope_attention_reference`).
  'cudnn'  - `jax.nn.dot_product_attention(implementation='cudnn')`: fused kernel, GPU only, needs
             bfloat16/float16 inputs. Its layout is (batch, tokens, heads, dim), which is ours.
  'pallas' - `pallas_kernels.rope_attention.rope_attention`: flash attention with RoPE fused into the
             q/k loads (Mosaic GPU kernels on Hopper, bfloat16/float16). On a CPU backend it runs the
             generic Pallas twin in interpret mode (any dtype): slow, for tests. Under an ambient mesh
             (`jax.set_mesh`, as the trainer runs its steps) the kernel runs per device (`_per_device`).
"""
import functools

import jax

from pallas_kernels.rope_attention import attention_reference, rope_2d, rope_attention_reference
from pallas_kernels.rope_attention import rope_attention as fused_rope_attention


def dot_product_attention(q, k, v, *, impl: str = 'xla'):
  """q (B, Nq, H, D), k/v (B, Nk, H, D) → (B, Nq, H, D); scale 1/sqrt(D)."""
  if impl == 'cudnn':
    return jax.nn.dot_product_attention(q, k, v, implementation='cudnn')
  return attention_reference(q, k, v)


def _per_device(kernel, *args):
  """kernel(*args) on each device's share of the batch (dim 0 of every arg) under the ambient mesh.

  XLA cannot partition a pallas_call: under jit with batch-sharded inputs it would gather the batch and
  run the whole kernel on every device. So, when a mesh is set (`jax.sharding.get_abstract_mesh()`),
  the kernel is shard_mapped with the batch split over all the mesh axes not already manual (the
  trainer splits its batch over every device) and tokens, heads and channels whole; the custom_vjp
  inside differentiates per device too. No mesh (single-device inference): a direct call."""
  mesh = jax.sharding.get_abstract_mesh()
  axes = tuple(a for a in mesh.axis_names if a not in mesh.manual_axes)
  if not axes:
    return kernel(*args)
  # check_vma=False: pallas_call's output shapes carry no per-axis variance; every value here is split
  # over the same axes and nothing inside communicates.
  return jax.shard_map(kernel, in_specs=jax.P(axes), out_specs=jax.P(axes), axis_names=set(axes),
                       check_vma=False)(*args)


def rope_attention(q, k, v, q_pos, k_pos, *, base: float, impl: str = 'xla'):
  """RoPE2D on q (with q_pos) and k (with k_pos), then attention. Positions (B, N, 2) int."""
  if impl == 'pallas':
    return _per_device(functools.partial(fused_rope_attention, base=base), q, k, v, q_pos, k_pos)
  if impl == 'xla':
    return rope_attention_reference(q, k, v, q_pos, k_pos, base=base)
  return dot_product_attention(rope_2d(q, q_pos, base), rope_2d(k, k_pos, base), v, impl=impl)
