"""Ground truth of one frame pair from 3D tracks: DynaDUSt3R's targets for evaluation data (spec
evaluation.md §3, §4.5, §5.7).

Given tracks in each frame's camera (data/sequence.py: `tracks_xyz` (T, N, 3), `visibility` (T, N)) and
the cameras, pair (t1, t2) gets the same maps as a Stereo4D training example (data/stereo4d.py), at the
size of the image the network sees:
  pts3d1, valid1:         tracks visible at t1, the nearest one per pixel, in camera t1;
  target_l2r, valid_l2r:  where those tracks are at t2, in camera t1 (valid where the position is finite:
                          TAPVid-3D keeps positions of occluded points, Stereo4D has NaN where a track is absent);
  pts3d2, valid2:         tracks visible at t2, in camera t1 (view 2's points in view 1's frame);
  target_r2l, valid_r2l:  where view 2's tracks are at t1, in camera t1.
K follows data/sequence.py (OpenCV: pixel (c, r)'s centre at (c, r)), so a track lands in the nearest
pixel, column round(u) of u = fx·X/Z + cx (spec §4.5's "nearest"); nearer tracks win a shared pixel.
"""
import numpy as np

from data.stereo4d import pixel_owner, scatter
from dynadust3r_jax.common.geometry import INDEX_TO_EDGE, apply_transform, invert_pose


def _camera_to_camera(world_to_camera, src, dst):
  """(4,4) transform from camera src to camera dst; identity for a static camera (no extrinsics)."""
  if world_to_camera is None:
    return np.eye(4)
  return world_to_camera[dst] @ invert_pose(world_to_camera[src])


def pair_targets(tracks_xyz, visibility, world_to_camera, intrinsics, hw, t1, t2) -> dict:
  """Dense (H, W, 3) float32 maps and (H, W) bool masks of pair (t1, t2) (module docstring).

  tracks_xyz (T, N, 3) in each frame's camera; visibility (T, N); world_to_camera (T, 4, 4) or None;
  intrinsics: (K of frame t1, K of frame t2), each (3, 3), for the (H, W) = hw image the maps are for.
  """
  out = {}
  to_cam1 = {t1: np.eye(4), t2: _camera_to_camera(world_to_camera, t2, t1)}
  for view, (src, dst), name, K in ((1, (t1, t2), 'l2r', intrinsics[0]), (2, (t2, t1), 'r2l', intrinsics[1])):
    K_edge = INDEX_TO_EDGE @ np.asarray(K, np.float64)  # floor() of edge coordinates = the nearest pixel
    xyz = np.asarray(tracks_xyz[src], np.float64)
    seen = np.flatnonzero(visibility[src] & np.all(np.isfinite(xyz), axis=-1))
    pixel, idx = pixel_owner(xyz[seen], K_edge, hw, 'floor')
    ids = seen[idx]
    out[f'pts3d{view}'], out[f'valid{view}'] = scatter(pixel, apply_transform(to_cam1[src], xyz[ids]), hw)
    end = np.asarray(tracks_xyz[dst][ids], np.float64)
    there = np.all(np.isfinite(end), axis=-1)
    out[f'target_{name}'], out[f'valid_{name}'] = scatter(pixel[there], apply_transform(to_cam1[dst], end[there]), hw)
  return out
