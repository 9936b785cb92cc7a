"""Video-depth metrics of MonST3R (spec evaluation.md §2.1): `depth_evaluation` of `dust3r/depth_eval.py` in numpy.

Valid pixels: gt > 0 and gt < max_depth (gt > 0 only when max_depth is None); NaN GT is never valid, the
prediction is not tested. All frames of a (T, H, W) sequence share one alignment, fit on its valid pixels:

  'median' (default): p ← s·p,  s = median(g) / median(p)
  'scale':  s₀ = mean(g) / mean(p), 10 Weiszfeld steps w = 1/(|s·p − g| + 1e-8), s = Σw·p·g / Σw·p²; s ≥ 1e-3
  'lstsq':  p ← s·p + t, least squares of [p 1]·[s t]ᵀ ≈ g
  'lad':    p ← s·p + t, scipy.optimize.minimize (BFGS) of Σ|s·p + t − g| from (s = median ratio, t = 0)
  'lad2':   the same loss, minimised by Adam (β = (0.9, 0.999), ε = 1e-8, lr, max_iters) from (median ratio, 0),
            stopping after the step at which |Δloss| < 1e-6 (used for MonST3R's video-depth tables)
Medians are torch.median's, the lower of the two middle values for an even count. Then the optional
post_clip_min/max, and with p the aligned prediction and g the GT, over the valid pixels:

  abs_rel = mean|p − g|/g,  sq_rel = mean (p − g)²/g,  rmse = √mean (p − g)²
  log_rmse = √mean (log p' − log g)²,  delta_1.25^k = mean[max(p'/g, g/p') < 1.25^k],  p' = max(p, 1e-5)
A sequence without valid pixels gets all metrics 0. A dataset averages its sequences weighted by their
valid-pixel counts (`weighted_average`, MonST3R's depth_metric.ipynb). Computed in float64 (MonST3R works in
the input dtype, usually float32).
"""
import cv2
import numpy as np
from scipy.optimize import minimize

METRICS = ('abs_rel', 'sq_rel', 'rmse', 'log_rmse', 'delta_1.25', 'delta_1.25^2', 'delta_1.25^3')
ALIGNMENTS = ('median', 'scale', 'lstsq', 'lad', 'lad2')


def resize_to(pred, shape):
  """Resizes a prediction (T, h, w) or (h, w) to the GT size shape = (H, W), cv2 INTER_CUBIC per frame."""
  pred = np.asarray(pred)
  frames = pred.astype(pred.dtype if pred.dtype in (np.float32, np.float64) else np.float64)
  size = (int(shape[-1]), int(shape[-2]))
  if frames.ndim == 2:
    return cv2.resize(frames, size, interpolation=cv2.INTER_CUBIC)
  return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames])


def _median(x):
  """torch.median: the lower middle value of a 1-D array."""
  k = (x.size - 1) // 2
  return np.partition(x, k)[k]


def _adam_lad(p, g, s, t, lr, max_iters, tol=1e-6, betas=(0.9, 0.999), eps=1e-8):
  """(s, t) of MonST3R's absolute_value_scaling2: torch.optim.Adam on Σ|s·p + t − g|."""
  params = np.array([s, t], dtype=np.float64)
  m = np.zeros(2)
  v = np.zeros(2)
  prev_loss = None
  for step in range(1, max_iters + 1):
    residual = params[0] * p + params[1] - g
    loss = np.sum(np.abs(residual))
    sign = np.sign(residual)
    grad = np.array([np.sum(sign * p), np.sum(sign)])
    m = betas[0] * m + (1 - betas[0]) * grad
    v = betas[1] * v + (1 - betas[1]) * grad * grad
    denom = np.sqrt(v) / np.sqrt(1 - betas[1] ** step) + eps
    params = params - lr / (1 - betas[0] ** step) * m / denom
    if prev_loss is not None and abs(prev_loss - loss) < tol:
      break
    prev_loss = loss
  return params[0], params[1]


def _align(p, g, align, lr, max_iters):
  """The aligned prediction s·p + t of the valid pixels (1-D)."""
  if align == 'median':
    return _median(g) / _median(p) * p
  if align == 'scale':
    s = np.mean(g) / np.mean(p)
    for _ in range(10):
      w = 1.0 / (np.abs(s * p - g) + 1e-8)
      s = np.sum(w * p * g) / np.sum(w * p * p)
    return max(s, 1e-3) * p
  if align == 'lstsq':
    (s, t), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], axis=1), g, rcond=None)
  elif align == 'lad':
    s, t = minimize(lambda x: np.sum(np.abs(x[0] * p + x[1] - g)), [_median(g) / _median(p), 0.0]).x
  elif align == 'lad2':
    s, t = _adam_lad(p, g, _median(g) / _median(p), 0.0, lr, max_iters)
  else:
    raise ValueError(f'Unknown align: {align!r} (expected one of {ALIGNMENTS})')
  return s * p + t


def depth_evaluation(pred, gt, max_depth=None, align='median', lr=1e-4, max_iters=1000, post_clip_min=None,
                     post_clip_max=None):
  """Metrics of a predicted depth sequence (T, H, W) or map (H, W) against GT of the same shape.

  Returns ({name: float} with the keys of METRICS, number of valid pixels); see the module docstring.
  """
  pred = np.asarray(pred, dtype=np.float64)
  gt = np.asarray(gt, dtype=np.float64)
  if pred.shape != gt.shape:
    raise ValueError(f'pred {pred.shape} and gt {gt.shape} differ in shape (resize_to the GT size first)')
  valid = gt > 0 if max_depth is None else (gt > 0) & (gt < max_depth)
  count = int(np.sum(valid))
  if count == 0:
    return dict.fromkeys(METRICS, 0.0), 0
  g = gt[valid]
  p = _align(pred[valid], g, align, lr, max_iters)
  if post_clip_min is not None or post_clip_max is not None:
    p = np.clip(p, post_clip_min, post_clip_max)
  err = p - g
  out = {'abs_rel': np.mean(np.abs(err) / g), 'sq_rel': np.mean(err * err / g), 'rmse': np.sqrt(np.mean(err * err))}
  p = np.maximum(p, 1e-5)
  out['log_rmse'] = np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))
  ratio = np.maximum(p / g, g / p)
  for k, name in enumerate(METRICS[4:], start=1):
    out[name] = np.mean(ratio < 1.25 ** k)
  return {k: float(v) for k, v in out.items()}, count


def weighted_average(per_sequence_metrics, weights):
  """{name: np.average over sequences weighted by `weights`} (their valid-pixel counts) of a list of dicts."""
  return {k: float(np.average([m[k] for m in per_sequence_metrics], weights=weights)) for k in per_sequence_metrics[0]}
