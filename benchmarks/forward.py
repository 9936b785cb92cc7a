"""DUSt3R 512 DPT forward throughput (random weights), one JSON line per measurement.

  python benchmarks/forward.py                                  # batch 1 and 8, float32 (+ bfloat16 on GPU)
  python benchmarks/forward.py --batch_sizes=1 --iters=2        # a quick CPU run
  python benchmarks/forward.py --torch                          # + the PyTorch reference (mini-dust3r) with
                                                                #   the same weights, same run: ratios

Each line: {"bench": "forward", "impl", "dtype", "batch", "height", "width", "ms_per_batch",
"pairs_per_s", "tflop_per_pair" (XLA cost analysis), "tflops", "frac_of_bf16_peak" (GPU only),
"speedup_vs_torch" (when --torch)}.
"""
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from dynadust3r_jax.convert import params as conversion
from dynadust3r_jax.convert.constructor import parse_constructor
from dynadust3r_jax.model import ModelConfig, build_model

flags.DEFINE_list('batch_sizes', ['1', '8'], 'Pairs per forward call.')
flags.DEFINE_list('dtypes', None, 'Compute dtypes (default: float32, plus bfloat16 on GPU).')
flags.DEFINE_list('attention_impls', ['xla'], "Attention implementations ('xla', 'cudnn' on GPU).")
flags.DEFINE_integer('height', 384, 'Image height.')
flags.DEFINE_integer('width', 512, 'Image width.')
flags.DEFINE_integer('iters', 10, 'Timed iterations (after one warm-up call).')
flags.DEFINE_bool('torch', False, 'Also time the PyTorch reference (needs torch + mini-dust3r).')
FLAGS = flags.FLAGS

DUST3R_512_DPT = ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='PatchEmbedDust3R', "
                  "img_size=(512, 512), head_type='dpt', output_mode='pts3d', depth_mode=('exp', -inf, inf), "
                  "conf_mode=('exp', 1, inf), enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, "
                  "dec_embed_dim=768, dec_depth=12, dec_num_heads=12, landscape_only=False)")
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


def torch_reference(state_dict_out: dict):
  """The mini-dust3r model with random weights; fills state_dict_out with its numpy tensors."""
  import torch  # pylint: disable=import-outside-toplevel
  from mini_dust3r.model import AsymmetricCroCo3DStereo  # noqa: F401  pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  net = eval(DUST3R_512_DPT, {'AsymmetricCroCo3DStereo': AsymmetricCroCo3DStereo, 'inf': float('inf')})
  state_dict_out.update({k: v.numpy() for k, v in net.state_dict().items()})
  return net.eval()


def jax_model(cfg, state_dict):
  """Our model; with the PyTorch weights when given (the converter's re-layout)."""
  model = build_model(cfg)
  if state_dict:
    plan = conversion.plan({k: v.shape for k, v in state_dict.items()}, model, source_name='torch')
    conversion.assign(model, conversion.apply_plan(plan, state_dict, source_name='torch'))
  return model


def main(argv):
  del argv
  on_gpu = jax.default_backend() == 'gpu'
  dtypes = FLAGS.dtypes or (['float32', 'bfloat16'] if on_gpu else ['float32'])
  state_dict = {}
  net = torch_reference(state_dict) if FLAGS.torch else None
  h, w = FLAGS.height, FLAGS.width
  arch, kwargs = parse_constructor(DUST3R_512_DPT)
  base = ModelConfig(arch=arch, **kwargs)
  for dtype in dtypes:
    for impl in FLAGS.attention_impls:
      cfg = base.replace(dtype=dtype, attention_impl=impl)
      graphdef, state = nnx.split(jax_model(cfg, state_dict))
      forward = jax.jit(lambda s, v1, v2: nnx.merge(graphdef, s)(v1, v2))
      for batch in map(int, FLAGS.batch_sizes):
        rng = np.random.default_rng(0)
        views = [{'img': jnp.asarray(rng.uniform(-1, 1, (batch, h, w, 3)), jnp.float32)} for _ in range(2)]
        compiled = forward.lower(state, *views).compile()
        flops = (compiled.cost_analysis() or {}).get('flops', float('nan'))
        seconds = _timed(lambda: jax.block_until_ready(compiled(state, *views)), FLAGS.iters)
        row = dict(bench='forward', impl=f'jax-{impl}', dtype=dtype, batch=batch, height=h, width=w,
                   device=jax.devices()[0].device_kind, ms_per_batch=round(seconds * 1e3, 2),
                   pairs_per_s=round(batch / seconds, 3), tflop_per_pair=round(flops / batch / 1e12, 4),
                   tflops=round(flops / seconds / 1e12, 2))
        if _peak():
          row['frac_of_bf16_peak'] = round(row['tflops'] / _peak(), 4)
        if net is not None:
          row['torch_ms_per_batch'] = round(_time_torch(net, views, dtype) * 1e3, 2)
          row['speedup_vs_torch'] = round(row['torch_ms_per_batch'] / row['ms_per_batch'], 3)
        print(json.dumps(row), flush=True)


def _time_torch(net, views, dtype):
  """PyTorch reference forward on the same inputs: fp32, or bf16 autocast (the heads stay fp32 as
  the reference disables autocast there). TF32 matmuls stay on, as croco.py sets on import and as
  XLA's default float32 precision does on GPU."""
  import torch  # pylint: disable=import-outside-toplevel
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  net = net.to(device)
  tviews = [{'img': torch.from_numpy(np.asarray(v['img']).transpose(0, 3, 1, 2).copy()).to(device),
             'instance': [str(i) for i in range(v['img'].shape[0])]} for v in views]

  def run():
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == 'bfloat16'):
      net(*tviews)
    if device == 'cuda':
      torch.cuda.synchronize()
  return _timed(run, FLAGS.iters)


if __name__ == '__main__':
  app.run(main)
