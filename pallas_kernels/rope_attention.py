"""Flash attention with CroCo's 2D RoPE fused into the q/k loads (replaces the CUDA `cuRoPE` op).

    o = softmax(RoPE(q, q_pos) RoPE(k, k_pos)^T / sqrt(D)) v        q (B, Nq, H, D), k/v (B, Nk, H, D)

The RoPE2D math (tables, rotation of a tile), the tile sizes and the online-softmax algebra live in
`rope_tiling.py`; this file holds the entry point `rope_attention` (padding, `jax.custom_vjp`, backend
dispatch), the pure-JAX reference and the generic kernels. Kernels:
  'mosaic_gpu' - `rope_attention_mgpu.py`: `plgpu.kernel`s for Hopper (FA3-style: two compute warpgroups
                 of `block_q` rows and a TMA producer warpgroup, wgmma). The GPU path.
  'generic'    - this file: `pl.pallas_call` twins of the same tiling, grid (B, H, q tiles) for the forward
                 and the dq kernel, (B, H, k tiles) for the dk/dv kernel. Run with `interpret=True` on CPU
                 (the CPU test and model path; any float dtype). Not meant for GPUs: compiled there,
                 pl.pallas_call would go to the deprecated Triton backend (never run here).
Both: the q tile is rotated once per program; each k tile is rotated as it is loaded inside the loop over
k tiles (online softmax, keys >= Nk masked); the forward stores o and the logsumexp only. The backward
recomputes the rotations from q, k and the positions (the rotated q and k are never stored), runs one dq
kernel and one dk/dv kernel, and applies the inverse rotation to the dq/dk accumulators in the epilogue.
Sequence lengths are zero-padded to the tile multiples outside the kernels (a no-op at DUSt3R's 768/1024
tokens); padded keys are masked (forward, dq; their dk/dv rows are dropped), padded query rows get a zero
do and contribute exact zeros to dk/dv.

`rope_attention_reference` (RoPE, then einsum + float32 softmax) is the one pure-JAX reference: the tests
compare against it and the model's 'xla' attention path is this function.
"""
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels.rope_tiling import (LOG2E, BlockSizes, default_block_sizes, finish, mask_keys, per_col,
                                        per_row, rope_tables, rotate, softmax_step)

BACKENDS = ('auto', 'mosaic_gpu', 'generic')


# ------------------------------------------------------------------------------------------------
# RoPE2D in XLA and the pure-JAX reference

def apply_rope(tokens, cs, *, inverse: bool = False):
  """tokens (B, N, H, D), cs (B, N, D) from `rope_tables` → rotated tokens, tokens' dtype (f32 math)."""
  return rotate(tokens.astype(jnp.float32), cs[..., None, :], inverse=inverse).astype(tokens.dtype)


def rope_2d(tokens, positions, base: float = 100.0):
  """RoPE2D of CroCo v2 (`models/pos_embed.py: RoPE2D`). tokens (B, N, H, D); positions (B, N, 2) int (y, x)."""
  return apply_rope(tokens, rope_tables(positions, tokens.shape[-1], base))


def attention_reference(q, k, v):
  """softmax(q k^T / sqrt(D)) v with float32 logits and softmax; q (B, Nq, H, D), k/v (B, Nk, H, D)."""
  scale = q.shape[-1] ** -0.5
  logits = jnp.einsum('bqhd,bkhd->bhqk', q, k, preferred_element_type=jnp.float32) * scale
  weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum('bhqk,bkhd->bqhd', weights, v)


def rope_attention_reference(q, k, v, q_pos, k_pos, *, base: float = 100.0):
  """RoPE2D on q (q_pos) and k (k_pos), then `attention_reference`. The reference of `rope_attention`."""
  return attention_reference(rope_2d(q, q_pos, base), rope_2d(k, k_pos, base), v)


# ------------------------------------------------------------------------------------------------
# Generic Pallas twin (pl.pallas_call; run with interpret=True on CPU)

