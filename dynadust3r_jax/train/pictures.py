"""Training pictures: a PNG per logged step showing what the network sees and predicts.

Rows = examples; columns = frame l, frame r, predicted depth of view 1, GT depth (valid pixels only),
confidence of view 1, predicted motion magnitude |l→r|, GT motion magnitude where valid.
"""
import os

import numpy as np
from PIL import Image


def _colour(x, valid=None, lo=None, hi=None):
  """(H, W) values → (H, W, 3) uint8 with a blue→green→yellow ramp; invalid pixels black."""
  valid = np.isfinite(x) if valid is None else valid & np.isfinite(x)
  if not valid.any():
    return np.zeros(x.shape + (3,), np.uint8)
  lo = np.percentile(x[valid], 2) if lo is None else lo
  hi = np.percentile(x[valid], 98) if hi is None else hi
  t = np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1)
  rgb = np.stack([t ** 2, np.sqrt(t) * 0.9, (1 - t) * 0.8 + 0.2 * t], -1)
  return np.where(valid[..., None], rgb * 255, 0).astype(np.uint8)


def _image(x):
  return np.clip((x + 1) * 127.5, 0, 255).astype(np.uint8)


def save_pictures(path: str, batch: dict, res1: dict, max_rows: int = 2):
  """batch: the data pipeline's arrays; res1: the model's view-1 outputs (numpy)."""
  rows = []
  for b in range(min(max_rows, len(batch['img1']))):
    gt_depth, valid = batch['pts3d1'][b, ..., 2], batch['valid1'][b]
    depth_range = (np.percentile(gt_depth[valid], 2), np.percentile(gt_depth[valid], 98)) if valid.any() else (None, None)
    panels = [_image(batch['img1'][b]), _image(batch['img2'][b]),
              _colour(res1['pts3d'][b, ..., 2], None, *depth_range), _colour(gt_depth, valid, *depth_range),
              _colour(np.log(res1['conf'][b]))]
    if 'motion_l2r' in res1:
      gt_motion = np.linalg.norm(batch['target_l2r'][b] - batch['pts3d1'][b], axis=-1)
      motion_valid = batch['valid_l2r'][b] & valid
      hi = np.percentile(gt_motion[motion_valid], 98) if motion_valid.any() else None
      panels += [_colour(np.linalg.norm(res1['motion_l2r'][b], axis=-1), None, 0.0, hi),
                 _colour(gt_motion, motion_valid, 0.0, hi)]
    rows.append(np.concatenate(panels, axis=1))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.concatenate(rows, axis=0)).save(path)
