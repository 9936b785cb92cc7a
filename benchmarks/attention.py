"""RoPE2D + attention at DUSt3R's shapes: the fused Pallas kernel against XLA, cuDNN and tokamax.

  python -m benchmarks.attention                          # GPU: DUSt3R shapes, all variants
  python -m benchmarks.attention --block_kv=64 --num_stages=3 --variants=pallas   # tune the kernel's tiles
  python -m benchmarks.attention --iters=2                # CPU: small shapes, the generic twin in interpret
                                                          # mode + XLA; GPU-only variants print a skip line

Cases (flags --self_shape / --cross_shape, B,Nq,Nk,H,D): self attention of the ViT-L encoder at 512x512
(8 pairs -> 16 images, 16 heads, N = 1024, D = 64) and decoder cross attention (16 images, 12 heads,
768 query tokens of one view against 1024 keys of the other, D = 64). On a CPU the shapes shrink to
(2, 256, 256, 2, 64) and (2, 192, 256, 2, 64).

Variants (all take q, k, v (B, N, H, D), positions (B, N, 2) and include the rotation):
  pallas    pallas_kernels.rope_attention.rope_attention (Mosaic GPU kernels; generic twin in interpret
            mode on a CPU)
  xla       XLA RoPE + einsum/softmax attention (rope_attention_reference, the model's 'xla' path)
  cudnn     XLA RoPE + jax.nn.dot_product_attention(implementation='cudnn')      (GPU only)
  tokamax   XLA RoPE + tokamax.dot_product_attention(implementation='mosaic')    (GPU + tokamax installed;
            its backward is whatever tokamax pairs with it)

One JSON line per (case, variant, pass): {"bench": "rope_attention", "case", "variant", "pass": "fwd" |
"fwd_bwd", "B", "Nq", "Nk", "H", "D", "dtype", "ms", "tflops" (attention matmul FLOPs only: 4 B H Nq Nk D
forward, 2.5x that backward), "vs_cudnn", "vs_xla" (time of that variant / time of this one: > 1 means
faster), "frac_of_bf16_peak" + "peak_source" on a GPU (of the measured rate when given), and for
fwd_bwd the memory of the jitted forward+backward from XLA's buffer assignment: "temp_mib" (residuals
and intermediates: the attention matrix of 'xla', the rotated q/k of the XLA-RoPE variants; the kernels'
SMEM is on chip) and "total_mib" (temp + arguments + outputs)}. The pallas variant also gets one
{"bench": "rope_attention_check", "check": ...} line: max |pallas - xla| / max |xla| of o, dq, dk, dv at
the benchmark shape. A skipped variant, or a case that the time budget leaves out, gets {"skipped": reason}.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.common import bf16_peak_tflops, print_row
from pallas_kernels.rope_attention import rope_2d, rope_attention, rope_attention_reference
from pallas_kernels.rope_tiling import BlockSizes, default_block_sizes

BLOCK_FIELDS = ('block_q', 'block_kv', 'block_q_bwd', 'block_kv_bwd', 'compute_wgs', 'num_stages')
SHAPES = {'gpu': {'self': (16, 1024, 1024, 16, 64), 'cross': (16, 768, 1024, 12, 64)},
          'cpu': {'self': (2, 256, 256, 2, 64), 'cross': (2, 192, 256, 2, 64)}}


def _variants(on_gpu, base, overrides):
  """name -> (function of (q, k, v, q_pos, k_pos), or a reason it is skipped)."""
  blocks = None
  if overrides:
    start = default_block_sizes(backend='mosaic_gpu' if on_gpu else 'generic')
    blocks = BlockSizes(**{**start.__dict__, **overrides})
  out = {
      'pallas': lambda q, k, v, qp, kp: rope_attention(q, k, v, qp, kp, base=base, block_sizes=blocks),
      'xla': lambda q, k, v, qp, kp: rope_attention_reference(q, k, v, qp, kp, base=base),
  }
  if on_gpu:
    out['cudnn'] = lambda q, k, v, qp, kp: jax.nn.dot_product_attention(
        rope_2d(q, qp, base), rope_2d(k, kp, base), v, implementation='cudnn')
  else:
    out['cudnn'] = 'needs a GPU (cuDNN)'
  try:
    import tokamax  # noqa: PLC0415
  except ImportError:
    out['tokamax'] = 'tokamax is not installed (the GPU suite carries it: benchmarks/gpu_wheels.txt)'
  else:
    if on_gpu:
      out['tokamax'] = lambda q, k, v, qp, kp: tokamax.dot_product_attention(
          rope_2d(q, qp, base), rope_2d(k, kp, base), v, implementation='mosaic')
    else:
      out['tokamax'] = 'needs a GPU (Mosaic GPU)'
  return out


def _inputs(b, nq, nk, h, d, dtype):
  keys = jax.random.split(jax.random.key(0), 4)
  q = jax.random.normal(keys[0], (b, nq, h, d), dtype)
  k = jax.random.normal(keys[1], (b, nk, h, d), dtype)
  v = jax.random.normal(keys[2], (b, nk, h, d), dtype)
  do = jax.random.normal(keys[3], (b, nq, h, d), dtype)
  grid = lambda n: np.stack(np.divmod(np.arange(n), 32), axis=-1).astype(np.int32)   # rows of 32 patches
  pos = lambda n: jnp.broadcast_to(grid(n), (b, n, 2))
  return q, k, v, pos(nq), pos(nk), do


def _timed(fn, args, iters):
  for _ in range(2):  # warm-up (the second call can still be slow: caches, autotuning)
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def _fwd_bwd(fn):
  def run(q, k, v, qp, kp, do):
    o, vjp = jax.vjp(lambda q, k, v: fn(q, k, v, qp, kp), q, k, v)
    return (o, *vjp(do))
  return jax.jit(run)


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def run(*, variants=('pallas', 'xla', 'cudnn', 'tokamax'), cases=('self', 'cross'), shapes=None,
        dtype='bfloat16', iters=None, base=100.0, block_overrides=None, peak_tflops=None, budget=None,
        emit=print_row):
  """Times every (case, variant); see the module docstring for the lines it emits.

  shapes: {case: (B, Nq, Nk, H, D)} (default: SHAPES for this backend); block_overrides: BlockSizes
  fields for the Pallas kernel; budget: a benchmarks.common.Budget (a case that would overrun it is
  skipped, estimated from the previous case)."""
  on_gpu = jax.default_backend() == 'gpu'
  iters = iters or (20 if on_gpu else 2)
  dtype = jnp.dtype(dtype)
  fns = _variants(on_gpu, base, block_overrides or {})
  device = jax.devices()[0].device_kind
  peak, peak_source = bf16_peak_tflops(peak_tflops)
  last_case_s = 0.0
  for case in cases:
    b, nq, nk, h, d = (shapes or {}).get(case) or SHAPES['gpu' if on_gpu else 'cpu'][case]
    head = dict(bench='rope_attention', case=case, B=b, Nq=nq, Nk=nk, H=h, D=d, dtype=dtype.name, device=device)
    if budget and not budget.allows(1.2 * last_case_s):
      emit(dict(head, skipped=f'time budget ({budget.left():.0f} s left, the last case took {last_case_s:.0f} s)'))
      continue
    case_start = time.perf_counter()
    q, k, v, qp, kp, do = _inputs(b, nq, nk, h, d, dtype)
    fwd_flops = 4 * b * h * nq * nk * d
    rows, results = [], {}
    for name in variants:
      fn = fns[name]
      if isinstance(fn, str):
        emit({**head, 'variant': name, 'skipped': fn})
        continue
      try:
        fwd = jax.jit(fn).lower(q, k, v, qp, kp).compile()
        both = _fwd_bwd(fn).lower(q, k, v, qp, kp, do).compile()
        t_fwd = _timed(fwd, (q, k, v, qp, kp), iters)
        t_both = _timed(both, (q, k, v, qp, kp, do), iters)
      except Exception as e:  # a variant that does not run here: say so, keep the others
        emit({**head, 'variant': name, 'skipped': f'{type(e).__name__}: {str(e)[:300]}'})
        continue
      mem = both.memory_analysis()
      mib = lambda *names: None if mem is None else round(sum(getattr(mem, n) for n in names) / 2**20, 1)
      results[name] = {'fwd': t_fwd, 'fwd_bwd': t_both}
      for pass_, seconds, flops in (('fwd', t_fwd, fwd_flops), ('fwd_bwd', t_both, 3.5 * fwd_flops)):
        row = dict(head, variant=name, **{'pass': pass_}, ms=round(seconds * 1e3, 3),
                   tflops=round(flops / seconds / 1e12, 2))
        if peak:
          row.update(frac_of_bf16_peak=round(row['tflops'] / peak, 4), peak_source=peak_source)
        if pass_ == 'fwd_bwd':
          row.update(temp_mib=mib('temp_size_in_bytes'),
                     total_mib=mib('temp_size_in_bytes', 'argument_size_in_bytes', 'output_size_in_bytes'))
        rows.append(row)
      if name == 'pallas' and 'xla' in fns:
        got = both(q, k, v, qp, kp, do)
        f32 = lambda x: x.astype(jnp.float32)
        with jax.default_matmul_precision('highest'):
          want = _fwd_bwd(fns['xla'])(f32(q), f32(k), f32(v), qp, kp, f32(do))
        emit({**head, 'bench': 'rope_attention_check', 'check': 'pallas vs xla (float32 inputs), max|d|/max|ref|',
              **{n: round(_rel(g, w), 6) for n, g, w in zip(('o', 'dq', 'dk', 'dv'), got, want)}})
    for row in rows:
      mine = results[row['variant']][row['pass']]
      for ref in ('cudnn', 'xla'):
        if ref in results:
          row[f'vs_{ref}'] = round(results[ref][row['pass']] / mine, 3)
      emit(row)
    last_case_s = time.perf_counter() - case_start


def main(_):
  f = flags.FLAGS
  shapes = {c: tuple(map(int, getattr(f, f'{c}_shape'))) for c in ('self', 'cross') if getattr(f, f'{c}_shape')}
  overrides = {n: getattr(f, n) for n in BLOCK_FIELDS if getattr(f, n) is not None}
  run(variants=f.variants, cases=f.cases, shapes=shapes, dtype=f.dtype, iters=f.iters, base=f.base,
      block_overrides=overrides)


if __name__ == '__main__':
  flags.DEFINE_list('variants', ['pallas', 'xla', 'cudnn', 'tokamax'], 'Variants to time.')
  flags.DEFINE_list('cases', ['self', 'cross'], 'Cases to time.')
  flags.DEFINE_list('self_shape', None, 'B,Nq,Nk,H,D of the self-attention case (default: DUSt3R, or small on CPU).')
  flags.DEFINE_list('cross_shape', None, 'B,Nq,Nk,H,D of the cross-attention case.')
  flags.DEFINE_string('dtype', 'bfloat16', 'Input dtype.')
  flags.DEFINE_integer('iters', None, 'Timed iterations (default 20 on GPU, 2 on CPU).')
  flags.DEFINE_float('base', 100.0, 'RoPE base.')
  for _name in BLOCK_FIELDS:
    flags.DEFINE_integer(_name, None, f'BlockSizes.{_name} of the Pallas kernel (default: default_block_sizes).')
  app.run(main)