def _dot(a, b, contract=((1,), (0,))):
  """a @ b (default) with float32 accumulation; contract=((1,), (1,)) gives a @ b^T."""
  return lax.dot_general(a, b, (contract, ((), ())), preferred_element_type=jnp.float32)


_NT = ((1,), (1,))   # a @ b^T


def _generic_fwd_kernel(q_ref, qcs_ref, k_ref, kcs_ref, v_ref, o_ref, lse_ref, *, nk, block_kv):
  # nk: true number of keys; k_ref holds the zero-padded keys (padding may span whole tiles)
  dtype = q_ref.dtype
  d = q_ref.shape[-1]
  c = LOG2E / math.sqrt(d)
  q_rot = rotate(q_ref[...].astype(jnp.float32), qcs_ref[...]).astype(dtype)   # once per program
  rows = q_rot.shape[0]
  n_steps = k_ref.shape[0] // block_kv

  def body(j, carry):
    m, l, acc = carry
    ks = pl.ds(pl.multiple_of(j * block_kv, block_kv), block_kv)
    k_rot = rotate(k_ref[ks, :].astype(jnp.float32), kcs_ref[ks, :]).astype(dtype)   # as it is loaded
    s2 = _dot(q_rot, k_rot, _NT) * c
    if nk < k_ref.shape[0]:
      s2 = mask_keys(s2, j * block_kv, nk)
    p, m, l, acc = softmax_step(s2, m, l, acc)
    acc = acc + _dot(p.astype(v_ref.dtype), v_ref[ks, :])
    return m, l, acc

  init = (jnp.full((rows,), -jnp.inf, jnp.float32), jnp.zeros((rows,), jnp.float32),
          jnp.zeros((rows, d), jnp.float32))
  m, l, acc = lax.fori_loop(0, n_steps, body, init)
  o, lse2 = finish(acc, m, l)
  o_ref[...] = o.astype(o_ref.dtype)
  lse_ref[...] = lse2


def _generic_dq_kernel(q_ref, qcs_ref, k_ref, kcs_ref, v_ref, do_ref, lse_ref, delta_ref, dq_ref, *, nk,
                       block_kv):
  dtype = q_ref.dtype
  d = q_ref.shape[-1]
  c = LOG2E / math.sqrt(d)
  qcs = qcs_ref[...]
  q_rot = rotate(q_ref[...].astype(jnp.float32), qcs).astype(dtype)
  do = do_ref[...]
  lse2, delta = lse_ref[...], delta_ref[...]
  n_steps = k_ref.shape[0] // block_kv

  def body(j, dq_acc):
    ks = pl.ds(pl.multiple_of(j * block_kv, block_kv), block_kv)
    k_rot = rotate(k_ref[ks, :].astype(jnp.float32), kcs_ref[ks, :]).astype(dtype)
    s2 = _dot(q_rot, k_rot, _NT) * c
    if nk < k_ref.shape[0]:
      s2 = mask_keys(s2, j * block_kv, nk)
    p = jnp.exp2(s2 - per_row(lse2, s2.shape))
    dp = _dot(do, v_ref[ks, :], _NT)
    ds = p * (dp - per_row(delta, dp.shape))
    return dq_acc + _dot(ds.astype(dtype), k_rot)

  dq_acc = lax.fori_loop(0, n_steps, body, jnp.zeros(q_rot.shape, jnp.float32))
  dq_ref[...] = rotate(dq_acc / math.sqrt(d), qcs, inverse=True).astype(dq_ref.dtype)   # epilogue


