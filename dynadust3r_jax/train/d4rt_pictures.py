"""D4RT training pictures (spec d4rt.md §8, §12): pictures.py's figure for a clip and its queries.

Rows = up to `max_rows` clips of a validation batch; columns = frame 0, predicted depth of frame 0 (queries
(u, v, 0, 0, 0) at every pixel centre), GT depth of frame 0, predicted confidence of frame 0, predicted tracks
and GT tracks, both drawn over frame 0.
  - A D4RT batch has no dense depth (Stereo4D has none, §12.4): the GT depth panel scatters the batch's query
    targets seen in frame 0 (t_tgt = t_cam = 0, visible) at their target (u, v), on grey. The predicted depth
    is multiplied by s = median(GT z) / median(predicted z at those targets' pixels) (pictures.median_scale).
  - Tracks: `num_tracks` of the batch's query sources (u, v, t_src), those in frame 0 first, then those with
    the most GT points. Predicted: the queries (u, v, t_src, t, t) for t = 0..T-1, camera-t points projected
    with the clip's K^n. GT: the source's own (u, v) at t_src and the visible targets of the batch's queries
    from that source with t_cam = t_tgt (points in frame t_tgt's image). A batch holds one target per query,
    so a GT path is mostly the source and one or two points.
Depth is in the Stereo4D scene's pseudo-metric metres (as pictures.py).
"""
import matplotlib
import numpy as np
from flax import nnx
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from dynadust3r_jax.common.geometry import project
from dynadust3r_jax.inference.d4rt import Decoder, query_grid
from dynadust3r_jax.train.pictures import (CONF_CMAP, DEPTH_CMAP, DPI, PANEL_INCHES, colour_range, draw_panel,
                                           figure_header, masked, median_scale, save_figure)

MAX_ROWS, NUM_TRACKS = 2, 8
TRACK_COLOURS = matplotlib.colormaps['tab10']  # one colour per source, the same in both track panels


def _gt_track_points(batch: dict, b: int) -> np.ndarray:
  """(Q,) bool: clip b's queries whose target is a GT track point in its own frame (t_cam = t_tgt, visible)."""
  qt = batch['query_t'][b]
  return (qt[:, 1] == qt[:, 2]) & batch['mask_uv'][b] & batch['mask_vis'][b] & (batch['target_vis'][b] > 0.5)


def _source_keys(batch: dict, b: int) -> np.ndarray:
  """(Q, 3) (u, v, t_src) of clip b's queries: queries with equal keys track the same point."""
  return np.concatenate([batch['query_uv'][b], batch['query_t'][b, :, :1].astype(np.float32)], -1)


def track_sources(batch: dict, b: int, num_tracks: int = NUM_TRACKS) -> np.ndarray:
  """(num_tracks,) indices of clip b's queries with distinct sources: those in frame 0 first, then the most GT
  track points, then the first drawn; repeated when the clip has fewer sources."""
  keys = _source_keys(batch, b)
  _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
  points = np.bincount(group.ravel(), weights=_gt_track_points(batch, b), minlength=len(first))
  order = np.lexsort((first, -points, keys[first, 2] != 0))
  return np.resize(first[order], num_tracks)


def gt_track(batch: dict, b: int, j: int) -> tuple[np.ndarray, np.ndarray]:
  """(times (n,), uv (n, 2)) of query j's source in clip b, by time: the source and its GT track points."""
  same = (_source_keys(batch, b) == _source_keys(batch, b)[j]).all(-1) & _gt_track_points(batch, b)
  times = np.concatenate([batch['query_t'][b, j, :1], batch['query_t'][b, same, 1]])
  uv = np.concatenate([batch['query_uv'][b, j][None], batch['target_uv'][b, same]])
  order = np.argsort(times, kind='stable')
  return times[order], uv[order]


def frame0_targets(batch: dict, b: int) -> tuple[np.ndarray, np.ndarray]:
  """(uv (n, 2), z (n,)): frame 0's GT depth at clip b's query targets seen in it (t_tgt = t_cam = 0, visible)."""
  qt = batch['query_t'][b]
  seen = (qt[:, 1] == 0) & (qt[:, 2] == 0) & batch['mask_3d'][b] & batch['mask_vis'][b]
  seen &= batch['target_vis'][b] > 0.5
  return batch['target_uv'][b, seen], batch['target_xyz'][b, seen, 2]


def predict(graphdef, params, batch: dict, max_rows: int = MAX_ROWS, num_tracks: int = NUM_TRACKS) -> dict:
  """The figure's outputs of the first `max_rows` clips (B rows, frames H x W, N = num_tracks), numpy:
    depth, conf (B, H, W)    frame 0's queries (u, v, 0, 0, 0) at every pixel centre
    track_xyz (B, T, N, 3)   the sources' points at time t in camera t (queries (u, v, t_src, t, t))
    sources (B, N) int       the tracked queries of the batch (`track_sources`)
  Per clip: one jitted encoder pass and all picture queries decoded against it (inference.d4rt.Decoder)."""
  model = nnx.merge(graphdef, params)
  rows = []
  for b in range(min(max_rows, len(batch['video']))):
    video = batch['video'][b]                                       # (T, H, W, 3)
    num_frames, h, w = video.shape[:3]
    sources = track_sources(batch, b, num_tracks)
    t = np.repeat(np.arange(num_frames), num_tracks)                # time-major: (T * N,)
    track_t = np.stack([np.tile(batch['query_t'][b, sources, 0], num_frames), t, t], -1)
    query_uv = np.concatenate([query_grid(h, w), np.tile(batch['query_uv'][b, sources], (num_frames, 1))])
    query_t = np.concatenate([np.zeros((h * w, 3), np.int32), track_t])
    out = Decoder(model, video, batch['aspect_ratio'][b])(query_uv, query_t)
    xyz, conf = np.asarray(out['xyz']), np.asarray(out['conf'])
    rows.append({'depth': xyz[:h * w, 2].reshape(h, w), 'conf': conf[:h * w].reshape(h, w),
                 'track_xyz': xyz[h * w:].reshape(num_frames, num_tracks, 3), 'sources': sources})
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def to_pixels(uv: np.ndarray, w: int, h: int) -> np.ndarray:
  """(..., 2) normalised (u, v) → imshow's (x, y): pixel j's centre (j + 0.5)/W is at x = j."""
  return uv * np.array([w, h]) - 0.5


