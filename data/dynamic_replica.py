"""Dynamic Replica (DynamicStereo, CVPR 2023) → evaluation Sequences (spec evaluation.md §5).

On disk, as the official `scripts/download_dynamic_replica.py` unpacks a split:
  <root>/<split>/frame_annotations_<split>.jgz   gzip'd JSON list of PyTorch3D FrameAnnotation dicts, one
                                                 per (frame, camera), plus `camera_name` and `trajectories`
  <root>/<split>/<seq>_source_<camera>/
      images/*.png                 RGB(A) uint8
      depths/*.geometric.png       16-bit PNG holding float16 depth bits; < 1e-5 is invalid
      trajectories/<frame:06d>.pth torch.save dict: traj_3d_world (N, 3) world xyz, traj_2d (N, 3) whose
                                   [:, :2] is the pixel, verts_inds_vis (N,) bool (left camera only)
Paths in the annotations are relative to <root>/<split>/.

Cameras are PyTorch3D's: X_cam = X_world @ R + T (+x left, +y up), focal length and principal point in
NDC (`ndc_norm_image_bounds` or `ndc_isotropic`). `camera_convention='pytorch3d'` (default) converts them
as pytorch3d's `opencv_from_cameras_projection` does, DynamicStereo's own route: w2c = [F·Rᵀ | F·T] with
F = diag(−1, −1, 1). `'monst3r'` reproduces MonST3R's training loader instead: w2c = [R | T] (its c2w =
[Rᵀ | −RᵀT]), no flip. Both use the same K, cx = W/2 − p₀·r_x (as pytorch3d; whether traj_2d puts pixel
centres at integers or at +0.5 is unverified). The spec leaves open which convention the data follows:
`check_reprojection` tells on real data.
"""
import dataclasses
import functools
import gzip
import json
import os

import numpy as np
import PIL.Image

from data.sequence import LayoutError, Sequence, read_rgb
from dynadust3r_jax.common.torch_checkpoint import CheckpointError, load_torch_checkpoint

CAMERA_CONVENTIONS = ('pytorch3d', 'monst3r')
INTRINSICS_FORMATS = ('ndc_norm_image_bounds', 'ndc_isotropic')
_FLIP = np.diag([-1.0, -1.0, 1.0])
_LAYOUT = ('expected a Dynamic Replica root: <root>/<split>/frame_annotations_<split>.jgz and the '
           '<seq>_source_<camera>/{images,depths,trajectories} folders whose files it names '
           '(scripts/download_dynamic_replica.py of facebookresearch/dynamic_stereo unpacks each split so)')


@dataclasses.dataclass
class DynamicReplicaSequence(Sequence):
  """A Sequence that also keeps the annotated track pixels (what `check_reprojection` compares with)."""
  tracks_uv: np.ndarray | None = None  # (T, N, 2) float64 traj_2d[:, :2], pixel (x, y) of track n in frame t


def _require(path: str) -> str:
  if not os.path.isfile(path):
    raise LayoutError(f'{path}: no such file; {_LAYOUT}')
  return path


@functools.lru_cache(maxsize=4)
def _read_annotations(path: str, mtime_ns: int) -> dict:
  """{(sequence_name, camera_name): [annotation dicts sorted by frame_number]} of one jgz."""
  try:
    with gzip.open(path, 'rt', encoding='utf8') as f:
      entries = json.load(f)
    groups = {}
    for entry in entries:
      groups.setdefault((entry['sequence_name'], entry['camera_name']), []).append(entry)
    return {key: sorted(frames, key=lambda e: e['frame_number']) for key, frames in groups.items()}
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise LayoutError(f'{path}: not a gzip JSON list of frame annotations ({type(e).__name__}: {e}); '
                      f'{_LAYOUT}') from None


def _annotations(root: str, split: str) -> tuple[str, dict]:
  path = _require(os.path.join(root, split, f'frame_annotations_{split}.jgz'))
  return path, _read_annotations(path, os.stat(path).st_mtime_ns)


