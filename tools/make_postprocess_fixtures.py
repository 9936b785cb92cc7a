"""Make the post-processing reference fixture (clean_pointcloud, segment_sky) in tests/fixtures/ (dev tool).

usage:  /work/venv/ref/bin/python tools/make_postprocess_fixtures.py tests/fixtures

Reference: mini-dust3r 0.1.2 — `BasePCOptimizer.clean_pointcloud` (the same loop as the official
standalone function, returning a copy) and `mini_dust3r.viz.segment_sky`. Environment: the venv of
tools/make_fixtures.py (torch CPU, mini-dust3r, numpy, scipy, opencv-python-headless).

clean_pointcloud is called unbound on a small stand-in object that has what it reads (get_im_poses,
get_intrinsics, get_depthmaps, depth_to_pts3d, im_conf, imshapes, n_imgs); its world points are computed
the way PointCloudOptimizer.depth_to_pts3d does (pixel grid, depth·(uv − pp)/f, then the pose).

Writes postprocess_reference.npz (fixed seeds, one thread):
  cam_to_world (N,4,4), intrinsics (N,3,3), depthmaps (N,H,W), pts3d (N,H,W,3) world, conf (N,H,W): the scene
  cleaned (N,H,W): conf after clean_pointcloud(tol=0.001, max_bad_conf=0)
  sky_img{k} (H,W,3) float32 in [0,1] and sky_mask{k} (H,W) bool for k = 0, 1
"""
import os

os.environ.setdefault('OMP_NUM_THREADS', '1')

import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
if not hasattr(np, 'in1d'):  # removed in numpy 2.4; segment_sky calls it: in1d(a, b) == isin(a, b).ravel()
  np.in1d = lambda a, b: np.isin(a, b).ravel()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import torchvision_stub  # noqa: E402

torchvision_stub.install()

from mini_dust3r.cloud_opt.base_opt import BasePCOptimizer  # noqa: E402
from mini_dust3r.utils.geometry import geotrf  # noqa: E402
from mini_dust3r.viz import segment_sky  # noqa: E402

N, H, W = 4, 24, 32


def _rotation(rng, max_rad):
  axis = rng.normal(size=3)
  axis /= np.linalg.norm(axis)
  a = rng.uniform(-max_rad, max_rad)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


class _Scene:
  """What clean_pointcloud reads of a PointCloudOptimizer."""

  def __init__(self, cam_to_world, intrinsics, depthmaps, conf):
    self.n_imgs, self.imshapes = len(depthmaps), [(H, W)] * len(depthmaps)
    self._poses, self._K, self._depth = cam_to_world, intrinsics, depthmaps
    self.im_conf = [c.clone() for c in conf]

  def get_im_poses(self):
    return self._poses

  def get_intrinsics(self):
    return self._K

  def get_depthmaps(self):
    return [d for d in self._depth]

  def depth_to_pts3d(self):
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing='ij')
    grid = torch.stack([u, v], -1).reshape(-1, 2)                                  # (H*W, 2) = (x, y)
    out = []
    for n in range(self.n_imgs):
      d = self._depth[n].reshape(-1, 1)
      f, pp = self._K[n, 0, 0], self._K[n, :2, 2]
      out.append(geotrf(self._poses[n], torch.cat([d * (grid - pp) / f, d], -1)))  # (H*W, 3) world
    return out


def _scene(rng):
  cam_to_world = np.tile(np.eye(4), (N, 1, 1))
  for n in range(1, N):
    cam_to_world[n, :3, :3] = _rotation(rng, 0.15)
    cam_to_world[n, :3, 3] = rng.normal(scale=0.2, size=3)
  f = rng.uniform(28, 36, N)
  intrinsics = np.zeros((N, 3, 3))
  intrinsics[:, 0, 0] = intrinsics[:, 1, 1] = f
  intrinsics[:, :2, 2] = (W / 2, H / 2)
  intrinsics[:, 2, 2] = 1
  yy, xx = np.mgrid[:H, :W] / np.array([H, W])[:, None, None]
  depthmaps = np.stack([2 + 0.5 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(4 * yy + rng.uniform(0, 6))
                        + rng.uniform(-0.3, 0.3) for _ in range(N)])
  conf = rng.uniform(1, 5, (N, H, W))
  return [torch.tensor(a, dtype=torch.float32) for a in (cam_to_world, intrinsics, depthmaps, conf)]


def _sky_image(rng, kind):
  """A sky-like bright band above textured ground (kind 0), or bright grey clouds in patches (kind 1)."""
  img = rng.uniform(0, 0.6, (H * 2, W * 2, 3))
  if kind == 0:
    img[:18] = np.array([0.35, 0.55, 0.95]) + rng.uniform(-0.03, 0.03, (18, W * 2, 3))
  else:
    img[5:20, 3:30] = 0.92 + rng.uniform(-0.02, 0.02, (15, 27, 3))
    img[30:40, 40:60] = 0.9
  return img.clip(0, 1).astype(np.float32)


def main(out_dir):
  rng = np.random.default_rng(11)
  cam_to_world, intrinsics, depthmaps, conf = _scene(rng)
  scene = _Scene(cam_to_world, intrinsics, depthmaps, conf)
  pts3d = torch.stack(scene.depth_to_pts3d()).reshape(N, H, W, 3)
  cleaned = BasePCOptimizer.clean_pointcloud(scene, tol=0.001, max_bad_conf=0)
  arrays = dict(cam_to_world=cam_to_world, intrinsics=intrinsics, depthmaps=depthmaps, pts3d=pts3d, conf=conf,
                cleaned=torch.stack(cleaned.im_conf))
  arrays = {k: v.numpy() for k, v in arrays.items()}
  for k in range(2):
    arrays[f'sky_img{k}'] = _sky_image(rng, k)
    arrays[f'sky_mask{k}'] = segment_sky(arrays[f'sky_img{k}']).numpy()
  print('cleaned points:', int((arrays['cleaned'] != arrays['conf']).sum()), 'of', arrays['conf'].size,
        '| sky pixels:', [int(arrays[f'sky_mask{k}'].sum()) for k in range(2)])
  np.savez(os.path.join(out_dir, 'postprocess_reference.npz'), **arrays)


if __name__ == '__main__':
  main(sys.argv[1])
