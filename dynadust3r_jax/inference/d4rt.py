"""D4RT's outputs from its queries (spec/d4rt.md §8): depth maps, point clouds, tracks (also all pixels' with
Alg. 1's occupancy grid), extrinsics, intrinsics.

One encoder pass per clip: `Decoder(model, video, aspect_ratio)` runs the jitted encoder once and caches every
decoder layer's K/V of F (`model.scene_kv`); calling it decodes any number of queries in jitted chunks of
`chunk` queries (the last chunk padded, so one compile per chunk size) against that cache. Queries are
independent (no self-attention among them), so the chunking does not change the outputs.

Every function takes `model` as one of
  - a D4RT network (`build_d4rt(...)`, an nnx.Module): a Decoder is made for `video`, `aspect_ratio`;
  - a Decoder (share one encoder pass between several outputs of the same clip);
  - any callable `decode(query_uv (Q, 2), query_t (Q, 3)) -> {'xyz' (Q, 3), 'vis_logit' (Q,), 'conf' (Q,), ...}`
    (e.g. a stub returning ground-truth geometry); then `video` only gives the clip length T = video.shape[0]
    (None: `decode.num_frames`) and `aspect_ratio` is unused.
Conventions (the model's): video (T, H, W, 3) in [-1, 1] (or (1, T, H, W, 3)); (u, v) in [0, 1] with pixel j's
centre at (j + 0.5)/W; times are clip positions 0..T-1 (the spec's 1..T); query_t = [t_src, t_tgt, t_cam];
xyz is the point of (u, v, t_src) at time t_tgt in camera t_cam's coordinates. Outputs are numpy arrays.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

DEFAULT_CHUNK = 4096


@functools.partial(jax.jit, static_argnums=0)
def _encode_kv(graphdef, state, video, aspect_ratio):
  model = nnx.merge(graphdef, state)
  feats = model.encode(video, aspect_ratio)
  return feats, model.scene_kv(feats)


@functools.partial(jax.jit, static_argnums=0)
def _decode_cached(graphdef, state, kv, video, query_uv, query_t):
  return nnx.merge(graphdef, state).decode_with_kv(kv, video, query_uv, query_t)


@functools.partial(jax.jit, static_argnums=0)
def _decode_recomputed(graphdef, state, feats, video, query_uv, query_t):
  """The baseline: every chunk recomputes the decoder's K/V of F."""
  return nnx.merge(graphdef, state).decode(feats, video, query_uv, query_t)


class Decoder:
  """A clip encoded once; `decoder(query_uv (Q, 2), query_t (Q, 3))` -> outputs (Q, ...) as device arrays.

  cache_kv=False recomputes the K/V of F for every chunk (the benchmark's baseline; same outputs)."""

  def __init__(self, model, video, aspect_ratio, chunk: int = DEFAULT_CHUNK, cache_kv: bool = True):
    video = jnp.asarray(video, jnp.float32)
    self.video = video if video.ndim == 5 else video[None]
    if self.video.shape[0] != 1:
      raise ValueError(f'one clip at a time: video of shape {video.shape}')
    self.num_frames = self.video.shape[1]
    self.chunk = int(chunk)
    self.cache_kv = cache_kv
    self.graphdef, self.state = nnx.split(model)
    self.feats, self.kv = _encode_kv(self.graphdef, self.state, self.video,
                                     jnp.full((1,), aspect_ratio, jnp.float32))

  def decode_chunk(self, query_uv, query_t):
    """One jitted call on (1, Q, 2), (1, Q, 3) queries; outputs (1, Q, ...)."""
    if self.cache_kv:
      return _decode_cached(self.graphdef, self.state, self.kv, self.video, query_uv, query_t)
    return _decode_recomputed(self.graphdef, self.state, self.feats, self.video, query_uv, query_t)

  def __call__(self, query_uv, query_t):
    uv = jnp.asarray(query_uv, jnp.float32).reshape(-1, 2)
    qt = jnp.asarray(query_t, jnp.int32).reshape(-1, 3)
    n = uv.shape[0]
    if n == 0:
      raise ValueError('no queries')
    chunk = min(self.chunk, n)
    pad = -n % chunk
    if pad:  # the last chunk padded with copies of query 0 (dropped below): one compiled shape
      uv = jnp.concatenate([uv, jnp.broadcast_to(uv[:1], (pad, 2))])
      qt = jnp.concatenate([qt, jnp.broadcast_to(qt[:1], (pad, 3))])
    outs = [self.decode_chunk(uv[None, s:s + chunk], qt[None, s:s + chunk]) for s in range(0, n + pad, chunk)]
    return {k: jnp.concatenate([o[k][0] for o in outs])[:n] for k in outs[0]}