def sequence_names(root: str, split: str = 'test', camera: str = 'left') -> list[str]:
  """The sequence names of `split` that have frames of `camera`, sorted."""
  _, groups = _annotations(root, split)
  return sorted(name for name, cam in groups if cam == camera)


def opencv_camera(viewpoint: dict, image_size_hw, camera_convention: str = 'pytorch3d'):
  """(K (3, 3), w2c (4, 4)) float64 in OpenCV form from a FrameAnnotation `viewpoint` dict (§5.4)."""
  if camera_convention not in CAMERA_CONVENTIONS:
    raise ValueError(f'camera_convention={camera_convention!r}; choose from {CAMERA_CONVENTIONS}')
  fmt = viewpoint.get('intrinsics_format', 'ndc_norm_image_bounds')  # PyTorch3D's default
  if fmt not in INTRINSICS_FORMATS:
    raise ValueError(f'intrinsics_format={fmt!r}; expected one of {INTRINSICS_FORMATS}')
  h, w = image_size_hw
  half = np.array([w, h], np.float64) / 2
  scale = half if fmt == 'ndc_norm_image_bounds' else np.full(2, half.min())
  focal = np.asarray(viewpoint['focal_length'], np.float64) * scale
  centre = half - np.asarray(viewpoint['principal_point'], np.float64) * scale
  K = np.array([[focal[0], 0, centre[0]], [0, focal[1], centre[1]], [0, 0, 1]])
  R, T = np.asarray(viewpoint['R'], np.float64), np.asarray(viewpoint['T'], np.float64)
  w2c = np.eye(4)
  if camera_convention == 'pytorch3d':
    w2c[:3, :3], w2c[:3, 3] = _FLIP @ R.T, _FLIP @ T
  else:
    w2c[:3, :3], w2c[:3, 3] = R, T
  return K, w2c


def read_image(path: str) -> np.ndarray:
  """(H, W, 3) uint8 RGB of a PNG (data.sequence.read_rgb)."""
  return read_rgb(path)


def read_depth(path: str) -> np.ndarray:
  """(H, W) float32 depth of a PNG holding float16 bits; invalid (< 1e-5 or not finite) → 0."""
  with PIL.Image.open(path) as image:
    depth = np.array(image, dtype=np.uint16).view(np.float16).astype(np.float32)
  depth[~(np.isfinite(depth) & (depth >= 1e-5))] = 0
  return depth


def _read_tracks(paths, w2c, image_size_hw):
  """(tracks_xyz (T, N, 3) in each frame's camera, visibility (T, N), tracks_uv (T, N, 2))."""
  h, w = image_size_hw
  xyz, vis, uv = [], [], []
  for path, e in zip(paths, w2c):
    try:
      traj = load_torch_checkpoint(path, progress=False)
      world = np.asarray(traj['traj_3d_world'], np.float64)
      pixel = np.asarray(traj['traj_2d'], np.float64)[:, :2]
      seen = np.asarray(traj['verts_inds_vis'], bool)
    except (CheckpointError, KeyError, TypeError, IndexError) as err:
      raise LayoutError(f'{path}: not a trajectory file ({type(err).__name__}: {err}); {_LAYOUT}') from None
    n = len(vis[0]) if vis else len(seen)
    if seen.shape != (n,) or world.shape != (n, 3) or pixel.shape != (n, 2):
      raise LayoutError(f'{path}: traj_3d_world {world.shape}, traj_2d {pixel.shape}, verts_inds_vis '
                        f'{seen.shape}; expected (N, 3), (N, 3), (N,) with the same N in every frame')
    inside = (pixel[:, 0] >= 0) & (pixel[:, 0] <= w - 1) & (pixel[:, 1] >= 0) & (pixel[:, 1] <= h - 1)
    xyz.append(world @ e[:3, :3].T + e[:3, 3])
    vis.append(seen & inside)
    uv.append(pixel)
  return np.stack(xyz), np.stack(vis), np.stack(uv)


