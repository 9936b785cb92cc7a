"""DUSt3R's PairViewer (spec dust3r.md §3.4; dust3r/cloud_opt/pair_viewer.py): the scene of exactly two images
from their symmetrized pair, with no optimisation. numpy/OpenCV.

For each image i: score_i = mean(C_i)·mean(C_j) of edge (i, 1−i); focal by Weiszfeld on X_i^{(i,1−i)} with
pp = (W/2, H/2); the pose of camera i in camera 1−i by RANSAC-PnP (SQPNP, 100 iterations, 5 px) of image i's
points predicted in frame 1−i (X_j^{(1−i,i)}) against image i's pixels where im_conf_i > min_conf_thr
(identity when PnP fails). The image with the higher score is the world frame; depths are the z of the
points expressed in each camera; pts3d re-derived from depth, focal, pp and pose.
"""
import numpy as np

from dynadust3r_jax.common import geometry as geo
from dynadust3r_jax.inference.global_align import prepare
from dynadust3r_jax.inference.scene import Scene
from dynadust3r_jax.inference.init_mst import fast_pnp


def pair_viewer(output, min_conf_thr=3.0):
  """DUSt3R inference output of the two ordered pairs (0,1), (1,0) of two images (see global_align) → Scene."""
  _, info = prepare(output, min_conf_thr)
  edges = info['edges']
  if info['n_imgs'] != 2 or sorted(edges) != [(0, 1), (1, 0)]:
    raise ValueError(f'pair_viewer needs exactly the two edges (0,1) and (1,0) of 2 images, got {edges}; '
                     'use global_align for more images')
  shapes = info['shapes']
  e = {ij: k for k, ij in enumerate(edges)}
  pts_i, pts_j, conf_i, conf_j = info['pts_i'], info['pts_j'], info['conf_i'], info['conf_j']
  pps = [np.array([w / 2, h / 2]) for h, w in shapes]
  scores, focals, rel_poses = [], [], []
  for i in range(2):
    k = e[(i, 1 - i)]
    pp = pps[i]
    scores.append(float(np.mean(conf_i[k], dtype=np.float64) * np.mean(conf_j[k], dtype=np.float64)))
    focals.append(np.float32(geo.estimate_focal_weiszfeld(pts_i[k], pp)))
    found = fast_pnp(pts_j[e[(1 - i, i)]], float(focals[i]), info['im_conf'][i] > min_conf_thr, niter_pnp=100)
    rel_poses.append(np.eye(4) if found is None else found[1])
  if scores[0] > scores[1]:  # world = camera 0
    poses = [np.eye(4), rel_poses[1]]
    k = e[(0, 1)]
    depth = [pts_i[k][..., 2], geo.apply_transform(np.linalg.inv(rel_poses[1]), pts_j[k])[..., 2]]
  else:  # world = camera 1
    poses = [rel_poses[0], np.eye(4)]
    k = e[(1, 0)]
    depth = [geo.apply_transform(np.linalg.inv(rel_poses[0]), pts_j[k])[..., 2], pts_i[k][..., 2]]
  poses = np.stack(poses).astype(np.float32)
  depth = [d.astype(np.float32) for d in depth]
  focals = np.array(focals, np.float32)
  pp = np.array(pps, np.float32)
  K = np.zeros((2, 3, 3), np.float32)
  K[:, 0, 0] = K[:, 1, 1] = focals
  K[:, :2, 2] = pp
  K[:, 2, 2] = 1
  pts3d = []
  for n in range(2):
    v, u = np.mgrid[:shapes[n][0], :shapes[n][1]].astype(np.float32)
    cam = np.stack([(u - pp[n, 0]) / focals[n], (v - pp[n, 1]) / focals[n], np.ones_like(u)], -1) * depth[n][..., None]
    pts3d.append((cam @ poses[n, :3, :3].T + poses[n, :3, 3]).astype(np.float32))
  same = shapes[0] == shapes[1]
  return Scene(cam_to_world=poses, focals=focals, principal_points=pp, intrinsics=K,
               depthmaps=np.stack(depth) if same else depth, pts3d=np.stack(pts3d) if same else pts3d,
               conf=np.stack(info['im_conf']) if same else info['im_conf'], min_conf_thr=min_conf_thr)
