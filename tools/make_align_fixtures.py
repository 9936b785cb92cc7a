"""Make the global-alignment parity fixture tests/fixtures/align_synthetic.npz (dev tool; CI only reads it).

usage:  /work/venv/ref/bin/python tools/make_align_fixtures.py tests/fixtures

The reference is mini-dust3r 0.1.2's `cloud_opt` (a packaged copy of the official DUSt3R global alignment,
spec dust3r.md §3.3, §7), torch CPU float32, one thread, fixed seeds; it imports torchvision only for image
loading, so a stub module stands in for it here.

Inputs are synthetic pairwise predictions of a static scene (numpy, seed 0): N=5 cameras (focals 27..33 px,
small rotations, translations of ~0.5) looking at a textured height field z = 4 + bumps, H×W = 24×32. For every
ordered pair e=(i,j) of the symmetrized complete graph (DUSt3R's order: (1,0),(2,0),(2,1),… then the reversed
pairs), pred1.pts3d = image i's points in camera i, pred2.pts3d_in_other_view = image j's points in camera i,
both times a random per-pair scale exp(U(-0.3,0.3)) plus N(0, 0.004·depth) noise; confidences U(1,5).

Run: `global_aligner(output, mode=PointCloudOptimizer)` after torch.manual_seed(0), then `init='mst'` (the
reference's init_minimum_spanning_tree, niter_PnP=10), then 300 iterations of `global_alignment_iter` (cosine,
lr 0.01, lr_min 1e-6, Adam β=(0.9,0.9)) recording the loss of every step, and a second run of 100 linear-schedule
iterations from the same MST start (losses only).

Keys (float32 unless noted):
  gt_cam_to_world (N,4,4), gt_focals (N,), gt_depth (N,H,W)          the synthetic scene
  edges (E,2) int32; pts3d_i, pts3d_j (E,H,W,3); conf_i, conf_j (E,H,W)   the pairwise predictions
  rand_{pw_poses (E,8), im_poses (N,7), im_depthmaps (N,HW), im_focals (N,1)}   torch.randn initial parameters
  mst_{pw_poses, im_poses, im_depthmaps, im_focals, im_pp (N,2)}     parameters after the MST init
  mst_cam_to_world (N,4,4), mst_focals (N,), mst_depth (N,H,W)       decoded MST init
  mst_loss (), mst_grad_{pw_poses, im_poses, im_depthmaps, im_focals}   loss and gradient at the MST init
  losses (300,) float64                                              loss before each step (cosine run)
  final_{pw_poses, im_poses, im_depthmaps, im_focals}, final_cam_to_world, final_focals, final_depth, final_pts3d
  linear_losses (100,) float64                                       linear schedule, niter=100
  rand_losses (100,) float64                                         cosine, niter=100, from the rand_ start
  pair_edges (2,) int32: the edges (1,0), (0,1) of images 0 and 1, run through PairViewer (min_conf_thr=3):
  pair_cam_to_world (2,4,4), pair_focals (2,), pair_depth (2,H,W), pair_pts3d (2,H,W,3)
  known_{mst,known_poses}_*: every pose and focal preset to the GT (preset_pose, preset_focal), init 'mst' or
  'known_poses', 300 cosine steps: _pw (E,4,4) decoded pairwise poses and _im_depthmaps (N,HW) after the init,
  _losses (300,), _final_pw, _final_depth (N,H,W)
Re-running reproduces the file byte for byte.

A second file, align_mixed.npz, covers images of different sizes (parameters padded to the largest area):
4 images of 24×32, 32×24, 24×32, 20×36 (seed 1), 12 edges; keys shapes (N,2), edges, pts3d_i/pts3d_j (Σ h·w, 3)
and conf_i/conf_j (Σ h·w) raveled per edge and concatenated in edge order, gt_cam_to_world, gt_focals,
mst_* and mst_grad_* as above (im_depthmaps padded to (N, max area)), mst_loss, losses (100,) cosine,
final_cam_to_world, final_focals, final_depth (Σ h·w over images); pair_edges (2,), pair_cam_to_world, pair_focals,
pair_depth, pair_pts3d: PairViewer on images 0 and 1 (two sizes).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import torchvision_stub  # noqa: E402

N_IMAGES, H, W = 5, 24, 32
NITER = 300


def _rotation(axis_angle):
  """(3,) axis-angle → (3,3) rotation (Rodrigues)."""
  theta = np.linalg.norm(axis_angle)
  k = axis_angle / theta
  kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
  return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def _height(x, y):
  return 4.0 + 0.4 * np.sin(1.3 * x + 0.5) * np.cos(1.1 * y) + 0.15 * np.sin(3.1 * x - 2.0 * y)


def synthetic_scene(seed=0, shapes=None):
  """GT cameras and depth of a height field seen by len(shapes) cameras (default N_IMAGES of H×W), and the
  pairwise predictions of the symmetrized complete graph (per-image / per-edge lists, float64)."""
  shapes = shapes or [(H, W)] * N_IMAGES
  n_imgs = len(shapes)
  rng = np.random.default_rng(seed)
  focals = rng.uniform(27.0, 33.0, n_imgs)
  cam_to_world = np.tile(np.eye(4), (n_imgs, 1, 1))
  for n in range(n_imgs):
    cam_to_world[n, :3, :3] = _rotation(rng.normal(size=3) * 0.08 + 1e-9)
    cam_to_world[n, :3, 3] = rng.uniform(-0.5, 0.5, 3) * np.array([1.0, 1.0, 0.3])
  depth, pts_cam = [], []
  for n, (h, w) in enumerate(shapes):
    v, u = np.mgrid[:h, :w].astype(np.float64)
    rays_cam = np.stack([(u - w / 2) / focals[n], (v - h / 2) / focals[n], np.ones_like(u)], -1)
    rays = rays_cam @ cam_to_world[n, :3, :3].T
    origin = cam_to_world[n, :3, 3]
    t = np.full((h, w), 4.0)
    for _ in range(100):  # fixed point of o_z + t d_z = h(o_xy + t d_xy)
      p = origin + t[..., None] * rays
      t = (_height(p[..., 0], p[..., 1]) - origin[2]) / rays[..., 2]
    depth.append(t)  # rays_cam has z = 1, so the ray parameter is the depth
    pts_cam.append(t[..., None] * rays_cam)
  edges = [(i, j) for i in range(n_imgs) for j in range(i)]
  edges += [(j, i) for i, j in edges]
  world_to_cam = np.linalg.inv(cam_to_world)
  pts_i, pts_j, conf_i, conf_j = [], [], [], []
  for i, j in edges:
    scale = np.exp(rng.uniform(-0.3, 0.3))
    rel = world_to_cam[i] @ cam_to_world[j]  # camera j → camera i
    xj = pts_cam[j] @ rel[:3, :3].T + rel[:3, 3]
    pts_i.append(scale * (pts_cam[i] + rng.normal(size=shapes[i] + (3,)) * 0.004 * depth[i][..., None]))
    pts_j.append(scale * (xj + rng.normal(size=shapes[j] + (3,)) * 0.004 * depth[j][..., None]))
    conf_i.append(rng.uniform(1.0, 5.0, shapes[i]))
    conf_j.append(rng.uniform(1.0, 5.0, shapes[j]))
  return dict(gt_cam_to_world=cam_to_world, gt_focals=focals, gt_depth=depth, edges=np.asarray(edges, np.int32),
              pts3d_i=pts_i, pts3d_j=pts_j, conf_i=conf_i, conf_j=conf_j)


def _f32(x):
  """float32 copy (a copy matters: Tensor.numpy() shares the parameter's memory)."""
  return np.array(x, np.float32)


def _ravel_cat(arrays, channels=None):
  """List of (h,w[,c]) → (Σ h·w[,c]) float32."""
  return _f32(np.concatenate([np.reshape(a, (-1,) + ((channels,) if channels else ())) for a in arrays]))


def mixed_sizes_fixture(out_dir):
  """align_mixed.npz: 4 images of three sizes (landscape, portrait, wide), MST init, loss/grad at the init and
  100 cosine steps. Per-edge/per-image arrays are raveled and concatenated (split them with `shapes`)."""
  import torch
  from mini_dust3r.cloud_opt import GlobalAlignerMode, global_aligner
  from mini_dust3r.cloud_opt import init_im_poses
  from mini_dust3r.cloud_opt.base_opt import global_alignment_iter

  shapes = [(24, 32), (32, 24), (24, 32), (20, 36)]
  scene_data = synthetic_scene(seed=1, shapes=shapes)
  edges = scene_data['edges']
  E = len(edges)
  t = lambda xs: [torch.from_numpy(_f32(x)) for x in xs]  # noqa: E731
  views = [{'img': [torch.zeros((1, 3) + shapes[n]) for n in edges[:, k]],
            'true_shape': torch.tensor([shapes[n] for n in edges[:, k]], dtype=torch.int32),
            'idx': edges[:, k].tolist(), 'instance': [''] * E} for k in (0, 1)]
  output = {'view1': views[0], 'view2': views[1],
            'pred1': {'pts3d': t(scene_data['pts3d_i']), 'conf': t(scene_data['conf_i'])},
            'pred2': {'pts3d_in_other_view': t(scene_data['pts3d_j']), 'conf': t(scene_data['conf_j'])}, 'loss': None}
  torch.manual_seed(0)
  scene = global_aligner(output, device='cpu', mode=GlobalAlignerMode.PointCloudOptimizer, verbose=False)
  init_im_poses.init_minimum_spanning_tree(scene, niter_PnP=10)
  out = {'shapes': np.asarray(shapes, np.int32), 'edges': edges,
         'pts3d_i': _ravel_cat(scene_data['pts3d_i'], 3), 'pts3d_j': _ravel_cat(scene_data['pts3d_j'], 3),
         'conf_i': _ravel_cat(scene_data['conf_i']), 'conf_j': _ravel_cat(scene_data['conf_j']),
         'gt_cam_to_world': _f32(scene_data['gt_cam_to_world']), 'gt_focals': _f32(scene_data['gt_focals'])}
  names = ('pw_poses', 'im_poses', 'im_depthmaps', 'im_focals')
  for k in names:
    out[f'mst_{k}'] = _f32(getattr(scene, k).detach().numpy())
  loss = scene()
  loss.backward()
  out['mst_loss'] = np.float32(loss.item())
  for k in names:
    out[f'mst_grad_{k}'] = _f32(getattr(scene, k).grad.numpy())
    getattr(scene, k).grad = None
  optimizer = torch.optim.Adam([p for p in scene.parameters() if p.requires_grad], lr=0.01, betas=(0.9, 0.9))
  out['losses'] = np.array([global_alignment_iter(scene, n, 100, 0.01, 1e-6, optimizer, 'cosine')
                            for n in range(100)], np.float64)
  with torch.no_grad():
    out['final_cam_to_world'] = _f32(scene.get_im_poses().numpy())
    out['final_focals'] = _f32(scene.get_focals().numpy().reshape(-1))
    out['final_depth'] = _ravel_cat([d.numpy() for d in scene.get_depthmaps()])
  pair = [int(np.flatnonzero((edges == ij).all(1))[0]) for ij in ((1, 0), (0, 1))]  # images 0 (24×32), 1 (32×24)
  out['pair_edges'] = np.asarray(pair, np.int32)
  pair_output = {k: {kk: ([vv[p] for p in pair] if isinstance(vv, list) else vv[pair]) for kk, vv in output[k].items()}
                 for k in ('view1', 'view2', 'pred1', 'pred2')}
  pair_output['loss'] = None
  viewer = global_aligner(pair_output, device='cpu', mode=GlobalAlignerMode.PairViewer, verbose=False)
  with torch.no_grad():
    out['pair_cam_to_world'] = _f32(viewer.get_im_poses().numpy())
    out['pair_focals'] = _f32(viewer.get_focals().numpy().reshape(-1))
    out['pair_depth'] = _ravel_cat([d.numpy() for d in viewer.get_depthmaps()])
    out['pair_pts3d'] = _ravel_cat([p.numpy() for p in viewer.get_pts3d()], 3)
  path = Path(out_dir) / 'align_mixed.npz'
  np.savez(path, **out)
  print(f'wrote {path} ({path.stat().st_size / 1e6:.2f} MB); init loss {out["mst_loss"]:.6f} '
        f'→ {out["losses"][-1]:.6f}')


def main(out_dir):
  torchvision_stub.install()
  import torch
  torch.set_num_threads(1)
  from mini_dust3r.cloud_opt import GlobalAlignerMode, global_aligner
  from mini_dust3r.cloud_opt import init_im_poses
  from mini_dust3r.cloud_opt.base_opt import global_alignment_iter

  data = synthetic_scene()
  for k in ('gt_cam_to_world', 'gt_focals', 'gt_depth', 'pts3d_i', 'pts3d_j', 'conf_i', 'conf_j'):
    data[k] = _f32(data[k])
  E = len(data['edges'])
  t = torch.from_numpy
  imgs = torch.zeros((E, 3, H, W))
  shape = torch.tensor([[H, W]] * E, dtype=torch.int32)
  output = {
      'view1': {'img': imgs, 'true_shape': shape, 'idx': data['edges'][:, 0].tolist(), 'instance': [''] * E},
      'view2': {'img': imgs, 'true_shape': shape, 'idx': data['edges'][:, 1].tolist(), 'instance': [''] * E},
      'pred1': {'pts3d': t(data['pts3d_i']), 'conf': t(data['conf_i'])},
      'pred2': {'pts3d_in_other_view': t(data['pts3d_j']), 'conf': t(data['conf_j'])},
      'loss': None}

  def params(scene):
    return {'pw_poses': scene.pw_poses, 'im_poses': scene.im_poses, 'im_depthmaps': scene.im_depthmaps,
            'im_focals': scene.im_focals, 'im_pp': scene.im_pp}

  def dump(prefix, scene, keys=('pw_poses', 'im_poses', 'im_depthmaps', 'im_focals', 'im_pp')):
    for k in keys:
      data[f'{prefix}_{k}'] = params(scene)[k].detach().numpy().astype(np.float32)

  def decoded(prefix, scene):
    with torch.no_grad():
      data[f'{prefix}_cam_to_world'] = scene.get_im_poses().numpy().astype(np.float32)
      data[f'{prefix}_focals'] = scene.get_focals().numpy().reshape(-1).astype(np.float32)
      data[f'{prefix}_depth'] = torch.stack(scene.get_depthmaps()).numpy().astype(np.float32)
      data[f'{prefix}_pts3d'] = torch.stack(scene.get_pts3d()).numpy().astype(np.float32)

  torch.manual_seed(0)
  scene = global_aligner(output, device='cpu', mode=GlobalAlignerMode.PointCloudOptimizer, verbose=False)
  dump('rand', scene, ('pw_poses', 'im_poses', 'im_depthmaps', 'im_focals'))
  init_im_poses.init_minimum_spanning_tree(scene, niter_PnP=10)
  dump('mst', scene)
  decoded('mst', scene)
  del data['mst_pts3d']
  start = {k: v.detach().clone() for k, v in scene.state_dict().items()}

  loss = scene()
  loss.backward()
  data['mst_loss'] = np.float32(loss.item())
  for k in ('pw_poses', 'im_poses', 'im_depthmaps', 'im_focals'):
    data[f'mst_grad_{k}'] = params(scene)[k].grad.numpy().astype(np.float32)
    params(scene)[k].grad = None

  def run(niter, schedule):
    trainable = [p for p in scene.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=0.01, betas=(0.9, 0.9))
    return np.array([global_alignment_iter(scene, n, niter, 0.01, 1e-6, optimizer, schedule)
                     for n in range(niter)], np.float64)

  data['losses'] = run(NITER, 'cosine')
  dump('final', scene, ('pw_poses', 'im_poses', 'im_depthmaps', 'im_focals'))
  decoded('final', scene)
  scene.load_state_dict(start)
  data['linear_losses'] = run(100, 'linear')
  with torch.no_grad():
    for k in ('pw_poses', 'im_poses', 'im_depthmaps', 'im_focals'):
      params(scene)[k][:] = t(data[f'rand_{k}'])
  data['rand_losses'] = run(100, 'cosine')

  pair = np.array([0, int(np.flatnonzero((data['edges'] == (0, 1)).all(1))[0])], np.int32)
  assert (data['edges'][pair] == [(1, 0), (0, 1)]).all()
  data['pair_edges'] = pair
  def sel(d):
    return {k: (v[pair] if isinstance(v, torch.Tensor) else [v[p] for p in pair]) for k, v in d.items()}
  pair_output = {k: sel(output[k]) for k in ('view1', 'view2', 'pred1', 'pred2')}
  pair_output['loss'] = None
  viewer = global_aligner(pair_output, device='cpu', mode=GlobalAlignerMode.PairViewer, verbose=False)
  with torch.no_grad():
    data['pair_cam_to_world'] = viewer.get_im_poses().numpy().astype(np.float32)
    data['pair_focals'] = viewer.get_focals().numpy().reshape(-1).astype(np.float32)
    data['pair_depth'] = torch.stack(viewer.get_depthmaps()).numpy().astype(np.float32)
    data['pair_pts3d'] = torch.stack(viewer.get_pts3d()).numpy().astype(np.float32)

  Path(out_dir).mkdir(parents=True, exist_ok=True)
  for init in ('mst', 'known_poses'):  # every pose and focal preset to the ground truth
    torch.manual_seed(0)
    scene = global_aligner(output, device='cpu', mode=GlobalAlignerMode.PointCloudOptimizer, verbose=False)
    scene.preset_pose(list(data['gt_cam_to_world']))
    scene.preset_focal([float(f) for f in data['gt_focals']])
    if init == 'mst':
      init_im_poses.init_minimum_spanning_tree(scene, niter_PnP=10)
    else:
      init_im_poses.init_from_known_poses(scene, niter_PnP=10, min_conf_thr=scene.min_conf_thr)
    with torch.no_grad():
      data[f'known_{init}_pw'] = _f32(scene.get_pw_poses().numpy())
      data[f'known_{init}_im_depthmaps'] = _f32(scene.im_depthmaps.numpy())
    data[f'known_{init}_losses'] = run(NITER, 'cosine')
    with torch.no_grad():
      data[f'known_{init}_final_pw'] = _f32(scene.get_pw_poses().numpy())
      data[f'known_{init}_final_depth'] = _f32(torch.stack(scene.get_depthmaps()).numpy())

  out = Path(out_dir) / 'align_synthetic.npz'
  np.savez(out, **data)
  print(f'wrote {out} ({out.stat().st_size / 1e6:.2f} MB); init loss {data["mst_loss"]:.6f} '
        f'→ {data["losses"][-1]:.6f}; focals gt {np.round(data["gt_focals"], 2)} '
        f'final {np.round(data["final_focals"], 2)}')


if __name__ == '__main__':
  main(sys.argv[1] if len(sys.argv) > 1 else 'tests/fixtures')
  mixed_sizes_fixture(sys.argv[1] if len(sys.argv) > 1 else 'tests/fixtures')
