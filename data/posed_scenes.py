"""Posed images with depth: a plain layout for training on your own data (README "Training on your own
posed images").

On disk, one folder per scene:
  <root>/<scene>/cameras.json         {NAME: {"K": 3x3, "cam_to_world": 4x4, "width": W, "height": H}}
  <root>/<scene>/images/NAME          RGB image, .jpg / .jpeg / .png (NAME is its file name, as the keys of
                                      the reconstruct job's cameras.json; a key without one of these
                                      extensions means images/NAME.jpg, .jpeg or .png, the first found)
  <root>/<scene>/depth/STEM.npy       (H, W) float depth (camera z, the unit of cam_to_world's translation,
                                      e.g. metres); 0, negative or non-finite = no depth. STEM = NAME
                                      without its image extension. H × W = the image's size.
  <root>/<scene>/masks/STEM.png       optional: uint8 foreground mask (foreground = value / 255 > 0.1, as
                                      DUSt3R's CO3D loader); a frame without one has mask None
cameras.json has the fields (and conventions) of the reconstruct job's cameras.json
(dynadust3r_jax/inference/export/cameras.py), so a reconstruction's file can be reused as it is:
  K             (3, 3) pixels, at the image's own size, pixel-edge convention (COLMAP's: the top-left
                pixel's centre is (0.5, 0.5)); a COLMAP PINHOLE camera's fx, fy, cx, cy go in unchanged
  cam_to_world  (4, 4) camera → world, rigid, OpenCV camera axes (x right, y down, z forward)
  width, height optional; when present they must equal the image's size
Other fields (index, world_to_cam, K_processed, ...) are ignored. The scene's frames are the keys of
cameras.json, sorted; images without an entry are not used.

Readers: `sequence_names(root)` / `load_sequence(root, name)` as data/sequence.py's contract (K there and
in `read_frame` is in the pixel-index convention of data/sequence.py and processed CO3D: cx, cy = the
file's − 0.5), `frame_names(scene_dir)`, and `read_frame(scene_dir, name)` → the dict data.co3d.read_frame
returns (image, depth, mask, K, c2w), so one training dataset reads both layouts. A missing or malformed
file raises LayoutError naming the path and this layout.
"""
import functools
import json
import os

import cv2
import numpy as np

from data import co3d
from data.sequence import LayoutError, Sequence
from dynadust3r_jax.common.geometry import INDEX_TO_EDGE, invert_pose

CAMERAS = 'cameras.json'
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
EDGE_TO_INDEX = np.linalg.inv(INDEX_TO_EDGE)   # K: pixel edges → pixel indices
_LAYOUT = ('expected <root>/<scene>/{cameras.json {NAME: {"K": 3x3 (pixel-edge convention, image size), '
           '"cam_to_world": 4x4 (OpenCV axes), "width", "height" (optional)}}, images/NAME (.jpg/.jpeg/.png), '
           'depth/STEM.npy (H, W) float, 0 = none, masks/STEM.png (optional)} (data/posed_scenes.py)')


def _error(path: str, problem: str) -> LayoutError:
  return LayoutError(f'{path}: {problem}; {_LAYOUT}')


def sequence_names(root: str) -> list[str]:
  """The scenes under root: its sub-folders (hidden ones skipped), sorted; each must hold cameras.json."""
  if not os.path.isdir(root):
    raise _error(root, 'no such folder')
  names = sorted(n for n in os.listdir(root) if not n.startswith('.') and os.path.isdir(os.path.join(root, n)))
  if not names:
    raise _error(root, 'no scene folders')
  for name in names:
    if not os.path.isfile(os.path.join(root, name, CAMERAS)):
      raise _error(os.path.join(root, name, CAMERAS), 'no such file')
  return names


@functools.lru_cache(maxsize=64)
def _read_cameras(path: str, mtime_ns: int) -> dict:
  """{NAME: (K (3, 3) pixel-edge, c2w (4, 4), (width, height) or None)} of one cameras.json."""
  del mtime_ns  # the cache key: a rewritten file is read again
  try:
    with open(path) as f:
      entries = json.load(f)
  except OSError as e:
    raise _error(path, f'cannot read ({e.strerror})') from None
  except ValueError as e:
    raise _error(path, f'not JSON ({e})') from None
  if not isinstance(entries, dict) or not entries:
    raise _error(path, 'not a non-empty {image name: camera} object')
  cameras = {}
  for name, entry in entries.items():
    if not isinstance(entry, dict) or 'K' not in entry or 'cam_to_world' not in entry:
      raise _error(path, f'entry {name!r} lacks "K" or "cam_to_world"')
    try:
      K, c2w = np.asarray(entry['K'], np.float64), np.asarray(entry['cam_to_world'], np.float64)
    except (TypeError, ValueError) as e:
      raise _error(path, f'entry {name!r}: K / cam_to_world are not numeric arrays ({e})') from None
    if K.shape != (3, 3) or c2w.shape != (4, 4):
      raise _error(path, f'entry {name!r}: K {K.shape}, cam_to_world {c2w.shape}; expected (3, 3), (4, 4)')
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(c2w))):
      raise _error(path, f'entry {name!r}: non-finite K or cam_to_world')
    R = c2w[:3, :3]
    if not (np.allclose(R.T @ R, np.eye(3), atol=1e-4) and np.linalg.det(R) > 0 and np.allclose(c2w[3], [0, 0, 0, 1])):
      raise _error(path, f'entry {name!r}: cam_to_world is not rigid (a rotation and a translation, last row 0 0 0 1)')
    size = (entry['width'], entry['height']) if 'width' in entry and 'height' in entry else None
    cameras[name] = (K, c2w, size)
  stems = {}
  for name in cameras:
    if _stem(name) in stems:
      raise _error(path, f'frames {stems[_stem(name)]!r} and {name!r} would share depth/{_stem(name)}.npy')
    stems[_stem(name)] = name
  return cameras


