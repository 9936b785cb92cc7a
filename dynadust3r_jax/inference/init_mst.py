"""Minimum-spanning-tree initialisation of the global alignment (spec dust3r.md §3.3 "MST init";
dust3r/cloud_opt/init_im_poses.py `init_minimum_spanning_tree` + `init_from_pts3d`). numpy/scipy/OpenCV,
runs once before the jitted optimiser.

1. edge score mean(C_i)·mean(C_j); maximum spanning tree = scipy minimum_spanning_tree of −score;
2. the strongest tree edge seeds the world frame (camera i = identity, focal by Weiszfeld);
3. the other tree edges, strongest first, chain weighted Umeyama registrations (weights C, with scale);
4. missing focals from the best edge where the image is first; missing poses by RANSAC-PnP (SQPNP);
5. pairwise poses by Umeyama of each edge's view-i points onto the chained points, everything rescaled so
   that the geometric mean of the pairwise scales is base_scale, log-depth from the chained points.

Known poses/focals/principal points (presets) are honoured: known focals and principal points replace the
estimates, also inside the RANSAC-PnP (the reference ignores known focals here and uses its Weiszfeld estimates;
the start differs, the optimum reached is the same — tests/test_global_align.py); with ≥2 known poses the
chained scene is similarity-aligned to them (camera centres and points along the optical axes, as the reference
does) and the pairwise scales are not normalised; with 1 known pose (the reference raises NotImplementedError)
the normalised scene is moved rigidly onto it.
"""
import cv2
import numpy as np
import scipy.sparse as sp
from scipy.spatial.distance import pdist
from scipy.sparse.csgraph import minimum_spanning_tree as _scipy_mst

from dynadust3r_jax.common import geometry as geo


def edge_scores(edges, conf_i, conf_j):
  """(E,) mean(C_i^e)·mean(C_j^e)."""
  return np.array([float(np.mean(conf_i[e], dtype=np.float64) * np.mean(conf_j[e], dtype=np.float64))
                   for e in range(len(edges))])


def fast_pnp(pts3d, focal, mask, pp=None, niter_pnp=10):
  """RANSAC-PnP (SQPNP, 5 px) of a (H,W,3) world pointmap against its pixel grid → (focal, (4,4) cam-to-world)
  or None. With focal None, the best (most inliers) of 21 focals geomspace(S/2, 3S), S = max(H,W)."""
  if mask.sum() < 4:
    return None
  H, W, _ = pts3d.shape
  pixels = geo.pixel_grid(H, W)
  pts3d = np.asarray(pts3d, np.float32)
  focals = np.geomspace(max(H, W) / 2, max(H, W) * 3, 21) if focal is None else [focal]
  pp = (W / 2, H / 2) if pp is None else pp
  best = (0,)
  for f in focals:
    K = np.float32([(f, 0, pp[0]), (0, f, pp[1]), (0, 0, 1)])
    success, rvec, tvec, inliers = cv2.solvePnPRansac(pts3d[mask], pixels[mask], K, None,
                                                      iterationsCount=niter_pnp, reprojectionError=5,
                                                      flags=cv2.SOLVEPNP_SQPNP)
    if success and len(inliers) > best[0]:
      best = (len(inliers), rvec, tvec, f)
  if not best[0]:
    return None
  _, rvec, tvec, f = best
  world_to_cam = geo.similarity_matrix(1.0, cv2.Rodrigues(rvec)[0], tvec.ravel())
  return float(f), np.linalg.inv(world_to_cam.astype(np.float32)).astype(np.float64)


def spanning_tree_scene(edges, pts_i, pts_j, conf_i, conf_j, im_conf, min_conf_thr, niter_pnp=10,
                        known_focals=None, known_pp=None):
  """Chain the pairwise pointmaps along the maximum spanning tree.

  edges: list of (i,j); pts_i/pts_j per edge (H,W,3) of view i / j, conf_i/conf_j per edge (H,W) (arrays or
  lists; images may differ in size); im_conf list of (H,W).
  known_focals/known_pp: {image: value}. Returns (pts3d list of (H,W,3) world points, focals list, (N,4,4)
  cam-to-world).
  """
  known_focals = known_focals or {}
  known_pp = known_pp or {}
  n_imgs = len(im_conf)
  index = {tuple(e): k for k, e in enumerate(edges)}
  scores = edge_scores(edges, conf_i, conf_j)
  graph = sp.dok_array((n_imgs, n_imgs))
  for (i, j), s in zip(edges, scores):
    graph[i, j] = -s
  tree = _scipy_mst(graph).tocoo()
  todo = sorted(zip(-tree.data, tree.row.tolist(), tree.col.tolist()))

  def focal_of(n, e):
    return known_focals[n] if n in known_focals else geo.estimate_focal_weiszfeld(pts_i[e], known_pp.get(n))

  pts3d = [None] * n_imgs
  poses = [None] * n_imgs
  focals = [None] * n_imgs
  _, i, j = todo.pop()
  e = index[(i, j)]
  pts3d[i] = np.asarray(pts_i[e], np.float64)
  pts3d[j] = np.asarray(pts_j[e], np.float64)
  done = {i, j}
  poses[i] = np.eye(4)
  focals[i] = focal_of(i, e)
  while todo:
    score, i, j = todo.pop()
    if focals[i] is None:  # the reference's quirk: `e` is still the previous iteration's edge here
      focals[i] = focal_of(i, e)
    if i in done or j in done:  # register the edge on its placed image, place the other one
      e = index[(i, j)]
      views = {i: (pts_i[e], conf_i[e]), j: (pts_j[e], conf_j[e])}
      placed, new = (i, j) if i in done else (j, i)
      s, R, T = geo.umeyama(views[placed][0], pts3d[placed], views[placed][1])
      pts3d[new] = geo.apply_transform(geo.similarity_matrix(s, R, T), np.asarray(views[new][0], np.float64))
      done.add(new)
      if poses[i] is None:
        poses[i] = geo.similarity_matrix(1.0, R, T)
    else:
      todo.insert(0, (score, i, j))

  for e in np.argsort(-scores, kind='stable'):  # best edge first
    i = edges[e][0]
    if focals[i] is None:
      focals[i] = focal_of(i, e)
  for n in range(n_imgs):
    if poses[n] is None:
      found = fast_pnp(pts3d[n], focals[n], im_conf[n] > min_conf_thr,
                       pp=known_pp.get(n), niter_pnp=niter_pnp)
      if found:
        focal, poses[n] = found
        if n not in known_focals:
          focals[n] = focal
    if poses[n] is None:
      poses[n] = np.eye(4)
  return pts3d, focals, np.stack(poses)