def _generic_dkv_kernel(q_ref, qcs_ref, k_ref, kcs_ref, v_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref, *,
                        nk, nkp, block_q):
  dtype = k_ref.dtype
  d = k_ref.shape[-1]
  c = LOG2E / math.sqrt(d)
  kcs = kcs_ref[...]
  k_rot = rotate(k_ref[...].astype(jnp.float32), kcs).astype(dtype)   # once per program
  v = v_ref[...]
  rows = k_rot.shape[0]
  k_start = pl.program_id(2) * rows
  n_steps = q_ref.shape[0] // block_q

  def body(i, carry):
    dk_acc, dv_acc = carry
    qs = pl.ds(pl.multiple_of(i * block_q, block_q), block_q)
    q_rot = rotate(q_ref[qs, :].astype(jnp.float32), qcs_ref[qs, :]).astype(dtype)   # as it is loaded
    do = do_ref[qs, :]
    s2t = _dot(k_rot, q_rot, _NT) * c                                    # (keys, queries)
    pt = jnp.exp2(s2t - per_col(lse_ref[qs], s2t.shape))
    if nk < nkp:
      pt = jnp.where(k_start + lax.broadcasted_iota(jnp.int32, pt.shape, 0) < nk, pt, 0.0)
    dv_acc = dv_acc + _dot(pt.astype(dtype), do)
    dpt = _dot(v, do, _NT)
    dst = pt * (dpt - per_col(delta_ref[qs], dpt.shape))
    dk_acc = dk_acc + _dot(dst.astype(dtype), q_rot)
    return dk_acc, dv_acc

  zeros = jnp.zeros(k_rot.shape, jnp.float32)
  dk_acc, dv_acc = lax.fori_loop(0, n_steps, body, (zeros, zeros))
  dk_ref[...] = rotate(dk_acc / math.sqrt(d), kcs, inverse=True).astype(dk_ref.dtype)   # epilogue
  dv_ref[...] = dv_acc.astype(dv_ref.dtype)


def _generic_forward(q, k, v, qcs, kcs, *, nk: int, blocks: BlockSizes, interpret):
  b, nq, h, d = q.shape
  nkp = k.shape[1]
  bq = blocks.block_q
  tok = lambda n, imap: pl.BlockSpec((None, n, None, d), imap)
  tab = lambda n, imap: pl.BlockSpec((None, n, d), imap)
  o, lse2 = pl.pallas_call(
      functools.partial(_generic_fwd_kernel, nk=nk, block_kv=blocks.block_kv),
      grid=(b, h, nq // bq),
      in_specs=[tok(bq, lambda bi, hi, i: (bi, i, hi, 0)), tab(bq, lambda bi, hi, i: (bi, i, 0)),
                tok(nkp, lambda bi, hi, i: (bi, 0, hi, 0)), tab(nkp, lambda bi, hi, i: (bi, 0, 0)),
                tok(nkp, lambda bi, hi, i: (bi, 0, hi, 0))],
      out_specs=[tok(bq, lambda bi, hi, i: (bi, i, hi, 0)),
                 pl.BlockSpec((None, None, bq), lambda bi, hi, i: (bi, hi, i))],
      out_shape=[jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, h, nq), jnp.float32)],
      interpret=interpret,
      name='rope_attention_fwd',
  )(q, qcs, k, kcs, v)
  return o, lse2


