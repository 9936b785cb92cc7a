"""DUSt3R 512 DPT forward throughput (random weights), one JSON line per measurement.

  python -m benchmarks.forward                                  # batch 1 and 8, float32 (+ bfloat16 on GPU)
  python -m benchmarks.forward --batch_sizes=1 --iters=2        # a quick CPU run
  python -m benchmarks.forward --torch_python=/path/to/python   # + the PyTorch reference (mini-dust3r) in the
        same run, with the same weights: benchmarks/torch_reference.py runs once in that interpreter (one
        with torch + mini-dust3r; `--torch_python=python3` on the GPU image), before JAX touches the GPU,
        and the lines get ratios

Each line: {"bench": "forward", "impl" ('jax-xla', 'jax-cudnn', 'jax-pallas' or 'torch'), "dtype", "batch",
"height", "width", "ms_per_batch", "pairs_per_s", "tflop_per_pair" (analytic, model/flops.py), "tflops",
"frac_of_bf16_peak" + "peak_tflops" + "peak_source" (on a GPU: the measured rate when given, else the
datasheet's), "compile_s", "rel_err_vs_xla" (cudnn/pallas: max |out - xla's| / max |xla's| over the four
outputs, same dtype and inputs), "torch_ms_per_batch" and "speedup_vs_torch" (with --torch_python)}; a
combination that cannot run here, or that the time budget leaves out, gets {"skipped": reason}. With
--torch_python a last line {"bench": "forward_parity", ...} gives max |JAX - PyTorch| / max |PyTorch| of
the four outputs (float32, batch 1, 'highest' matmul precision on both sides).
"""
import json
import os
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from benchmarks.common import bf16_peak_tflops, print_row, time_calls
from benchmarks.torch_reference import DUST3R_512_DPT, inputs  # torch is imported there only when run
from dynadust3r_jax.common.torch_checkpoint import load_torch_checkpoint
from dynadust3r_jax.convert import params as conversion
from dynadust3r_jax.convert.constructor import parse_constructor
from dynadust3r_jax.model import ModelConfig, abstract_model, build_model
from dynadust3r_jax.model.flops import dust3r_forward_flops
from dynadust3r_jax.testing import relative_error

OUTPUTS = ('pts3d', 'conf1', 'pts3d_in_other_view', 'conf2')


