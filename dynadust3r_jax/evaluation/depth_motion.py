"""Evaluation metrics of DynaDUSt3R (spec dynadust3r.md §f, dust3r.md §4.2), with median scale alignment.

The network's outputs are up to scale, so each pair is aligned to the ground truth by one factor,
s = median(GT depth) / median(predicted depth) over the valid pixels of view 1 (the standard median
scaling of zero-shot depth evaluation; the paper's exact formula is not public, spec §f). The same s
scales the predicted motion of that pair.

  structure: AbsRel = mean |s·d̂ − d| / d, δ<1.25 = mean[max(s·d̂/d, d/(s·d̂)) < 1.25]   (depth = z of pts3d)
  motion:    EPE3D = mean ‖s·m̂ − m‖ over the valid pixels of a motion target, with m the GT
             displacement (target position − GT point) and m̂ the predicted one; δ_0.05 / δ_0.10 =
             fraction of those pixels with error < 5 / 10 cm (Stereo4D is in pseudo-metric metres).
Metrics are computed per pair, then averaged over pairs with valid pixels.
"""
import jax.numpy as jnp

from dynadust3r_jax.common.motion_terms import MOTION_TERMS


def _masked_median(x, valid):
  return jnp.nanmedian(jnp.where(valid, x, jnp.nan).reshape(x.shape[0], -1), axis=1)


def _per_pair_mean(x, valid):
  """(B,) mean of x over each pair's valid pixels (NaN where none)."""
  n = jnp.sum(valid, axis=(1, 2))
  return jnp.where(n > 0, jnp.sum(jnp.where(valid, x, 0.0), axis=(1, 2)) / jnp.maximum(n, 1), jnp.nan)


def median_scale(pred_pts, gt_pts, valid):
  """(B,) factor aligning predicted depths to GT depths by their medians over valid pixels."""
  return _masked_median(gt_pts[..., 2], valid) / _masked_median(pred_pts[..., 2], valid)


def depth_metrics(pred_pts, gt_pts, valid, scale):
  """AbsRel and δ<1.25 per pair (B,) of the z of pointmaps, after scaling the prediction."""
  valid = valid & (gt_pts[..., 2] > 0)
  pred = scale[:, None, None] * pred_pts[..., 2]
  gt = jnp.where(valid, gt_pts[..., 2], 1.0)
  ratio = jnp.where(valid, pred / gt, 1.0)
  return {'abs_rel': _per_pair_mean(jnp.abs(ratio - 1.0), valid),
          'delta_1.25': _per_pair_mean((jnp.maximum(ratio, 1 / jnp.maximum(ratio, 1e-12)) < 1.25).astype(jnp.float32),
                                       valid)}


def motion_metrics(pred_motion, gt_motion, valid, scale):
  """EPE3D, δ_0.05, δ_0.10 per pair (B,) of displacements, after scaling the prediction."""
  err = jnp.linalg.norm(scale[:, None, None, None] * pred_motion - gt_motion, axis=-1)
  return {'epe3d': _per_pair_mean(err, valid), 'delta_0.05': _per_pair_mean((err < 0.05).astype(jnp.float32), valid),
          'delta_0.10': _per_pair_mean((err < 0.10).astype(jnp.float32), valid)}


def dynadust3r_metrics(res1, res2, batch) -> dict:
  """Structure metrics of both views and motion metrics of the four targets, averaged over pairs."""
  scale = median_scale(res1['pts3d'], batch['pts3d1'], batch['valid1'])
  out = {}
  for view, pred in ((1, res1['pts3d']), (2, res2['pts3d_in_other_view'])):
    for k, v in depth_metrics(pred, batch[f'pts3d{view}'], batch[f'valid{view}'], scale).items():
      out[f'view{view}_{k}'] = jnp.nanmean(v)
  per_target = []
  for name, view in MOTION_TERMS:
    res = res1 if view == 1 else res2
    valid = batch[f'valid_{name}'] & batch[f'valid{view}']
    gt = batch[f'target_{name}'] - batch[f'pts3d{view}']
    metrics = motion_metrics(res[f'motion_{name}'], gt, valid, scale)
    per_target.append(metrics)
    for k, v in metrics.items():
      out[f'{name}_{k}'] = jnp.nanmean(v)
  for k in per_target[0]:
    out[k] = jnp.nanmean(jnp.stack([m[k] for m in per_target]))
  return out