def _draw_paths(ax, paths, dots):
  """Each (n, 2) pixel path as a line of its own colour, with a dot of that colour at its (2,) source point; the
  axes keep the frame's extent (paths leaving the frame are clipped)."""
  ax.set_autoscale_on(False)
  for i, (path, dot) in enumerate(zip(paths, dots)):
    colour = TRACK_COLOURS(i % TRACK_COLOURS.N)
    ax.plot(path[:, 0], path[:, 1], '-', color=colour, linewidth=1.2, marker='.', markersize=3)
    ax.plot(*dot, 'o', color=colour, markersize=5, markeredgecolor='k', markeredgewidth=0.5)


def make_figure(batch: dict, outputs: dict, step: int, val_loss: float | None = None) -> Figure:
  """The figure of the clips in `outputs` (`predict`'s, numpy); batch: the D4RT pipeline's arrays (numpy)."""
  rows, num_tracks = outputs['sources'].shape
  fig = Figure(figsize=(PANEL_INCHES * 6, PANEL_INCHES * rows + 0.5), dpi=DPI, layout='constrained')
  figure_header(fig, step, val_loss)
  axes = fig.subplots(rows, 6, squeeze=False)
  for b, ax in enumerate(axes):
    frame = (batch['video'][b, 0] + 1) / 2                          # (H, W, 3) in [0, 1]
    h, w = frame.shape[:2]
    num_frames = batch['video'].shape[1]
    pred_depth, conf = outputs['depth'][b], outputs['conf'][b]
    gt_uv, gt_z = frame0_targets(batch, b)
    col, row = np.clip(np.floor(gt_uv * np.array([w, h])).astype(int), 0, [w - 1, h - 1]).T
    scale = median_scale(gt_z, pred_depth[row, col])
    depth_norm = Normalize(*colour_range(gt_z if gt_z.size else scale * pred_depth, 2, 98))
    conf_lo, conf_hi = colour_range(conf[conf > 0], 0, 100)
    everywhere, nowhere = np.ones((h, w), bool), np.zeros((h, w), bool)
    draw_panel(fig, ax[0], 'frame 0', frame)
    draw_panel(fig, ax[1], f'predicted depth, frame 0\n× s = {scale:.3g} (median-aligned)',
               masked(scale * pred_depth, everywhere), DEPTH_CMAP, depth_norm, 'depth (m)')
    draw_panel(fig, ax[2], f'GT depth, frame 0: {len(gt_z)} query targets\n(t_tgt = t_cam = 0; grey: no GT)',
               masked(np.zeros((h, w)), nowhere), DEPTH_CMAP, depth_norm, 'depth (m)')
    ax[2].scatter(*to_pixels(gt_uv, w, h).T, c=gt_z, cmap=DEPTH_CMAP, norm=depth_norm, s=18, edgecolors='k',
                  linewidths=0.4)
    draw_panel(fig, ax[3], 'confidence, frame 0\n(log colour scale)', masked(conf, conf > 0), CONF_CMAP,
               LogNorm(conf_lo, conf_hi), 'confidence')
    sources = outputs['sources'][b]
    xyz = outputs['track_xyz'][b].reshape(-1, 3).astype(np.float64)  # (T * N, 3) camera-t points
    uv, _ = project(batch['intrinsics'][b].astype(np.float64), xyz)  # frame t's (u, v)
    predicted = to_pixels(np.where(xyz[:, 2:] > 0, uv, np.nan), w, h).reshape(num_frames, num_tracks, 2)
    draw_panel(fig, ax[4], f'predicted tracks, t = 0..{num_frames - 1}\n(K^n · xyz; dots at t_src)', frame)
    _draw_paths(ax[4], predicted.swapaxes(0, 1), predicted[batch['query_t'][b, sources, 0], np.arange(num_tracks)])
    draw_panel(fig, ax[5], 'GT tracks: sources (dots) and\nvisible targets (t_cam = t_tgt)', frame)
    _draw_paths(ax[5], [to_pixels(gt_track(batch, b, j)[1], w, h) for j in sources],
                to_pixels(batch['query_uv'][b, sources], w, h))
    ax[0].set_ylabel(f'clip {b}', fontsize=11)
  return fig


def save_pictures(path: str, batch: dict, outputs: dict, step: int, val_loss: float | None = None) -> np.ndarray:
  """`make_figure` saved as a PNG at `path`; returns its (H, W, 3) uint8 pixels (for TensorBoard)."""
  return save_figure(path, make_figure(batch, outputs, step, val_loss))
