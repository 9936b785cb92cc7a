"""Initialisation of the global alignment when every camera pose and focal is known (spec dust3r.md §3.3
`init='known_poses'`; dust3r/cloud_opt/init_im_poses.py `init_from_known_poses`). numpy/OpenCV, runs once.

Per edge (i,j): RANSAC-PnP of image j's points (in frame i) with image i's known focal and principal point gives
camera j in frame i; the similarity taking (I, that pose) onto the known (pose_i, pose_j) (centres + points
along the optical axes) is the pairwise pose. Per image: log of the z of its best-confidence edge's view-i
points times that edge's scale.
"""
import numpy as np

from dynadust3r_jax.common import geometry as geo
from dynadust3r_jax.inference.init_mst import align_multiple_poses, fast_pnp


def init_known_poses(edges, pts_i, pts_j, conf_i, known_poses, known_focals, known_pp, *, min_conf_thr=3.0,
                     niter_pnp=10):
  """known_poses {image: (4,4) cam-to-world}, known_focals {image: px}, known_pp {image: (2,)}, all images.
  Returns dict pw_poses (E,8), im_depthmaps (N, max area) (float64; NaN rows of pw_poses where PnP failed)."""
  n_imgs = len(known_poses)
  E = len(edges)
  pw_poses = np.full((E, 8), np.nan)
  best = {}
  for e, (i, j) in enumerate(edges):
    conf = np.asarray(conf_i[e])
    mask = conf > min(min_conf_thr, conf.min() - 0.1)
    found = fast_pnp(pts_j[e], float(known_focals[i]), mask, pp=known_pp[i], niter_pnp=niter_pnp)
    scale = 1.0
    if found is not None:
      s, R, T = align_multiple_poses(np.stack([np.eye(4), found[1]]), np.stack([known_poses[i], known_poses[j]]))
      pw_poses[e] = geo.matrix_to_pose(geo.similarity_matrix(1.0, R, T), scale=s)
      scale = s
    score = float(np.mean(conf, dtype=np.float64))
    if score > best.get(i, (0.0,))[0]:
      best[i] = (score, e, scale)
  area = max(np.asarray(p).shape[0] * np.asarray(p).shape[1] for p in pts_i)
  depth = np.zeros((n_imgs, area))
  for n in range(n_imgs):
    if n not in best:
      raise ValueError(f"init='known_poses': image {n} is never the first view of a pair; use a symmetrized graph")
    _, e, scale = best[n]
    z = np.asarray(pts_i[e], np.float64)[..., 2].reshape(-1) * scale
    with np.errstate(divide='ignore', invalid='ignore'):
      depth[n, :len(z)] = np.nan_to_num(np.log(z), nan=0.0, neginf=0.0)
  return {'pw_poses': pw_poses, 'im_depthmaps': depth}
