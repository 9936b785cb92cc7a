"""Camera files: cameras.json, nerfstudio's transforms.json, TUM poses, MonST3R's intrinsics.txt.

Conventions are in common.py (OpenCV axes; original-size K with pixel centres at +0.5).
"""
import json
import os

import numpy as np
from scipy.spatial.transform import Rotation

from dynadust3r_jax.common.geometry import INDEX_TO_EDGE, OPENCV_TO_OPENGL
from dynadust3r_jax.inference.export.common import (image_names, original_intrinsics, original_size, read_scene,
                                                    scene_attr)
from dynadust3r_jax.inference.images import to_original_matrix


def _makedirs_for(path):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def write_cameras_json(scene, views, path):
  """{image name: {index, cam_to_world, world_to_cam, K, width, height, K_processed, processed_width,
  processed_height}}.

  cam_to_world / world_to_cam: (4,4) OpenCV axes (x right, y down, z forward). K (3,3): at the original
  image size (width × height), COLMAP's convention (pixel centre at +0.5). K_processed: the scene's K at the
  network's size (processed_width × processed_height), DUSt3R's pixel-index convention (centre at +0),
  the one that goes with the depth maps and pointmaps of frames/.
  """
  s = read_scene(scene, views)
  out = {}
  for i, (name, view) in enumerate(zip(image_names(views), views)):
    w0, h0 = original_size(view)
    h, w = s['depth'][i].shape
    out[name] = {'index': i,
                 'cam_to_world': s['cam_to_world'][i].tolist(),
                 'world_to_cam': s['world_to_cam'][i].tolist(),
                 'K': original_intrinsics(s['K'][i], view).tolist(),
                 'width': w0, 'height': h0,
                 'K_processed': s['K'][i].tolist(), 'processed_width': w, 'processed_height': h}
  _makedirs_for(path)
  with open(path, 'w') as f:
    json.dump(out, f, indent=1)
  return path


def read_known_cameras(path, views):
  """Known cameras for the alignment from a file in cameras.json's format (any subset of the images, by
  name; each entry with `K` (original size, COLMAP convention) and/or `cam_to_world` (OpenCV axes))
  → (known_intrinsics {index: K at the processed size, DUSt3R's convention}, known_poses {index: (4,4)})."""
  try:
    with open(path) as f:
      entries = json.load(f)
  except OSError as e:
    raise FileNotFoundError(f'{path}: cannot read the known cameras ({e.strerror})') from None
  except ValueError as e:
    raise ValueError(f'{path}: not JSON ({e})') from None
  index = {name: i for i, name in enumerate(image_names(views))}
  unknown = sorted(set(entries) - set(index)) if isinstance(entries, dict) else None
  if unknown is None or unknown:
    raise ValueError(f'{path}: expected {{image name: {{"K": 3x3, "cam_to_world": 4x4}}}} for images among '
                     f'{sorted(index)[:5]}...; ' + ('not an object' if unknown is None else f'unknown names {unknown[:5]}'))
  intrinsics, poses = {}, {}
  for name, entry in entries.items():
    i = index[name]
    if 'K' in entry:  # original size, pixel centres at +0.5 → processed size, DUSt3R's pixel-index convention
      intrinsics[i] = np.linalg.inv(to_original_matrix(views[i]) @ INDEX_TO_EDGE) @ np.asarray(entry['K'], float)
    if 'cam_to_world' in entry:
      poses[i] = np.asarray(entry['cam_to_world'], float)
  return intrinsics, poses


def write_transforms_json(scene, views, path, image_dir='images', ply_file_path=None):
  """nerfstudio's transforms.json: per frame file_path (image_dir/name), transform_matrix (4,4) cam-to-world
  in OpenGL camera axes (x right, y up, z backward) = cam_to_world @ diag(1,-1,-1,1), and PINHOLE intrinsics
  fl_x, fl_y, cx, cy, w, h at the original size (nerfstudio's pixel centres are at +0.5, as COLMAP's).
  The world frame is the scene's (no axis swap). ply_file_path: optional initial points (splatfacto)."""
  s = read_scene(scene, views)
  frames = []
  for i, (name, view) in enumerate(zip(image_names(views), views)):
    K0 = original_intrinsics(s['K'][i], view)
    w0, h0 = original_size(view)
    frames.append({'file_path': f'{image_dir}/{name}' if image_dir else name,
                   'transform_matrix': (s['cam_to_world'][i] @ OPENCV_TO_OPENGL).tolist(),
                   'fl_x': K0[0, 0], 'fl_y': K0[1, 1], 'cx': K0[0, 2], 'cy': K0[1, 2], 'w': w0, 'h': h0})
  out = {'camera_model': 'PINHOLE', 'frames': frames}
  if ply_file_path is not None:
    out['ply_file_path'] = ply_file_path
  _makedirs_for(path)
  with open(path, 'w') as f:
    json.dump(out, f, indent=1)
  return path


def write_tum_poses(scene, path, timestamps=None):
  """TUM trajectory: one line per image 'timestamp tx ty tz qx qy qz qw' of cam_to_world (OpenCV axes),
  as MonST3R's pred_traj.txt (read back by dynadust3r_jax.common.tum.read_tum_poses); timestamps default to
  the image index 0, 1, 2, …"""
  c2w = np.asarray(scene_attr(scene, 'cam_to_world'), np.float64)
  if timestamps is None:
    timestamps = np.arange(len(c2w), dtype=np.float64)
  q = Rotation.from_matrix(c2w[:, :3, :3]).as_quat()  # (N,4) x y z w
  _makedirs_for(path)
  with open(path, 'w') as f:
    for ts, T, qi in zip(timestamps, c2w, q):
      t = T[:3, 3]
      f.write(' '.join([f'{ts:.17g}'] + [f'{v:.10g}' for v in (*t, *qi)]) + '\n')  # Unix-time stamps exact
  return path


def write_intrinsics_txt(scene, path):
  """MonST3R's pred_intrinsics.txt layout: one line per image, the 9 entries of the scene's K row-major, at the
  processed size (DUSt3R's pixel-index convention), matching the depth maps in frames/."""
  K = np.asarray(scene_attr(scene, 'intrinsics'), np.float64).reshape(-1, 9)
  _makedirs_for(path)
  np.savetxt(path, K, fmt='%.10g')
  return path