def as_decoder(model, video=None, aspect_ratio=1.0, chunk: int = DEFAULT_CHUNK):
  """(decode, T): a Decoder for a D4RT network, else `model` itself (a Decoder or a decode callable)."""
  if isinstance(model, nnx.Module):
    model = Decoder(model, video, aspect_ratio, chunk)
  if video is not None:
    shape = np.shape(video)
    num_frames = shape[1] if len(shape) == 5 else shape[0]
  else:
    num_frames = model.num_frames
  return model, int(num_frames)


def _decode(decode, uv, qt, keys):
  out = decode(np.asarray(uv, np.float32), np.asarray(qt, np.int32))
  return [np.asarray(out[k], np.float32) for k in keys]


def query_grid(h: int, w: int) -> np.ndarray:
  """(h * w, 2) float32 (u, v) of the pixel centres of an h x w grid, row-major: ((j + .5)/w, (i + .5)/h)."""
  v, u = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing='ij')
  return np.stack([u.ravel(), v.ravel()], -1).astype(np.float32)


def _frame_queries(num_frames, h, w, cam=None):
  """Every pixel of every frame t: (u, v, t, t, t) or, with cam, (u, v, t, t, cam); (T*h*w, 2), (T*h*w, 3)."""
  grid = query_grid(h, w)
  t = np.repeat(np.arange(num_frames), h * w)
  qt = np.stack([t, t, t if cam is None else np.full_like(t, cam)], -1)
  return np.tile(grid, (num_frames, 1)), qt


def _size(video, h, w):
  if h is None or w is None:
    shape = np.shape(video)
    h, w = (h or shape[-3]), (w or shape[-2])
  return h, w


def depth_maps(model, video, aspect_ratio=1.0, h=None, w=None, chunk=DEFAULT_CHUNK) -> np.ndarray:
  """(T, h, w) depth (camera-space z) of every frame: queries (u, v, t, t, t) at all pixel centres (default h, w:
  the video's)."""
  decode, num_frames = as_decoder(model, video, aspect_ratio, chunk)
  h, w = _size(video, h, w)
  (xyz,) = _decode(decode, *_frame_queries(num_frames, h, w), ['xyz'])
  return xyz[:, 2].reshape(num_frames, h, w)


def point_cloud(model, video, aspect_ratio=1.0, h=None, w=None, chunk=DEFAULT_CHUNK, reference_frame=0):
  """(points (T, h, w, 3), conf (T, h, w)): every pixel of every frame t at its own time, in the coordinates of
  camera `reference_frame` (queries (u, v, t, t, ref); no pose composition)."""
  decode, num_frames = as_decoder(model, video, aspect_ratio, chunk)
  h, w = _size(video, h, w)
  xyz, conf = _decode(decode, *_frame_queries(num_frames, h, w, cam=reference_frame), ['xyz', 'conf'])
  return xyz.reshape(num_frames, h, w, 3), conf.reshape(num_frames, h, w)


