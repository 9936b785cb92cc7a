"""Synthetic Stereo4D clips in the official format, for tests and the CPU demo (real clips are not
downloadable everywhere).

    python -m data.synthetic --output=DIR --split=train --num_clips=4 --num_frames=60 [--size=512]

writes DIR/SPLIT/<name>.npz (official keys, spec dynadust3r.md §b) and
DIR/lefteye-perspective/SPLIT/<name>-left_rectified.mp4 (H.264, 29.97 fps). From Python:
`write_clips(...)` does the same, `make_clip(seed, num_frames, size)` returns one clip's arrays with
its frames, depth and object-id maps. Files appear whole (written aside, then moved into place) and a
finished set is marked by `SPLIT/.complete.json`, so a run killed half-way is told apart from a finished
one (`is_complete`, `ensure_clips`: the demo remakes a set cut short instead of training on part of it).

A clip has real geometry: a camera moves smoothly through a textured box room in which 3–5 textured
spheres and boxes move rigidly and pass in front of each other. Frames are rendered by ray casting
(nearest analytic hit through each pixel centre). Conventions are Stereo4D's: OpenCV camera axes,
`camera2world` = [R | c] maps camera → world (the world frame is not the first camera), K has
fx = fy = (W/2)/tan(hfov/2) and centre (W/2, H/2), pixel (row i, col j) spans [j, j+1) × [i, i+1).

Tracks are made like the release's BootsTAP tracks: every 10th frame a jittered grid of query points
(64 per side, at most one per pixel) is unprojected onto the visible surface, and each query becomes
a point fixed in its body's frame, followed through all frames. A query is dropped if an older track
is seen in its grid cell at the query frame (the release prunes tracks landing on the same pixel).
The release queries 128 × 128 points but keeps only ~25k of a clip's ~300k queries; the 64 grid gives
its density of a few thousand tracks per frame at 512 × 512.

An observation is kept iff the point is in front of the camera, at most 20 m deep, inside the image,
the first hit of the ray through it (exact, float64), on the body seen at its pixel (so pointmaps
built from tracks agree with the image), and viewed less than 75° from its surface normal. Tracks
with fewer than 2 observations are dropped.

Colours are a procedural texture of a point's position in its body's frame times a Lambertian shading
fixed in that frame, so a tracked point keeps its colour in every frame (up to H.264 loss).

The same seed gives byte-identical files: fixed zip timestamps, x264 with a fixed thread count and
bit-exact muxing without metadata.

Static multi-view scenes (DUSt3R-style training pairs), in DUSt3R's processed CO3D layout (data/co3d.py):

    python -m data.synthetic --layout=co3d --output=DIR --split=train --num_scenes=4 --num_views=8 [--size=512]

writes DIR/selected_seqs_SPLIT.json and DIR/synthetic/SPLIT_NNNN/{images,depths,masks}/frameXXXXXX.*
(`write_static_scenes`, `ensure_static_scenes`; `make_static_scene` returns one scene's arrays). A scene is
a clip's room and objects held still, seen by cameras on an arc looking at the objects (so the views
overlap); the mask is the objects (object_id > 0); depth is metres, K is in the pixel-index convention.
"""
import dataclasses
import fractions
import json
import os
import pathlib
import re
import shutil
import string
import zipfile

import numpy as np
from absl import app, flags, logging

FPS = fractions.Fraction(30000, 1001)      # Stereo4D clips are consecutive 29.97 fps frames
MAX_DEPTH = 20.0                           # m: the release discards deeper stereo depth
QUERY_EVERY = 10                           # frames between query frames (BootsTAP setup of the release)
QUERY_GRID = 64                            # query points per image side (fewer when the image is smaller)
QUERY_JITTER = 0.5                         # jitter span of a query, as a fraction of the grid spacing
MAX_VIEW_ANGLE = 75.0                      # deg between the view ray and the normal of a kept observation
SAME_POINT_RTOL = 1e-6                     # depth tolerance of "the first hit of the ray is the point"
AMBIENT = 0.45                             # shading = AMBIENT + (1 - AMBIENT) · max(0, n·light)
NUM_WAVES = 6                              # sinusoids per texture
CRF = 15                                   # x264 quality
X264_THREADS = 4                           # fixed: x264's output depends on its thread count
ZIP_DATE = (1980, 1, 1, 0, 0, 0)           # fixed npz member timestamps (np.savez uses the clock)
VIDEO_DIR = 'lefteye-perspective'          # official layout, as data.pipeline reads it
VIDEO_SUFFIX = '-left_rectified.mp4'
FOV_BOUNDS = (-90.0, 90.0, -90.0, 90.0)    # VR180 half-image bounds: [yaw0, yaw1, tilt0, tilt1] deg
VIDEO_ID_CHARS = string.ascii_letters + string.digits + '-_'
COMPLETE_MARKER = '.complete.json'        # in SPLIT/, written last by write_clips
PARTIAL_DIR = '.partial'                   # files being written, moved into place when whole
STATIC_ARC_DEG = (40.0, 80.0)              # azimuth span of a static scene's camera arc
NPZ_KEYS = ('name', 'video_id', 'timestamps', 'camera2world', 'track_lengths', 'track_indices',
            'track_coordinates', 'rectified2rig', 'fov_bounds')


