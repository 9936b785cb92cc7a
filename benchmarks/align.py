"""Global alignment (dynadust3r_jax.inference.global_align) against the PyTorch reference (mini-dust3r's
PointCloudOptimizer, benchmarks/align_reference.py) on the same synthetic pairwise predictions, one JSON line
per (images, graph).

  python -m benchmarks.align --torch_python=/work/venv/ref/bin/python             # 8, 20, 50 images
  python -m benchmarks.align --sizes=8 --niter=100 --resolution=64x48             # a quick run, JAX only

Inputs (numpy, seeded): a random static scene (a height field seen by N cameras with small random rotations,
translations and focals ≈ W); for every ordered pair (i, j) of the symmetrized graph, image i's and image j's
GT points in camera i, times a random scale exp(U(−0.3, 0.3)) per pair, plus N(0, 0.004·depth) noise (per
image, shifted by a random number of pixels per pair: cheap at 512×384); confidences U(1, 5). Graph: swin-5
(cyclic) for every size, plus complete up to 8 images. Resolution: 512×384 on a GPU, 128×96 on a CPU.
Both sides: init 'mst', `niter` steps, cosine schedule, lr 0.01. The PyTorch runs come first (the GPU to
themselves; at most half of the time budget), each in its own process; its loop stops after torch_loop_s
and its per-step time is extrapolated to niter steps ("torch_extrapolated": true; the losses are then
compared at its last step).

Line: {"bench": "align", "n_images", "graph", "n_edges", "height", "width", "niter", "device",
  "jax_init_s" (global_align(niter=0): prepare + MST init + decoding the Scene, whose eager ops compile for
  each new shape: ~0.7 s on a CPU), "jax_compile_s", "jax_loop_ms_per_iter",
  "jax_total_s" (init + compile + loop), "jax_align_s" (init + loop: with an executable compiled before),
  "jax_final_loss" (loss before the last step), "jax_peak_bytes" + "jax_peak_source" (XLA memory_analysis of the
  optimisation: arguments + outputs + temporaries), on a GPU also "jax_process_peak_bytes" (memory_stats
  peak_bytes_in_use since the process started: that configuration's when the largest runs first);
  with the reference: "torch_init_s", "torch_loop_ms_per_iter", "torch_steps", "torch_extrapolated",
  "torch_total_s" (init + niter steps), "torch_final_loss" (after niter steps, else null), "loss_step" +
  "jax_loss_at_step" + "torch_loss_at_step" + "loss_rel_diff" (at the reference's last step), "torch_peak_bytes"
  + "torch_peak_source", "speedup_loop", "speedup_total", "peak_ratio" (JAX / PyTorch);
  the issue's targets: on a CPU "target_speedup_loop" (5 at 8 images, 2 at 50) + "meets_speedup_target", at
  50 images "target_peak_ratio" 0.5 + "meets_peak_target", on a GPU at 50 images swin-5 "target_align_s" 2.0 +
  "meets_align_s_target" (jax_align_s)}.
A configuration that the time budget leaves out gets {"skipped": reason}.
"""
import importlib
import json
import os
import subprocess
import tempfile
import time

import numpy as np
from scipy.spatial.transform import Rotation

from benchmarks.common import Budget, print_row, time_calls
from dynadust3r_jax.inference.pairs import pair_indices

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'align_reference.py')
CPU_SPEEDUP_TARGETS = {8: 5.0, 50: 2.0}   # loop speedup over PyTorch on a CPU (issue 10)
PEAK_RATIO_TARGET = 0.5                   # at 50 images
GPU_ALIGN_S_TARGET = 2.0                  # 50 images swin-5 on an H100/H200


def _height(x, y):
  return 4.0 + 0.4 * np.sin(1.3 * x + 0.5) * np.cos(1.1 * y) + 0.15 * np.sin(3.1 * x - 2.0 * y)


