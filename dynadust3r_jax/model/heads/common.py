"""Pieces shared by the pixel-wise heads: PyTorch-default initialisation and float32 layers."""
import math

import jax
import jax.numpy as jnp
from flax import nnx


def torch_default_init(fan_in: int):
  """PyTorch's default Linear/Conv init (kaiming-uniform a=sqrt(5), and the bias rule): both are
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)). DUSt3R builds its heads after CroCo's init, so they keep it."""
  bound = 1.0 / math.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def conv(c_in, c_out, k, *, rngs, stride=1, use_bias=True):
  """float32 k×k convolution with PyTorch's explicit symmetric padding k//2 (not XLA 'SAME')."""
  init = torch_default_init(c_in * k * k)
  pad = k // 2
  return nnx.Conv(c_in, c_out, (k, k), strides=stride, padding=((pad, pad), (pad, pad)), use_bias=use_bias,
                  dtype=jnp.float32, param_dtype=jnp.float32, kernel_init=init, bias_init=init, rngs=rngs)


def linear(d_in, d_out, *, rngs):
  init = torch_default_init(d_in)
  return nnx.Linear(d_in, d_out, dtype=jnp.float32, param_dtype=jnp.float32, kernel_init=init,
                    bias_init=init, rngs=rngs)


def tokens_to_grid(tokens, hw):
  """(B, h*w, C) row-major tokens → (B, h, w, C) float32."""
  b, _, c = tokens.shape
  return tokens.astype(jnp.float32).reshape(b, hw[0], hw[1], c)
