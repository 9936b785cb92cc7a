"""Stereo4D clips → DynaDUSt3R training examples (spec dynadust3r.md §b, §c.2).

A clip is an `.npz` (cameras + sparse 3D tracks, the official schema) and its left-eye rectified mp4.
A triplet of frames (l, m, r) gives one example: view 1 = frame l, view 2 = frame r, both pointmaps in
camera-l coordinates, and four motion targets (l→m, r→m, l→r, r→l) = where the track seen at a
source pixel is at the destination time, in camera-l coordinates.

Conventions (official Stereo4D code): OpenCV camera axes; `camera2world[t]` = [R | c] maps camera t →
world; K has fx = fy = (W/2)/tan(hfov/2) and principal point (W/2, H/2); rays go through pixel centres,
so a camera point (x, y, z) lies in pixel column floor(fx·x/z + W/2) (`pixel_rounding='floor'`). The
unofficial DynaDUSt3R loader uses round(...) instead, half a pixel off; `pixel_rounding='round'`
reproduces it for parity with its weights.

One track per source pixel: of the tracks visible in the source frame that land on a pixel, the nearest
to the source camera wins, and that track gives both the pointmap value and the motion targets (the
unofficial loader has no z-buffer for motion maps; see spec §c.2).
"""
import dataclasses
import warnings

import numpy as np

from data.errors import BadClip
from dynadust3r_jax.common.geometry import apply_transform
from dynadust3r_jax.common.video import VideoError, open_video

REQUIRED_KEYS = ('camera2world', 'track_lengths', 'track_indices', 'track_coordinates')
PIXEL_ROUNDINGS = ('floor', 'round')
MOTION_TARGETS = {'l2m': (0, 1), 'r2m': (2, 1), 'l2r': (0, 2), 'r2l': (2, 0)}  # (source, destination) in (l, m, r)


@dataclasses.dataclass
class Frame:
  """What one clip frame contributes to an example."""
  image: np.ndarray | None   # (H, W, 3) uint8 RGB; None when only the geometry is needed
  camera2world: np.ndarray   # (3, 4)
  track_ids: np.ndarray      # (n,) int: tracks observed in this frame
  track_xyz: np.ndarray      # (n, 3) world positions of those observations


@dataclasses.dataclass
class Clip:
  """The geometry of one clip: cameras and its sparse tracks (the official arrays, with the
  observations reordered by frame so that one frame's tracks are a slice)."""
  name: str
  camera2world: np.ndarray       # (T, 3, 4)
  track_ids: np.ndarray          # (ΣN_k,) track of each observation (repeat(arange(N), track_lengths))
  track_indices: np.ndarray      # (ΣN_k,) frame of each observation, sorted
  track_coordinates: np.ndarray  # (ΣN_k, 3)

  def __post_init__(self):
    order = np.argsort(self.track_indices, kind='stable')
    self.track_ids, self.track_indices = self.track_ids[order], self.track_indices[order]
    self.track_coordinates = self.track_coordinates[order]
    self._starts = np.searchsorted(self.track_indices, np.arange(len(self.camera2world) + 1))

  @property
  def num_frames(self) -> int:
    return len(self.camera2world)

  @property
  def num_tracks(self) -> int:
    return int(self.track_ids.max()) + 1 if len(self.track_ids) else 0  # ids are reordered by frame

  def frame(self, t: int, image: np.ndarray | None) -> Frame:
    seen = slice(self._starts[t], self._starts[t + 1])
    return Frame(image, self.camera2world[t], self.track_ids[seen], self.track_coordinates[seen])

  def dense_tracks(self) -> np.ndarray:
    """(N, T, 3) world positions, NaN where not observed: `load_dataset_npz` of the official code."""
    tracks = np.full((self.num_tracks, self.num_frames, 3), np.nan, np.float32)
    tracks[self.track_ids, self.track_indices] = self.track_coordinates
    return tracks