def align_multiple_poses(src, dst):
  """Similarity (s, R, t) taking the (K,4,4) cam-to-world `src` onto `dst` (centres + points one hundredth
  of the median pairwise centre distance along the optical axes)."""
  def centre_and_z(P):
    c = np.asarray(P, np.float64)[:, :3, 3]
    eps = np.median(pdist(c)) / 100
    return np.concatenate([c, c + eps * np.asarray(P, np.float64)[:, :3, 2]])
  return geo.umeyama(centre_and_z(src), centre_and_z(dst), np.ones(2 * len(src)))


def init_mst(edges, pts_i, pts_j, conf_i, conf_j, im_conf, *, min_conf_thr=3.0, base_scale=0.5, niter_pnp=10,
             known_poses=None, known_focals=None, known_pp=None):
  """Parameters of the optimiser from the MST scene (pixels raveled, padded to the largest area).

  known_poses: {image: (4,4) cam-to-world}. Returns dict pw_poses (E,8), im_poses (N,7), im_depthmaps (N,H·W),
  im_focals (N,1) (only estimated / known entries meaningful: NaN where unknown) as float64 numpy.
  """
  known_poses = known_poses or {}
  pts3d, focals, poses = spanning_tree_scene(edges, pts_i, pts_j, conf_i, conf_j, im_conf, min_conf_thr,
                                             niter_pnp, known_focals, known_pp)
  E, n_imgs = len(edges), len(im_conf)
  known = sorted(known_poses)

  def register_pairs():
    pw = np.zeros((E, 8))
    for e, (i, _) in enumerate(edges):
      s, R, T = geo.umeyama(pts_i[e], pts3d[i], conf_i[e])
      pw[e] = geo.matrix_to_pose(geo.similarity_matrix(1.0, R, T), scale=s)
    return pw

  if len(known) >= 2:
    s, R, T = align_multiple_poses(poses[known], np.stack([known_poses[n] for n in known]))
    trf = geo.similarity_matrix(s, R, T)
    poses = trf @ poses
    poses[:, :3, :3] /= s
    pts3d = [geo.apply_transform(trf, p) for p in pts3d]
    pw_poses = register_pairs()
  else:
    pw_poses = register_pairs()
    s_factor = np.exp(np.log(base_scale) - pw_poses[:, -1].mean())
    poses[:, :3, 3] *= s_factor
    pts3d = [p * s_factor for p in pts3d]
    if len(known) == 1:  # move the normalised scene rigidly onto the known camera
      n = known[0]
      trf = np.asarray(known_poses[n], np.float64) @ np.linalg.inv(poses[n])
      poses = trf @ poses
      pts3d = [geo.apply_transform(trf, p) for p in pts3d]
      pw_poses = register_pairs()

  im_poses = np.zeros((n_imgs, 7))
  depth = np.zeros((n_imgs, max(p.shape[0] * p.shape[1] for p in pts3d)))  # log depth, 0 on padding
  for n in range(n_imgs):
    z = geo.apply_transform(np.linalg.inv(poses[n]), pts3d[n])[..., 2].reshape(-1)
    with np.errstate(divide='ignore', invalid='ignore'):
      depth[n, :len(z)] = np.nan_to_num(np.log(z), nan=0.0, neginf=0.0)
    im_poses[n] = geo.matrix_to_pose(poses[n])
  # NaN where unknown or not positive (a degenerate Weiszfeld estimate): global_align uses its default there
  im_focals = np.array([[20.0 * np.log(f) if f is not None and f > 0 else np.nan] for f in focals])
  return {'pw_poses': pw_poses, 'im_poses': im_poses, 'im_depthmaps': depth, 'im_focals': im_focals}
