"""Checking helpers shared by tests/ (on CPU) and benchmarks/correctness.py (the same checks on a GPU).

Errors are max |got - ref| / max |ref| (the parity measure of tests/fixtures/README.md); the attention
reference is `rope_attention_reference` evaluated in float32 on the same (possibly bf16-rounded) inputs.
"""
import jax
import jax.numpy as jnp
import numpy as np

from pallas_kernels.rope_attention import rope_attention_reference

# max relative error of the fused kernels (output and each gradient) against the float32 reference
ATTENTION_TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}


def relative_error(got, ref) -> float:
  """max |got - ref| / max |ref|; got must be finite and of ref's shape."""
  got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
  assert got.shape == ref.shape, (got.shape, ref.shape)
  assert np.all(np.isfinite(got)), 'non-finite values'
  return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def nhwc(img):
  """(B, 3, H, W) PyTorch layout → (B, H, W, 3)."""
  return np.ascontiguousarray(np.asarray(img).transpose(0, 2, 3, 1))


def fixture_views(ref):
  """The two input views stored in a reference .npz, as the model takes them."""
  return ({'img': nhwc(ref['img1']), 'true_shape': ref['true_shape1']},
          {'img': nhwc(ref['img2']), 'true_shape': ref['true_shape2']})


def attention_inputs(seed, nq, nk, d, dtype, *, b=2, h=2, scale=1.0):
  """Random q (b, nq, h, d), k, v (b, nk, h, d), positions and the output cotangent do."""
  rng = np.random.default_rng(seed)
  q = jnp.asarray(scale * rng.normal(size=(b, nq, h, d)), dtype)
  k = jnp.asarray(scale * rng.normal(size=(b, nk, h, d)), dtype)
  v = jnp.asarray(rng.normal(size=(b, nk, h, d)), dtype)
  # positions of an image grid (y, x), not sorted: cross attention reads the other view's grid
  q_pos = jnp.asarray(rng.integers(0, 40, size=(b, nq, 2)), jnp.int32)
  k_pos = jnp.asarray(rng.integers(0, 40, size=(b, nk, 2)), jnp.int32)
  do = jnp.asarray(rng.normal(size=(b, nq, h, d)), dtype)
  return q, k, v, q_pos, k_pos, do


def out_and_grads(fn, q, k, v, q_pos, k_pos, do, **kw):
  """(o, dq, dk, dv) of fn(q, k, v, q_pos, k_pos, **kw) with output cotangent do."""
  o, vjp = jax.vjp(lambda q, k, v: fn(q, k, v, q_pos, k_pos, **kw), q, k, v)
  return (o, *vjp(do))


def reference_out_and_grads(q, k, v, q_pos, k_pos, do):
  """`out_and_grads` of the pure-JAX reference in float32 ('highest' matmuls: no TF32 on GPUs)."""
  f32 = lambda x: x.astype(jnp.float32)
  with jax.default_matmul_precision('highest'):
    return out_and_grads(rope_attention_reference, f32(q), f32(k), f32(v), q_pos, k_pos, f32(do))


def attention_errors(got, want) -> dict:
  """{'o', 'dq', 'dk', 'dv'} → relative error."""
  return {name: relative_error(g, w) for name, g, w in zip(('o', 'dq', 'dk', 'dv'), got, want)}
