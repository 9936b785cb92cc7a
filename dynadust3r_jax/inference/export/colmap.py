"""COLMAP sparse model (cameras.bin, images.bin, points3D.bin) from a scene, at the original image sizes, to
seed Gaussian splatting or COLMAP's own tools.

* one PINHOLE camera per image (camera_id = image_id = index + 1): fx, fy, cx, cy = K0 at the original size
  (COLMAP's convention: pixel centre at +0.5; common.original_intrinsics);
* image name = the view's 'name' (the original file name; video frames '<stem>_<frame:06d>'),
  pose = world_to_cam (COLMAP's qvec (w,x,y,z) and tvec; OpenCV axes, as COLMAP);
* points3D: the masked scene points, subsampled deterministically to at most max_points; each is observed
  at its own pixel centre, mapped to original-image pixels, and (multiview_tracks) in every other image
  where it projects in bounds onto a masked pixel whose depth agrees within depth_tol (relative), observed
  there at its exact projection. Colour = the image colour of its own pixel; error = the mean reprojection
  error of its track in original pixels.

The files are written here in COLMAP's classic binary layout (the one COLMAP ≥ 3.12, pycolmap, nerfstudio
and gsplat read; COLMAP ≥ 3.12 makes trivial rigs/frames when rigs.bin/frames.bin are absent). pycolmap is
not imported: its 4.x wheels export their own zlib symbols, and any zlib user loaded after it (PIL's PNG
encoder, cv2, Python's zlib) then aborts with a double free; the tests read the model back with pycolmap
in a subprocess.
"""
import os
import struct

import numpy as np
from scipy.spatial.transform import Rotation

from dynadust3r_jax.inference.export.common import (image_names, original_intrinsics, original_size,
                                                    processed_to_original_pixels, read_scene, to_uint8)

PINHOLE_MODEL_ID = 1  # COLMAP's camera model id: params fx, fy, cx, cy


def select_points(s, max_points, seed=0):
  """read_scene dict → (img (P,), row (P,), col (P,)) of masked pixels, at most max_points of them, a uniform
  sample drawn with numpy's default_rng(seed), in (image, row, column) order."""
  img, row, col = [], [], []
  for i, m in enumerate(s['mask']):
    r, c = np.nonzero(m)
    img.append(np.full(len(r), i)), row.append(r), col.append(c)
  img, row, col = np.concatenate(img), np.concatenate(row), np.concatenate(col)
  if max_points is not None and len(img) > max_points:
    keep = np.sort(np.random.default_rng(seed).choice(len(img), size=int(max_points), replace=False))
    img, row, col = img[keep], row[keep], col[keep]
  return img, row, col


def _observations(s, views, xyz, src, multiview_tracks, depth_tol):
  """→ per image j: (point indices (Pj,), original-pixel xy (Pj,2)) of the points observed in j."""
  obs = []
  for j in range(s['n']):
    own = np.nonzero(src[0] == j)[0]
    xy_own = processed_to_original_pixels(np.stack([src[2][own], src[1][own]], -1), views[j])  # (col, row)
    idx, xy = [own], [xy_own]
    if multiview_tracks:
      other = np.nonzero(src[0] != j)[0]
      w2c, K = s['world_to_cam'][j], s['K'][j]
      cam = xyz[other] @ w2c[:3, :3].T + w2c[:3, 3]  # (Q,3)
      z = cam[:, 2]
      front = z > 0
      proj = (cam @ K.T)[:, :2] / np.where(front, z, 1.)[:, None]  # processed pixel-index coordinates
      h, w = s['depth'][j].shape
      u, v = np.round(proj[:, 0]).astype(np.int64), np.round(proj[:, 1]).astype(np.int64)
      ok = front & (u >= 0) & (u < w) & (v >= 0) & (v < h)
      uc, vc = np.clip(u, 0, w - 1), np.clip(v, 0, h - 1)
      d = s['depth'][j][vc, uc]
      ok &= s['mask'][j][vc, uc] & (np.abs(z - d) <= depth_tol * np.abs(d))
      idx.append(other[ok])
      xy.append(processed_to_original_pixels(proj[ok], views[j]))
    obs.append((np.concatenate(idx), np.concatenate(xy)))
  return obs


