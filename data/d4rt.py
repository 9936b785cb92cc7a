"""Stereo4D clips → D4RT training examples (spec d4rt.md §12; queries §3, losses §5, sampling §6, clips §7).

    clips = pipeline.Mp4Clips(pipeline.find_clips(root, 'train'))   # or predecoded.PredecodedClips(dir)
    ds = make_dataset(clips, batch_size=1, seed=0, num_frames=48, size=256, num_queries=2048)
    it = make_iterator(ds, num_workers=8)          # data.pipeline.make_iterator: checkpointable

The Grain design is data/pipeline.py's: element i is drawn from its own generator (seed, i) by
`DrawD4RTExample` (a `grain.transforms.RandomMap`), so a batch is a function of (seed, its index) and a
restored iterator resumes exactly; a clip that fails (BadClip: unreadable npz/mp4, NaN cameras, too short,
no query candidate) is replaced by a new draw from the same generator and counted in `num_skipped`.
Any `data.pipeline.ClipSource` works (mp4 clips, pre-decoded shards): only `num_frames(i)`, `open(i)`
and `OpenClip.frame(t)` (image, camera2world, the tracks observed at t) are used.

One example = one clip (a batch adds a leading axis). T = num_frames, S = size, Q = num_queries:
  video            (T, S, S, 3) float32 in [-1, 1]   augmented, cropped and resized frames
  aspect_ratio     () float32                        W/H of the crop (1.0 for an uncropped Stereo4D clip)
  query_uv         (Q, 2) float32                    (u, v) of the source point in frame t_src, in [0, 1)²
  query_t          (Q, 3) int32                      [t_src, t_tgt, t_cam], positions 0..T-1 in the clip
  target_xyz       (Q, 3) float32                    P* = E_{t_cam} · X_k(t_tgt) (camera t_cam, metres)
  target_uv        (Q, 2) float32                    P* projected with K^n (camera t_cam's image)
  target_vis       (Q,) float32                      1: track present at t_tgt and inside frame t_tgt's crop
  target_disp      (Q, 3) float32                    rot(E_{t_cam}) · (X_k(t_tgt) − X_k(t_src))
  target_normal    (Q, 3) float32                    zeros: Stereo4D has no normals
  mask_3d          (Q,) bool                         X_k(t_tgt) known (track present at t_tgt): xyz, disp
  mask_uv          (Q,) bool                         mask_3d and P*_z > 0 (the projection exists)
  mask_vis         (Q,) bool                         all True (presence is known for every (k, t))
  mask_normal      (Q,) bool                         all False
  intrinsics       (3, 3) float32                    K^n, normalised by the crop (see below)
  world_to_camera  (T, 4, 4) float32                 E_t of the sampled frames
  frame_ids        (T,) int32                        native frame index of each clip position
  num_skipped      () int32                          failed draws replaced before this example
  query_hard       (Q,) bool                         only with debug=True: source drawn from the hard pool
Targets are 0 where their mask is False (no NaN anywhere).

Conventions (Stereo4D, data/stereo4d.py): OpenCV axes; camera2world[t] = [R | c], world → camera
E_t = [Rᵀ | −Rᵀc]; pixel j spans [j, j+1), so pixel centres are (j + 0.5)/W in normalised units, the
convention of the query patches (spec §3), of `cv2.resize` (half-pixel centres) and of K^n:
f^n_x = f_x/W_crop, c^n_x = (c_x − x0)/W_crop, f^n_y = f_y/H_crop, c^n_y = (c_y − y0)/H_crop
(0.8660 and 0.5 for an uncropped 60° hfov clip), u = f^n_x·x/z + c^n_x.

Steps, with the choices the spec marks **(inferred)** (kept) and the ones made here:
1. Frames. A clip is drawn uniformly among those with ≥ num_frames frames (one example per clip; here,
   not in the spec), a stride s uniformly from {1..max_stride} with num_frames·s ≤ T_clip, a start
   uniformly from the windows that fit; clip position i is native frame start + s·i.
2. Geometric augmentation (one crop for every frame, so one K^n per clip). A RandomResizedCrop-style
   integer box: area fraction U(crop_scale = 0.3..1.0) of the frame, aspect W/H log-uniform in
   crop_aspect = [3/4, 4/3] (torchvision's range: the spec gives none), up to 10 tries for a box that
   fits inside the image, else the last size clamped to the image; offset uniform. Random zoom-in
   (p_zoom = 0.05): the paper gives no detail; here it is the same crop drawn from the smaller area
   range zoom_scale = 0.1..0.3, i.e. a close-up upsampled to S² (a per-frame zoom would need per-frame
   intrinsics). crop=False disables both (full frame, AR 1). Then resize to S² (INTER_AREA when
   shrinking both sides, else bilinear).
3. Photometric augmentation, the same parameters for every frame (temporally consistent), SimCLR-
   style strengths (the spec gives none): with p_jitter = 0.8 brightness ×U(0.6, 1.4), contrast
   U(0.6, 1.4) about the clip's mean grey, saturation U(0.6, 1.4), hue rotation U(−0.1, 0.1) turn
   (in YIQ), in that order, clipped to [0, 1] after each; colour drop p = 0.2 = greyscale (ITU-R 601
   luma in all channels); Gaussian blur p = 0.4, σ = U(0.1, 2.0)·S/256 output pixels, every frame.
   photometric=False disables all three.
4. Tracks of the T frames (tracks with no observation in them are dropped). Candidates (k, t): present
   at t, z > 0 in camera t, (u, v) ∈ [0, 1)² of the crop.
5. Boundary map (Stereo4D has no dense depth), per frame on a grid×grid (64²) grid of the crop: the
   candidates' camera z splatted nearest-z per cell, holes filled by the nearest cell (Euclidean
   distance transform), |Sobel| of log z; and |Sobel| of the per-cell 3D flow magnitude ‖X_k(t+1) −
   X_k(t)‖ in world coordinates (the cell's nearest point; backward difference at the last frame; cells
   without a flow are holes too). Hard cells: occupied cells whose response exceeds the hard_quantile
   (0.8, i.e. the top 20%, the figure of WX/OD) of either response over the clip's occupied cells
   (strictly above, so a flat or static clip adds nothing); the hard pool = candidates in hard cells.
6. Sources: round(hard_fraction·Q) (30%) uniformly from the hard pool (none if it is empty), the rest
   uniformly by track, then by frame among that track's candidates (no bias toward long tracks);
   with replacement; the order shuffled. t_src = the source's frame.
7. Times: t_tgt ~ U{0..T-1}, redrawn up to target_draws = 3 draws in all, keeping the first draw where
   the track is present (else the last: a track present in a fraction p of the frames keeps an absent
   target with probability (1 − p)³, e.g. 1/8 at p = 1/2,
   which teaches the visibility head); t_cam = t_tgt with p_same_camera = 0.4, else U{0..T-1}, per query.
8. Targets (spec §12.6). P* = E_{t_cam}·X_k(t_tgt); uv* its projection with K^n (not limited to the
   image); vis* = present at t_tgt AND inside frame t_tgt's crop with z > 0 (a point cropped away is
   not visible in the input video; absence also covers filtered points: accepted as noise).
   Displacement: the spec writes disp* = R_{t_cam}ᵀ·(X_k(t_tgt) − X_k(t_src)) with R the rotation of
   camera2world[t_cam] (E_t = [Rᵀ | −Rᵀc]), so Rᵀ is the world → camera rotation of E_{t_cam}; read
   with R = E's own rotation the formula would be wrong. Implemented: rot(E_{t_cam})·ΔX, which equals
   E_{t_cam}·X_k(t_tgt) − E_{t_cam}·X_k(t_src), the scene flow in camera t_cam (spec §5 Ldisp);
   unscaled (the loss divides by the mean depth). The source is present by construction, so mask_3d
   also masks the displacement. Normals: zeros, mask_normal False (λnormal = 0 for Stereo4D).
"""
import dataclasses

