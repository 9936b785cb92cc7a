"""Mosaic GPU (`plgpu`, Hopper) kernels of `rope_attention`: forward, dq, dk/dv.

`rope_attention.py` (the entry point) calls `forward` and `backward`. The tile sizes, the rotation
(`rotate`) and the online-softmax algebra come from `rope_tiling.py`, shared with the generic twin; this
file adds the Hopper machinery. Each CTA runs `compute_wgs` compute warpgroups (one tile of 64-multiple
rows each) and one producer warpgroup that streams the other side's tiles (k, its RoPE table rows and v
in the forward and dq kernels; q, its table rows, do, lse and delta in the dk/dv kernel) through a
`num_stages`-deep TMA ring with full/consumed barriers. A compute warpgroup:

  * loads its own tile and its table rows once, rotates them in registers (float32, 64 rows at a time)
    and writes the rotated tile back to SMEM in place (a wgmma operand from then on);
  * per streamed tile: loads it into registers, rotates it, writes it to a private SMEM buffer (wgmma's B
    operand must live in SMEM), releases the raw slot to the producer, then runs the wgmmas of flash
    attention (scores, online softmax, p @ v; or p, dp, ds and the dq / dk, dv products);
  * epilogue: dq/dk accumulators are scaled and rotated back (angle -> -angle) in registers, TMA'd out.
The RoPE tables (`rope_tiling.rope_tables`, float32 [cos_y|cos_x|sin_y|sin_x] per token) come in by TMA
with their tile: no sin/cos in the kernels (the MUFU unit is the bottleneck of attention at D = 64 already).

Tested on CPU by the Mosaic GPU interpreter (`plgpu.InterpretGPUParams`: SMEM, TMA, barriers and threads
simulated), and lowered for sm_90 by `jax.export(platforms=['cuda'])` (layout inference, dialect lowering,
SMEM budget). To stay inside the interpreter:
  * wgmma products go through `pl.run_scoped(..., plgpu.ACC(...))` (a fresh accumulator per product,
    added to a register accumulator): `pl.run_state(...)(plgpu.ACC.init(acc))` does not interpret;
  * the interpreter takes SMEM wgmma operands only, so under it the register operands (p, ds) are
    staged through SMEM (`_matmul_lhs_regs`); compiled, wgmma reads them from registers. This is the one
    difference between the interpreted and the compiled kernels.
Not checked without a GPU: ptxas, register allocation, speed. Known headroom for the GPU session
(measure first): FA3's ping-pong schedule barrier between the compute warpgroups; accumulating p @ v in
place (run_state, compiled path only); sharing the k-tile rotation between the two compute warpgroups
(each rotates the whole tile now); async wgmma overlapping softmax.
"""
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels.rope_tiling import (LOG2E, BlockSizes, finish, mask_keys, per_col, per_row, rotate,
                                        softmax_step)

_WGMMA = plgpu.Layout.WGMMA
_WGMMA_ROW = plgpu.Layout.WGMMA.reduce(1)
_WGMMA_COL = plgpu.Layout.WGMMA.reduce(0)
DTYPES = (jnp.bfloat16, jnp.float16)


def interpret_params():
  """Mosaic GPU interpret mode: runs the plgpu kernels on CPU, simulating SMEM, TMA and barriers."""
  return plgpu.InterpretGPUParams()


def check_supported(q, blocks: BlockSizes):
  if q.dtype not in DTYPES:
    raise NotImplementedError(
        f"rope_attention(backend='mosaic_gpu') takes bfloat16/float16 inputs, got {q.dtype} (wgmma with "
        "operands from registers is 16-bit). Run the model with dtype='bfloat16', or use attention_impl='xla'.")
  if q.shape[-1] % 32:
    raise ValueError(f'Mosaic GPU: head_dim={q.shape[-1]} must be a multiple of 32 (RoPE quarters are '
                     'register slices of the WGMMA layout, 8 columns wide)')
  for name in ('block_q', 'block_kv', 'block_q_bwd', 'block_kv_bwd'):
    if getattr(blocks, name) % 64:
      raise ValueError(f'Mosaic GPU: {name}={getattr(blocks, name)} must be a multiple of 64 (wgmma rows)')
  if blocks.num_stages < 1 or blocks.compute_wgs < 1:
    raise ValueError(f'Mosaic GPU: bad {blocks}')


