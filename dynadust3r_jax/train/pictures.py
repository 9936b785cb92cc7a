"""Training pictures: one titled matplotlib figure per picture step, saved as a PNG and sent to TensorBoard.

Rows = up to `max_rows` examples; columns = view 1, view 2, predicted depth of view 1, GT depth (valid
pixels only), confidence of view 1 and, for DynaDUSt3R, predicted and GT motion magnitude |l→r|.
Depth and motion are in the Stereo4D scene's units, pseudo-metric metres (spec dynadust3r.md §b). The
network predicts up to an unknown scale, so its depth and motion are multiplied by the median scale
factor s = median(GT depth) / median(predicted depth) over valid pixels (as `evaluation.median_scale`)
before they share the GT's colour scale. The helpers below (colour maps and ranges, median scale, panel,
header, PNG) also draw D4RT's pictures (d4rt_pictures.py).
"""
import os

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from PIL import Image

INVALID_COLOUR = (0.5, 0.5, 0.5)  # pixels without GT: neutral grey, outside every colour map
PANEL_INCHES, DPI = 3.0, 100
DEPTH_CMAP = matplotlib.colormaps['turbo'].with_extremes(bad=INVALID_COLOUR)
MOTION_CMAP = matplotlib.colormaps['magma'].with_extremes(bad=INVALID_COLOUR)
CONF_CMAP = matplotlib.colormaps['viridis'].with_extremes(bad=INVALID_COLOUR)


def panel_titles(res1: dict) -> list[str]:
  """Column titles ({s}: the median scale factor); the DynaDUSt3R columns only when the model predicts motion."""
  titles = ['view 1 (frame l)', 'view 2 (frame r)', 'predicted depth, view 1\n× s = {s:.3g} (median-aligned)',
            'GT depth, view 1\n(grey: no GT)', 'confidence, view 1\n(log colour scale)']
  if 'motion_l2r' in res1:
    titles += ['predicted motion |l→r|\n× s = {s:.3g} (median-aligned)', 'GT motion |l→r|\n(grey: no GT)']
  return titles


def colour_range(values: np.ndarray, lo_pct: float, hi_pct: float) -> tuple[float, float]:
  """Percentile colour range of the finite `values`; (0, 1) when there are none, never empty."""
  values = values[np.isfinite(values)]
  if values.size == 0:
    return 0.0, 1.0
  lo, hi = np.percentile(values, [lo_pct, hi_pct])
  return float(lo), float(max(hi, lo + 1e-6))


def masked(x: np.ndarray, valid: np.ndarray) -> np.ma.MaskedArray:
  """x shown only where valid and finite (the rest in the colour map's grey)."""
  return np.ma.masked_array(x, ~(valid & np.isfinite(x)))


def median_scale(gt: np.ndarray, pred: np.ndarray) -> float:
  """s = median(gt) / median(pred) over paired values (as `evaluation.median_scale`); 1 without values or when
  median(pred) <= 0 (an untrained network)."""
  if gt.size and np.median(pred) > 0:
    return float(np.median(gt) / np.median(pred))
  return 1.0


def draw_panel(fig: Figure, ax, title: str, image, cmap=None, norm=None, label: str | None = None):
  """One panel: an RGB image in [0, 1] (cmap None) or a colour-mapped one with its colour bar; titled, no ticks."""
  if cmap is None:
    shown = ax.imshow(np.clip(image, 0, 1), interpolation='nearest')
  else:
    shown = ax.imshow(image, cmap=cmap, norm=norm, interpolation='nearest')
    fig.colorbar(shown, ax=ax, shrink=0.8, label=label)
  ax.set_title(title, fontsize=10)
  ax.set_xticks([])
  ax.set_yticks([])


def make_figure(batch: dict, res1: dict, step: int, val_loss: float | None = None, max_rows: int = 2) -> Figure:
  """The figure of the first `max_rows` examples. batch: the pipeline's arrays; res1: view-1 outputs (numpy)."""
  titles = panel_titles(res1)
  rows = min(max_rows, len(batch['img1']))
  fig = Figure(figsize=(PANEL_INCHES * len(titles), PANEL_INCHES * rows + 0.5), dpi=DPI, layout='constrained')
  figure_header(fig, step, val_loss)
  axes = fig.subplots(rows, len(titles), squeeze=False)
  for b in range(rows):
    gt_depth, valid = batch['pts3d1'][b, ..., 2], batch['valid1'][b]
    pred_depth = res1['pts3d'][b, ..., 2]
    scale = median_scale(gt_depth[valid], pred_depth[valid])
    depth_norm = Normalize(*colour_range(gt_depth[valid] if valid.any() else scale * pred_depth, 2, 98))
    conf = res1['conf'][b]
    conf_lo, conf_hi = colour_range(conf[conf > 0], 0, 100)
    panels = [  # (image, colour map, norm, colour-bar label); colour map None = an RGB image
        ((batch['img1'][b] + 1) / 2, None, None, None),
        ((batch['img2'][b] + 1) / 2, None, None, None),
        (masked(scale * pred_depth, np.ones_like(valid)), DEPTH_CMAP, depth_norm, 'depth (m)'),
        (masked(gt_depth, valid), DEPTH_CMAP, depth_norm, 'depth (m)'),
        (masked(conf, conf > 0), CONF_CMAP, LogNorm(conf_lo, conf_hi), 'confidence'),
    ]
    if 'motion_l2r' in res1:
      pred_motion = scale * np.linalg.norm(res1['motion_l2r'][b], axis=-1)
      gt_motion = np.linalg.norm(batch['target_l2r'][b] - batch['pts3d1'][b], axis=-1)
      motion_valid = batch['valid_l2r'][b] & valid
      motion_hi = colour_range(gt_motion[motion_valid] if motion_valid.any() else pred_motion, 0, 98)[1]
      motion_norm = Normalize(0.0, motion_hi)
      panels += [(masked(pred_motion, np.ones_like(valid)), MOTION_CMAP, motion_norm, 'motion (m)'),
                 (masked(gt_motion, motion_valid), MOTION_CMAP, motion_norm, 'motion (m)')]
    for ax, title, panel in zip(axes[b], titles, panels):
      draw_panel(fig, ax, title.format(s=scale), *panel)
    axes[b][0].set_ylabel(f'example {b}', fontsize=11)
  return fig


def figure_header(fig: Figure, step: int, val_loss: float | None):
  """The figure's title: the step and, after a validation, its loss."""
  fig.suptitle(f'step {step}' + ('' if val_loss is None else f'    val loss {val_loss:.4f}'), fontsize=16)


def save_figure(path: str, fig: Figure) -> np.ndarray:
  """Renders `fig`, saves it as a PNG at `path` and returns its (H, W, 3) uint8 pixels (for TensorBoard)."""
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image).save(path)
  return image


def save_pictures(path: str, batch: dict, res1: dict, step: int, val_loss: float | None = None,
                  max_rows: int = 2) -> np.ndarray:
  """`make_figure` saved as a PNG at `path`; returns its (H, W, 3) uint8 pixels."""
  return save_figure(path, make_figure(batch, res1, step, val_loss, max_rows))