def torch_run(torch_python, *args) -> list[dict]:
  """benchmarks/torch_reference.py in the torch_python interpreter; its JSON lines."""
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'torch_reference.py')
  out = subprocess.run([torch_python, script, *args], capture_output=True, text=True)
  if out.returncode:
    raise RuntimeError(f'torch_reference.py exited {out.returncode}: {out.stderr.strip()[-1500:]}')
  return [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{')]


def jax_model(cfg, state_dict):
  """Our model; with the PyTorch weights when given (the converter's re-layout)."""
  model = build_model(cfg)
  if state_dict:
    plan = conversion.plan({k: v.shape for k, v in state_dict.items()}, model, source_name='torch')
    conversion.assign(model, conversion.apply_plan(plan, state_dict, source_name='torch'))
  return model


def _named(res1, res2):
  return dict(zip(OUTPUTS, (res1['pts3d'], res1['conf'], res2['pts3d_in_other_view'], res2['conf'])))


def _compiled(cfg, state, views):
  """The jitted forward of cfg's graph on `state` (any dtype / attention: the parameters are the same)."""
  graphdef, _ = nnx.split(abstract_model(cfg))
  forward = jax.jit(lambda s, v1, v2: _named(*nnx.merge(graphdef, s)(v1, v2)))
  return forward.lower(state, *views).compile()


def _views(batch, h, w):
  return [{'img': jnp.asarray(img.transpose(0, 2, 3, 1))} for img in inputs(batch, h, w)]


def parity(cfg, state, ref, h, w, emit):
  """Full-size float32 outputs of JAX ('highest' matmuls) against the reference's: same weights, inputs."""
  views = _views(1, h, w)
  with jax.default_matmul_precision('highest'):
    got = _compiled(cfg.replace(dtype='float32', attention_impl='xla'), state, views)(state, *views)
  emit(dict(bench='forward_parity', height=h, width=w,
            max_rel_err={k: _agreement(got, ref, [k]) for k in OUTPUTS}))


def _agreement(got, want, keys=OUTPUTS) -> float:
  """Max relative error over the outputs `keys`; NaN when some are not finite."""
  try:
    return max(relative_error(got[k], want[k]) for k in keys)
  except AssertionError:
    return float('nan')


def _skip_reason(impl, dtype, on_gpu):
  if impl == 'cudnn' and not on_gpu:
    return 'needs a GPU (cuDNN)'
  if impl == 'cudnn' and dtype == 'float32':
    return 'cuDNN flash attention needs bfloat16/float16'
  if impl == 'pallas' and on_gpu and dtype == 'float32':
    return 'the Mosaic GPU kernels need bfloat16/float16'
  return None


def run(*, batch_sizes=(8, 1), dtypes=None, impls=('xla',), height=384, width=512, iters=10,
        model=DUST3R_512_DPT, torch_python=None, peak_tflops=None, budget=None, emit=print_row):
  """Times every (dtype, batch, impl), in that order; see the module docstring for the lines it emits.

  model: constructor string (the reference's, parsed with `ast`); peak_tflops: the measured bf16 rate;
  budget: a benchmarks.common.Budget; a configuration expected to overrun it is skipped."""
  h, w = height, width
  arch, kwargs = parse_constructor(model)
  base = ModelConfig(arch=arch, **kwargs)
  state_dict, torch_rows = {}, {}
  if torch_python:
    torch_dtypes = dtypes or ['float32', 'bfloat16']  # first, so that the reference has the GPU to itself
    with tempfile.TemporaryDirectory() as tmp:
      weights, outputs = os.path.join(tmp, 'weights.pth'), os.path.join(tmp, 'outputs.npz')
      try:
        lines = torch_run(torch_python, f'--model={model}', f'--save_weights={weights}', f'--outputs={outputs}',
                          f'--batch={",".join(map(str, batch_sizes))}', f'--dtype={",".join(torch_dtypes)}',
                          f'--iters={iters}', f'--height={h}', f'--width={w}')
      except RuntimeError as e:
        emit(dict(bench='forward', impl='torch', skipped=str(e)))
      else:
        state_dict = load_torch_checkpoint(weights)['model']
        ref = dict(np.load(outputs))
        torch_rows = {(r['dtype'], r['batch']): r for r in lines if 'torch_ms_per_batch' in r}
  on_gpu = jax.default_backend() == 'gpu'
  dtypes = dtypes or (['float32', 'bfloat16'] if on_gpu else ['float32'])
  peak, peak_source = bf16_peak_tflops(peak_tflops)
  device = jax.devices()[0].device_kind

  def with_rates(row, seconds, batch):
    flops = batch * dust3r_forward_flops(base, h, w)
    row.update(ms_per_batch=round(seconds * 1e3, 2), pairs_per_s=round(batch / seconds, 3),
               tflop_per_pair=round(flops / batch / 1e12, 4), tflops=round(flops / seconds / 1e12, 2))
    if peak:
      row.update(frac_of_bf16_peak=round(row['tflops'] / peak, 4), peak_tflops=peak, peak_source=peak_source)
    return row

  for (dtype, batch), r in torch_rows.items():
    emit(with_rates(dict(bench='forward', impl='torch', dtype=dtype, batch=batch, height=h, width=w,
                         device=device, torch_version=r['torch_version']), r['torch_ms_per_batch'] / 1e3, batch))

  _, state = nnx.split(jax_model(base, state_dict))   # the same parameters for every dtype and attention
  xla_outputs, cost = {}, {}   # (dtype, batch) -> outputs of 'xla'; batch -> seconds of the last model
  for dtype in dtypes:
    for batch in batch_sizes:
      views = _views(batch, h, w)
      for impl in impls:
        row = dict(bench='forward', impl=f'jax-{impl}', dtype=dtype, batch=batch, height=h, width=w, device=device)
        reason = _skip_reason(impl, dtype, on_gpu)
        if reason is None and budget and not budget.allows(1.2 * cost.get(batch, 0.0)):
          reason = f'time budget ({budget.left():.0f} s left, the last batch-{batch} model took {cost[batch]:.0f} s)'
        if reason:
          emit(dict(row, skipped=reason))
          continue
        start = time.perf_counter()
        compiled = _compiled(base.replace(dtype=dtype, attention_impl=impl), state, views)
        row['compile_s'] = round(time.perf_counter() - start, 1)
        last = {}
        seconds = time_calls(lambda: last.update(out=jax.block_until_ready(compiled(state, *views))), iters)
        cost[batch] = time.perf_counter() - start
        if impl == 'xla':
          xla_outputs[dtype, batch] = last['out']
        elif (dtype, batch) in xla_outputs:
          row['rel_err_vs_xla'] = _agreement(last['out'], xla_outputs[dtype, batch])
        with_rates(row, seconds, batch)
        if (dtype, batch) in torch_rows:
          row['torch_ms_per_batch'] = torch_rows[dtype, batch]['torch_ms_per_batch']
          row['speedup_vs_torch'] = round(row['torch_ms_per_batch'] / row['ms_per_batch'], 3)
        emit(row)
  if torch_rows:  # last: one more (float32, 'highest') compile, if the budget has room for it
    if budget and not budget.allows(1.2 * cost.get(1, max(cost.values(), default=0.0))):
      emit(dict(bench='forward_parity', height=h, width=w, skipped=f'time budget ({budget.left():.0f} s left)'))
    else:
      parity(base, state, ref, h, w, emit)


def main(argv):
  del argv
  f = flags.FLAGS
  run(batch_sizes=[int(b) for b in f.batch_sizes], dtypes=f.dtypes, impls=f.attention_impls, height=f.height,
      width=f.width, iters=f.iters, torch_python=f.torch_python)


if __name__ == '__main__':
  flags.DEFINE_list('batch_sizes', ['1', '8'], 'Pairs per forward call.')
  flags.DEFINE_list('dtypes', None, 'Compute dtypes (default: float32, plus bfloat16 on GPU).')
  flags.DEFINE_list('attention_impls', ['xla'], "Attention implementations ('xla', 'cudnn' on GPU, 'pallas').")
  flags.DEFINE_integer('height', 384, 'Image height.')
  flags.DEFINE_integer('width', 512, 'Image width.')
  flags.DEFINE_integer('iters', 10, 'Timed iterations (after one warm-up call).')
  flags.DEFINE_string('torch_python', None, 'A Python with torch + mini-dust3r: also time the PyTorch reference.')
  app.run(main)