def _smem(shape, dtype):
  """A swizzled, tiled SMEM buffer (what TMA and wgmma want) for (..., rows, cols) of dtype."""
  bits = jnp.dtype(dtype).itemsize * 8
  swizzle = plgpu.find_swizzle(shape[-1] * bits)
  transforms = (plgpu.TilingTransform((8, swizzle * 8 // bits)), plgpu.SwizzleTransform(swizzle))
  return plgpu.SMEM(shape, dtype, transforms=transforms)


def _load_rotated(x_ref, cs_ref, *, inverse=False):
  """Rows of x (SMEM) rotated by their table rows (SMEM), float32, WGMMA register layout."""
  x = plgpu.load(x_ref, layout=_WGMMA).astype(jnp.float32)
  return rotate(x, plgpu.load(cs_ref, layout=_WGMMA), inverse=inverse)


def _rotate_into(dst_ref, x_ref, cs_ref, *, chunk=64):
  """dst = RoPE(x) for a (rows, D) SMEM tile, `chunk` rows (one WGMMA row tile) at a time to bound the
  registers live at once. dst may be x (in place). The caller commits SMEM before wgmma reads dst."""
  for r in range(0, x_ref.shape[0], chunk):
    rows = pl.ds(r, chunk)
    dst_ref[rows] = _load_rotated(x_ref.at[rows], cs_ref.at[rows]).astype(dst_ref.dtype)


def _matmul(a, b, shape):
  """a @ b through a fresh wgmma accumulator: a (SMEM ref or 16-bit WGMMA array), b an SMEM ref."""
  def body(acc_ref):
    plgpu.wgmma(acc_ref, a, b)
    return acc_ref[...]
  return pl.run_scoped(body, plgpu.ACC(shape, jnp.float32))


def _matmul_lhs_regs(a, a_smem, b, shape, interpret):
  """a @ b with a 16-bit register array a (probabilities, dS): wgmma reads it from registers on the GPU.
  The interpreter only takes SMEM operands, so there `a` goes through `a_smem` first (the one place
  where the interpreted kernel differs from the compiled one)."""
  if interpret:
    a_smem[...] = a
    plgpu.commit_smem()
    a = a_smem
  return _matmul(a, b, shape)


def _iota(shape, dim):
  return plgpu.broadcasted_iota(jnp.int32, shape, dim, layout=_WGMMA)


def _zeros(shape, layout):
  return plgpu.layout_cast(jnp.zeros(shape, jnp.float32), layout)


def _stream(n_steps, stages, gmem_tiles, consumed):
  """Producer warpgroup: fill the `stages`-deep ring, then refill slot s once `consumed[s]` fires.

  gmem_tiles(step) -> list of (gmem ref slice, smem slots ref, full barriers); consumed: per-buffer list
  of consumed barriers (same order as gmem_tiles), None where the buffer shares an earlier barrier."""

  def issue(step, slot, wait):
    for (src, dst, full), done in zip(gmem_tiles(step), consumed):
      if wait and done is not None:
        plgpu.barrier_wait(done.at[slot])
      plgpu.copy_gmem_to_smem(src, dst.at[slot], full.at[slot])

  for i in range(min(stages, n_steps)):
    issue(i, i, wait=False)

  if n_steps > stages:
    @pl.loop(0, n_steps - stages)
    def _refill(step):
      slot = lax.rem(step, stages)
      issue(step + stages, slot, wait=True)


def _stream_kv(k_gmem, kcs_gmem, v_gmem, bi, hi, bk, n_steps, stages, rings, bars, done):
  """The producer warpgroup of the forward and dq kernels: streams the k, k-table and v tiles of
  (batch bi, head hi) through the shared-memory rings (v's slot reuse waits on v_done, the tables'
  on k_done, which covers both since they are consumed together)."""
  plgpu.set_max_registers(40, action='decrease')
  (k_smems, kcs_smems, v_smems), (k_bars, kcs_bars, v_bars), (k_done, v_done) = rings, bars, done

  def tiles(ki):
    ks = pl.ds(ki * bk, bk)
    return [(k_gmem.at[bi, ks, hi], k_smems, k_bars), (kcs_gmem.at[bi, ks], kcs_smems, kcs_bars),
            (v_gmem.at[bi, ks, hi], v_smems, v_bars)]
  _stream(n_steps, stages, tiles, [k_done, None, v_done])


# ------------------------------------------------------------------------------------------------
# Forward

def forward(q, k, v, qcs, kcs, *, nk: int, blocks: BlockSizes, interpret):
  b, nq, h, d = q.shape
  nkp = k.shape[1]
  dtype = q.dtype
  wgs, bq, bk = blocks.compute_wgs, blocks.block_q, blocks.block_kv
  n_steps = nkp // bk
  stages = min(blocks.num_stages, n_steps)
  c = LOG2E / math.sqrt(d)

  def kernel(q_gmem, qcs_gmem, k_gmem, kcs_gmem, v_gmem, o_gmem, lse_gmem, scoped):
    (q_smems, qcs_smems, krot_smems, lse_smems, p_smems, k_smems, kcs_smems, v_smems,
     q_bars, qcs_bars, k_bars, kcs_bars, v_bars, k_done, v_done) = scoped
    hi, qi, bi = lax.axis_index('heads'), lax.axis_index('q_tiles'), lax.axis_index('batch')
    wg = lax.axis_index('wg')

    @pl.when(wg < wgs)
    def _compute():
      plgpu.set_max_registers(232 if wgs > 1 else 240, action='increase')
      q_base = (qi * wgs + wg) * bq
      qs = pl.ds(q_base, bq)
      q_smem, qcs_smem, krot_smem = q_smems.at[wg], qcs_smems.at[wg], krot_smems.at[wg]
      plgpu.copy_gmem_to_smem(q_gmem.at[bi, qs, hi], q_smem, q_bars.at[wg])
      plgpu.copy_gmem_to_smem(qcs_gmem.at[bi, qs], qcs_smem, qcs_bars.at[wg])
      plgpu.barrier_wait(q_bars.at[wg])
      plgpu.barrier_wait(qcs_bars.at[wg])
      _rotate_into(q_smem, q_smem, qcs_smem)                            # q rotated once, in place
      plgpu.commit_smem()

      def step(ki, carry):
        m, l, acc = carry
        si = lax.rem(ki, stages)
        plgpu.barrier_wait(k_bars.at[si])
        plgpu.barrier_wait(kcs_bars.at[si])
        _rotate_into(krot_smem, k_smems.at[si], kcs_smems.at[si])        # k rotated as it is loaded
        plgpu.barrier_arrive(k_done.at[si])
        plgpu.commit_smem()
        s2 = _matmul(q_smem, krot_smem.T, (bq, bk)) * c
        if nk < nkp:
          s2 = mask_keys(s2, ki * bk, nk, iota=_iota)
        p, m, l, acc = softmax_step(s2, m, l, acc)
        plgpu.barrier_wait(v_bars.at[si])
        acc = acc + _matmul_lhs_regs(p.astype(dtype), None if p_smems is None else p_smems.at[wg], v_smems.at[si], (bq, d), interpret)
        plgpu.barrier_arrive(v_done.at[si])
        return m, l, acc

      init = (plgpu.layout_cast(jnp.full((bq,), -jnp.inf, jnp.float32), _WGMMA_ROW),
              _zeros((bq,), _WGMMA_ROW), _zeros((bq, d), _WGMMA))
      m, l, acc = lax.fori_loop(0, n_steps, step, init)
      o, lse2 = finish(acc, m, l)
      lse_smem = lse_smems.at[wg]
      q_smem[...] = o.astype(dtype)                                     # q_smem now holds o
      lse_smem[...] = lse2
      plgpu.commit_smem()
      plgpu.copy_smem_to_gmem(q_smem, o_gmem.at[bi, qs, hi])
      plgpu.copy_smem_to_gmem(lse_smem, lse_gmem.at[bi, hi, qs])
      plgpu.wait_smem_to_gmem(0)

    @pl.when(wg == wgs)
    def _producer():
      _stream_kv(k_gmem, kcs_gmem, v_gmem, bi, hi, bk, n_steps, stages, (k_smems, kcs_smems, v_smems),
                 (k_bars, kcs_bars, v_bars), (k_done, v_done))

  def entry(*refs):
    pl.run_scoped(
        lambda *scoped: kernel(*refs, scoped),
        _smem((wgs, bq, d), dtype), _smem((wgs, bq, d), jnp.float32), _smem((wgs, bk, d), dtype),
        plgpu.SMEM((wgs, bq), jnp.float32), _smem((wgs, bq, bk), dtype) if interpret else None,
        _smem((stages, bk, d), dtype), _smem((stages, bk, d), jnp.float32), _smem((stages, bk, d), dtype),
        plgpu.Barrier(num_barriers=wgs), plgpu.Barrier(num_barriers=wgs),
        plgpu.Barrier(num_barriers=stages), plgpu.Barrier(num_barriers=stages), plgpu.Barrier(num_barriers=stages),
        plgpu.Barrier(num_arrivals=wgs, num_barriers=stages), plgpu.Barrier(num_arrivals=wgs, num_barriers=stages),
        collective_axes='wg',
    )

  o, lse2 = plgpu.kernel(
      entry,
      out_type=[jax.ShapeDtypeStruct(q.shape, dtype), jax.ShapeDtypeStruct((b, h, nq), jnp.float32)],
      grid=(h, nq // (wgs * bq), b),
      grid_names=('heads', 'q_tiles', 'batch'),
      num_threads=wgs + 1,
      thread_name='wg',
      compiler_params=plgpu.CompilerParams(approx_math=True),
      interpret=interpret,
  )(q, qcs, k, kcs, v)
  return o, lse2


# ------------------------------------------------------------------------------------------------
# Backward: dq (CTA = query tiles, streams k/v) and dk/dv (CTA = key tiles, streams q/do/lse/delta)

def backward(q, k, v, qcs, kcs, do, lse2, delta, *, nk: int, blocks: BlockSizes, interpret):
  dq = _dq(q, k, v, qcs, kcs, do, lse2, delta, nk=nk, blocks=blocks, interpret=interpret)
  dk, dv = _dkv(q, k, v, qcs, kcs, do, lse2, delta, nk=nk, blocks=blocks, interpret=interpret)
  return dq, dk, dv


def _dq(q, k, v, qcs, kcs, do, lse2, delta, *, nk, blocks, interpret):
  b, nq, h, d = q.shape
  nkp = k.shape[1]
  dtype = q.dtype
  wgs, bq, bk = blocks.compute_wgs, blocks.block_q_bwd, blocks.block_kv_bwd
  n_steps = nkp // bk
  stages = min(blocks.num_stages, n_steps)
  c = LOG2E / math.sqrt(d)

  def kernel(q_gmem, qcs_gmem, k_gmem, kcs_gmem, v_gmem, do_gmem, lse_gmem, delta_gmem, dq_gmem, scoped):
    ((q_smems, qcs_smems, do_smems, krot_smems, lse_smems, delta_smems, lhs_smems),
     (k_smems, kcs_smems, v_smems), own_bars, (k_bars, kcs_bars, v_bars), (k_done, v_done)) = scoped
    hi, qi, bi = lax.axis_index('heads'), lax.axis_index('q_tiles'), lax.axis_index('batch')
    wg = lax.axis_index('wg')

    @pl.when(wg < wgs)
    def _compute():
      plgpu.set_max_registers(232 if wgs > 1 else 240, action='increase')
      qs = pl.ds((qi * wgs + wg) * bq, bq)
      q_smem, qcs_smem, do_smem, krot_smem = (r.at[wg] for r in (q_smems, qcs_smems, do_smems, krot_smems))
      lse_smem, delta_smem = lse_smems.at[wg], delta_smems.at[wg]
      lhs_smem = None if lhs_smems is None else lhs_smems.at[wg]
      srcs = [q_gmem.at[bi, qs, hi], qcs_gmem.at[bi, qs], do_gmem.at[bi, qs, hi], lse_gmem.at[bi, hi, qs],
              delta_gmem.at[bi, hi, qs]]
      dsts = [q_smem, qcs_smem, do_smem, lse_smem, delta_smem]
      for j, (src, dst) in enumerate(zip(srcs, dsts)):
        plgpu.copy_gmem_to_smem(src, dst, own_bars.at[j * wgs + wg])
      for j in range(len(srcs)):
        plgpu.barrier_wait(own_bars.at[j * wgs + wg])
      _rotate_into(q_smem, q_smem, qcs_smem)
      plgpu.commit_smem()
      lse = plgpu.load(lse_smem, layout=_WGMMA_ROW)
      dlt = plgpu.load(delta_smem, layout=_WGMMA_ROW)

      def step(ki, dq_acc):
        si = lax.rem(ki, stages)
        plgpu.barrier_wait(k_bars.at[si])
        plgpu.barrier_wait(kcs_bars.at[si])
        _rotate_into(krot_smem, k_smems.at[si], kcs_smems.at[si])
        plgpu.barrier_arrive(k_done.at[si])
        plgpu.commit_smem()
        s2 = _matmul(q_smem, krot_smem.T, (bq, bk)) * c
        if nk < nkp:
          s2 = mask_keys(s2, ki * bk, nk, iota=_iota)
        p = jnp.exp2(s2 - per_row(lse, s2.shape))
        plgpu.barrier_wait(v_bars.at[si])
        dp = _matmul(do_smem, v_smems.at[si].T, (bq, bk))
        plgpu.barrier_arrive(v_done.at[si])
        ds = p * (dp - per_row(dlt, dp.shape))
        return dq_acc + _matmul_lhs_regs(ds.astype(dtype), lhs_smem, krot_smem, (bq, d), interpret)

      dq_acc = lax.fori_loop(0, n_steps, step, _zeros((bq, d), _WGMMA))
      dq = rotate(dq_acc * (1.0 / math.sqrt(d)), plgpu.load(qcs_smem, layout=_WGMMA), inverse=True)
      q_smem[...] = dq.astype(dtype)                                    # epilogue: rotate back, store
      plgpu.commit_smem()
      plgpu.copy_smem_to_gmem(q_smem, dq_gmem.at[bi, qs, hi])
      plgpu.wait_smem_to_gmem(0)

    @pl.when(wg == wgs)
    def _producer():
      _stream_kv(k_gmem, kcs_gmem, v_gmem, bi, hi, bk, n_steps, stages, (k_smems, kcs_smems, v_smems),
                 (k_bars, kcs_bars, v_bars), (k_done, v_done))

  def entry(*refs):
    own = (_smem((wgs, bq, d), dtype), _smem((wgs, bq, d), jnp.float32), _smem((wgs, bq, d), dtype),
           _smem((wgs, bk, d), dtype), plgpu.SMEM((wgs, bq), jnp.float32), plgpu.SMEM((wgs, bq), jnp.float32),
           _smem((wgs, bq, bk), dtype) if interpret else None)
    ring = (_smem((stages, bk, d), dtype), _smem((stages, bk, d), jnp.float32), _smem((stages, bk, d), dtype))
    pl.run_scoped(
        lambda *scoped: kernel(*refs, scoped),
        own, ring, plgpu.Barrier(num_barriers=5 * wgs),
        tuple(plgpu.Barrier(num_barriers=stages) for _ in range(3)),
        tuple(plgpu.Barrier(num_arrivals=wgs, num_barriers=stages) for _ in range(2)),
        collective_axes='wg',
    )

  return plgpu.kernel(
      entry,
      out_type=jax.ShapeDtypeStruct(q.shape, dtype),
      grid=(h, nq // (wgs * bq), b),
      grid_names=('heads', 'q_tiles', 'batch'),
      num_threads=wgs + 1,
      thread_name='wg',
      compiler_params=plgpu.CompilerParams(approx_math=True),
      interpret=interpret,
  )(q, qcs, k, kcs, v, do, lse2, delta)


def _dkv(q, k, v, qcs, kcs, do, lse2, delta, *, nk, blocks, interpret):
  b, nq, h, d = q.shape
  nkp = k.shape[1]
  dtype = k.dtype
  wgs, bq, bk = blocks.compute_wgs, blocks.block_q_bwd, blocks.block_kv_bwd
  n_steps = nq // bq
  stages = min(blocks.num_stages, n_steps)
  c = LOG2E / math.sqrt(d)

  def kernel(q_gmem, qcs_gmem, k_gmem, kcs_gmem, v_gmem, do_gmem, lse_gmem, delta_gmem, dk_gmem, dv_gmem,
             scoped):
    ((k_smems, kcs_smems, v_smems, qrot_smems, lhs_smems),
     (q_smems, qcs_smems, do_smems, lse_smems, delta_smems), own_bars, full_bars, (q_done, do_done)) = scoped
    q_bars, qcs_bars, do_bars, lse_bars, delta_bars = full_bars
    hi, ti, bi = lax.axis_index('heads'), lax.axis_index('k_tiles'), lax.axis_index('batch')
    wg = lax.axis_index('wg')

    @pl.when(wg < wgs)
    def _compute():
      plgpu.set_max_registers(232 if wgs > 1 else 240, action='increase')
      k_base = (ti * wgs + wg) * bk
      ks = pl.ds(k_base, bk)
      k_smem, kcs_smem, v_smem, qrot_smem = (r.at[wg] for r in (k_smems, kcs_smems, v_smems, qrot_smems))
      lhs_smem = None if lhs_smems is None else lhs_smems.at[wg]
      srcs = [k_gmem.at[bi, ks, hi], kcs_gmem.at[bi, ks], v_gmem.at[bi, ks, hi]]
      for j, (src, dst) in enumerate(zip(srcs, [k_smem, kcs_smem, v_smem])):
        plgpu.copy_gmem_to_smem(src, dst, own_bars.at[j * wgs + wg])
      for j in range(len(srcs)):
        plgpu.barrier_wait(own_bars.at[j * wgs + wg])
      _rotate_into(k_smem, k_smem, kcs_smem)                            # k rotated once, in place
      plgpu.commit_smem()

      def step(qi, carry):
        dk_acc, dv_acc = carry
        si = lax.rem(qi, stages)
        plgpu.barrier_wait(q_bars.at[si])
        plgpu.barrier_wait(qcs_bars.at[si])
        _rotate_into(qrot_smem, q_smems.at[si], qcs_smems.at[si])        # q rotated as it is loaded
        plgpu.barrier_arrive(q_done.at[si])
        plgpu.commit_smem()
        s2t = _matmul(k_smem, qrot_smem.T, (bk, bq)) * c                 # (keys, queries)
        plgpu.barrier_wait(lse_bars.at[si])
        pt = jnp.exp2(s2t - per_col(plgpu.load(lse_smems.at[si], layout=_WGMMA_COL), s2t.shape))
        if nk < nkp:
          pt = jnp.where(k_base + _iota(pt.shape, 0) < nk, pt, 0.0)
        plgpu.barrier_wait(do_bars.at[si])
        plgpu.barrier_wait(delta_bars.at[si])
        dlt = plgpu.load(delta_smems.at[si], layout=_WGMMA_COL)
        dv_acc = dv_acc + _matmul_lhs_regs(pt.astype(dtype), lhs_smem, do_smems.at[si], (bk, d), interpret)
        dpt = _matmul(v_smem, do_smems.at[si].T, (bk, bq))
        plgpu.barrier_arrive(do_done.at[si])                             # do, lse, delta slots free
        dst = pt * (dpt - per_col(dlt, dpt.shape))
        dk_acc = dk_acc + _matmul_lhs_regs(dst.astype(dtype), lhs_smem, qrot_smem, (bk, d), interpret)
        return dk_acc, dv_acc

      zeros = _zeros((bk, d), _WGMMA)
      dk_acc, dv_acc = lax.fori_loop(0, n_steps, step, (zeros, zeros))
      dk = rotate(dk_acc * (1.0 / math.sqrt(d)), plgpu.load(kcs_smem, layout=_WGMMA), inverse=True)
      k_smem[...] = dk.astype(dtype)                                    # epilogue: rotate back, store
      v_smem[...] = dv_acc.astype(dtype)
      plgpu.commit_smem()
      plgpu.copy_smem_to_gmem(k_smem, dk_gmem.at[bi, ks, hi])
      plgpu.copy_smem_to_gmem(v_smem, dv_gmem.at[bi, ks, hi])
      plgpu.wait_smem_to_gmem(0)

    @pl.when(wg == wgs)
    def _producer():
      plgpu.set_max_registers(40, action='decrease')

      def tiles(qi):
        qs = pl.ds(qi * bq, bq)
        return [(q_gmem.at[bi, qs, hi], q_smems, q_bars), (qcs_gmem.at[bi, qs], qcs_smems, qcs_bars),
                (do_gmem.at[bi, qs, hi], do_smems, do_bars), (lse_gmem.at[bi, hi, qs], lse_smems, lse_bars),
                (delta_gmem.at[bi, hi, qs], delta_smems, delta_bars)]
      _stream(n_steps, stages, tiles, [q_done, None, do_done, None, None])

  def entry(*refs):
    own = (_smem((wgs, bk, d), dtype), _smem((wgs, bk, d), jnp.float32), _smem((wgs, bk, d), dtype),
           _smem((wgs, bq, d), dtype), _smem((wgs, bk, bq), dtype) if interpret else None)
    ring = (_smem((stages, bq, d), dtype), _smem((stages, bq, d), jnp.float32), _smem((stages, bq, d), dtype),
            plgpu.SMEM((stages, bq), jnp.float32), plgpu.SMEM((stages, bq), jnp.float32))
    pl.run_scoped(
        lambda *scoped: kernel(*refs, scoped),
        own, ring, plgpu.Barrier(num_barriers=3 * wgs),
        tuple(plgpu.Barrier(num_barriers=stages) for _ in range(5)),
        tuple(plgpu.Barrier(num_arrivals=wgs, num_barriers=stages) for _ in range(2)),
        collective_axes='wg',
    )

  return plgpu.kernel(
      entry,
      out_type=[jax.ShapeDtypeStruct(k.shape, dtype), jax.ShapeDtypeStruct(v.shape, dtype)],
      grid=(h, nkp // (wgs * bk), b),
      grid_names=('heads', 'k_tiles', 'batch'),
      num_threads=wgs + 1,
      thread_name='wg',
      compiler_params=plgpu.CompilerParams(approx_math=True),
      interpret=interpret,
  )(q, qcs, k, kcs, v, do, lse2, delta)