def moved_points(model, video, aspect_ratio=1.0, h=None, w=None, chunk=DEFAULT_CHUNK, reference_frame=0, step=1):
  """(points (T - step, h, w, 3), conf (T - step, h, w)): every pixel of frame t at time t + step, in the
  coordinates of camera `reference_frame` (queries (u, v, t, t + step, ref)); minus `point_cloud`'s points of
  frames 0..T-step-1, each pixel's 3D motion over `step` frames."""
  decode, num_frames = as_decoder(model, video, aspect_ratio, chunk)
  h, w = _size(video, h, w)
  uv, qt = _frame_queries(num_frames - step, h, w, cam=reference_frame)
  qt[:, 1] += step
  xyz, conf = _decode(decode, uv, qt, ['xyz', 'conf'])
  return xyz.reshape(-1, h, w, 3), conf.reshape(-1, h, w)


def tracks(model, video, aspect_ratio=1.0, query_uv=None, t_src=0, chunk=DEFAULT_CHUNK):
  """(xyz (T, N, 3), visible (T, N) bool): N points (query_uv (N, 2) seen in frame t_src, an int or (N,)) tracked
  through every frame t in camera t's coordinates (queries (u, v, t_src, t, t)); visible: vis logit > 0."""
  decode, num_frames = as_decoder(model, video, aspect_ratio, chunk)
  uv = np.asarray(query_uv, np.float32).reshape(-1, 2)
  n = len(uv)
  src = np.broadcast_to(np.asarray(t_src, np.int32), (n,))
  t = np.repeat(np.arange(num_frames), n)
  qt = np.stack([np.tile(src, num_frames), t, t], -1)
  xyz, vis = _decode(decode, np.tile(uv, (num_frames, 1)), qt, ['xyz', 'vis_logit'])
  return xyz.reshape(num_frames, n, 3), vis.reshape(num_frames, n) > 0


def dense_tracks(model, video, aspect_ratio=1.0, h=None, w=None, batch=1024, chunk=DEFAULT_CHUNK, seed=0) -> dict:
  """Every pixel of every frame tracked, with Alg. 1's occupancy grid (spec §8): while a cell (t, i, j) of the
  T x h x w grid is unvisited, draw `batch` unvisited cells (seeded), track their pixels through every frame
  (queries (u, v, t_src, t, t)) and mark the cells their visible positions fall in (the 'uv' output, visible:
  vis logit > 0), and the source cells themselves. → {'source_uv' (N, 2), 'source_t' (N,), 'xyz' (T, N, 3) in
  camera t, 'uv' (T, N, 2), 'visible' (T, N) bool, 'num_queries': N·T} (the naive count is T²·h·w)."""
  decode, num_frames = as_decoder(model, video, aspect_ratio, chunk)
  h, w = _size(video, h, w)
  grid, rng = query_grid(h, w), np.random.default_rng(seed)
  visited = np.zeros(num_frames * h * w, bool)
  found = []
  while not visited.all():
    free = np.flatnonzero(~visited)
    pick = rng.choice(free, size=min(batch, len(free)), replace=False)
    t_src, cell = np.divmod(pick, h * w)
    n = len(pick)
    t = np.repeat(np.arange(num_frames), n)
    qt = np.stack([np.tile(t_src, num_frames), t, t], -1)
    xyz, uv, vis = _decode(decode, np.tile(grid[cell], (num_frames, 1)), qt, ['xyz', 'uv', 'vis_logit'])
    uv, vis = uv.reshape(num_frames, n, 2), vis.reshape(num_frames, n) > 0
    col, row = np.floor(uv[..., 0] * w).astype(np.int64), np.floor(uv[..., 1] * h).astype(np.int64)
    seen = vis & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    frame = np.broadcast_to(np.arange(num_frames)[:, None], seen.shape)
    visited[(frame[seen] * h + row[seen]) * w + col[seen]] = True
    visited[pick] = True
    found.append((grid[cell], t_src, xyz.reshape(num_frames, n, 3), uv, vis))
  source_uv, source_t, xyz, uv, vis = (np.concatenate(parts, axis=a) for parts, a in zip(zip(*found),
                                                                                         (0, 0, 1, 1, 1)))
  return {'source_uv': source_uv, 'source_t': source_t, 'xyz': xyz, 'uv': uv, 'visible': vis,
          'num_queries': int(source_t.size * num_frames)}