def _cameras(scene_dir: str) -> dict:
  path = os.path.join(scene_dir, CAMERAS)
  try:
    mtime = os.stat(path).st_mtime_ns
  except OSError:
    raise _error(path, 'no such file') from None
  return _read_cameras(path, mtime)


def frame_names(scene_dir: str) -> list[str]:
  """The scene's frames: the keys of its cameras.json, sorted."""
  return sorted(_cameras(scene_dir))


def _stem(name: str) -> str:
  base, ext = os.path.splitext(name)
  return base if ext.lower() in IMAGE_EXTENSIONS else name


def image_path(scene_dir: str, name: str) -> str:
  """images/NAME, or images/NAME.{jpg,jpeg,png} for a key without an image extension."""
  images = os.path.join(scene_dir, 'images')
  candidates = [name] if _stem(name) != name else [name + ext for ext in IMAGE_EXTENSIONS]
  for candidate in candidates:
    if os.path.isfile(os.path.join(images, candidate)):
      return os.path.join(images, candidate)
  raise _error(os.path.join(images, candidates[0]), f'no such file (frame {name!r} of {CAMERAS})')


def depth_path(scene_dir: str, name: str) -> str:
  return os.path.join(scene_dir, 'depth', _stem(name) + '.npy')


def mask_path(scene_dir: str, name: str) -> str:
  return os.path.join(scene_dir, 'masks', _stem(name) + '.png')


def read_image(scene_dir: str, name: str) -> np.ndarray:
  """(H, W, 3) uint8 RGB (OpenCV's decoder, as data.co3d; an alpha channel is dropped, grey becomes RGB)."""
  return co3d.imread_rgb(image_path(scene_dir, name), _LAYOUT)


def read_depth(scene_dir: str, name: str) -> np.ndarray:
  """(H, W) float32 depth; 0 where the file has 0, a negative or a non-finite value."""
  path = depth_path(scene_dir, name)
  if not os.path.isfile(path):
    raise _error(path, f'no such file (frame {name!r} of {CAMERAS})')
  try:
    depth = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise _error(path, f'not a .npy array ({e})') from None
  if depth.ndim != 2 or depth.dtype.kind not in 'fiu':
    raise _error(path, f'a {depth.dtype} array of shape {depth.shape}; expected (H, W) float')
  depth = depth.astype(np.float32)
  return np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0))


def read_mask(scene_dir: str, name: str) -> np.ndarray | None:
  """(H, W) bool foreground (value / 255 > 0.1), or None when the frame has no mask file."""
  path = mask_path(scene_dir, name)
  if not os.path.isfile(path):
    return None
  mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
  if mask is None:
    raise _error(path, 'not a readable image')
  return mask.astype(np.float32) / 255.0 > 0.1


def read_camera(scene_dir: str, name: str) -> tuple[np.ndarray, np.ndarray]:
  """(K (3, 3) in the pixel-index convention, c2w (4, 4)), float64."""
  cameras = _cameras(scene_dir)
  if name not in cameras:
    raise _error(os.path.join(scene_dir, CAMERAS), f'no frame {name!r}')
  K, c2w, _ = cameras[name]
  return EDGE_TO_INDEX @ K, c2w.copy()


def read_frame(scene_dir: str, name: str) -> dict:
  """One frame as data.co3d.read_frame: image (H, W, 3) uint8, depth (H, W) float32 (0 = none), mask
  (H, W) bool or None, K (3, 3) (pixel-index convention) and c2w (4, 4) float64. The depth (and mask)
  must have the image's size, and so must cameras.json's width and height when given."""
  K, c2w = read_camera(scene_dir, name)
  image, depth, mask = read_image(scene_dir, name), read_depth(scene_dir, name), read_mask(scene_dir, name)
  h, w = image.shape[:2]
  size = _cameras(scene_dir)[name][2]
  if size is not None and tuple(size) != (w, h):
    raise _error(os.path.join(scene_dir, CAMERAS), f'frame {name!r}: width × height {size[0]} × {size[1]}, '
                 f'but {image_path(scene_dir, name)} is {w} × {h}')
  for path, array in ((depth_path(scene_dir, name), depth), (mask_path(scene_dir, name), mask)):
    if array is not None and array.shape != (h, w):
      raise _error(path, f'shape {array.shape}; the image {image_path(scene_dir, name)} is (H, W) = {(h, w)}')
  return {'image': image, 'depth': depth, 'mask': mask, 'K': K, 'c2w': c2w}


def load_sequence(root: str, name: str) -> Sequence:
  """Scene `name`: its frames (cameras.json's keys, sorted), K (pixel-index convention) and
  world_to_camera = the rigid inverse of cam_to_world per frame, lazy images and depth. Every frame's
  image and depth file must exist."""
  scene_dir = os.path.join(root, name)
  if not os.path.isdir(scene_dir):
    raise _error(scene_dir, 'no such scene folder')
  frames = frame_names(scene_dir)
  for frame in frames:
    image_path(scene_dir, frame)
    if not os.path.isfile(depth_path(scene_dir, frame)):
      raise _error(depth_path(scene_dir, frame), f'no such file (frame {frame!r} of {CAMERAS})')
  cameras = [read_camera(scene_dir, frame) for frame in frames]
  return Sequence(
      dataset='posed_scenes', name=name, frames=frames,
      load_image=lambda t: read_image(scene_dir, frames[t]),
      load_depth=lambda t: read_depth(scene_dir, frames[t]),
      intrinsics=np.stack([K for K, _ in cameras]),
      world_to_camera=invert_pose(np.stack([c2w for _, c2w in cameras])))
