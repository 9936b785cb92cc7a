"""DUSt3R 512 DPT forward throughput (random weights), one JSON line per measurement.

  python -m benchmarks.forward                                  # batch 1 and 8, float32 (+ bfloat16 on GPU)
  python -m benchmarks.forward --batch_sizes=1 --iters=2        # a quick CPU run
  python -m benchmarks.forward --torch_python=/path/to/python   # + the PyTorch reference (mini-dust3r) in the
        same run, with the same weights: benchmarks/torch_reference.py runs in that interpreter (one with
        torch + mini-dust3r; `--torch_python=python` on the GPU image) and the lines get ratios

Each line: {"bench": "forward", "impl", "dtype", "batch", "height", "width", "ms_per_batch",
"pairs_per_s", "tflop_per_pair" (analytic, model/flops.py), "tflops", "frac_of_bf16_peak" (GPU only),
"torch_ms_per_batch" and "speedup_vs_torch" (with --torch_python)}; with --torch_python a first line
{"bench": "forward_parity", ...} gives max |JAX - PyTorch| / max |PyTorch| of the four outputs (float32, batch 1).
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

from dynadust3r_jax.convert import params as conversion
from dynadust3r_jax.convert.constructor import parse_constructor
from dynadust3r_jax.convert.torch_checkpoint import load_torch_checkpoint
from dynadust3r_jax.model import ModelConfig, build_model
from dynadust3r_jax.model.flops import dust3r_forward_flops
from dynadust3r_jax.pretrained import Predictor
from benchmarks.torch_reference import DUST3R_512_DPT, inputs  # torch is imported there only when run

flags.DEFINE_list('batch_sizes', ['1', '8'], 'Pairs per forward call.')
flags.DEFINE_list('dtypes', None, 'Compute dtypes (default: float32, plus bfloat16 on GPU).')
flags.DEFINE_list('attention_impls', ['xla'], "Attention implementations ('xla', 'cudnn' on GPU).")
flags.DEFINE_integer('height', 384, 'Image height.')
flags.DEFINE_integer('width', 512, 'Image width.')
flags.DEFINE_integer('iters', 10, 'Timed iterations (after one warm-up call).')
flags.DEFINE_string('torch_python', None, 'A Python with torch + mini-dust3r: also time the PyTorch reference.')
FLAGS = flags.FLAGS

BF16_PEAK_TFLOPS = {'H100': 989.0, 'H200': 989.0, 'A100': 312.0}  # dense bf16 tensor-core peak


def _timed(fn, iters):
  fn()  # compile + warm-up
  start = time.perf_counter()
  for _ in range(iters):
    fn()
  return (time.perf_counter() - start) / iters


def _peak():
  kind = jax.devices()[0].device_kind
  return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in kind), None)


def torch_run(*args) -> dict:
  """benchmarks/torch_reference.py in the --torch_python interpreter; its JSON line."""
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'torch_reference.py')
  out = subprocess.run([FLAGS.torch_python, script, *args], check=True, capture_output=True, text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def torch_weights() -> dict:
  """The reference's random weights, read back with our torch-free reader (same weights in both)."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'weights.pth')
    torch_run(f'--save_weights={path}')
    return load_torch_checkpoint(path)['model']


def jax_model(cfg, state_dict):
  """Our model; with the PyTorch weights when given (the converter's re-layout)."""
  model = build_model(cfg)
  if state_dict:
    plan = conversion.plan({k: v.shape for k, v in state_dict.items()}, model, source_name='torch')
    conversion.assign(model, conversion.apply_plan(plan, state_dict, source_name='torch'))
  return model


def parity(cfg, state_dict, h, w):
  """Full-size float32 outputs of both implementations on the same weights and inputs."""
  with tempfile.TemporaryDirectory() as tmp, jax.default_matmul_precision('highest'):
    path = os.path.join(tmp, 'outputs.npz')
    torch_run(f'--outputs={path}', f'--height={h}', f'--width={w}')
    ref = np.load(path)
    model = Predictor(jax_model(cfg, state_dict))
    res1, res2 = model(*[{'img': jnp.asarray(i.transpose(0, 2, 3, 1))} for i in inputs(1, h, w)])
    got = {'pts3d': res1['pts3d'], 'conf1': res1['conf'], 'pts3d_in_other_view': res2['pts3d_in_other_view'],
           'conf2': res2['conf']}
    errors = {k: float(np.max(np.abs(np.asarray(v) - ref[k])) / np.max(np.abs(ref[k]))) for k, v in got.items()}
  print(json.dumps(dict(bench='forward_parity', height=h, width=w, max_rel_err=errors)), flush=True)


def main(argv):
  del argv
  on_gpu = jax.default_backend() == 'gpu'
  dtypes = FLAGS.dtypes or (['float32', 'bfloat16'] if on_gpu else ['float32'])
  state_dict = torch_weights() if FLAGS.torch_python else {}
  h, w = FLAGS.height, FLAGS.width
  arch, kwargs = parse_constructor(DUST3R_512_DPT)
  base = ModelConfig(arch=arch, **kwargs)
  if FLAGS.torch_python:
    parity(base, state_dict, h, w)
  for dtype in dtypes:
    for impl in FLAGS.attention_impls:
      cfg = base.replace(dtype=dtype, attention_impl=impl)
      graphdef, state = nnx.split(jax_model(cfg, state_dict))
      forward = jax.jit(lambda s, v1, v2: nnx.merge(graphdef, s)(v1, v2))
      for batch in map(int, FLAGS.batch_sizes):
        views = [{'img': jnp.asarray(img.transpose(0, 2, 3, 1))} for img in inputs(batch, h, w)]
        compiled = forward.lower(state, *views).compile()
        flops = batch * dust3r_forward_flops(cfg, h, w)
        seconds = _timed(lambda: jax.block_until_ready(compiled(state, *views)), FLAGS.iters)
        row = dict(bench='forward', impl=f'jax-{impl}', dtype=dtype, batch=batch, height=h, width=w,
                   device=jax.devices()[0].device_kind, ms_per_batch=round(seconds * 1e3, 2),
                   pairs_per_s=round(batch / seconds, 3), tflop_per_pair=round(flops / batch / 1e12, 4),
                   tflops=round(flops / seconds / 1e12, 2))
        if _peak():
          row['frac_of_bf16_peak'] = round(row['tflops'] / _peak(), 4)
        if FLAGS.torch_python:
          ref = torch_run(f'--batch={batch}', f'--height={h}', f'--width={w}', f'--dtype={dtype}',
                          f'--iters={FLAGS.iters}')
          row['torch_ms_per_batch'] = ref['torch_ms_per_batch']
          row['speedup_vs_torch'] = round(ref['torch_ms_per_batch'] / row['ms_per_batch'], 3)
        print(json.dumps(row), flush=True)


if __name__ == '__main__':
  app.run(main)