def _generic_backward(q, k, v, qcs, kcs, do, lse2, delta, *, nk: int, blocks: BlockSizes, interpret):
  b, nq, h, d = q.shape
  nkp = k.shape[1]
  bq, bk = blocks.block_q_bwd, blocks.block_kv_bwd
  tok = lambda n, imap: pl.BlockSpec((None, n, None, d), imap)
  tab = lambda n, imap: pl.BlockSpec((None, n, d), imap)
  row = lambda n, imap: pl.BlockSpec((None, None, n), imap)
  tile, full = (lambda bi, hi, i: (bi, i, hi, 0)), (lambda bi, hi, i: (bi, 0, hi, 0))
  tile_t, full_t = (lambda bi, hi, i: (bi, i, 0)), (lambda bi, hi, i: (bi, 0, 0))
  tile_r, full_r = (lambda bi, hi, i: (bi, hi, i)), (lambda bi, hi, i: (bi, hi, 0))
  dq = pl.pallas_call(
      functools.partial(_generic_dq_kernel, nk=nk, block_kv=bk),
      grid=(b, h, nq // bq),
      in_specs=[tok(bq, tile), tab(bq, tile_t), tok(nkp, full), tab(nkp, full_t), tok(nkp, full),
                tok(bq, tile), row(bq, tile_r), row(bq, tile_r)],
      out_specs=tok(bq, tile),
      out_shape=jax.ShapeDtypeStruct(q.shape, q.dtype),
      interpret=interpret,
      name='rope_attention_dq',
  )(q, qcs, k, kcs, v, do, lse2, delta)
  dk, dv = pl.pallas_call(
      functools.partial(_generic_dkv_kernel, nk=nk, nkp=nkp, block_q=bq),
      grid=(b, h, nkp // bk),
      in_specs=[tok(nq, full), tab(nq, full_t), tok(bk, tile), tab(bk, tile_t), tok(bk, tile),
                tok(nq, full), row(nq, full_r), row(nq, full_r)],
      out_specs=[tok(bk, tile), tok(bk, tile)],
      out_shape=[jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)],
      interpret=interpret,
      name='rope_attention_dkv',
  )(q, qcs, k, kcs, v, do, lse2, delta)
  return dq, dk, dv


# ------------------------------------------------------------------------------------------------
# custom_vjp over padded inputs, and the entry point

def _pad_to(x, axis: int, multiple: int):
  n = x.shape[axis]
  pad = -n % multiple
  if not pad:
    return x
  widths = [(0, 0)] * x.ndim
  widths[axis] = (0, pad)
  return jnp.pad(x, widths)


@dataclasses.dataclass(frozen=True)
class _Static:
  base: float
  nk: int                  # true number of keys (k is zero-padded beyond it)
  blocks: BlockSizes
  backend: str             # 'mosaic_gpu' | 'generic'
  interpret: object        # False, True (generic) or plgpu.InterpretGPUParams (mosaic_gpu)


def _kernels(st: _Static):
  if st.backend == 'generic':
    return _generic_forward, _generic_backward
  from pallas_kernels import rope_attention_mgpu   # imports Mosaic GPU only when used
  return rope_attention_mgpu.forward, rope_attention_mgpu.backward


def _forward(q, k, v, q_pos, k_pos, st: _Static):
  d = q.shape[-1]
  qcs, kcs = rope_tables(q_pos, d, st.base), rope_tables(k_pos, d, st.base)
  forward, _ = _kernels(st)
  return forward(q, k, v, qcs, kcs, nk=st.nk, blocks=st.blocks, interpret=st.interpret)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _rope_attention_padded(q, k, v, q_pos, k_pos, st: _Static):
  return _forward(q, k, v, q_pos, k_pos, st)[0]


def _rope_attention_fwd(q, k, v, q_pos, k_pos, st: _Static):
  o, lse2 = _forward(q, k, v, q_pos, k_pos, st)
  # What flash attention keeps: the inputs, o and the logsumexp; not the rotated q, k, not the tables.
  return o, (q, k, v, q_pos, k_pos, o, lse2)


def _rope_attention_bwd(st: _Static, res, do):
  q, k, v, q_pos, k_pos, o, lse2 = res
  d = q.shape[-1]
  qcs, kcs = rope_tables(q_pos, d, st.base), rope_tables(k_pos, d, st.base)
  delta = jnp.einsum('bqhd,bqhd->bhq', o.astype(jnp.float32), do.astype(jnp.float32),
                     precision=lax.Precision.HIGHEST)
  _, backward = _kernels(st)
  dq, dk, dv = backward(q, k, v, qcs, kcs, do, lse2, delta, nk=st.nk, blocks=st.blocks, interpret=st.interpret)
  return dq, dk, dv, None, None


_rope_attention_padded.defvjp(_rope_attention_fwd, _rope_attention_bwd)


def _check_inputs(q, k, v, q_pos, k_pos):
  if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
    raise ValueError(f'q, k, v must be (B, N, H, D); got {q.shape}, {k.shape}, {v.shape}')
  b, _, h, d = q.shape
  if k.shape != v.shape or k.shape[0] != b or k.shape[2:] != (h, d):
    raise ValueError(f'k and v must be (B, Nk, H, D) with q\'s B, H, D; got q {q.shape}, k {k.shape}, v {v.shape}')
  if not (q.dtype == k.dtype == v.dtype):
    raise ValueError(f'q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}')
  if q_pos.shape != (b, q.shape[1], 2) or k_pos.shape != (b, k.shape[1], 2):
    raise ValueError(f'positions must be (B, N, 2): q_pos {q_pos.shape} for q {q.shape}, '
                     f'k_pos {k_pos.shape} for k {k.shape}')
  if not jnp.issubdtype(q_pos.dtype, jnp.integer) or not jnp.issubdtype(k_pos.dtype, jnp.integer):
    raise ValueError(f'positions must be integers; got {q_pos.dtype}, {k_pos.dtype}')
  if d % 4:
    raise ValueError(f'head_dim={d} must be a multiple of 4 (2D RoPE rotates quarters of the head vector)')


def rope_attention(q, k, v, q_pos, k_pos, *, base: float = 100.0, interpret: bool | None = None,
                   backend: str = 'auto', block_sizes: BlockSizes | None = None):
  """softmax(RoPE(q, q_pos) RoPE(k, k_pos)^T / sqrt(D)) v with the rotation fused into the kernels.

  Args:
    q: (B, Nq, H, D); k, v: (B, Nk, H, D); float32, bfloat16 or float16 (float32 accumulation); D a
      multiple of 4. The Mosaic GPU kernels need bfloat16/float16 and D a multiple of 32.
    q_pos, k_pos: (B, Nq, 2) and (B, Nk, 2) integer token positions (y, x). Self-attention passes the same
      grid twice; cross-attention the query view's and the other view's.
    base: RoPE frequency base (100 in all CroCo/DUSt3R checkpoints).
    interpret: run the kernels on CPU (Pallas interpret mode). None: when JAX's default backend is the CPU.
    backend: 'mosaic_gpu' (plgpu kernels, Hopper; with interpret=True they run in the Mosaic GPU
      interpreter), 'generic' (pl.pallas_call twins, for interpret mode) or 'auto': 'generic' when
      interpreting, else 'mosaic_gpu'.
    block_sizes: tile sizes; None: `default_block_sizes` for this device.
  Returns:
    (B, Nq, H, D) in q's dtype. Differentiable in q, k, v (Pallas backward kernels, `jax.custom_vjp`).
  """
  _check_inputs(q, k, v, q_pos, k_pos)
  if backend not in BACKENDS:
    raise ValueError(f'backend={backend!r}; choose from {BACKENDS}')
  if interpret is None:
    interpret = jax.default_backend() == 'cpu'
  if backend == 'auto':
    backend = 'generic' if interpret else 'mosaic_gpu'
  if block_sizes is None:
    block_sizes = default_block_sizes(head_dim=q.shape[-1], backend=backend)
  if backend == 'mosaic_gpu':
    from pallas_kernels import rope_attention_mgpu
    rope_attention_mgpu.check_supported(q, block_sizes)
    interpret = rope_attention_mgpu.interpret_params() if interpret else False
  else:
    interpret = bool(interpret)
  nq, nk = q.shape[1], k.shape[1]
  qm, km = block_sizes.q_multiple(backend), block_sizes.k_multiple(backend)
  q, q_pos = _pad_to(q, 1, qm), _pad_to(q_pos, 1, qm)
  k, v, k_pos = _pad_to(k, 1, km), _pad_to(v, 1, km), _pad_to(k_pos, 1, km)
  st = _Static(base=float(base), nk=nk, blocks=block_sizes, backend=backend, interpret=interpret)
  o = _rope_attention_padded(q, k, v, q_pos.astype(jnp.int32), k_pos.astype(jnp.int32), st)
  return o[:, :nq]