@dataclasses.dataclass
class Texture:
  """Procedural colour of a body, a function of the position x (m) in the body's frame."""
  base: np.ndarray            # (3,) RGB in [0, 1]
  cell: np.ndarray            # () checkerboard cell size (m)
  cell_offset: np.ndarray     # (3,)
  checker: np.ndarray         # (3,) RGB added on odd cells, removed on even ones
  waves: np.ndarray           # (K, 3) wave vectors (rad/m)
  wave_phase: np.ndarray      # (K,)
  wave_colour: np.ndarray     # (K, 3)
  blob_centre: np.ndarray     # (B, 3)
  blob_radius: np.ndarray     # (B,)
  blob_colour: np.ndarray     # (B, 3)
  light: np.ndarray           # (3,) unit direction towards the light, in the body's frame

  def colour(self, x: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """(3, n) points and unit normals in the body's frame → (3, n) shaded RGB in [0, 1]."""
    parity = np.floor((x + self.cell_offset[:, None]) / self.cell).sum(0) % 2
    rgb = self.base[:, None] + (2 * parity - 1) * self.checker[:, None]
    rgb = rgb + _mul(self.wave_colour.T, np.sin(_mul(self.waves, x) + self.wave_phase[:, None]))
    dist2 = (x * x).sum(0) - 2 * _mul(self.blob_centre, x) + (self.blob_centre ** 2).sum(1)[:, None]
    rgb = rgb + _mul(self.blob_colour.T, np.exp(-dist2 / self.blob_radius[:, None] ** 2))
    shade = AMBIENT + (1 - AMBIENT) * np.maximum(_mul(self.light[None], normal)[0], 0.0)
    return np.clip(rgb, 0, 1) * shade


@dataclasses.dataclass
class Body:
  """A rigid textured body: 'room' (a box seen from inside), 'box' or 'sphere', centred on its frame.

  Its frame moves on a sinusoidal path and spins at a constant rate: at frame t it maps a local point x
  to rotation(t) · x + position(t) in the scene.
  """
  kind: str
  half_size: np.ndarray      # (3,) box half extents; a sphere's radius three times
  centre: np.ndarray         # (3,) mean position in the scene (m)
  sway: np.ndarray           # (3,) amplitude of the path (m)
  sway_freq: np.ndarray      # (3,) rad/frame
  sway_phase: np.ndarray     # (3,)
  spin_axis: np.ndarray      # (3,) unit
  spin_rate: float           # rad/frame
  orientation: np.ndarray    # (3, 3) rotation at frame 0
  texture: Texture

  def pose(self, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) rotation and (3,) position of the body frame in the scene at frame t."""
    position = self.centre + self.sway * np.sin(self.sway_freq * t + self.sway_phase)
    return _axis_angle(self.spin_axis, self.spin_rate * t) @ self.orientation, position


@dataclasses.dataclass
class CameraPath:
  """A smooth camera trajectory: sinusoidal sway of the centre, yaw and pitch around their means."""
  centre: np.ndarray         # (3,) mean centre in the scene (m)
  sway: np.ndarray           # (3,) amplitude (m)
  sway_freq: np.ndarray      # (3,) rad/frame
  sway_phase: np.ndarray     # (3,)
  yaw: np.ndarray            # (4,) mean, amplitude (rad), frequency (rad/frame), phase
  pitch: np.ndarray          # (4,) same

  def pose(self, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(3, 3) camera → scene rotation and (3,) centre at frame t."""
    yaw, pitch = (a[0] + a[1] * np.sin(a[2] * t + a[3]) for a in (self.yaw, self.pitch))
    rotation = _axis_angle(np.array([0.0, 1.0, 0.0]), yaw) @ _axis_angle(np.array([1.0, 0.0, 0.0]), pitch)
    return rotation, self.centre + self.sway * np.sin(self.sway_freq * t + self.sway_phase)


@dataclasses.dataclass
class Scene:
  bodies: list[Body]             # bodies[0] is the static room; object ids index this list
  camera: CameraPath
  world_from_scene: np.ndarray   # (3, 4) [R | t]: the clip's world frame, unrelated to any camera


@dataclasses.dataclass
class RenderedFrame:
  """One frame: the camera, the body poses and what each pixel centre's ray hits first."""
  rotation: np.ndarray           # (3, 3) camera → scene
  centre: np.ndarray             # (3,) camera centre in the scene
  body_rotations: np.ndarray     # (B, 3, 3) body → scene
  body_positions: np.ndarray     # (B, 3)
  image: np.ndarray              # (H, W, 3) uint8 RGB
  depth: np.ndarray              # (H, W) camera z of the hit (m)
  object_id: np.ndarray          # (H, W) index of the hit body (0: room)


@dataclasses.dataclass
class Tracks:
  """Surface points fixed in their bodies' frames."""
  body: np.ndarray               # (N,) int body index
  local: np.ndarray              # (3, N) position in the body frame
  normal: np.ndarray             # (3, N) unit surface normal in the body frame


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
  """(3, 3) rotation by `angle` rad about the unit `axis` (Rodrigues)."""
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _mul(a: np.ndarray, x: np.ndarray) -> np.ndarray:
  """(k, m) @ (m, n) for small k, m without BLAS, whose threads stall on a busy CPU (10× slower)."""
  return np.einsum('km,mn->kn', a, x)


def _unit(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
  """Uniformly random unit vector(s), (3,) or (n, 3)."""
  v = rng.normal(size=(3,) if n is None else (n, 3))
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _random_rotation(rng: np.random.Generator, max_deg: float = 180.0) -> np.ndarray:
  return _axis_angle(_unit(rng), np.deg2rad(rng.uniform(0, max_deg)))


def _sway_freq(rng: np.random.Generator, periods: tuple[float, float], n: int = 3) -> np.ndarray:
  """rad/frame of sinusoids whose periods (frames) are drawn in `periods`."""
  return 2 * np.pi / rng.uniform(*periods, n)


# --- scene ------------------------------------------------------------------------------------------


def _random_texture(rng: np.random.Generator, half_size: np.ndarray, cell_size: tuple[float, float],
                    num_blobs: int, blob_radius: tuple[float, float]) -> Texture:
  """A checkerboard + sinusoids + colour blobs (inside the body's box) texture with a fixed light.

  Like natural images, fine detail is mostly brightness and colour varies smoothly (blobs): H.264's
  yuv420p keeps colour at half resolution. The arrays are float32, the precision frames are rendered in.
  """
  cell = rng.uniform(*cell_size)
  wavelength = rng.uniform(0.3, 1.5, NUM_WAVES)
  params = dict(
      base=rng.uniform(0.25, 0.75, 3), cell=cell, cell_offset=rng.uniform(0, cell, 3),
      checker=rng.uniform(0.08, 0.2) + rng.uniform(-0.02, 0.02, 3),
      waves=_unit(rng, NUM_WAVES) * (2 * np.pi / wavelength)[:, None],
      wave_phase=rng.uniform(0, 2 * np.pi, NUM_WAVES),
      wave_colour=rng.uniform(-0.07, 0.07, (NUM_WAVES, 1)) + rng.uniform(-0.01, 0.01, (NUM_WAVES, 3)),
      blob_centre=rng.uniform(-half_size, half_size, (num_blobs, 3)),
      blob_radius=rng.uniform(*blob_radius, num_blobs), blob_colour=rng.uniform(-0.35, 0.35, (num_blobs, 3)),
      light=_unit(rng))
  return Texture(**{name: np.asarray(value, np.float32) for name, value in params.items()})


def _static_body(kind: str, half_size: np.ndarray, centre: np.ndarray, texture: Texture) -> Body:
  zero = np.zeros(3)
  return Body(kind, half_size, centre, zero, zero, zero, np.array([1.0, 0, 0]), 0.0, np.eye(3), texture)


def _random_room(rng: np.random.Generator) -> Body:
  """The static room around the camera's mean position (scene origin; +y down, +z ahead)."""
  lo = np.array([-rng.uniform(5, 7), -rng.uniform(2, 3), -rng.uniform(4, 6)])    # left, ceiling, behind
  hi = np.array([rng.uniform(5, 7), rng.uniform(1.3, 1.7), rng.uniform(11, 15)])  # right, floor, ahead
  half = (hi - lo) / 2
  return _static_body('room', half, (hi + lo) / 2, _random_texture(rng, half, (0.3, 0.8), 8, (0.5, 2.0)))


def _random_object(rng: np.random.Generator, kind: str, floor: float) -> Body:
  """A sphere or box 4–8 m ahead, swaying sideways by up to 1.8 m (so objects cross each other)."""
  half = np.full(3, rng.uniform(0.35, 0.8)) if kind == 'sphere' else rng.uniform(0.25, 0.7, 3)
  reach = np.linalg.norm(half) if kind == 'box' else half[0]   # bounding radius while spinning
  sway = np.array([rng.uniform(0.8, 1.8), rng.uniform(0, 0.3), rng.uniform(0.3, 1.2)])
  centre = np.array([rng.uniform(-2, 2), rng.uniform(-1.0, floor - reach - sway[1]), rng.uniform(4, 8)])
  return Body(kind, half, centre, sway, _sway_freq(rng, (60, 160)), rng.uniform(0, 2 * np.pi, 3), _unit(rng),
              np.deg2rad(rng.uniform(1, 4)), _random_rotation(rng),
              _random_texture(rng, half, (0.12, 0.3), 3, (0.3 * half.min(), 0.8 * half.max())))


def _random_camera(rng: np.random.Generator) -> CameraPath:
  """A few cm per frame of sway around a point near the origin, ±5–15° yaw, ±2–6° pitch."""
  def angle(mean_deg, amp_deg):
    return np.array([np.deg2rad(rng.uniform(-mean_deg, mean_deg)), np.deg2rad(rng.uniform(*amp_deg)),
                     _sway_freq(rng, (100, 250), 1)[0], rng.uniform(0, 2 * np.pi)])
  return CameraPath(
      centre=np.array([rng.uniform(-1, 1), rng.uniform(-0.3, 0.3), rng.uniform(-1, 0)]),
      sway=np.array([rng.uniform(0.3, 1.0), rng.uniform(0.05, 0.2), rng.uniform(0.3, 1.0)]),
      sway_freq=_sway_freq(rng, (80, 200)), sway_phase=rng.uniform(0, 2 * np.pi, 3),
      yaw=angle(15, (5, 15)), pitch=angle(5, (2, 6)))


def random_scene(rng: np.random.Generator) -> Scene:
  """A room, 3–5 moving objects (at least one sphere and one box), a camera path and a world frame."""
  room = _random_room(rng)
  floor = room.centre[1] + room.half_size[1]
  num_objects = int(rng.integers(3, 6))
  kinds = ['sphere', 'box'] + list(rng.choice(['sphere', 'box'], num_objects - 2))
  objects = [_random_object(rng, kind, floor) for kind in rng.permutation(kinds)]
  world = np.concatenate([_random_rotation(rng, 30), rng.uniform(-1, 1, (3, 1))], axis=1)
  return Scene([room, *objects], _random_camera(rng), world)


# --- ray casting ------------------------------------------------------------------------------------


def _slabs(origin, dirs, half):
  """Entry and exit ray parameters of the slabs |x_i| ≤ half_i, (3, n) each."""
  with np.errstate(divide='ignore', invalid='ignore'):
    t1, t2 = (-half - origin)[:, None] / dirs, (half - origin)[:, None] / dirs
  return np.minimum(t1, t2), np.maximum(t1, t2)


def _hit_room(origin, dirs, half):
  """Ray parameter where rays from inside the box leave it, (n,)."""
  exit_ = _slabs(origin, dirs, half)[1].min(0)
  return np.where(exit_ > 0, exit_, np.inf)


def _hit_box(origin, dirs, half):
  """Ray parameter of the first hit of the box from outside, (n,); inf if missed."""
  lo, hi = _slabs(origin, dirs, half)
  entry, exit_ = lo.max(0), hi.min(0)
  return np.where((entry <= exit_) & (entry > 0), entry, np.inf)


def _hit_sphere(origin, dirs, half):
  """Ray parameter of the first hit of the sphere (radius half[0]) from outside, (n,); inf if missed."""
  a = (dirs * dirs).sum(0)
  b = _mul(origin[None], dirs)[0]
  disc = b * b - a * (origin @ origin - half[0] ** 2)
  s = (-b - np.sqrt(np.maximum(disc, 0))) / a
  return np.where((disc >= 0) & (s > 0), s, np.inf)


HIT = {'room': _hit_room, 'box': _hit_box, 'sphere': _hit_sphere}


def surface_normal(kind: str, x: np.ndarray, half: np.ndarray) -> np.ndarray:
  """(3, n) unit normals at surface points x (3, n) of a body (its frame), towards the viewer's side."""
  if kind == 'sphere':
    return x / np.linalg.norm(x, axis=0)
  face, n = np.argmax(np.abs(x) / half[:, None], 0), np.arange(x.shape[1])
  normal = np.zeros_like(x)
  normal[face, n] = np.sign(x[face, n])
  return -normal if kind == 'room' else normal


def cast(bodies: list[Body], rotations: np.ndarray, positions: np.ndarray, origin: np.ndarray,
         dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Nearest hit of the rays origin + s·dirs, s > 0, among bodies posed by (B, 3, 3) rotations and
  (B, 3) positions. origin (3,), dirs (3, n) in the scene.

  Returns s (n,) (the camera depth when dirs have camera z = 1), the body index (n,) and the hit
  point in that body's frame (3, n), all in the dtype of dirs.
  """
  dtype = dirs.dtype
  best, body = np.full(dirs.shape[1], np.inf, dtype), np.zeros(dirs.shape[1], np.int64)
  local_rays = []
  for b, (spec, rot, pos) in enumerate(zip(bodies, rotations, positions)):
    o, d = (rot.T @ (origin - pos)).astype(dtype), _mul(rot.T.astype(dtype), dirs)   # scene → body frame
    s = HIT[spec.kind](o, d, spec.half_size.astype(dtype))
    nearer = s < best
    best, body = np.where(nearer, s, best), np.where(nearer, b, body)
    local_rays.append((o, d))
  local = np.empty_like(dirs)
  for b, (o, d) in enumerate(local_rays):
    np.copyto(local, o[:, None] + best * d, where=body == b)
  return best, body, local


def camera_rays(u: np.ndarray, v: np.ndarray, rotation: np.ndarray, size: int, focal: float) -> np.ndarray:
  """(3, n) scene directions of the rays through image points (u, v), scaled to camera z = 1."""
  return _mul(rotation, np.stack([(u - size / 2) / focal, (v - size / 2) / focal, np.ones_like(u)]))


def render_frame(scene: Scene, t: int, size: int, focal: float) -> RenderedFrame:
  """Ray-cast frame t through the pixel centres (j + 0.5, i + 0.5), in float32 (fast; the exact
  visibility of tracks is decided in float64 by `observe`)."""
  rotation, centre = scene.camera.pose(t)
  poses = [body.pose(t) for body in scene.bodies]
  rotations, positions = np.stack([p[0] for p in poses]), np.stack([p[1] for p in poses])
  v, u = np.mgrid[:size, :size] + 0.5
  depth, body, local = cast(scene.bodies, rotations, positions, centre,
                            camera_rays(u.ravel(), v.ravel(), rotation, size, focal).astype(np.float32))
  rgb = np.empty_like(local)
  for b, spec in enumerate(scene.bodies):
    hit = np.flatnonzero(body == b)
    x = np.take(local, hit, axis=1)
    rgb[:, hit] = spec.texture.colour(x, surface_normal(spec.kind, x, spec.half_size))
  image = np.round(rgb.T * 255).astype(np.uint8).reshape(size, size, 3)
  return RenderedFrame(rotation, centre, rotations, positions, image, depth.reshape(size, size),
                       body.reshape(size, size).astype(np.uint8))


# --- tracks -----------------------------------------------------------------------------------------


def observe(bodies: list[Body], frame: RenderedFrame, tracks: Tracks, focal: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The tracks seen in a frame (criteria in the module docstring).

  Returns their indices (n,), scene positions (3, n) and image points (2, n) = (u, v).
  """
  size = frame.depth.shape[0]
  rot = frame.body_rotations[tracks.body]
  xyz = np.einsum('nij,jn->in', rot, tracks.local) + frame.body_positions[tracks.body].T
  cam = _mul(frame.rotation.T, xyz - frame.centre[:, None])
  z = cam[2]
  with np.errstate(divide='ignore', invalid='ignore'):
    uv = focal * cam[:2] / z + size / 2
  idx = np.flatnonzero((z > 0) & (z <= MAX_DEPTH) & np.all((uv >= 0) & (uv < size), 0))
  col, row = np.floor(uv[:, idx]).astype(np.int64)
  idx = idx[frame.object_id[row, col] == tracks.body[idx]]
  ray = (xyz[:, idx] - frame.centre[:, None]) / z[idx]        # camera z = 1: the ray parameter is z
  normal = np.einsum('nij,jn->in', rot[idx], tracks.normal[:, idx])
  facing = np.abs((normal * ray).sum(0)) >= np.cos(np.deg2rad(MAX_VIEW_ANGLE)) * np.linalg.norm(ray, axis=0)
  idx, ray = idx[facing], ray[:, facing]
  s, body, _ = cast(bodies, frame.body_rotations, frame.body_positions, frame.centre, ray)
  idx = idx[(body == tracks.body[idx]) & (np.abs(s - z[idx]) <= SAME_POINT_RTOL * z[idx])]
  return idx, xyz[:, idx], uv[:, idx]


def _query_grid(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Jittered grid of G × G query points (G = min(QUERY_GRID, size)): u, v, grid cell index, (G²,) each."""
  grid = min(QUERY_GRID, size)
  spacing = size / grid
  rows, cols = np.mgrid[:grid, :grid].reshape(2, -1)
  jitter = rng.uniform(-QUERY_JITTER / 2, QUERY_JITTER / 2, (2, grid * grid))
  return (cols + 0.5 + jitter[0]) * spacing, (rows + 0.5 + jitter[1]) * spacing, rows * grid + cols


def _grid_cell(uv: np.ndarray, size: int) -> np.ndarray:
  """Query-grid cell index of image points (2, n)."""
  grid = min(QUERY_GRID, size)
  col, row = np.floor(uv * grid / size).astype(np.int64)
  return row * grid + col


def _concat(a: Tracks, b: Tracks) -> Tracks:
  return Tracks(np.concatenate([a.body, b.body]), np.concatenate([a.local, b.local], 1),
                np.concatenate([a.normal, b.normal], 1))


def _select(tracks: Tracks, idx: np.ndarray) -> Tracks:
  return Tracks(tracks.body[idx], tracks.local[:, idx], tracks.normal[:, idx])


def make_tracks(rng: np.random.Generator, bodies: list[Body], frames: list[RenderedFrame], focal: float) -> Tracks:
  """Query every QUERY_EVERY-th frame on a jittered grid; keep the queries seen at their query frame
  in a grid cell where no older track is seen."""
  size = frames[0].depth.shape[0]
  tracks = Tracks(np.zeros(0, np.int64), np.zeros((3, 0)), np.zeros((3, 0)))
  for q in range(0, len(frames), QUERY_EVERY):
    frame = frames[q]
    u, v, cell = _query_grid(rng, size)
    _, body, local = cast(bodies, frame.body_rotations, frame.body_positions, frame.centre,
                          camera_rays(u, v, frame.rotation, size, focal))
    normal = np.empty_like(local)
    for b, spec in enumerate(bodies):
      on = body == b
      normal[:, on] = surface_normal(spec.kind, local[:, on], spec.half_size)
    new = Tracks(body, local, normal)
    seen_new = observe(bodies, frame, new, focal)[0]
    _, _, seen_old_uv = observe(bodies, frame, tracks, focal)
    keep = seen_new[~np.isin(cell[seen_new], _grid_cell(seen_old_uv, size))]
    tracks = _concat(tracks, _select(new, keep))
  return tracks


def track_observations(bodies: list[Body], frames: list[RenderedFrame], tracks: Tracks, focal: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Every kept observation, grouped by track and in frame order; tracks seen < 2 times are dropped.

  Returns the official (N,) track_lengths, (ΣN,) track_indices and the scene positions (3, ΣN).
  """
  ids, times, points = [], [], []
  for t, frame in enumerate(frames):
    idx, xyz, _ = observe(bodies, frame, tracks, focal)
    ids.append(idx)
    times.append(np.full(len(idx), t))
    points.append(xyz)
  ids, times, points = np.concatenate(ids), np.concatenate(times), np.concatenate(points, 1)
  lengths = np.bincount(ids, minlength=len(tracks.body))
  kept = lengths[ids] >= 2
  ids, times, points = ids[kept], times[kept], points[:, kept]
  order = np.lexsort((times, ids))
  return lengths[lengths >= 2], times[order], points[:, order]


# --- clips ------------------------------------------------------------------------------------------


def focal_length(size: int, hfov: float) -> float:
  """fx = fy = (W/2)/tan(hfov/2) of Stereo4D's perspective crops."""
  return (size / 2) / np.tan(np.deg2rad(hfov) / 2)


def _apply(transform: np.ndarray, x: np.ndarray) -> np.ndarray:
  """(3, 4) [R | t] applied to (3, n) points."""
  return _mul(transform[:, :3], x) + transform[:, 3:]


def _camera_to_world(world: np.ndarray, frame) -> np.ndarray:
  """(3, 4) camera → world of a rendered frame, in the world frame of `world` (the scene's world_from_scene)."""
  return np.concatenate([world[:, :3] @ frame.rotation, _apply(world, frame.centre[:, None])], 1)


def _clip_identity(rng: np.random.Generator, num_frames: int) -> tuple[str, np.ndarray]:
  """A YouTube-like 11-character video id and (T,) µs timestamps of consecutive 29.97 fps frames."""
  video_id = ''.join(rng.choice(list(VIDEO_ID_CHARS), 11))
  frame_us = 10 ** 6 / FPS
  start = round(int(rng.integers(0, 100_000)) * frame_us)    # on the source video's frame grid
  return video_id, np.round(start + np.arange(num_frames) * float(frame_us)).astype(np.int64)


def make_clip(seed: int, num_frames: int, size: int = 512, hfov: float = 60.0) -> dict:
  """One synthetic clip: the official npz arrays (NPZ_KEYS) plus, for tests,
  `frames` (T, H, W, 3) uint8 RGB, `depth` (T, H, W) float32 camera z of each pixel centre's hit (m)
  and `object_id` (T, H, W) uint8 (0: the static room, k ≥ 1: moving object k). H = W = size.
  """
  if size % 2 or size < 2:
    raise ValueError(f'size={size}: H.264 yuv420p needs an even frame size')
  if num_frames < 1:
    raise ValueError(f'num_frames={num_frames}: need at least one frame')
  rng = np.random.default_rng(seed)
  video_id, timestamps = _clip_identity(rng, num_frames)
  scene = random_scene(rng)
  focal = focal_length(size, hfov)
  frames = [render_frame(scene, t, size, focal) for t in range(num_frames)]
  tracks = make_tracks(rng, scene.bodies, frames, focal)
  lengths, indices, points = track_observations(scene.bodies, frames, tracks, focal)
  world = scene.world_from_scene
  camera2world = np.stack([_camera_to_world(world, f) for f in frames])
  rectified2rig = np.stack([_random_rotation(rng, 2.0) for _ in range(2)])
  return {
      'name': np.array(f'{video_id}_{timestamps[0]}'), 'video_id': np.array(video_id), 'timestamps': timestamps,
      'camera2world': camera2world.astype(np.float32), 'track_lengths': lengths.astype(np.int32),
      'track_indices': indices.astype(np.int32), 'track_coordinates': _apply(world, points).T.astype(np.float32),
      'rectified2rig': rectified2rig.astype(np.float32), 'fov_bounds': np.array(FOV_BOUNDS, np.float32),
      'frames': np.stack([f.image for f in frames]), 'depth': np.stack([f.depth for f in frames]).astype(np.float32),
      'object_id': np.stack([f.object_id for f in frames])}


def write_npz(path: str, arrays: dict) -> None:
  """np.savez, but byte-reproducible: fixed member timestamps. No pickled objects."""
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
    for key, value in arrays.items():
      with archive.open(zipfile.ZipInfo(f'{key}.npy', date_time=ZIP_DATE), 'w', force_zip64=True) as f:
        np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)


def write_mp4(path: str, frames: np.ndarray, gop: int = 30) -> None:
  """(T, H, W, 3) uint8 RGB → H.264 (libx264, yuv420p) at 29.97 fps, a keyframe every `gop` frames."""
  import imageio_ffmpeg  # pylint: disable=import-outside-toplevel
  height, width = frames.shape[1:3]
  writer = imageio_ffmpeg.write_frames(
      path, (width, height), fps=FPS, codec='libx264', quality=None, macro_block_size=1,
      ffmpeg_log_level='error',
      output_params=['-crf', str(CRF), '-g', str(gop), '-sc_threshold', '0', '-threads', str(X264_THREADS),
                     '-flags', '+bitexact', '-fflags', '+bitexact', '-map_metadata', '-1'])
  writer.send(None)
  for frame in frames:
    writer.send(np.ascontiguousarray(frame))
  writer.close()


def clip_seed(seed: int, k: int) -> int:
  """Seed of clip k of a set made with `seed` (stable across runs and platforms)."""
  return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def _write_in_place(path: str, write) -> None:
  """write(tmp_path), then move the whole file to `path`: a kill leaves no truncated file there. The
  temporary file sits in a hidden `.partial/` folder beside it (same name, so ffmpeg sees its suffix)."""
  staging = os.path.join(os.path.dirname(path), PARTIAL_DIR)
  os.makedirs(staging, exist_ok=True)
  tmp = os.path.join(staging, os.path.basename(path))
  write(tmp)
  os.replace(tmp, path)


def write_clips(output: str, split: str, num_clips: int, num_frames: int, size: int = 512, hfov: float = 60.0,
                seed: int = 0, gop: int = 30) -> list[tuple[str, str]]:
  """Write clips 0..num_clips-1 in the official layout under `output`; returns their (npz, mp4) paths.

  Every file appears whole or not at all, and `SPLIT/.complete.json` (these arguments and the clip
  names) is written last: `is_complete` tells a finished set from one that a kill cut short."""
  npz_dir, mp4_dir = os.path.join(output, split), os.path.join(output, VIDEO_DIR, split)
  paths = []
  for k in range(num_clips):
    clip = make_clip(clip_seed(seed, k), num_frames, size, hfov)
    name = str(clip['name'])
    npz, mp4 = os.path.join(npz_dir, f'{name}.npz'), os.path.join(mp4_dir, f'{name}{VIDEO_SUFFIX}')
    _write_in_place(npz, lambda path: write_npz(path, {key: clip[key] for key in NPZ_KEYS}))
    _write_in_place(mp4, lambda path: write_mp4(path, clip['frames'], gop))
    paths.append((npz, mp4))
  marker = dict(_generation(num_clips, num_frames, size, hfov, seed, gop),
                clips=[os.path.basename(npz)[:-len('.npz')] for npz, _ in paths])
  _write_in_place(os.path.join(npz_dir, COMPLETE_MARKER),
                  lambda path: pathlib.Path(path).write_text(json.dumps(marker, indent=1)))
  for directory in (npz_dir, mp4_dir):
    if os.path.isdir(os.path.join(directory, PARTIAL_DIR)):
      os.rmdir(os.path.join(directory, PARTIAL_DIR))
  return paths


def _generation(num_clips, num_frames, size, hfov, seed, gop) -> dict:
  return dict(num_clips=num_clips, num_frames=num_frames, size=size, hfov=hfov, seed=seed, gop=gop)


def is_complete(output: str, split: str, num_clips: int, num_frames: int, size: int = 512, hfov: float = 60.0,
                seed: int = 0, gop: int = 30) -> bool:
  """Whether `output/split` holds a finished `write_clips` set made with exactly these arguments."""
  try:
    marker = json.loads(pathlib.Path(output, split, COMPLETE_MARKER).read_text())
  except (OSError, ValueError):
    return False
  expected = _generation(num_clips, num_frames, size, hfov, seed, gop)
  return {k: marker.get(k) for k in expected} == expected and all(
      os.path.isfile(os.path.join(output, split, f'{n}.npz')) and
      os.path.isfile(os.path.join(output, VIDEO_DIR, split, f'{n}{VIDEO_SUFFIX}')) for n in marker['clips'])


def ensure_clips(output: str, split: str, num_clips: int, num_frames: int, **kwargs) -> None:
  """The demo's data: a finished set of these clips in `output/split`, made afresh unless one is there.

  A set cut short by a kill, or made with other arguments, is deleted first (both split folders), so
  a rerun trains on exactly the data an uninterrupted run would have. Only for folders this project
  owns (the demo's WORKDIR/synthetic): it deletes what it finds there."""
  if is_complete(output, split, num_clips, num_frames, **kwargs):
    return
  for directory in (os.path.join(output, split), os.path.join(output, VIDEO_DIR, split)):
    shutil.rmtree(directory, ignore_errors=True)
  logging.info('making %d synthetic clips in %s/%s', num_clips, output, split)
  write_clips(output, split, num_clips, num_frames, **kwargs)


# --- static multi-view scenes (processed CO3D layout) ----------------------------------------------


@dataclasses.dataclass
class ViewCameras:
  """Fixed cameras, one per view: what `render_frame` asks a CameraPath for (pose(t) of view t)."""
  rotations: np.ndarray      # (V, 3, 3) camera → scene
  centres: np.ndarray        # (V, 3)

  def pose(self, t: int) -> tuple[np.ndarray, np.ndarray]:
    return self.rotations[t], self.centres[t]


def _frozen(body: Body) -> Body:
  """The body held still at its frame-0 pose."""
  rotation, position = body.pose(0)
  return dataclasses.replace(body, centre=position, sway=np.zeros(3), spin_rate=0.0, orientation=rotation)


def _reach(body: Body) -> float:
  """Bounding radius of a body about its centre."""
  return float(body.half_size[0] if body.kind == 'sphere' else np.linalg.norm(body.half_size))


def look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
  """(3, 3) camera → scene rotation of a camera at `centre` looking at `target`, OpenCV axes, no roll
  (the scene's +y is down: the camera's x axis stays horizontal)."""
  z = (target - centre) / np.linalg.norm(target - centre)
  x = np.cross([0.0, 1.0, 0.0], z)
  x /= np.linalg.norm(x)
  return np.stack([x, np.cross(z, x), z], axis=1)


def _arc_cameras(rng: np.random.Generator, bodies: list[Body], num_views: int, tries: int = 200) -> ViewCameras:
  """`num_views` cameras on an arc around the objects' centroid, each looking at it (± a few cm).

  The arc spans STATIC_ARC_DEG (drawn) in azimuth about the scene's vertical, in front of the objects
  (the side the clips' camera sees them from), its radius and the cameras' height above the centroid
  drawn too. Arcs that put a camera within 0.3 m of an object's bounding sphere or of a wall are redrawn.
  """
  room, objects = bodies[0], bodies[1:]
  target = np.mean([b.centre for b in objects], axis=0)
  lo, hi = room.centre - room.half_size + 0.3, room.centre + room.half_size - 0.3
  fractions_ = np.linspace(-0.5, 0.5, num_views) if num_views > 1 else np.zeros(1)
  for _ in range(tries):
    span, middle = np.deg2rad(rng.uniform(*STATIC_ARC_DEG)), np.deg2rad(rng.uniform(-15, 15))
    radius = rng.uniform(4.0, 6.0)
    azimuth = middle + span * fractions_
    height = rng.uniform(0.2, 1.0) + rng.uniform(-0.15, 0.15, num_views)   # above the centroid (y is down)
    centres = target + np.stack([radius * np.sin(azimuth), -height, -radius * np.cos(azimuth)], axis=1)
    clear = all(np.linalg.norm(c - b.centre) > _reach(b) + 0.3 for c in centres for b in objects)
    if clear and np.all((centres > lo) & (centres < hi)):
      targets = target + rng.normal(0, 0.05, (num_views, 3))
      return ViewCameras(np.stack([look_at(c, t) for c, t in zip(centres, targets)]), centres)
  raise RuntimeError(f'no camera arc clear of the objects and walls in {tries} tries')


def pixel_index_intrinsics(size: int, focal: float) -> np.ndarray:
  """(3, 3) K of the renderer's camera with pixel (c, r)'s centre at (c, r) (data/sequence.py and processed
  CO3D's convention; the renderer casts rays through (c + 0.5, r + 0.5) about the centre size/2)."""
  return np.array([[focal, 0, size / 2 - 0.5], [0, focal, size / 2 - 0.5], [0, 0, 1]])


def make_static_scene(seed: int, num_views: int, size: int = 512, hfov: float = 60.0) -> dict:
  """One static scene seen from `num_views` cameras on an arc looking at its objects (`_arc_cameras`):
  the clips' room and objects (`random_scene`), held still at their frame-0 pose.

  Returns `images` (V, H, W, 3) uint8 RGB, `depth` (V, H, W) float32 camera z of each pixel centre's hit
  (m), `object_id` (V, H, W) uint8 (0: the room), `mask` (V, H, W) bool (object_id > 0: the objects are
  the foreground), `K` (3, 3) float64 (pixel-index convention, `pixel_index_intrinsics`) and `c2w`
  (V, 4, 4) float64 camera → world (OpenCV axes; the world frame is the scene's `world_from_scene`).
  Colours are view-independent (texture and shading fixed in each body's frame), so a surface point
  has one colour in every view. H = W = size.
  """
  if size < 2:
    raise ValueError(f'size={size}: need at least 2 pixels')
  if num_views < 2:
    raise ValueError(f'num_views={num_views}: a multi-view scene needs at least 2 views')
  rng = np.random.default_rng(seed)
  scene = random_scene(rng)
  bodies = [_frozen(b) for b in scene.bodies]
  scene = dataclasses.replace(scene, bodies=bodies, camera=_arc_cameras(rng, bodies, num_views))
  focal = focal_length(size, hfov)
  frames = [render_frame(scene, t, size, focal) for t in range(num_views)]
  c2w = np.tile(np.eye(4), (num_views, 1, 1))
  c2w[:, :3] = [_camera_to_world(scene.world_from_scene, f) for f in frames]
  object_id = np.stack([f.object_id for f in frames])
  return {'images': np.stack([f.image for f in frames]), 'depth': np.stack([f.depth for f in frames]).astype(np.float32),
          'object_id': object_id, 'mask': object_id > 0, 'K': pixel_index_intrinsics(size, focal), 'c2w': c2w}


def static_scene_name(split: str, k: int) -> str:
  """Sequence name of scene k of a `write_static_scenes` set of `split` (the split keeps a train and a test
  set apart in one root, as CO3D's train and test sequences share its category folders)."""
  return f'{split}_{k:04d}'


def _static_generation(num_scenes, num_views, size, hfov, seed, category) -> dict:
  return dict(layout='co3d', num_scenes=num_scenes, num_views=num_views, size=size, hfov=hfov, seed=seed,
              category=category)


def _static_marker(output: str, split: str) -> str:
  return os.path.join(output, f'.complete_{split}.json')


def write_static_scenes(output: str, split: str, num_scenes: int, num_views: int, size: int = 512,
                        hfov: float = 60.0, seed: int = 0, category: str = 'synthetic') -> list[str]:
  """Write static scenes 0..num_scenes-1 (scene k: `make_static_scene(clip_seed(seed, k), ...)`) in DUSt3R's
  processed CO3D layout (data/co3d.py, spec evaluation.md §8.2) under `output`; returns their sequence
  folders `output/<category>/<split>_<k:04d>`, each with frames 0..num_views-1 and listed in
  `output/selected_seqs_<split>.json`. `split` is 'train' or 'test' (the names data.co3d reads).

  A sequence is written whole in `output/.partial/<split>/` and then moved into place; the selection JSON
  follows, and `output/.complete_<split>.json` (these arguments and the sequence names) last, after the
  previous marker has been removed first: `is_static_complete` tells a finished set from a cut-short one."""
  from data import co3d  # pylint: disable=import-outside-toplevel (cv2 and PIL: only for this layout)
  if split not in co3d.SPLITS:
    raise ValueError(f'split={split!r}: processed CO3D has the splits {co3d.SPLITS}')
  if num_scenes < 1:
    raise ValueError(f'num_scenes={num_scenes}: need at least one scene')
  marker = _static_marker(output, split)
  if os.path.exists(marker):
    os.remove(marker)
  staging = os.path.join(output, PARTIAL_DIR, split)
  shutil.rmtree(staging, ignore_errors=True)
  seq_dirs, names = [], []
  for k in range(num_scenes):
    arrays = make_static_scene(clip_seed(seed, k), num_views, size, hfov)
    name = static_scene_name(split, k)
    staged, final = os.path.join(staging, category, name), os.path.join(output, category, name)
    for t in range(num_views):
      co3d.write_frame(staged, t, arrays['images'][t], arrays['depth'][t], arrays['mask'][t], arrays['K'],
                       arrays['c2w'][t])
    shutil.rmtree(final, ignore_errors=True)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.replace(staged, final)
    seq_dirs.append(final)
    names.append(name)
  co3d.write_selected_seqs(staging, split, {category: {n: list(range(num_views)) for n in names}})
  os.replace(os.path.join(staging, f'selected_seqs_{split}.json'), os.path.join(output, f'selected_seqs_{split}.json'))
  _write_in_place(marker, lambda path: pathlib.Path(path).write_text(json.dumps(
      dict(_static_generation(num_scenes, num_views, size, hfov, seed, category), sequences=names), indent=1)))
  for directory in (os.path.join(staging, category), staging, os.path.join(output, PARTIAL_DIR)):
    if os.path.isdir(directory) and not os.listdir(directory):
      os.rmdir(directory)
  return seq_dirs


def is_static_complete(output: str, split: str, num_scenes: int, num_views: int, size: int = 512,
                       hfov: float = 60.0, seed: int = 0, category: str = 'synthetic') -> bool:
  """Whether `output` holds a finished `write_static_scenes` set of `split` made with exactly these
  arguments: its marker, its selection JSON and every file of every frame."""
  from data import co3d  # pylint: disable=import-outside-toplevel
  try:
    marker = json.loads(pathlib.Path(_static_marker(output, split)).read_text())
    selected = json.loads(pathlib.Path(output, f'selected_seqs_{split}.json').read_text())
  except (OSError, ValueError):
    return False
  expected = _static_generation(num_scenes, num_views, size, hfov, seed, category)
  names = [static_scene_name(split, k) for k in range(num_scenes)]
  if {k: marker.get(k) for k in expected} != expected or marker.get('sequences') != names:
    return False
  if selected != {category: {n: list(range(num_views)) for n in names}}:
    return False
  return all(os.path.isfile(path) for n in names for t in range(num_views)
             for path in co3d._paths(os.path.join(output, category, n), t).values())  # pylint: disable=protected-access


def ensure_static_scenes(output: str, split: str, num_scenes: int, num_views: int, **kwargs) -> None:
  """A finished set of these static scenes in `output` (split `split`), made afresh unless one is there.

  A set cut short, or made with other arguments, is deleted first: this split's marker, selection JSON,
  staging folder and every `<split>_NNNN` sequence folder of the category. Only for folders this project
  owns: it deletes what it finds there."""
  if is_static_complete(output, split, num_scenes, num_views, **kwargs):
    return
  category = kwargs.get('category', 'synthetic')
  for path in (_static_marker(output, split), os.path.join(output, f'selected_seqs_{split}.json')):
    if os.path.exists(path):
      os.remove(path)
  shutil.rmtree(os.path.join(output, PARTIAL_DIR, split), ignore_errors=True)
  category_dir = os.path.join(output, category)
  if os.path.isdir(category_dir):
    pattern = re.compile(rf'{re.escape(split)}_\d{{4,}}')
    for name in os.listdir(category_dir):
      if pattern.fullmatch(name):
        shutil.rmtree(os.path.join(category_dir, name))
  logging.info('making %d synthetic static scenes in %s (%s)', num_scenes, output, split)
  write_static_scenes(output, split, num_scenes, num_views, **kwargs)


def _define_flags():
  flags.DEFINE_string('output', None, 'Root: OUTPUT/SPLIT/*.npz and OUTPUT/lefteye-perspective/SPLIT/*.mp4.')
  flags.DEFINE_string('split', 'train', 'Split folder name.')
  flags.DEFINE_integer('num_clips', 1, 'Number of clips.')
  flags.DEFINE_integer('num_frames', 60, 'Frames per clip.')
  flags.DEFINE_integer('size', 512, 'Frame width = height (even).')
  flags.DEFINE_float('hfov', 60.0, 'Horizontal field of view (deg).')
  flags.DEFINE_integer('seed', 0, 'Seed of the clip set; clip k uses clip_seed(seed, k).')
  flags.DEFINE_integer('gop', 30, 'Keyframe interval of the mp4 (frames).')
  flags.DEFINE_enum('layout', 'stereo4d', ['stereo4d', 'co3d'],
                    "stereo4d: moving clips (the flags above); co3d: static multi-view scenes in DUSt3R's "
                    'processed CO3D layout (--num_scenes, --num_views, --category, --size, --hfov, --seed; '
                    '--split train or test).')
  flags.DEFINE_integer('num_scenes', 1, 'Number of static scenes (--layout=co3d).')
  flags.DEFINE_integer('num_views', 8, 'Views per static scene (--layout=co3d).')
  flags.DEFINE_string('category', 'synthetic', 'CO3D category folder of the static scenes (--layout=co3d).')
  flags.mark_flag_as_required('output')


def main(argv):
  del argv
  f = flags.FLAGS
  if f.layout == 'co3d':
    for seq_dir in write_static_scenes(f.output, f.split, f.num_scenes, f.num_views, f.size, f.hfov, f.seed,
                                       f.category):
      logging.info('wrote %s', seq_dir)
    return
  for npz, mp4 in write_clips(f.output, f.split, f.num_clips, f.num_frames, f.size, f.hfov, f.seed, f.gop):
    logging.info('wrote %s and %s', npz, mp4)


if __name__ == '__main__':
  _define_flags()  # here, not at import: the trainer and tests import this module as a library
  app.run(main)