def load_sequence(root: str, name: str, split: str = 'test', camera: str = 'left',
                  sample_len: int | None = None, camera_convention: str = 'pytorch3d',
                  tracks: bool = True) -> DynamicReplicaSequence:
  """One sequence's `camera` view: its first `sample_len` frames (all if None; DynamicStereo's protocol
  scores the first window), K and w2c per frame, lazy images and depth, and (tracks=True, where the
  annotations name trajectory files) the tracks in each frame's camera, visible = `verts_inds_vis` and
  inside the image (as CoTracker's benchmark)."""
  if camera_convention not in CAMERA_CONVENTIONS:
    raise ValueError(f'camera_convention={camera_convention!r}; choose from {CAMERA_CONVENTIONS}')
  jgz, groups = _annotations(root, split)
  if (name, camera) not in groups:
    raise LayoutError(f'{jgz}: no sequence {name!r} with camera {camera!r}; {_LAYOUT}')
  entries = groups[name, camera][:sample_len]
  folder = os.path.join(root, split)
  try:
    image_paths = [os.path.join(folder, e['image']['path']) for e in entries]
    depth_paths = [os.path.join(folder, e['depth']['path']) for e in entries]
    size_hw = tuple(entries[0]['image']['size'])
    cameras = [opencv_camera(e['viewpoint'], e['image']['size'], camera_convention) for e in entries]
  except (KeyError, TypeError) as err:
    raise LayoutError(f'{jgz}: sequence {name!r}: an annotation without its image/depth path, image size or '
                      f'viewpoint field ({type(err).__name__}: {err}); {_LAYOUT}') from None
  except ValueError as err:  # an unknown intrinsics_format
    raise LayoutError(f'{jgz}: sequence {name!r}: {err}; {_LAYOUT}') from None
  for path in image_paths + depth_paths:
    _require(path)
  intrinsics = np.stack([K for K, _ in cameras])
  w2c = np.stack([e for _, e in cameras])
  seq = DynamicReplicaSequence(
      dataset='dynamic_replica', name=name,
      frames=[os.path.splitext(os.path.basename(p))[0] for p in image_paths],
      load_image=lambda t: read_image(image_paths[t]), load_depth=lambda t: read_depth(depth_paths[t]),
      intrinsics=intrinsics, world_to_camera=w2c,
      timestamps=np.array([e.get('frame_timestamp', np.nan) for e in entries], np.float64))
  if tracks and all((e.get('trajectories') or {}).get('path') for e in entries):
    paths = [_require(os.path.join(folder, e['trajectories']['path'])) for e in entries]
    seq.tracks_xyz, seq.visibility, seq.tracks_uv = _read_tracks(paths, w2c, size_hw)
  return seq


def check_reprojection(seq: DynamicReplicaSequence, t: int) -> tuple[np.ndarray, np.ndarray]:
  """The spec's camera test (§5.4, §9) on frame t's visible tracks: (pixel_err_px (n, 2) = K·E·X
  projected − traj_2d[:, :2], depth_err (n,) = camera z − GT depth at the rounded traj_2d pixel, NaN where
  the GT is invalid). With the right convention both are ≈ 0; a wrong extrinsic convention gives errors
  of many pixels, a constant ≈ ±0.5 px a half-pixel offset between K and traj_2d."""
  if seq.tracks_uv is None:
    raise ValueError(f'{seq.name}: no trajectories loaded (load_sequence(..., tracks=True), left camera)')
  seen = seq.visibility[t]
  xyz, uv = seq.tracks_xyz[t][seen], seq.tracks_uv[t][seen]
  with np.errstate(divide='ignore', invalid='ignore'):
    projected = xyz @ seq.intrinsics[t].T
    pixel_err = projected[:, :2] / projected[:, 2:] - uv
  depth = seq.load_depth(t)
  col = np.clip(np.rint(uv[:, 0]).astype(np.int64), 0, depth.shape[1] - 1)
  row = np.clip(np.rint(uv[:, 1]).astype(np.int64), 0, depth.shape[0] - 1)
  gt = depth[row, col].astype(np.float64)
  return pixel_err, np.where(gt > 0, xyz[:, 2] - gt, np.nan)