def synthetic_pairs(n_images, scene_graph, height, width, seed=0):
  """Pairwise predictions of a random static scene (module docstring): {edges (E,2) int32, pts3d_i, pts3d_j
  (E,H,W,3), conf_i, conf_j (E,H,W)} float32, edges in DUSt3R's symmetrized order."""
  rng = np.random.default_rng(seed)
  focals = rng.uniform(0.9, 1.1, n_images) * width
  cam_to_world = np.tile(np.eye(4), (n_images, 1, 1))
  cam_to_world[:, :3, :3] = Rotation.from_rotvec(rng.normal(size=(n_images, 3)) * 0.08).as_matrix()
  cam_to_world[:, :3, 3] = rng.uniform(-0.5, 0.5, (n_images, 3)) * np.array([1.0, 1.0, 0.3])
  v, u = np.mgrid[:height, :width].astype(np.float32)
  depth, pts_cam = [], []
  for n in range(n_images):
    rays_cam = np.stack([(u - width / 2) / focals[n], (v - height / 2) / focals[n], np.ones_like(u)], -1)
    rays = rays_cam @ cam_to_world[n, :3, :3].T.astype(np.float32)
    origin = cam_to_world[n, :3, 3].astype(np.float32)
    t = np.full((height, width), 4.0, np.float32)
    for _ in range(10):  # fixed point of o_z + t·d_z = height(o_xy + t·d_xy); rays_cam has z = 1: t is the depth
      t = (_height(origin[0] + t * rays[..., 0], origin[1] + t * rays[..., 1]) - origin[2]) / rays[..., 2]
    depth.append(t)
    pts_cam.append(t[..., None] * rays_cam)
  noise = rng.standard_normal((n_images, height * width, 3), dtype=np.float32) * \
      (0.004 * np.stack(depth).reshape(n_images, -1, 1))
  edges = pair_indices(n_images, scene_graph)
  edges = np.asarray(edges + [(j, i) for i, j in edges], np.int32)
  world_to_cam = np.linalg.inv(cam_to_world)
  shape = (len(edges), height, width)
  out = {'edges': edges, 'pts3d_i': np.empty(shape + (3,), np.float32), 'pts3d_j': np.empty(shape + (3,), np.float32),
         'conf_i': rng.random(shape, np.float32) * 4 + 1, 'conf_j': rng.random(shape, np.float32) * 4 + 1}
  for e, (i, j) in enumerate(edges):
    scale = np.float32(np.exp(rng.uniform(-0.3, 0.3)))
    rel = (world_to_cam[i] @ cam_to_world[j]).astype(np.float32)  # camera j → camera i
    shift_i, shift_j = rng.integers(height * width, size=2)
    out['pts3d_i'][e] = scale * (pts_cam[i] + np.roll(noise[i], shift_i, axis=0).reshape(height, width, 3))
    out['pts3d_j'][e] = scale * (pts_cam[j] @ rel[:3, :3].T + rel[:3, 3] +
                                 np.roll(noise[j], shift_j, axis=0).reshape(height, width, 3))
  return out


def dust3r_output(pairs):
  """synthetic_pairs → the inference output global_align takes."""
  return {'view1': {'idx': pairs['edges'][:, 0]}, 'view2': {'idx': pairs['edges'][:, 1]},
          'pred1': {'pts3d': pairs['pts3d_i'], 'conf': pairs['conf_i']},
          'pred2': {'pts3d_in_other_view': pairs['pts3d_j'], 'conf': pairs['conf_j']}}


