"""Bonn RGB-D Dynamic sequences → evaluation Sequences (spec evaluation.md §6: MonST3R's video-depth subset).

On disk (ipb.uni-bonn.de `rgbd_bonn_dataset.zip`, read as MonST3R `datasets_preprocess/prepare_bonn.py`):
  rgbd_bonn_dataset/rgbd_bonn_<seq>/rgb/*.png        RGB frames
                                    depth/*.png      16-bit depth: metres = png / 5000, 0 = invalid
                                    groundtruth.txt  TUM trajectory, rows `timestamp tx ty tz qx qy qz qw`
                                                     (camera→world, metres), '#' comment lines
MonST3R evaluates frames [30:140] of the sorted rgb/ and of the sorted depth/ files, paired by sorted index,
with groundtruth rows [30:140]: rows, not time-associated with the frames (MonST3R reports no Bonn pose),
and so are the Sequence's world_to_camera and timestamps. prepare_bonn.py copies exactly these to `rgb_110/`,
`depth_110/`, `groundtruth_110.txt`; where `rgb_110/` exists, the default slice reads those instead.
Intrinsics: fx 542.82, fy 542.58, cx 315.59, cy 237.76, unverified (unused by the depth metric).
"""
import os

import cv2
import numpy as np

from data.sequence import LayoutError, Sequence, read_rgb
from dynadust3r_jax.common.geometry import invert_pose
from dynadust3r_jax.common.tum import read_tum_poses

SEQUENCES = ('balloon2', 'crowd2', 'crowd3', 'person_tracking2', 'synchronous')  # MonST3R eval_metadata.py
FRAMES = (30, 140)
PREFIX = 'rgbd_bonn_'
DEPTH_SCALE = 5000.0
K = np.array([[542.82, 0, 315.59], [0, 542.58, 237.76], [0, 0, 1]])
LAYOUT = (f'rgbd_bonn_dataset/{PREFIX}<seq>/ with rgb/*.png, depth/*.png, groundtruth.txt (or MonST3R\'s '
          'rgb_110/, depth_110/, groundtruth_110.txt)')


def read_tum(path: str) -> tuple[np.ndarray, np.ndarray]:
  """TUM trajectory file → timestamps (n,) and camera→world (n, 4, 4) (common.tum.read_tum_poses); a bad file is
  the LayoutError naming it."""
  try:
    return read_tum_poses(path)
  except (OSError, ValueError) as e:
    raise LayoutError(f'{path}: {e} ({type(e).__name__}); expected TUM rows `timestamp tx ty tz qx qy qz qw`') from None


def sequence_names(root: str, sequences: tuple[str, ...] | None = SEQUENCES,
                   frames: tuple[int, int] | None = FRAMES) -> list[str]:
  """Sorted sequence names (without the `rgbd_bonn_` prefix): `sequences`, or all found when None."""
  del frames
  if not os.path.isdir(root):
    raise LayoutError(f'{root}: not a folder; expected {LAYOUT}')
  if sequences is None:
    names = sorted(d[len(PREFIX):] for d in os.listdir(root)
                   if d.startswith(PREFIX) and os.path.isdir(os.path.join(root, d)))
    if not names:
      raise LayoutError(f'{root}: no {PREFIX}<seq>/ folder; expected {LAYOUT}')
    return names
  for name in sequences:
    if not os.path.isdir(os.path.join(root, PREFIX + name)):
      raise LayoutError(f'{os.path.join(root, PREFIX + name)}: missing; expected {LAYOUT}')
  return sorted(sequences)


def load_sequence(root: str, name: str, sequences: tuple[str, ...] | None = SEQUENCES,
                  frames: tuple[int, int] | None = FRAMES) -> Sequence:
  """Sequence `rgbd_bonn_<name>`, frames [start:stop] of `frames` (None: all); `sequences` only selects
  names. Frame names are the rgb file stems."""
  del sequences
  folder = os.path.join(root, PREFIX + name)
  if not os.path.isdir(folder):
    raise LayoutError(f'{folder}: missing; expected {LAYOUT}')
  if frames is not None and tuple(frames) == FRAMES and os.path.isdir(os.path.join(folder, 'rgb_110')):
    rgb_dir, depth_dir, gt_file, keep = 'rgb_110', 'depth_110', 'groundtruth_110.txt', slice(None)
  else:
    rgb_dir, depth_dir, gt_file = 'rgb', 'depth', 'groundtruth.txt'
    keep = slice(None) if frames is None else slice(*frames)
  rgb, depth = (_pngs(os.path.join(folder, d))[keep] for d in (rgb_dir, depth_dir))
  gt_path = os.path.join(folder, gt_file)
  if not os.path.isfile(gt_path):
    raise LayoutError(f'{gt_path}: missing; expected {LAYOUT}')
  timestamps, c2w = (a[keep] for a in read_tum(gt_path))
  if not len(rgb) == len(depth) == len(c2w) > 0:
    raise LayoutError(f'{folder}: {len(rgb)} {rgb_dir} frames, {len(depth)} {depth_dir} frames, {len(c2w)} '
                      f'{gt_file} rows in [{keep.start}:{keep.stop}]; expected equal, non-zero counts')

  def load_depth(t: int) -> np.ndarray:
    png = cv2.imread(depth[t], cv2.IMREAD_UNCHANGED)
    if png is None or png.dtype != np.uint16 or png.ndim != 2:
      raise LayoutError(f'{depth[t]}: not a 16-bit single-channel PNG; expected {LAYOUT}')
    return (png / DEPTH_SCALE).astype(np.float32)

  return Sequence(dataset='bonn', name=name, frames=[os.path.splitext(os.path.basename(p))[0] for p in rgb],
                  load_image=lambda t: read_rgb(rgb[t]), load_depth=load_depth,
                  intrinsics=np.repeat(K[None], len(rgb), axis=0),
                  world_to_camera=invert_pose(c2w), timestamps=timestamps)


def _pngs(folder: str) -> list[str]:
  if not os.path.isdir(folder):
    raise LayoutError(f'{folder}: missing; expected {LAYOUT}')
  return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith('.png'))
