"""CO3Dv2 as DUSt3R's preprocess_co3d.py writes it → evaluation Sequences (spec evaluation.md §8.2).

On disk (naver/dust3r's preprocess_co3d.py output, read by its dust3r/datasets/co3d.py):
  <root>/selected_seqs_{train,test}.json         {category: {seq: [frame indices]}}
  <root>/<category>/<seq>/images/frameXXXXXX.jpg  RGB (PIL's default JPEG quality)
  <root>/<category>/<seq>/images/frameXXXXXX.npz  camera_intrinsics (3, 3) float32 K in pixels,
                                                  camera_pose (4, 4) float32 camera → world (OpenCV axes),
                                                  maximum_depth () float32
  <root>/<category>/<seq>/depths/frameXXXXXX.jpg.geometric.png  uint16 = depth / maximum_depth · 65535
                                                  (truncated); 0 = no depth
  <root>/<category>/<seq>/masks/frameXXXXXX.png   uint8 foreground mask · 255; foreground = mask/255 > 0.1
Depth and poses share CO3D's arbitrary (COLMAP) scale. `read_frame` / `write_frame` are the per-frame
reader and writer that evaluation, training and the synthetic-scene generator share.
"""
import functools
import json
import os
import zipfile

import cv2
import numpy as np
import PIL.Image

from data.sequence import LayoutError, Sequence

SPLITS = ('train', 'test')
_LAYOUT = ("expected DUSt3R's processed CO3Dv2 (datasets_preprocess/preprocess_co3d.py of naver/dust3r): "
           '<root>/selected_seqs_{train,test}.json and <root>/<category>/<seq>/{images/frameXXXXXX.jpg, '
           'images/frameXXXXXX.npz, depths/frameXXXXXX.jpg.geometric.png, masks/frameXXXXXX.png}')
_CAMERA_KEYS = ('camera_intrinsics', 'camera_pose', 'maximum_depth')


def _require(path: str, layout: str = _LAYOUT) -> str:
  if not os.path.isfile(path):
    raise LayoutError(f'{path}: no such file; {layout}')
  return path


def _paths(seq_dir: str, frame_index: int) -> dict:
  stem = f'frame{frame_index:06d}'
  return {'image': os.path.join(seq_dir, 'images', f'{stem}.jpg'),
          'camera': os.path.join(seq_dir, 'images', f'{stem}.npz'),
          'depth': os.path.join(seq_dir, 'depths', f'{stem}.jpg.geometric.png'),
          'mask': os.path.join(seq_dir, 'masks', f'{stem}.png')}


def read_camera(seq_dir: str, frame_index: int) -> tuple[np.ndarray, np.ndarray, float]:
  """(K (3, 3) float64, c2w (4, 4) float64, maximum_depth) of a frame's npz; a NaN maximum_depth reads
  as 0 (as DUSt3R's loader: np.nan_to_num)."""
  path = _require(_paths(seq_dir, frame_index)['camera'])
  try:
    with np.load(path) as z:
      K, c2w, maximum = (np.asarray(z[k], np.float64) for k in _CAMERA_KEYS)
  except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # BadZipFile: a truncated npz
    raise LayoutError(f'{path}: not an npz with {_CAMERA_KEYS} ({type(e).__name__}: {e}); '
                      f'{_LAYOUT}') from None
  if K.shape != (3, 3) or c2w.shape != (4, 4) or maximum.shape != ():
    raise LayoutError(f'{path}: camera_intrinsics {K.shape}, camera_pose {c2w.shape}, maximum_depth '
                      f'{maximum.shape}; expected (3, 3), (4, 4), (); {_LAYOUT}')
  return K, c2w, float(np.nan_to_num(maximum))


def _imread(path: str, flags: int, layout: str = _LAYOUT) -> np.ndarray:
  image = cv2.imread(_require(path, layout), flags)
  if image is None:
    raise LayoutError(f'{path}: not a readable image; {layout}')
  return image


def imread_rgb(path: str, layout: str = _LAYOUT) -> np.ndarray:
  """(H, W, 3) uint8 RGB decoded by OpenCV as DUSt3R's loader does (alpha dropped, grey → RGB); a
  missing or unreadable file is the LayoutError naming it and `layout`."""
  return cv2.cvtColor(_imread(path, cv2.IMREAD_COLOR, layout), cv2.COLOR_BGR2RGB)


def read_image(seq_dir: str, frame_index: int) -> np.ndarray:
  """(H, W, 3) uint8 RGB of the frame's JPEG (imread_rgb)."""
  return imread_rgb(_paths(seq_dir, frame_index)['image'])


def read_depth(seq_dir: str, frame_index: int, maximum_depth: float) -> np.ndarray:
  """(H, W) float32 depth = png / 65535 · maximum_depth (DUSt3R's `_read_depthmap`); 0 = no depth."""
  png = _imread(_paths(seq_dir, frame_index)['depth'], cv2.IMREAD_UNCHANGED)
  return png.astype(np.float32) / 65535 * np.float32(maximum_depth)


def read_mask(seq_dir: str, frame_index: int) -> np.ndarray:
  """(H, W) bool foreground: mask / 255 > 0.1 (DUSt3R's loader)."""
  mask = _imread(_paths(seq_dir, frame_index)['mask'], cv2.IMREAD_UNCHANGED)
  return mask.astype(np.float32) / 255.0 > 0.1