def torch_align(torch_python, pairs, niter, lr, loop_s) -> dict:
  """benchmarks/align_reference.py in torch_python on `pairs` (written to an npz); its JSON line."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'pairs.npz')
    np.savez(path, **pairs)
    out = subprocess.run([torch_python, REFERENCE, f'--inputs={path}', f'--niter={niter}', f'--lr={lr}',
                          f'--loop_s={loop_s}'], capture_output=True, text=True)
  if out.returncode:
    raise RuntimeError(f'align_reference.py exited {out.returncode}: {out.stderr.strip()[-1500:]}')
  return json.loads(next(line for line in out.stdout.splitlines() if line.startswith('{')))


def jax_align(pairs, niter, lr) -> dict:
  """JAX side: init (global_align with niter=0), compile and run the optimisation of that init."""
  import jax  # noqa: PLC0415 - not before the PyTorch runs have had the GPU
  import jax.numpy as jnp  # noqa: PLC0415
  ga = importlib.import_module('dynadust3r_jax.inference.global_align')  # the package exports the function
  output = dust3r_output(pairs)
  start = time.perf_counter()
  init = ga.global_align(output, niter=0, lr=lr, init='mst').params
  init_s = time.perf_counter() - start
  data, info = ga.prepare(output)
  n = info['n_imgs']
  params = {k: jnp.asarray(init[k], jnp.float32) for k in ga.PARAM_NAMES}
  masks = {'pw_poses': jnp.ones((1, 1)), 'im_poses': jnp.ones((n, 1)), 'im_depthmaps': jnp.ones((1, 1)),
           'im_focals': jnp.ones((n, 1)), 'im_pp': jnp.zeros((n, 1))}   # global_align's, without presets
  lrs = jnp.asarray(ga.lr_schedule(niter, lr), jnp.float32)
  data = jax.tree.map(jnp.asarray, data)
  start = time.perf_counter()
  compiled = ga.optimize.lower(params, data, masks, lrs).compile()
  compile_s = time.perf_counter() - start
  result = {}
  loop_s = time_calls(lambda: result.update(out=jax.block_until_ready(compiled(params, data, masks, lrs))), 1,
                      warmup=0)
  losses = np.asarray(result['out'][1])
  mem = compiled.memory_analysis()
  row = dict(jax_init_s=round(init_s, 3), jax_compile_s=round(compile_s, 3),
             jax_loop_ms_per_iter=round(loop_s / niter * 1e3, 3), jax_total_s=round(init_s + compile_s + loop_s, 3),
             jax_align_s=round(init_s + loop_s, 3), jax_final_loss=float(losses[-1]), jax_losses=losses,
             jax_peak_bytes=int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                                - mem.alias_size_in_bytes),
             jax_peak_source='XLA memory_analysis of the optimisation: arguments + outputs + temporaries')
  if jax.default_backend() == 'gpu':
    row['jax_process_peak_bytes'] = int(jax.devices()[0].memory_stats()['peak_bytes_in_use'])
  return row


def compare(row, ref, niter, on_gpu):
  """The reference's fields, the ratios and the targets into row (a JAX line; ref: a reference line or None)."""
  losses = row.pop('jax_losses')
  n, graph = row['n_images'], row['graph']
  if ref is not None:
    steps = ref['torch_steps']
    torch_total = ref['torch_init_s'] + ref['torch_loop_ms_per_iter'] * niter / 1e3
    jax_loss, torch_loss = float(losses[steps - 1]), ref['torch_losses'][-1]
    row.update(torch_init_s=ref['torch_init_s'], torch_loop_ms_per_iter=ref['torch_loop_ms_per_iter'],
               torch_steps=steps, torch_extrapolated=steps < niter, torch_total_s=round(torch_total, 3),
               torch_final_loss=torch_loss if steps == niter else None, loss_step=steps,
               jax_loss_at_step=jax_loss, torch_loss_at_step=torch_loss,
               loss_rel_diff=abs(jax_loss - torch_loss) / abs(torch_loss), torch_peak_bytes=ref['torch_peak_bytes'],
               torch_peak_source=ref['torch_peak_source'], torch_version=ref['torch_version'],
               speedup_loop=round(ref['torch_loop_ms_per_iter'] / row['jax_loop_ms_per_iter'], 3),
               speedup_total=round(torch_total / row['jax_total_s'], 3),
               peak_ratio=round(row['jax_peak_bytes'] / ref['torch_peak_bytes'], 4))
    if not on_gpu and n in CPU_SPEEDUP_TARGETS:
      row.update(target_speedup_loop=CPU_SPEEDUP_TARGETS[n],
                 meets_speedup_target=row['speedup_loop'] >= CPU_SPEEDUP_TARGETS[n])
    if n == 50:
      row.update(target_peak_ratio=PEAK_RATIO_TARGET, meets_peak_target=row['peak_ratio'] <= PEAK_RATIO_TARGET)
  if on_gpu and n == 50 and graph == 'swin-5':
    row.update(target_align_s=GPU_ALIGN_S_TARGET, meets_align_s_target=row['jax_align_s'] < GPU_ALIGN_S_TARGET)
  return row