def load_clip(npz_path: str) -> Clip:
  """Read and validate a clip's npz. Raises BadClip naming the file and the problem."""
  try:
    with np.load(npz_path) as z:
      missing = [k for k in REQUIRED_KEYS if k not in z.files]
      if missing:
        raise BadClip(f'{npz_path}: missing keys {missing}')
      arrays = {k: z[k] for k in REQUIRED_KEYS}
      name = str(z['name']) if 'name' in z.files else npz_path
  except BadClip:
    raise
  except Exception as e:  # noqa: BLE001 - any unreadable file is a bad clip
    raise BadClip(f'{npz_path}: unreadable npz ({type(e).__name__}: {e})') from None
  cams = arrays['camera2world'].astype(np.float64)
  lengths = arrays['track_lengths'].astype(np.int64)
  indices = arrays['track_indices'].astype(np.int64)
  coords = arrays['track_coordinates'].astype(np.float32)
  if cams.ndim != 3 or cams.shape[1:] != (3, 4) or not np.all(np.isfinite(cams)):
    raise BadClip(f'{npz_path}: camera2world must be finite (T, 3, 4), got shape {cams.shape}')
  if lengths.sum() == 0 or lengths.sum() != len(indices) or coords.shape != (len(indices), 3):
    raise BadClip(f'{npz_path}: empty or inconsistent tracks (Σ track_lengths={lengths.sum()}, '
                  f'{len(indices)} indices, coordinates {coords.shape})')
  if indices.min() < 0 or indices.max() >= len(cams):
    raise BadClip(f'{npz_path}: track_indices outside [0, {len(cams)})')
  track_ids = np.repeat(np.arange(len(lengths)), lengths)
  return Clip(name, cams, track_ids, indices, coords)


def intrinsics(width: int, height: int, hfov: float = 60.0) -> np.ndarray:
  """(3, 3) K of Stereo4D's perspective crops: fx = fy = (W/2)/tan(hfov/2), centre (W/2, H/2)."""
  f = (width / 2) / np.tan(np.deg2rad(hfov) / 2)
  return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float64)


def world_to_camera(camera2world: np.ndarray) -> np.ndarray:
  """(4, 4) inverse of [R | c]: [Rᵀ | −Rᵀc]."""
  rot, centre = camera2world[:3, :3], camera2world[:3, 3]
  out = np.eye(4)
  out[:3, :3] = rot.T
  out[:3, 3] = -rot.T @ centre
  return out


