"""Reconstruction at scale on D devices against the same run on one: one JSON line per (images, devices).

  python -m benchmarks.reconstruct_scale --devices=8 --sizes=8,50,200     # CPU: 8 fake devices, 128x96
  python -m benchmarks.reconstruct_scale --sizes=50,200 --resolution=512x384   # a GPU (its devices)

Per N images (swin-5, symmetrized; benchmarks/align.synthetic_pairs' static scene) and each device count d of
(1, D), the stages of the reconstruct job's alignment path:
  inference   `inference(pairs, model, mesh=)` of a tiny random DUSt3R (the network is not what scales here) on
              the first `inference_pairs` pairs at the resolution: pairs/s;
  init        `global_align(niter=0)`: prepare + MST init + the Scene (host, numpy);
  loop        the compiled optimisation over the mesh (`optimize(..., mesh=)`): ms per iteration and, from XLA's
              memory_analysis of that program, the bytes per device (arguments + outputs + temporaries), next to
              `memory_bytes(..., devices=d)` (the docstring's bound);
  floor       the loop's memory floor: one read of the pairwise inputs (8·E·A float32) per iteration, timed as a
              reduction over an array of that size on the same devices (the copy bandwidth); `loop_over_floor`;
  exports     cameras.json + the point cloud of the Scene (export_all).
Line: {"bench": "reconstruct_scale", "n_images", "n_edges", "height", "width", "devices", "device",
  "inference_pairs_per_s", "init_s", "compile_s", "loop_ms_per_iter", "floor_ms", "loop_over_floor",
  "bytes_per_device", "formula_bytes_per_device", "exports_s", and for d > 1 "speedup_loop" and
  "bytes_ratio" (d devices' bytes per device over one device's)}; {"skipped": reason} where the budget ends.
"""
import importlib
import os
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_integer('devices', 0, 'CPU: fake devices to make (XLA_FLAGS, before JAX starts); 0: the machine\'s.')
flags.DEFINE_list('sizes', ['8', '50', '200'], 'Image counts.')
flags.DEFINE_string('resolution', '', 'WxH (default 512x384 on a GPU, 128x96 on a CPU).')
flags.DEFINE_integer('niter', 20, 'Iterations timed.')
flags.DEFINE_integer('inference_pairs', 32, 'Pairs the inference stage runs.')
FLAGS = flags.FLAGS

TINY = ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='PatchEmbedDust3R', img_size=(512, 512), "
        "head_type='linear', output_mode='pts3d', depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), "
        "enc_embed_dim=64, enc_depth=2, enc_num_heads=2, dec_embed_dim=64, dec_depth=2, dec_num_heads=2)")


def _timed(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def _tiny_model(directory):
  from dynadust3r_jax import load_model, save_pretrained  # noqa: PLC0415
  from dynadust3r_jax.convert.constructor import parse_constructor  # noqa: PLC0415
  from dynadust3r_jax.convert.sources import make_config  # noqa: PLC0415
  from dynadust3r_jax.model import build_model  # noqa: PLC0415
  from flax import nnx  # noqa: PLC0415
  cfg = make_config(*parse_constructor(TINY), {}, 'benchmark')
  params = {p: v[...] for p, v in nnx.to_flat_state(nnx.state(build_model(cfg, 0), nnx.Param))}
  save_pretrained(directory, cfg, params)
  return load_model(directory, dtype='float32', attention_impl='xla')


def _views(n_images, height, width):
  """load_images' views of n random height x width images (what the inference and the exports take; both
  multiples of 16 and 4:3 or square, so that the views keep that size)."""
  import numpy as np  # noqa: PLC0415
  from dynadust3r_jax.inference.images import load_arrays  # noqa: PLC0415
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(n_images)]
  return load_arrays(images, [f'{n:04d}.png' for n in range(n_images)], size=width, square_ok=True)


def _inference_rate(model, pairs, views, mesh, count) -> float:
  from dynadust3r_jax.inference import inference  # noqa: PLC0415
  edges = pairs['edges'][:count]
  pair_list = [(views[i], views[j]) for i, j in edges]
  inference(pair_list, model, batch_size=4, progress=False, mesh=mesh)          # compile
  _, seconds = _timed(lambda: inference(pair_list, model, batch_size=4, progress=False, mesh=mesh))
  return len(pair_list) / seconds