import grain
import numpy as np
from scipy import ndimage

from data.errors import BadClip, redraw
from data.pipeline import ClipSource, batched, make_iterator  # noqa: F401 (make_iterator re-exported)
from data.stereo4d import intrinsics as pixel_intrinsics
from data.stereo4d import world_to_camera
from dynadust3r_jax.common.geometry import project
from dynadust3r_jax.common.video import crop_resize

GREY = np.array([0.299, 0.587, 0.114], np.float32)        # ITU-R 601 luma
_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
CROP_TRIES = 10


@dataclasses.dataclass(frozen=True)
class Options:
  """What `DrawD4RTExample` / `make_dataset` take as keyword options (see the module docstring)."""
  num_frames: int = 48
  size: int = 256
  num_queries: int = 2048
  max_stride: int = 4
  hfov: float = 60.0
  crop: bool = True
  crop_scale: tuple[float, float] = (0.3, 1.0)
  crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
  p_zoom: float = 0.05
  zoom_scale: tuple[float, float] = (0.1, 0.3)
  photometric: bool = True
  p_jitter: float = 0.8
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 0.1
  p_grey: float = 0.2
  p_blur: float = 0.4
  blur_sigma: tuple[float, float] = (0.1, 2.0)   # output pixels at S = 256, scaled by S/256
  grid: int = 64
  hard_quantile: float = 0.8
  hard_fraction: float = 0.3
  p_same_camera: float = 0.4
  target_draws: int = 3
  debug: bool = False
  max_attempts: int = 32

  def __post_init__(self):
    def fail(name, need):
      raise ValueError(f'D4RT data option {name}={getattr(self, name)!r} (config.data.d4rt.{name}): need {need}')
    for name in ('num_frames', 'size', 'num_queries', 'max_stride', 'grid', 'target_draws'):
      if getattr(self, name) < 1:
        fail(name, 'an int >= 1')
    for name in ('p_zoom', 'p_jitter', 'p_grey', 'p_blur', 'p_same_camera', 'hard_quantile', 'hard_fraction'):
      if not 0 <= getattr(self, name) <= 1:
        fail(name, 'a value in [0, 1]')
    for name in ('crop_scale', 'zoom_scale', 'crop_aspect', 'blur_sigma'):
      lo, hi = getattr(self, name)
      if not 0 < lo <= hi:
        fail(name, '(lo, hi) with 0 < lo <= hi')


