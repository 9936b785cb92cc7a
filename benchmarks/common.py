"""What the benchmarks share: the JSON-line printer, the bf16 peak, a time budget, timing."""
import json
import time

import jax

# Dense bf16 tensor-core rates from the datasheets (TFLOP/s). The GPU suite uses the rate it measures
# (benchmarks/ceilings.py) instead; these are for the benchmarks run on their own.
BF16_PEAK_TFLOPS = {'H100': 989.0, 'H200': 989.0, 'A100': 312.0}


def print_row(row: dict) -> None:
  """The default `emit`: one JSON line on stdout."""
  print(json.dumps(row), flush=True)


def bf16_peak_tflops(measured: float | None = None) -> tuple[float | None, str | None]:
  """(TFLOP/s, 'measured' | 'datasheet') for MFU-style fractions; (None, None) off a known GPU."""
  if measured:
    return measured, 'measured'
  kind = jax.devices()[0].device_kind
  peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in kind), None)
  return peak, 'datasheet' if peak else None


class Budget:
  """A deadline (time.monotonic) for a run of several measurements; None: no limit."""

  def __init__(self, seconds: float | None = None):
    self.deadline = None if seconds is None else time.monotonic() + seconds

  def left(self) -> float:
    return float('inf') if self.deadline is None else self.deadline - time.monotonic()

  def allows(self, estimate_s: float) -> bool:
    """Whether a measurement expected to take estimate_s still fits."""
    return estimate_s < self.left()


def time_calls(fn, iters: int, warmup: int = 1) -> float:
  """Seconds per call of fn (which blocks until its result is ready), after `warmup` calls."""
  for _ in range(warmup):
    fn()
  start = time.perf_counter()
  for _ in range(iters):
    fn()
  return (time.perf_counter() - start) / iters