def read_frame(seq_dir: str, frame_index: int) -> dict:
  """One frame: image (H, W, 3) uint8, depth (H, W) float32 (0 = none), mask (H, W) bool, K (3, 3) and
  c2w (4, 4) float64."""
  K, c2w, maximum = read_camera(seq_dir, frame_index)
  return {'image': read_image(seq_dir, frame_index), 'depth': read_depth(seq_dir, frame_index, maximum),
          'mask': read_mask(seq_dir, frame_index), 'K': K, 'c2w': c2w}


def write_frame(seq_dir: str, frame_index: int, image: np.ndarray, depth: np.ndarray, mask: np.ndarray,
                K: np.ndarray, c2w: np.ndarray) -> None:
  """Write one frame exactly as preprocess_co3d.py does: image (H, W, 3) uint8 RGB → JPEG by PIL; depth
  (H, W) (0 = none; its maximum must be positive) → uint16 PNG of depth / max · 65535 by OpenCV; mask
  (H, W) bool or [0, 1] float → uint8 PNG of mask · 255; K (3, 3), c2w (4, 4) → the npz as float32."""
  depth = np.asarray(depth, np.float32)
  maximum = np.max(depth)
  if not np.isfinite(maximum) or maximum <= 0:
    raise ValueError(f'{seq_dir} frame {frame_index}: depth maximum {maximum}; need a finite depth > 0')
  paths = _paths(seq_dir, frame_index)
  for path in paths.values():
    os.makedirs(os.path.dirname(path), exist_ok=True)
  PIL.Image.fromarray(np.asarray(image, np.uint8)).save(paths['image'])
  cv2.imwrite(paths['depth'], (depth / maximum * 65535).astype(np.uint16))
  cv2.imwrite(paths['mask'], (np.asarray(mask, np.float32) * 255).astype(np.uint8))
  np.savez(paths['camera'], camera_intrinsics=np.asarray(K, np.float32),
           camera_pose=np.asarray(c2w, np.float32), maximum_depth=maximum)


def write_selected_seqs(root: str, split: str, selected: dict) -> None:
  """<root>/selected_seqs_<split>.json from {category: {seq: [frame indices]}}."""
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, f'selected_seqs_{split}.json'), 'w') as f:
    json.dump(selected, f)


@functools.lru_cache(maxsize=4)
def _read_selected(path: str, mtime_ns: int) -> dict:
  """{'category/seq': [frame indices]} of one selected_seqs json (sequences without frames dropped)."""
  try:
    with open(path) as f:
      selected = json.load(f)
    return {f'{category}/{seq}': [int(i) for i in frames]
            for category, seqs in selected.items() for seq, frames in seqs.items() if frames}
  except (OSError, ValueError, AttributeError, TypeError) as e:
    raise LayoutError(f'{path}: not a {{category: {{seq: [frame indices]}}}} JSON ({type(e).__name__}: '
                      f'{e}); {_LAYOUT}') from None


def _selected(root: str, split: str, categories) -> tuple[str, dict]:
  if split not in SPLITS:
    raise ValueError(f'split={split!r}; choose from {SPLITS}')
  path = _require(os.path.join(root, f'selected_seqs_{split}.json'))
  selected = _read_selected(path, os.stat(path).st_mtime_ns)
  if categories is not None:
    keep = set(categories)
    selected = {name: frames for name, frames in selected.items() if name.split('/')[0] in keep}
  return path, selected


def sequence_names(root: str, split: str = 'test', categories=None) -> list[str]:
  """The 'category/seq' names of `split` (of `categories` only, if given), sorted."""
  return sorted(_selected(root, split, categories)[1])


def load_sequence(root: str, name: str, split: str = 'test', categories=None) -> Sequence:
  """Sequence 'category/seq': its selected frames in the JSON's order (DUSt3R's image pool), K and
  world_to_camera = inv(camera_pose) per frame, lazy images and depth."""
  path, selected = _selected(root, split, categories)
  if name not in selected:
    raise LayoutError(f'{path}: no sequence {name!r} (category/seq) in this split; {_LAYOUT}')
  seq_dir = os.path.join(root, *name.split('/'))
  indices = selected[name]
  cameras = [read_camera(seq_dir, i) for i in indices]
  for i in indices:
    for kind in ('image', 'depth'):
      _require(_paths(seq_dir, i)[kind])
  maxima = [maximum for _, _, maximum in cameras]
  return Sequence(
      dataset='co3d', name=name, frames=[f'frame{i:06d}' for i in indices],
      load_image=lambda t: read_image(seq_dir, indices[t]),
      load_depth=lambda t: read_depth(seq_dir, indices[t], maxima[t]),
      intrinsics=np.stack([K for K, _, _ in cameras]),
      world_to_camera=np.stack([np.linalg.inv(c2w) for _, c2w, _ in cameras]),
      category=name.split('/')[0])


def load_mask(root: str, name: str, frame: str) -> np.ndarray:
  """(H, W) bool foreground of `frame` (a name in Sequence.frames, 'frameXXXXXX') of 'category/seq'."""
  return read_mask(os.path.join(root, *name.split('/')), int(frame.removeprefix('frame')))