# --- frames and crops --------------------------------------------------------------------------------


def sample_window(rng: np.random.Generator, clip_frames: int, num_frames: int, max_stride: int) -> np.ndarray:
  """Native frame indices start + s·(0..num_frames-1), s ~ U{1..max_stride} with num_frames·s ≤ clip_frames."""
  strides = min(max_stride, clip_frames // num_frames)
  if strides < 1:
    raise BadClip(f'{clip_frames} frames: shorter than a {num_frames}-frame clip')
  s = int(rng.integers(1, strides + 1))
  start = int(rng.integers(0, clip_frames - (num_frames - 1) * s))
  return start + s * np.arange(num_frames)


def sample_crop(rng: np.random.Generator, width: int, height: int, options: Options) -> tuple[int, int, int, int]:
  """(x0, y0, w, h) integer crop box (the full frame when options.crop is False)."""
  if not options.crop:
    return 0, 0, width, height
  scale = options.zoom_scale if rng.random() < options.p_zoom else options.crop_scale
  log_aspect = np.log(options.crop_aspect)
  for _ in range(CROP_TRIES):
    area = rng.uniform(*scale) * width * height
    aspect = np.exp(rng.uniform(*log_aspect))
    w, h = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
    if 1 <= w <= width and 1 <= h <= height:
      break
  w, h = int(np.clip(w, 1, width)), int(np.clip(h, 1, height))
  return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h


def normalised_intrinsics(width: int, height: int, box, hfov: float = 60.0) -> np.ndarray:
  """(3, 3) K^n of a crop box (x0, y0, w, h) of a Stereo4D frame: f/W_crop, (c − x0)/W_crop, likewise in y."""
  K = pixel_intrinsics(width, height, hfov)
  x0, y0, w, h = box
  return np.array([[K[0, 0] / w, 0, (K[0, 2] - x0) / w], [0, K[1, 1] / h, (K[1, 2] - y0) / h], [0, 0, 1]])


def _hue_matrix(turns: float) -> np.ndarray:
  """RGB → RGB rotation of the chroma plane (I, Q) of YIQ by `turns` of a full turn."""
  c, s = np.cos(2 * np.pi * turns), np.sin(2 * np.pi * turns)
  rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
  return (np.linalg.inv(_RGB2YIQ) @ rot @ _RGB2YIQ).astype(np.float32)


def photometric(video: np.ndarray, rng: np.random.Generator, options: Options) -> np.ndarray:
  """(T, S, S, 3) float32 in [0, 1] → augmented, the same parameters for every frame."""
  if not options.photometric:
    return video
  if rng.random() < options.p_jitter:
    b = rng.uniform(1 - options.brightness, 1 + options.brightness)
    c = rng.uniform(1 - options.contrast, 1 + options.contrast)
    s = rng.uniform(1 - options.saturation, 1 + options.saturation)
    hue = rng.uniform(-options.hue, options.hue)
    video = np.clip(video * np.float32(b), 0, 1)
    mean = np.float32((video @ GREY).mean())
    video = np.clip((video - mean) * np.float32(c) + mean, 0, 1)
    grey = (video @ GREY)[..., None]
    video = np.clip((video - grey) * np.float32(s) + grey, 0, 1)
    video = np.clip(video @ _hue_matrix(hue).T, 0, 1)
  if rng.random() < options.p_grey:
    video = np.repeat((video @ GREY)[..., None], 3, axis=-1)
  if rng.random() < options.p_blur:
    sigma = rng.uniform(*options.blur_sigma) * options.size / 256
    video = ndimage.gaussian_filter(video, (0, sigma, sigma, 0), mode='reflect')
  return video.astype(np.float32)


# --- geometry ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class ClipGeometry:
  """The tracks and cameras of the sampled frames, and the crop's K^n."""
  tracks: np.ndarray            # (N, T, 3) float32 world positions, NaN where absent
  present: np.ndarray           # (N, T) bool
  world_to_camera: np.ndarray   # (T, 4, 4) float64
  intrinsics: np.ndarray        # (3, 3) float64 K^n

  @property
  def num_frames(self) -> int:
    return self.present.shape[1]

  def camera_points(self, k, t, t_cam=None) -> np.ndarray:
    """(n, 3) float64 E_{t_cam} · X_k(t) (t_cam defaults to t); NaN where absent."""
    t_cam = t if t_cam is None else t_cam
    E = self.world_to_camera[t_cam]
    return np.einsum('nij,nj->ni', E[:, :3, :3], self.tracks[k, t].astype(np.float64)) + E[:, :3, 3]


def clip_geometry(frames, box, width: int, height: int, hfov: float = 60.0) -> ClipGeometry:
  """ClipGeometry of a list of data.stereo4d.Frame (one per clip position) and a crop box."""
  ids = np.concatenate([np.asarray(f.track_ids, np.int64) for f in frames])
  if not len(ids):
    raise BadClip('no track observed in the sampled frames')
  frame_of = np.repeat(np.arange(len(frames)), [len(f.track_ids) for f in frames])
  unique, row = np.unique(ids, return_inverse=True)
  tracks = np.full((len(unique), len(frames), 3), np.nan, np.float32)
  tracks[row, frame_of] = np.concatenate([np.asarray(f.track_xyz, np.float32).reshape(-1, 3) for f in frames])
  present = np.isfinite(tracks).all(-1)
  cams = np.stack([np.asarray(f.camera2world, np.float64) for f in frames])
  if not np.isfinite(cams).all():
    raise BadClip('non-finite camera2world in the sampled frames')
  w2c = np.stack([world_to_camera(c) for c in cams])
  return ClipGeometry(tracks, present, w2c, normalised_intrinsics(width, height, box, hfov))


@dataclasses.dataclass
class Candidates:
  """Query sources (k, t): present, in front of camera t and inside its crop."""
  track: np.ndarray   # (M,) int: row of ClipGeometry.tracks
  frame: np.ndarray   # (M,) int: clip position
  uv: np.ndarray      # (M, 2) float64
  z: np.ndarray       # (M,) float64 camera-t depth
  hard: np.ndarray    # (M,) bool: in the hard pool


def candidates(geometry: ClipGeometry, options: Options) -> Candidates:
  k, t = np.nonzero(geometry.present)
  cam = geometry.camera_points(k, t)
  uv, inside = project(geometry.intrinsics, cam)
  k, t, uv, z = k[inside], t[inside], uv[inside], cam[inside, 2]
  if not len(k):
    raise BadClip('no track projects inside the crop')
  T = geometry.num_frames
  neighbour = np.where(t + 1 < T, t + 1, t - 1)
  if T > 1:
    flow = np.linalg.norm(geometry.tracks[k, neighbour].astype(np.float64) - geometry.tracks[k, t], axis=-1)
  else:
    flow = np.full(len(k), np.nan)
  hard = hard_pool(t, uv, z, flow, T, options.grid, options.hard_quantile)
  return Candidates(k, t, uv, z, hard)


def _fill_nearest(a: np.ndarray) -> np.ndarray:
  """(G, G) with NaN holes → holes take their nearest valued cell (zeros if none has a value)."""
  holes = np.isnan(a)
  if holes.all():
    return np.zeros_like(a)
  if not holes.any():
    return a
  index = ndimage.distance_transform_edt(holes, return_distances=False, return_indices=True)
  return a[tuple(index)]


def _sobel_magnitude(a: np.ndarray) -> np.ndarray:
  return np.hypot(ndimage.sobel(a, axis=0, mode='nearest'), ndimage.sobel(a, axis=1, mode='nearest'))


def boundary_maps(t, uv, z, flow, num_frames: int, grid: int):
  """Per-frame (T, G, G) |Sobel| of log z and of the flow magnitude, the (T, G, G) occupied cells and
  each point's flat cell index (see the module docstring, step 5)."""
  col = np.clip((uv[:, 0] * grid).astype(np.int64), 0, grid - 1)
  row = np.clip((uv[:, 1] * grid).astype(np.int64), 0, grid - 1)
  cell = (t * grid + row) * grid + col
  order = np.lexsort((z, cell))                       # by cell, nearest first
  first = order[np.r_[True, cell[order][1:] != cell[order][:-1]]]
  log_z = np.full(num_frames * grid * grid, np.nan)
  motion = np.full(num_frames * grid * grid, np.nan)
  log_z[cell[first]] = np.log(z[first])
  motion[cell[first]] = flow[first]
  occupied = np.zeros(num_frames * grid * grid, bool)
  occupied[cell[first]] = True
  shape = (num_frames, grid, grid)
  depth_edge = np.stack([_sobel_magnitude(_fill_nearest(m)) for m in log_z.reshape(shape)])
  motion_edge = np.stack([_sobel_magnitude(_fill_nearest(m)) for m in motion.reshape(shape)])
  return depth_edge, motion_edge, occupied.reshape(shape), cell


def hard_pool(t, uv, z, flow, num_frames: int, grid: int, quantile: float) -> np.ndarray:
  """(M,) bool: the points whose cell is above the quantile of either boundary response."""
  depth_edge, motion_edge, occupied, cell = boundary_maps(t, uv, z, flow, num_frames, grid)
  hard = np.zeros(occupied.shape, bool)
  for response in (depth_edge, motion_edge):
    threshold = np.quantile(response[occupied], quantile)
    hard |= occupied & (response > threshold)
  return hard.reshape(-1)[cell]


# --- queries and targets -----------------------------------------------------------------------------


def sample_sources(rng: np.random.Generator, cand: Candidates, num_queries: int,
                   hard_fraction: float) -> tuple[np.ndarray, np.ndarray]:
  """(Q,) candidate indices and (Q,) bool from-the-hard-pool (step 6 of the module docstring)."""
  hard_idx = np.flatnonzero(cand.hard)
  n_hard = int(round(hard_fraction * num_queries)) if len(hard_idx) else 0
  by_track = np.argsort(cand.track, kind='stable')
  _, starts, counts = np.unique(cand.track[by_track], return_index=True, return_counts=True)
  n_uniform = num_queries - n_hard
  r = rng.integers(0, len(starts), n_uniform)
  offset = np.minimum((rng.random(n_uniform) * counts[r]).astype(np.int64), counts[r] - 1)
  picks = np.concatenate([hard_idx[rng.integers(0, len(hard_idx), n_hard)] if n_hard else np.zeros(0, np.int64),
                          by_track[starts[r] + offset]])
  from_hard = np.arange(num_queries) < n_hard
  order = rng.permutation(num_queries)
  return picks[order], from_hard[order]


def sample_times(rng: np.random.Generator, present: np.ndarray, track: np.ndarray, t_src: np.ndarray,
                 options: Options) -> np.ndarray:
  """(Q, 3) int32 [t_src, t_tgt, t_cam] (step 7 of the module docstring)."""
  T, Q = present.shape[1], len(track)
  draws = rng.integers(0, T, (Q, options.target_draws))
  hit = present[track[:, None], draws]
  pick = np.where(hit.any(1), hit.argmax(1), options.target_draws - 1)
  t_tgt = draws[np.arange(Q), pick]
  t_cam = np.where(rng.random(Q) < options.p_same_camera, t_tgt, rng.integers(0, T, Q))
  return np.stack([t_src, t_tgt, t_cam], -1).astype(np.int32)


def query_targets(geometry: ClipGeometry, track: np.ndarray, query_t: np.ndarray) -> dict:
  """Query uv and the targets and masks of queries (track k, [t_src, t_tgt, t_cam]) (spec §12.6)."""
  t_src, t_tgt, t_cam = query_t[:, 0], query_t[:, 1], query_t[:, 2]
  K = geometry.intrinsics
  query_uv, _ = project(K, geometry.camera_points(track, t_src))
  present = geometry.present[track, t_tgt]
  xyz = geometry.camera_points(track, t_tgt, t_cam)
  z_ok = present & (np.nan_to_num(xyz[:, 2]) > 1e-6)
  uv, _ = project(K, np.where(z_ok[:, None], xyz, 1.0))
  _, inside_tgt = project(K, geometry.camera_points(track, t_tgt))
  rot = geometry.world_to_camera[t_cam, :3, :3]
  moved = geometry.tracks[track, t_tgt].astype(np.float64) - geometry.tracks[track, t_src]
  disp = np.einsum('nij,nj->ni', rot, moved)
  q = len(track)
  return {
      'query_uv': query_uv.astype(np.float32),
      'target_xyz': np.where(present[:, None], xyz, 0).astype(np.float32),
      'target_uv': np.where(z_ok[:, None], uv, 0).astype(np.float32),
      'target_vis': (present & inside_tgt).astype(np.float32),
      'target_disp': np.where(present[:, None], np.nan_to_num(disp), 0).astype(np.float32),
      'target_normal': np.zeros((q, 3), np.float32),
      'mask_3d': present, 'mask_uv': z_ok, 'mask_vis': np.ones(q, bool), 'mask_normal': np.zeros(q, bool)}


# --- one example ---------------------------------------------------------------------------------------


def build_example(clip, rng: np.random.Generator, options: Options) -> dict:
  """One D4RT example from an opened clip (a data.pipeline.OpenClip). Raises BadClip."""
  frame_ids = sample_window(rng, clip.num_frames, options.num_frames, options.max_stride)
  frames = [clip.frame(int(t)) for t in frame_ids]
  height, width = frames[0].image.shape[:2]
  if any(f.image.shape[:2] != (height, width) for f in frames):
    raise BadClip('frames of different sizes')
  box = sample_crop(rng, width, height, options)
  video = np.stack([crop_resize(f.image, box, options.size) for f in frames]).astype(np.float32) / 255
  video = photometric(video, rng, options)
  geometry = clip_geometry(frames, box, width, height, options.hfov)
  cand = candidates(geometry, options)
  picks, from_hard = sample_sources(rng, cand, options.num_queries, options.hard_fraction)
  track = cand.track[picks]
  query_t = sample_times(rng, geometry.present, track, cand.frame[picks], options)
  example = {'video': (video * 2 - 1).astype(np.float32),
             'aspect_ratio': np.float32(box[2] / box[3]),
             'query_t': query_t,
             **query_targets(geometry, track, query_t),
             'intrinsics': geometry.intrinsics.astype(np.float32),
             'world_to_camera': geometry.world_to_camera.astype(np.float32),
             'frame_ids': frame_ids.astype(np.int32)}
  if options.debug:
    example['query_hard'] = from_hard
  return example


def _clip_name(clip, index) -> str:
  """A name for messages: Mp4Clip's npz name, PredecodedClip's name, else the source index."""
  name = getattr(clip, 'name', None) or getattr(getattr(clip, 'clip', None), 'name', None)
  return str(name) if name else f'clip {index}'


class DrawD4RTExample(grain.transforms.RandomMap):
  """Sample index → one D4RT example (dict of arrays), drawn from the element's generator."""

  def __init__(self, clips: ClipSource, **options):
    self.clips = clips
    self.options = Options(**options)
    self.usable = np.flatnonzero([clips.num_frames(i) >= self.options.num_frames for i in range(len(clips))])
    if not len(self.usable):
      raise ValueError(f'no clip has >= {self.options.num_frames} frames (num_frames option)')

  def random_map(self, element, rng: np.random.Generator):
    del element  # the draw depends only on the generator (seed, index)
    example, skipped = redraw(lambda _: self._example(rng), self.options.max_attempts)
    example['num_skipped'] = np.int32(skipped)
    return example

  def _example(self, rng):
    index = int(self.usable[rng.integers(0, len(self.usable))])
    clip = self.clips.open(index)
    try:
      return build_example(clip, rng, self.options)
    except BadClip as e:
      raise BadClip(f'{_clip_name(clip, index)}: {e}') from None


def make_dataset(clips: ClipSource, *, batch_size: int, seed: int, shard_index: int = 0, shard_count: int = 1,
                 **options) -> grain.MapDataset:
  """Batches of D4RT examples. With several hosts, each takes every shard_count-th batch (its slice)."""
  return batched(DrawD4RTExample(clips, **options), batch_size=batch_size, seed=seed, shard_index=shard_index,
                 shard_count=shard_count)