def pixel_owner(cam_xyz, K, hw, rounding):
  """For points in a camera, (pixel flat index, point index) of the nearest point on each hit pixel."""
  h, w = hw
  z = cam_xyz[:, 2]
  with np.errstate(divide='ignore', invalid='ignore'):
    u = K[0, 0] * cam_xyz[:, 0] / z + K[0, 2]
    v = K[1, 1] * cam_xyz[:, 1] / z + K[1, 2]
  snap = np.floor if rounding == 'floor' else np.rint
  u, v = snap(u), snap(v)
  ok = (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
  idx = np.flatnonzero(ok)
  pixel = v[idx].astype(np.int64) * w + u[idx].astype(np.int64)
  order = np.lexsort((z[idx], pixel))       # by pixel, then nearest first
  pixel, idx = pixel[order], idx[order]
  first = np.ones(len(pixel), bool)
  first[1:] = pixel[1:] != pixel[:-1]
  return pixel[first], idx[first]


def build_example(frames: tuple[Frame, Frame, Frame], frame_ids: tuple[int, int, int], *,
                  hfov: float = 60.0, pixel_rounding: str = 'floor') -> dict:
  """The training example of triplet (l, m, r) from its three frames (see the module docstring).

  Returns float32 arrays: img1, img2 (H, W, 3) in [-1, 1]; pts3d1, pts3d2 (H, W, 3); valid1, valid2
  (H, W) bool; target_{l2m,r2m,l2r,r2l} (H, W, 3) with valid_{...} (H, W) bool; query_times (3,) =
  [(m-l)/(r-l), 1, 0]; intrinsics (3, 3); world_to_cam (3, 4, 4) for l, m, r.
  """
  if pixel_rounding not in PIXEL_ROUNDINGS:
    raise ValueError(f'pixel_rounding={pixel_rounding!r}; choose from {PIXEL_ROUNDINGS}')
  l, m, r = frame_ids                      # frame m contributes geometry only (its image may be None)
  h, w = frames[0].image.shape[:2]
  K = intrinsics(w, h, hfov)
  w2c = [world_to_camera(f.camera2world) for f in frames]
  ex = {'img1': _normalise(frames[0].image), 'img2': _normalise(frames[2].image),
        'query_times': np.array([(m - l) / max(1, r - l), 1.0, 0.0], np.float32),
        'intrinsics': K.astype(np.float32), 'world_to_cam': np.stack(w2c).astype(np.float32)}
  n_ids = 1 + max(int(f.track_ids.max(initial=-1)) for f in frames)
  position = []                            # per frame: track id → row of that frame's observations (-1: unseen)
  for f in frames:
    lookup = np.full(n_ids, -1, np.int64)
    lookup[f.track_ids] = np.arange(len(f.track_ids))
    position.append(lookup)
  owners = {}
  for view, src in ((1, 0), (2, 2)):       # view 1 = frame l, view 2 = frame r
    f = frames[src]
    pixel, idx = pixel_owner(apply_transform(w2c[src], f.track_xyz.astype(np.float64)), K, (h, w), pixel_rounding)
    owners[src] = (pixel, f.track_ids[idx])
    ex[f'pts3d{view}'], ex[f'valid{view}'] = scatter(pixel, apply_transform(w2c[0], f.track_xyz[idx]), (h, w))
  for name, (src, dst) in MOTION_TARGETS.items():
    pixel, ids = owners[src]
    at_dst = position[dst][ids]
    seen = at_dst >= 0
    xyz = apply_transform(w2c[0], frames[dst].track_xyz[at_dst[seen]])
    ex[f'target_{name}'], ex[f'valid_{name}'] = scatter(pixel[seen], xyz, (h, w))
  return ex


def scatter(pixel, values, hw):
  """Dense (H, W, 3) float32 map and (H, W) mask from flat pixel indices and (n, 3) values."""
  out = np.zeros((hw[0] * hw[1], 3), np.float32)
  valid = np.zeros(hw[0] * hw[1], bool)
  out[pixel] = values
  valid[pixel] = True
  return out.reshape(hw[0], hw[1], 3), valid.reshape(hw)


def _normalise(image):
  """uint8 RGB → float32 in [-1, 1] (DUSt3R's ImgNorm)."""
  out = image.astype(np.float32)
  out *= 1 / 127.5
  out -= 1.0
  return out


class Mp4Clip:
  """An opened clip: npz geometry + decoded video frames, over their common length. An unreadable video or
  frame (VideoError) is the BadClip of the same message."""

  def __init__(self, npz_path: str, mp4_path: str):
    self.clip = load_clip(npz_path)
    try:
      self.video = open_video(mp4_path)
    except VideoError as e:
      raise BadClip(str(e)) from None
    self.num_frames = min(self.clip.num_frames, len(self.video))
    if self.num_frames != self.clip.num_frames:  # warnings.warn shows a given message once per process
      warnings.warn(f'{mp4_path}: {len(self.video)} frames for {self.clip.num_frames} cameras; using the '
                    f'first {self.num_frames}')

  def frame(self, t: int, with_image: bool = True) -> Frame:
    if not 0 <= t < self.num_frames:
      raise BadClip(f'{self.clip.name}: frame {t} outside the clip ({self.num_frames} frames)')
    try:
      image = self.video[t] if with_image else None
    except VideoError as e:
      raise BadClip(str(e)) from None
    return self.clip.frame(t, image)


def make_example(npz_path: str, mp4_path: str, frames: tuple[int, int, int], *, hfov: float = 60.0,
                 pixel_rounding: str = 'floor') -> dict:
  """`build_example` for triplet `frames` = (l, m, r) of the clip stored in npz_path + mp4_path."""
  clip = Mp4Clip(npz_path, mp4_path)
  triplet = (clip.frame(frames[0]), clip.frame(frames[1], with_image=False), clip.frame(frames[2]))
  return build_example(triplet, frames, hfov=hfov, pixel_rounding=pixel_rounding)
