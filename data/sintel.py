"""MPI Sintel training sequences → evaluation Sequences (spec evaluation.md §7: MonST3R's depth and pose protocols).

On disk (MPI-Sintel-training_images.zip + MPI-Sintel-depth-training-20150305.zip, unpacked into one
`training/`; formats of the Sintel SDK, read as MonST3R `depth_metric.ipynb` and `vo_eval.sintel_cam_read`):
  training/{clean,final}/<seq>/frame_%04d.png   RGB frames, numbered from 1
  training/depth/<seq>/frame_%04d.dpt           little-endian float32 tag 202021.25, int32 W, int32 H,
                                                W·H float32 depth (row-major (H, W), scene units)
  training/camdata_left/<seq>/frame_%04d.cam    float32 tag 202021.25, 9 float64 K (3×3),
                                                12 float64 world→camera [R | t] (3×4): x = K·[R | t]·X
Depth is 0 where not finite or <= 0. Timestamps are the frame numbers. The video-depth protocol uses all 23
sequences of the final pass; the pose protocol the 14 of POSE_SEQUENCES.
"""
import os
import struct

import numpy as np

from data.sequence import LayoutError, Sequence, read_rgb

TAG = 202021.25
PASSES = ('clean', 'final')
POSE_SEQUENCES = ('alley_2', 'ambush_4', 'ambush_5', 'ambush_6', 'cave_2', 'cave_4', 'market_2', 'market_5',
                  'market_6', 'shaman_3', 'sleeping_1', 'sleeping_2', 'temple_2', 'temple_3')  # eval_metadata.py
LAYOUT = ('training/ with {clean,final}/<seq>/frame_%04d.png, depth/<seq>/frame_%04d.dpt, '
          'camdata_left/<seq>/frame_%04d.cam')
_CAM_BYTES = 4 + 21 * 8


def read_dpt(path: str) -> np.ndarray:
  """(H, W) float32 depth as stored (NaN/negative values kept). LayoutError for a wrong tag or size."""
  data = _read(path)
  if len(data) < 12 or struct.unpack('<f', data[:4])[0] != TAG:
    raise LayoutError(f'{path}: no .dpt tag {TAG}; expected float32 tag, int32 W, int32 H, W·H float32')
  width, height = struct.unpack('<ii', data[4:12])
  if width <= 0 or height <= 0 or len(data) != 12 + 4 * width * height:
    raise LayoutError(f'{path}: {len(data)} bytes for W={width}, H={height}; expected 12 + 4·W·H')
  return np.frombuffer(data, '<f4', offset=12).reshape(height, width).astype(np.float32)


def read_cam(path: str) -> tuple[np.ndarray, np.ndarray]:
  """K (3, 3) and world→camera (3, 4), float64. LayoutError for a wrong tag or size."""
  data = _read(path)
  if len(data) != _CAM_BYTES or struct.unpack('<f', data[:4])[0] != TAG:
    raise LayoutError(f'{path}: not a .cam file ({len(data)} bytes); expected float32 tag {TAG}, 9 float64 K, '
                      f'12 float64 [R | t] ({_CAM_BYTES} bytes)')
  values = np.frombuffer(data, '<f8', offset=4)
  return values[:9].reshape(3, 3).copy(), values[9:].reshape(3, 4).copy()


def write_dpt(path: str, depth: np.ndarray) -> None:
  """(H, W) depth → a Sintel .dpt file."""
  depth = np.asarray(depth, '<f4')
  with open(path, 'wb') as f:
    f.write(struct.pack('<fii', TAG, depth.shape[1], depth.shape[0]) + depth.tobytes())


def write_cam(path: str, K: np.ndarray, w2c: np.ndarray) -> None:
  """K (3, 3) and world→camera (3, 4) (or (4, 4): its top rows) → a Sintel .cam file."""
  with open(path, 'wb') as f:
    f.write(struct.pack('<f', TAG) + np.asarray(K, '<f8').reshape(9).tobytes()
            + np.asarray(w2c, '<f8')[:3, :4].tobytes())


def sequence_names(root: str, pass_name: str = 'final', sequences: tuple[str, ...] | None = None) -> list[str]:
  """Sorted sequence names: `sequences` (e.g. POSE_SEQUENCES), or all of the pass when None."""
  image_root = _pass_root(root, pass_name)
  if sequences is None:
    names = sorted(d for d in os.listdir(image_root) if os.path.isdir(os.path.join(image_root, d)))
    if not names:
      raise LayoutError(f'{image_root}: no sequence folder; expected {LAYOUT}')
    return names
  for name in sequences:
    if not os.path.isdir(os.path.join(image_root, name)):
      raise LayoutError(f'{os.path.join(image_root, name)}: missing; expected {LAYOUT}')
  return sorted(sequences)


def load_sequence(root: str, name: str, pass_name: str = 'final',
                  sequences: tuple[str, ...] | None = None) -> Sequence:
  """Sequence `name` of pass `pass_name` (`sequences` only selects names); every frame needs its .dpt and .cam."""
  del sequences
  image_dir = os.path.join(_pass_root(root, pass_name), name)
  if not os.path.isdir(image_dir):
    raise LayoutError(f'{image_dir}: missing; expected {LAYOUT}')
  frames = sorted(f[:-4] for f in os.listdir(image_dir) if f.startswith('frame_') and f.endswith('.png'))
  if not frames:
    raise LayoutError(f'{image_dir}: no frame_%04d.png; expected {LAYOUT}')
  depth_files = [os.path.join(root, 'depth', name, f'{f}.dpt') for f in frames]
  for path in depth_files:
    if not os.path.isfile(path):
      raise LayoutError(f'{path}: missing; expected {LAYOUT}')
  cams = [read_cam(os.path.join(root, 'camdata_left', name, f'{f}.cam')) for f in frames]
  w2c = np.tile(np.eye(4), (len(frames), 1, 1))
  w2c[:, :3, :4] = [rt for _, rt in cams]

  def load_image(t: int) -> np.ndarray:
    return read_rgb(os.path.join(image_dir, f'{frames[t]}.png'))

  def load_depth(t: int) -> np.ndarray:
    depth = read_dpt(depth_files[t])
    depth[~(np.isfinite(depth) & (depth > 0))] = 0
    return depth

  return Sequence(dataset='sintel', name=name, frames=frames, load_image=load_image, load_depth=load_depth,
                  intrinsics=np.stack([k for k, _ in cams]), world_to_camera=w2c,
                  timestamps=np.array([float(f[len('frame_'):]) for f in frames]))


def _pass_root(root: str, pass_name: str) -> str:
  if pass_name not in PASSES:
    raise ValueError(f'pass_name={pass_name!r}; choose from {PASSES}')
  for sub in (pass_name, 'depth', 'camdata_left'):
    if not os.path.isdir(os.path.join(root, sub)):
      raise LayoutError(f'{os.path.join(root, sub)}: missing; expected {LAYOUT}')
  return os.path.join(root, pass_name)


def _read(path: str) -> bytes:
  try:
    with open(path, 'rb') as f:
      return f.read()
  except FileNotFoundError:
    raise LayoutError(f'{path}: missing; expected {LAYOUT}') from None
  except OSError as e:
    raise LayoutError(f'{path}: unreadable ({type(e).__name__}); expected {LAYOUT}') from None