def configurations(sizes, scene_graph, complete_up_to):
  return [(n, g) for n in sizes for g in [scene_graph] + (['complete'] if n <= complete_up_to else [])]


def run(*, sizes=(8, 20, 50), height=96, width=128, niter=300, lr=0.01, scene_graph='swin-5', complete_up_to=8,
        torch_python=None, torch_loop_s=60.0, budget=None, emit=print_row):
  """Every configuration of `sizes` (see the module docstring for the lines). budget: a benchmarks.common.Budget;
  a configuration whose cost, estimated from the previous one (per edge), does not fit is skipped."""
  budget = budget or Budget()
  configs = configurations(sizes, scene_graph, complete_up_to)
  edges = {c: 2 * len(pair_indices(*c)) for c in configs}
  inputs = {}

  def pairs(c):  # made once, when first needed (each costs seconds at 512×384)
    if c not in inputs:
      inputs[c] = synthetic_pairs(c[0], c[1], height, width)
    return inputs[c]

  def estimate(c, cost):  # seconds: the last measured configuration's cost per edge
    return 1.2 * cost[1] / cost[0] * edges[c] if cost else 0.0

  refs, cost = {}, None
  torch_budget = Budget(budget.left() / 2)
  for c in configs if torch_python else []:
    if not torch_budget.allows(estimate(c, cost)):
      emit(dict(bench='align', impl='torch', n_images=c[0], graph=c[1],
                skipped=f'time budget (PyTorch: {torch_budget.left():.0f} s left)'))
      continue
    start = time.perf_counter()
    try:
      refs[c] = torch_align(torch_python, pairs(c), niter, lr, min(torch_loop_s, torch_budget.left() / 2))
    except RuntimeError as e:
      emit(dict(bench='align', impl='torch', n_images=c[0], graph=c[1], skipped=str(e)))
      continue
    cost = (edges[c], time.perf_counter() - start)

  import jax  # noqa: PLC0415
  device, on_gpu = jax.devices()[0].device_kind, jax.default_backend() == 'gpu'
  cost = None
  for c in configs:
    row = dict(bench='align', n_images=c[0], graph=c[1], n_edges=edges[c], height=height, width=width, niter=niter,
               device=device)
    if not budget.allows(estimate(c, cost)):
      emit(dict(row, skipped=f'time budget ({budget.left():.0f} s left)'))
      continue
    start = time.perf_counter()
    row.update(jax_align(pairs(c), niter, lr))
    cost = (edges[c], time.perf_counter() - start)
    emit(compare(row, refs.get(c), niter, on_gpu))


def main(argv):
  del argv
  f = flags.FLAGS
  # The reference runs before JAX's first computation; finding the backend must not take the GPU's memory.
  os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
  import jax  # noqa: PLC0415
  default = '512x384' if jax.default_backend() == 'gpu' else '128x96'
  width, height = map(int, (f.resolution or default).split('x'))
  run(sizes=[int(s) for s in f.sizes], height=height, width=width, niter=f.niter, torch_python=f.torch_python,
      torch_loop_s=f.torch_loop_s, budget=Budget(f.budget_s))


if __name__ == '__main__':
  from absl import app, flags
  flags.DEFINE_list('sizes', ['8', '20', '50'], 'Numbers of images.')
  flags.DEFINE_integer('niter', 300, 'Optimisation steps.')
  flags.DEFINE_string('resolution', None, 'WxH of the predictions (default: 512x384 on a GPU, 128x96 on a CPU).')
  flags.DEFINE_string('torch_python', None, 'A Python with torch + mini-dust3r: also run the PyTorch reference.')
  flags.DEFINE_float('torch_loop_s', 60.0, 'Seconds of PyTorch loop per configuration (more steps: extrapolated).')
  flags.DEFINE_float('budget_s', None, 'Time budget of the whole run (seconds; default: none).')
  app.run(main)