def _floor_ms(n_bytes, mesh, repeats=5) -> float:
  """One read of n_bytes of float32 split over the mesh's devices (or on one): a jitted sum, best of repeats."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  n = n_bytes // 4
  devices = 1 if mesh is None else mesh.size
  n -= n % devices
  x = jnp.ones((n,), jnp.float32)
  if mesh is not None:
    x = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.P(tuple(mesh.axis_names))))
  read = jax.jit(jnp.sum)
  read(x).block_until_ready()
  best = float('inf')
  for _ in range(repeats):
    _, s = _timed(lambda: read(x).block_until_ready())
    best = min(best, s)
  return best * 1e3


def run_one(n_images, devices, height, width, niter, inference_pairs, model) -> dict:
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from benchmarks.align import dust3r_output, synthetic_pairs  # noqa: PLC0415
  from dynadust3r_jax import distributed  # noqa: PLC0415
  from dynadust3r_jax.inference.export import export_all  # noqa: PLC0415
  ga = importlib.import_module('dynadust3r_jax.inference.global_align')
  mesh = distributed.edge_mesh(devices)
  pairs = synthetic_pairs(n_images, 'swin-5', height, width)
  output = dust3r_output(pairs)
  row = dict(bench='reconstruct_scale', n_images=n_images, n_edges=len(pairs['edges']), height=height, width=width,
             devices=devices, device=jax.devices()[0].device_kind)
  views = _views(n_images, height, width)
  row['inference_pairs_per_s'] = round(_inference_rate(model, pairs, views, mesh, inference_pairs), 2)
  scene, init_s = _timed(lambda: ga.global_align(output, niter=0, init='mst'))
  data, info = ga.prepare(output)
  params = {k: np.asarray(scene.params[k], np.float32) for k in ga.PARAM_NAMES}
  params['im_pp'] = np.zeros((n_images, 2), np.float32)
  n = info['n_imgs']
  masks = {'pw_poses': jnp.ones((1, 1)), 'im_poses': jnp.ones((n, 1)), 'im_depthmaps': jnp.ones((1, 1)),
           'im_focals': jnp.ones((n, 1)), 'im_pp': jnp.zeros((n, 1))}
  lrs = jnp.asarray(ga.lr_schedule(niter, 0.01), jnp.float32)
  inputs = jax.tree.map(jnp.asarray, (params, data)) if mesh is None else ga.shard_edges(params, data, mesh)
  compiled, compile_s = _timed(lambda: ga.optimize.lower(*inputs, masks, lrs, mesh=mesh).compile())
  compiled(*inputs, masks, lrs)[1].block_until_ready()                          # warm
  _, loop_s = _timed(lambda: compiled(*inputs, masks, lrs)[1].block_until_ready())
  mem = compiled.memory_analysis()
  area = height * width
  loop_ms = loop_s / niter * 1e3
  floor = _floor_ms(8 * len(pairs['edges']) * area * 4, mesh)
  with tempfile.TemporaryDirectory() as tmp:
    _, exports_s = _timed(lambda: export_all(scene, views, tmp, formats=('cameras', 'ply')))
  row.update(init_s=round(init_s, 3), compile_s=round(compile_s, 3), loop_ms_per_iter=round(loop_ms, 3),
             floor_ms=round(floor, 3), loop_over_floor=round(loop_ms / floor, 2),
             bytes_per_device=int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                                  - mem.alias_size_in_bytes),
             formula_bytes_per_device=ga.memory_bytes(n, len(pairs['edges']), area, 16, devices),
             exports_s=round(exports_s, 3))
  return row


def run(sizes, devices=None, resolution='', niter=20, inference_pairs=32, budget=None, emit=print):
  """Every size on one device and on `devices` (default: all); emits the lines."""
  import jax  # noqa: PLC0415
  from benchmarks.common import Budget  # noqa: PLC0415
  budget = budget or Budget()
  devices = devices or jax.device_count()
  on_gpu = jax.default_backend() == 'gpu'
  width, height = (int(x) for x in (resolution or ('512x384' if on_gpu else '128x96')).split('x'))
  with tempfile.TemporaryDirectory() as tmp:
    model = _tiny_model(os.path.join(tmp, 'tiny'))
    for n in sizes:
      single = None
      for d in sorted({1, devices}):
        if not budget.allows(0):
          emit(dict(bench='reconstruct_scale', n_images=n, devices=d, skipped='budget'))
          continue
        row = run_one(n, d, height, width, niter, inference_pairs, model)
        if d == 1:
          single = row
        elif single is not None:
          row.update(speedup_loop=round(single['loop_ms_per_iter'] / row['loop_ms_per_iter'], 2),
                     bytes_ratio=round(row['bytes_per_device'] / single['bytes_per_device'], 3))
        emit(row)


def main(argv):
  del argv
  if FLAGS.devices:
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                               f' --xla_force_host_platform_device_count={FLAGS.devices}')
  from benchmarks.common import print_row  # noqa: PLC0415 - JAX starts here, after XLA_FLAGS
  run([int(s) for s in FLAGS.sizes], resolution=FLAGS.resolution, niter=FLAGS.niter,
      inference_pairs=FLAGS.inference_pairs, emit=print_row)


if __name__ == '__main__':
  sys.exit(app.run(main))