def rigid_fit(src, dst, weights=None):
  """Weighted Umeyama without scale, batched: (R (..., 3, 3), t (..., 3)) minimising sum w |R src + t - dst|^2
  over the point axis (src, dst (..., K, 3), weights (..., K)). float64."""
  src, dst = np.broadcast_arrays(np.asarray(src, np.float64), np.asarray(dst, np.float64))
  w = np.ones(src.shape[:-1]) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), src.shape[:-1])
  w = w / w.sum(-1, keepdims=True)
  mu_s, mu_d = np.einsum('...k,...ki->...i', w, src), np.einsum('...k,...ki->...i', w, dst)
  cov = np.einsum('...k,...ki,...kj->...ij', w, dst - mu_d[..., None, :], src - mu_s[..., None, :])
  u, _, vt = np.linalg.svd(cov)
  d = np.ones(cov.shape[:-1])
  d[..., -1] = np.sign(np.linalg.det(u @ vt))
  rot = u @ (d[..., :, None] * vt)
  return rot, mu_d - np.einsum('...ij,...j->...i', rot, mu_s)


def extrinsics(model, video, aspect_ratio=1.0, grid=32, reference=0, chunk=DEFAULT_CHUNK) -> np.ndarray:
  """(T, 4, 4) camera-to-world poses, the world being camera `reference` (pose[reference] = I).

  The points of a grid x grid of (u, v) in frame i = reference, at time i, in camera i (u, v, i, i, i) and in
  camera j (u, v, i, i, j): a weighted rigid fit (Umeyama, no scale) X_j ~ R X_i + t is cam_i -> cam_j; the pose
  of camera j is its inverse. Weights: the product of the two queries' confidences (inferred, as no scale)."""
  decode, num_frames = as_decoder(model, video, aspect_ratio, chunk)
  uv = query_grid(grid, grid)
  k = len(uv)
  cams = np.repeat(np.arange(num_frames), k)
  qt = np.stack([np.full_like(cams, reference), np.full_like(cams, reference), cams], -1)
  xyz, conf = _decode(decode, np.tile(uv, (num_frames, 1)), qt, ['xyz', 'conf'])
  xyz, conf = xyz.reshape(num_frames, k, 3), conf.reshape(num_frames, k)
  rot, trans = rigid_fit(xyz[reference], xyz, conf[reference] * conf)   # cam_ref -> cam_j
  poses = np.tile(np.eye(4), (num_frames, 1, 1))
  poses[:, :3, :3] = np.swapaxes(rot, -1, -2)
  poses[:, :3, 3] = -np.einsum('tji,tj->ti', rot, trans)
  return poses


def intrinsics(model, video, aspect_ratio=1.0, grid=32, chunk=DEFAULT_CHUNK, min_offset=0.05) -> np.ndarray:
  """(T, 2) focal lengths (f_x, f_y) of each frame in normalised units (x W or x H for pixels), principal point
  (0.5, 0.5): medians of z (u - 0.5)/x and z (v - 0.5)/y over a grid x grid of queries (u, v, i, i, i), without
  the points with |u - 0.5| or |v - 0.5| below min_offset (unstable ratios)."""
  decode, num_frames = as_decoder(model, video, aspect_ratio, chunk)
  h, w = (grid, grid) if np.ndim(grid) == 0 else grid
  uv = query_grid(h, w)
  keep = (np.abs(uv - 0.5) >= min_offset).all(-1)
  if not keep.any():
    raise ValueError(f'intrinsics: no grid point at least {min_offset} from the centre (grid {grid})')
  uv = uv[keep]
  (xyz,) = _decode(decode, *_frame_queries_uv(uv, num_frames), ['xyz'])
  xyz = xyz.reshape(num_frames, len(uv), 3).astype(np.float64)
  f = xyz[..., 2:] * (uv - 0.5) / xyz[..., :2]
  return np.median(f, axis=1)


def _frame_queries_uv(uv, num_frames):
  t = np.repeat(np.arange(num_frames), len(uv))
  return np.tile(uv, (num_frames, 1)), np.stack([t, t, t], -1)
