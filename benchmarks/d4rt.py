"""D4RT inference speed (dynadust3r_jax/inference/d4rt.py): the encoder's forward per clip, then the query decoding
throughput with the per-clip cached K/V of F against recomputing the K/V for every chunk (the baseline, the
same run, the same queries).

  python -m benchmarks.d4rt                    # on a GPU: 'g' at 48 x 256^2, bf16 + cuDNN ('L' if g runs out)
  python -m benchmarks.d4rt --size=tiny        # the default on a CPU: the tiny model, 16 x 64^2, float32

Input: a random clip (T = cfg.num_frames, cfg.img_size^2), random weights, `queries` random queries (u, v
uniform, times uniform in 0..T-1), decoded in chunks of `chunk` (the last padded). Each measurement runs once
untimed (its compile, compile_s), then `iters` timed calls, each synchronised. Lines:
  {"bench": "d4rt_encode", "size", "frames", "img_size", "tokens", "device", "dtype", "attention", "compile_s",
   "ms_per_clip"}                                       encoder + every decoder layer's K/V of F, one clip
  {"bench": "d4rt_decode", "size", "kv": "recomputed" | "cached", "queries", "chunk", "device", "dtype",
   "compile_s", "ms_per_chunk", "queries_per_s", "speedup_vs_recompute", "flops_per_query", "tflops",
   "paper_queries_per_s", "vs_paper", "max_abs_diff_vs_recompute"}
flops_per_query: the decoder's matmul FLOPs per query (2 x (q and out projections 2d^2, MLP 2 d m, attention
2 N d)), plus, recomputed, the K/V projections 4 N C d per layer per chunk shared by its queries.

The paper's anchor (Tab. 3, one A100): 40,180 full-video 3D tracks at a target of 1 FPS. A track is T queries
(t_tgt = t_cam = 1..T); keeping f frames/s gives a clip of T frames T/f seconds, so N tracks at f FPS are N T
queries in T/f s: N f queries/s, whatever T. paper_queries_per_s = 40,180 x 1 = 40,180 (the table's other
columns agree: 550 x 60 = 33,000, 1,570 x 24 = 37,680, 3,890 x 10 = 38,900; the encoder's share falls as f
falls). Reading it instead as 40,180 tracks of 48 queries in one second (1,928,640 queries/s,
paper_queries_per_s_48_per_s) would need ~0.94 PFLOP/s of decoder matmuls for 'g' (487 MFLOP per query), three
times the A100's 312 TFLOP/s bf16 peak; we print it for reference only. Batch size, precision and timing
boundaries are not given by the paper (spec §10).
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks.common import print_row, time_calls
from dynadust3r_jax.inference import d4rt
from dynadust3r_jax.model.d4rt import build_d4rt, d4rt_config
from dynadust3r_jax.pretrained import runtime_defaults

PAPER_TRACKS_AT_1_FPS = 40_180
PAPER_QUERIES_PER_S = PAPER_TRACKS_AT_1_FPS * 1        # N tracks x f FPS (see the docstring)
PAPER_QUERIES_PER_S_48_PER_S = PAPER_TRACKS_AT_1_FPS * 48

flags.DEFINE_string('size', None, "D4RT size ('g', 'H', 'L', 'B', 'tiny'); default: 'g' on a GPU, 'tiny' else.")
flags.DEFINE_integer('queries', None, 'Queries per measurement (default: 131072 on a GPU, 4096 else).')
flags.DEFINE_integer('chunk', None, 'Queries per decoder call (default: 8192 on a GPU, 512 else).')
flags.DEFINE_integer('iters', 3, 'Timed calls per measurement.')


def decoder_flops_per_query(cfg, tokens: int) -> float:
  d, m = cfg.dec_embed_dim, cfg.dec_mlp_dim
  return float(cfg.dec_depth * 2 * (2 * d * d + 2 * d * m + 2 * tokens * d))


def kv_flops(cfg, tokens: int) -> float:
  return float(cfg.dec_depth * 4 * tokens * cfg.enc_embed_dim * cfg.dec_embed_dim)


def _config(size):
  dtype, attention_impl = runtime_defaults()
  return d4rt_config(size, dtype=dtype, attention_impl=attention_impl)


def _is_oom(e: Exception) -> bool:
  return 'RESOURCE_EXHAUSTED' in str(e) or 'out of memory' in str(e).lower()


def run(*, size=None, queries=None, chunk=None, iters=3, fallback='L', budget=None, emit=print_row, seed=0):
  """The lines above for `size` (default 'g' on a GPU, 'tiny' else); on a GPU out of memory, `fallback`."""
  on_gpu = jax.default_backend() == 'gpu'
  size = size or ('g' if on_gpu else 'tiny')
  try:
    _run(_config(size), size, queries or (131072 if on_gpu else 4096), chunk or (8192 if on_gpu else 512), iters,
         budget, emit, seed)
  except Exception as e:  # noqa: BLE001 - only an out-of-memory falls back
    if not (fallback and fallback != size and _is_oom(e)):
      raise
    emit(dict(bench='d4rt_encode', size=size, skipped=f'out of memory ({type(e).__name__}); {fallback} instead'))
    _run(_config(fallback), fallback, queries or (131072 if on_gpu else 4096), chunk or (8192 if on_gpu else 512),
         iters, budget, emit, seed)


def _run(cfg, size, queries, chunk, iters, budget, emit, seed):
  device = jax.devices()[0].device_kind
  t, s = cfg.num_frames, cfg.img_size
  tokens = cfg.num_tokens
  common = dict(size=size, device=device, dtype=cfg.dtype)
  model = build_d4rt(cfg, seed)
  keys = jax.random.split(jax.random.key(seed), 4)
  video = jax.random.uniform(keys[0], (t, s, s, 3), minval=-1, maxval=1)
  start = time.perf_counter()
  dec = d4rt.Decoder(model, video, 1.0, chunk=chunk)      # the first encode: its compile
  jax.block_until_ready(dec.kv)
  encode_compile = time.perf_counter() - start
  ar = jnp.ones((1,), jnp.float32)
  encode_s = time_calls(lambda: jax.block_until_ready(d4rt._encode_kv(dec.graphdef, dec.state, dec.video, ar)),
                        iters, warmup=0)
  emit(dict(bench='d4rt_encode', **common, frames=t, img_size=s, tokens=tokens, attention=cfg.attention_impl,
            compile_s=round(encode_compile, 2), ms_per_clip=round(1e3 * encode_s, 3)))

  uv = np.asarray(jax.random.uniform(keys[1], (queries, 2)))
  qt = np.asarray(jax.random.randint(keys[2], (queries, 3), 0, t), np.int32)
  n_chunks = -(-queries // min(chunk, queries))
  results, rates = {}, {}
  for kv in ('recomputed', 'cached'):
    if budget is not None and results and not budget.allows(1.5 * results['recomputed'][1]):
      emit(dict(bench='d4rt_decode', **common, kv=kv, skipped=f'time budget ({budget.left():.0f} s left)'))
      continue
    dec.cache_kv = kv == 'cached'
    start = time.perf_counter()
    out = jax.block_until_ready(dec(uv, qt))       # compiles this chunk shape
    compile_s = time.perf_counter() - start
    call_s = time_calls(lambda: jax.block_until_ready(dec(uv, qt)), iters, warmup=0)
    results[kv] = (out, compile_s + iters * call_s)
    rate = queries / call_s
    rates[kv] = rate
    flops = decoder_flops_per_query(cfg, tokens) + (kv_flops(cfg, tokens) / min(chunk, queries)
                                                    if kv == 'recomputed' else 0.0)
    row = dict(bench='d4rt_decode', **common, kv=kv, queries=queries, chunk=min(chunk, queries),
               compile_s=round(compile_s, 2), ms_per_chunk=round(1e3 * call_s / n_chunks, 3),
               queries_per_s=round(rate, 1), speedup_vs_recompute=round(rate / rates['recomputed'], 3)
               if 'recomputed' in rates else None, flops_per_query=flops,
               tflops=round(flops * rate / 1e12, 4), paper_queries_per_s=PAPER_QUERIES_PER_S,
               paper_queries_per_s_48_per_s=PAPER_QUERIES_PER_S_48_PER_S,
               vs_paper=round(rate / PAPER_QUERIES_PER_S, 4))
    if kv == 'cached' and 'recomputed' in results:
      row['max_abs_diff_vs_recompute'] = float(max(np.max(np.abs(np.asarray(out[k]) -
                                                                 np.asarray(results['recomputed'][0][k])))
                                                   for k in out))
    emit({k: v for k, v in row.items() if v is not None})


def main(argv):
  del argv
  f = flags.FLAGS
  run(size=f.size, queries=f.queries, chunk=f.chunk, iters=f.iters)


if __name__ == '__main__':
  app.run(main)