SCALE_RULES = ('depth_median', 'norm_median', 'per_view')
MOTION_ERRORS = ('displacement', 'end_position')
EVAL_TARGETS = (('l2r', 1), ('r2l', 2))  # view 1 moved to t = 1, view 2 moved to t = 0 (spec evaluation.md §3)


def norm_scale(pred_pts, gt_pts, valid):
  """(B,) factor aligning ‖X̂‖ to ‖X‖ by their medians over valid pixels (TAPVid-3D's 'median' rule)."""
  return _masked_median(jnp.linalg.norm(gt_pts, axis=-1), valid) / _masked_median(
      jnp.linalg.norm(pred_pts, axis=-1), valid)


def pair_metrics(res1, res2, batch, scale_rule='depth_median', motion_error='displacement',
                 with_motion=True) -> dict:
  """Per-pair (B,) metrics of the evaluation protocol (spec evaluation.md §3, its open choices as options).

  scale_rule: 'depth_median' (A: median z ratio on view 1), 'norm_median' (B: median ‖X‖ ratio on view 1) or
  'per_view' (C: the z-median factor of each view for that view's points and motion). motion_error:
  'displacement' e = s·M̂ − Δ or 'end_position' e = s·(P̂ + M̂) − (P + Δ) (which also counts the structure
  error). Keys: view{1,2}_{abs_rel, delta_1.25}; with motion {l2r, r2l}_{epe3d, delta_0.05, delta_0.10};
  and the headline abs_rel, delta_1.25 (and epe3d, delta_0.05, delta_0.10): the mean of the two views (targets).
  """
  if scale_rule not in SCALE_RULES:
    raise ValueError(f'config.pairs.scale={scale_rule!r}; choose one of {SCALE_RULES}')
  if motion_error not in MOTION_ERRORS:
    raise ValueError(f'config.pairs.motion_error={motion_error!r}; choose one of {MOTION_ERRORS}')
  preds = {1: (res1, res1['pts3d']), 2: (res2, res2['pts3d_in_other_view'])}
  if scale_rule == 'norm_median':
    shared = norm_scale(preds[1][1], batch['pts3d1'], batch['valid1'])
  else:
    shared = median_scale(preds[1][1], batch['pts3d1'], batch['valid1'])
  scales = {v: median_scale(preds[v][1], batch[f'pts3d{v}'], batch[f'valid{v}']) if scale_rule == 'per_view'
            else shared for v in (1, 2)}
  out, headline = {}, {}
  for v in (1, 2):
    for k, x in depth_metrics(preds[v][1], batch[f'pts3d{v}'], batch[f'valid{v}'], scales[v]).items():
      out[f'view{v}_{k}'] = x
      headline.setdefault(k, []).append(x)
  if with_motion:
    for name, v in EVAL_TARGETS:
      res, pts = preds[v]
      valid = batch[f'valid_{name}'] & batch[f'valid{v}']
      gt = batch[f'target_{name}'] - batch[f'pts3d{v}']
      pred = res[f'motion_{name}']
      if motion_error == 'end_position':  # s·(P̂+M̂) − (P+Δ) = s·M̂ − (Δ − (s·P̂ − P))
        gt = gt - (scales[v][:, None, None, None] * pts - batch[f'pts3d{v}'])
      for k, x in motion_metrics(pred, gt, valid, scales[v]).items():
        out[f'{name}_{k}'] = x
        headline.setdefault(k, []).append(x)
  out.update({k: jnp.nanmean(jnp.stack(xs), axis=0) for k, xs in headline.items()})
  out['scale'] = shared if scale_rule != 'per_view' else scales[1]
  return out