def build_model(scene, views, max_points=50_000, seed=0, multiview_tracks=True, depth_tol=0.01):
  """→ dict of the model (see the module docstring), ids from 1:
  'cameras': [(camera_id, width, height, [fx, fy, cx, cy])],
  'images': [(image_id, name, world_to_cam (4,4), camera_id, xy (Pj,2) original pixels, point3D_id (Pj,))],
  'points3D': (xyz (P,3) f64, rgb (P,3) u8, error (P,), tracks [(image_ids (L,), point2D_idx (L,))])."""
  s = read_scene(scene, views)
  names = image_names(views)
  src = select_points(s, max_points, seed)
  xyz = np.array([s['pts3d'][i][r, c] for i, r, c in zip(*src)], np.float64).reshape(-1, 3)
  rgb = np.array([to_uint8(s['rgb'][i][r, c]) for i, r, c in zip(*src)], np.uint8).reshape(-1, 3)
  obs = _observations(s, views, xyz, src, multiview_tracks, depth_tol)

  cameras, images, Ks = [], [], []
  for j, (name, view) in enumerate(zip(names, views)):
    K0 = original_intrinsics(s['K'][j], view)
    w0, h0 = original_size(view)
    cameras.append((j + 1, w0, h0, [K0[0, 0], K0[1, 1], K0[0, 2], K0[1, 2]]))
    pidx, xy = obs[j]
    images.append((j + 1, name, s['world_to_cam'][j], j + 1, xy, pidx + 1))
    Ks.append(K0)

  # tracks: for each point, the (image_id, point2D_idx) of its observations, image by image
  img_of = np.concatenate([np.full(len(p), j + 1) for j, (p, _) in enumerate(obs)])
  idx2d = np.concatenate([np.arange(len(p)) for p, _ in obs])
  pts = np.concatenate([p for p, _ in obs])
  errs = np.concatenate([_reprojection_error(xyz[p], xy, s['world_to_cam'][j], Ks[j])
                         for j, (p, xy) in enumerate(obs)])
  order = np.argsort(pts, kind='stable')
  starts = np.searchsorted(pts[order], np.arange(len(xyz) + 1))
  tracks = [(img_of[order[a:b]], idx2d[order[a:b]]) for a, b in zip(starts[:-1], starts[1:])]
  error = np.array([errs[order[a:b]].mean() for a, b in zip(starts[:-1], starts[1:])]).reshape(-1)
  return {'cameras': cameras, 'images': images, 'points3D': (xyz, rgb, error, tracks)}


def _reprojection_error(xyz, xy, w2c, K0):
  """(P,3) world points, (P,2) observed original pixels → (P,) distance to their projections with K0."""
  cam = xyz @ w2c[:3, :3].T + w2c[:3, 3]
  proj = (cam @ K0.T)[:, :2] / cam[:, 2:3]
  return np.linalg.norm(proj - xy, axis=-1)


def write_colmap(scene, views, outdir, **kw):
  """Writes outdir/{cameras,images,points3D}.bin and returns outdir; kw as build_model."""
  model = build_model(scene, views, **kw)
  os.makedirs(outdir, exist_ok=True)
  with open(os.path.join(outdir, 'cameras.bin'), 'wb') as f:
    f.write(struct.pack('<Q', len(model['cameras'])))
    for cid, w, h, params in model['cameras']:
      f.write(struct.pack('<iiQQ4d', cid, PINHOLE_MODEL_ID, w, h, *params))
  with open(os.path.join(outdir, 'images.bin'), 'wb') as f:
    f.write(struct.pack('<Q', len(model['images'])))
    for iid, name, w2c, cid, xy, pids in model['images']:
      qx, qy, qz, qw = Rotation.from_matrix(w2c[:3, :3]).as_quat()
      f.write(struct.pack('<i4d3di', iid, qw, qx, qy, qz, *w2c[:3, 3], cid))
      f.write(name.encode('utf-8') + b'\x00')
      rec = np.empty(len(xy), dtype=[('x', '<f8'), ('y', '<f8'), ('id', '<i8')])
      rec['x'], rec['y'], rec['id'] = xy[:, 0], xy[:, 1], pids
      f.write(struct.pack('<Q', len(rec)) + rec.tobytes())
  xyz, rgb, error, tracks = model['points3D']
  with open(os.path.join(outdir, 'points3D.bin'), 'wb') as f:
    f.write(struct.pack('<Q', len(xyz)))
    for p in range(len(xyz)):
      img_ids, idx2d = tracks[p]
      f.write(struct.pack('<Q3d3BdQ', p + 1, *xyz[p], *rgb[p], error[p], len(img_ids)))
      f.write(np.stack([img_ids, idx2d], -1).astype('<i4').tobytes())
  return outdir
