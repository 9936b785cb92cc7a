"""The device's two ceilings, measured once: bf16 matmul TFLOP/s and device-memory copy GB/s.

  python -m benchmarks.ceilings                 # 8192³ bf16 matmul, 4 GiB copy
  python -m benchmarks.ceilings --n=512 --copy_mib=64 --iters=2   # a quick CPU run

One JSON line {"bench": "ceilings", "bf16_matmul_tflops", "copy_gbs" (bytes read + written per second),
"matmul_n", "copy_mib", "iters", "device", "datasheet_bf16_tflops"}. Random inputs (zeros run faster on
Hopper); each figure is the mean over `iters` back-to-back calls after two warm-up calls, timed to the
last result's completion.
"""
import jax
import jax.numpy as jnp
from absl import app, flags

from benchmarks.common import BF16_PEAK_TFLOPS, print_row, time_calls


def measure(*, n: int = 8192, copy_mib: int = 4096, iters: int = 10, emit=print_row) -> dict:
  """Emits and returns the ceilings row."""
  ka, kb = jax.random.split(jax.random.key(0))
  a = jax.random.normal(ka, (n, n), jnp.bfloat16)
  b = jax.random.normal(kb, (n, n), jnp.bfloat16)
  matmul = jax.jit(lambda a, b: a @ b)
  x = jax.random.uniform(ka, (copy_mib * 2 ** 18,), jnp.float32)   # copy_mib MiB of float32
  copy = jax.jit(lambda x: x + 1)                                    # reads x once, writes once

  def repeat(fn, *args):
    def run():
      for _ in range(iters):
        out = fn(*args)
      jax.block_until_ready(out)
    return run

  matmul_s = time_calls(repeat(matmul, a, b), iters=1, warmup=2) / iters
  copy_s = time_calls(repeat(copy, x), iters=1, warmup=2) / iters
  kind = jax.devices()[0].device_kind
  row = dict(bench='ceilings', device=kind, matmul_n=n, copy_mib=copy_mib, iters=iters,
             bf16_matmul_tflops=round(2 * n ** 3 / matmul_s / 1e12, 2),
             copy_gbs=round(2 * x.nbytes / copy_s / 1e9, 1),
             datasheet_bf16_tflops=next((v for k, v in BF16_PEAK_TFLOPS.items() if k in kind), None))
  emit(row)
  return row


def main(argv):
  del argv
  f = flags.FLAGS
  measure(n=f.n, copy_mib=f.copy_mib, iters=f.iters)


if __name__ == '__main__':
  flags.DEFINE_integer('n', 8192, 'Matrix side of the bf16 matmul.')
  flags.DEFINE_integer('copy_mib', 4096, 'MiB copied per call.')
  flags.DEFINE_integer('iters', 10, 'Timed calls of each.')
  app.run(main)
