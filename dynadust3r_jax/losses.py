"""DUSt3R's and DynaDUSt3R's training losses (spec dust3r.md §2, dynadust3r.md §d.2), float32.

`ConfLoss(Regr3D(L21, norm_mode='avg_dis'), alpha=0.2)`: pointmaps in camera-1 coordinates; prediction
and ground truth each divided by their own per-pair scale, the mean distance to the origin of the valid
GT pixels of both views (the prediction's scale uses the GT masks too); per pixel e = ‖p/s_pr − g/s_gt‖
and the loss C·e − α·log C, averaged over all valid pixels of the batch (pooled, not per pair); a term
with no valid pixel in the batch contributes 0.

DynaDUSt3R adds four motion terms of the same form on the positions at the query time (pointmap +
predicted displacement vs the track's GT position), with the motion heads' confidences, the pointmaps'
scales, and masks = source pixel valid ∧ target valid. All six terms weigh 1.

The test criterion of DUSt3R (checkpoint selection), `Regr3D_ScaleShiftInv(L21, gt_scale=True)`, is
`scale_shift_inv_loss`.

Batches are the data pipeline's dicts (data/stereo4d.py): pts3d1, pts3d2, valid1, valid2, target_*,
valid_*; predictions are the model's outputs (model/dust3r.py, model/dyna_dust3r.py).
"""
import jax
import jax.numpy as jnp

from dynadust3r_jax.common.motion_terms import MOTION_TERMS

ALPHA = 0.2


def _norm(x, valid):
  """‖x‖ over the last axis where valid, 0 elsewhere, with a finite gradient everywhere."""
  sq = jnp.sum(jnp.square(x), axis=-1)
  return jnp.where(valid, jnp.sqrt(jnp.where(valid, sq, 1.0)), 0.0)


def avg_dis_scale(pts1, pts2, valid1, valid2):
  """(B,) mean ‖x‖ over the valid pixels of both views (`normalize_pointcloud`, 'avg_dis')."""
  total = jnp.sum(_norm(pts1, valid1), axis=(1, 2)) + jnp.sum(_norm(pts2, valid2), axis=(1, 2))
  count = jnp.sum(valid1, axis=(1, 2)) + jnp.sum(valid2, axis=(1, 2))
  return jnp.maximum(total / (count + 1e-8), 1e-8)


def conf_term(pred, gt, valid, conf, s_pred, s_gt, alpha=ALPHA):
  """(loss, mean error): pooled means over the valid pixels of the batch of C·e − α·log C and of e."""
  e = _norm(pred / s_pred[:, None, None, None] - gt / s_gt[:, None, None, None], valid)
  n = jnp.sum(valid)
  safe_conf = jnp.where(valid, conf, 1.0)
  total = jnp.sum(jnp.where(valid, safe_conf * e - alpha * jnp.log(safe_conf), 0.0))
  return jnp.where(n > 0, total / jnp.maximum(n, 1), 0.0), jnp.where(n > 0, jnp.sum(e) / jnp.maximum(n, 1), 0.0)


def _scales(res1, res2, batch):
  """(prediction scale, GT scale), (B,) each; both from the base pointmaps with the GT masks."""
  s_gt = avg_dis_scale(batch['pts3d1'], batch['pts3d2'], batch['valid1'], batch['valid2'])
  s_pred = avg_dis_scale(res1['pts3d'], res2['pts3d_in_other_view'], batch['valid1'], batch['valid2'])
  return s_pred, jax.lax.stop_gradient(s_gt)


def _point_terms(res1, res2, batch, scales, alpha):
  left, left_err = conf_term(res1['pts3d'], batch['pts3d1'], batch['valid1'], res1['conf'], *scales, alpha)
  right, right_err = conf_term(res2['pts3d_in_other_view'], batch['pts3d2'], batch['valid2'], res2['conf'],
                               *scales, alpha)
  return left + right, {'loss_left': left, 'loss_right': right, 'left_3d_error': left_err,
                        'right_3d_error': right_err, 'avg_3d_error': (left_err + right_err) / 2}


def dust3r_loss(res1, res2, batch, alpha=ALPHA):
  """ConfLoss(Regr3D(L21, 'avg_dis'), alpha) → (loss, {name: value}) with the per-view terms/errors."""
  return _point_terms(res1, res2, batch, _scales(res1, res2, batch), alpha)


def dynadust3r_loss(res1, res2, batch, alpha=ALPHA):
  """The six-term DynaDUSt3R loss → (loss, metrics incl. spec §d.3's scale-normalised errors)."""
  scales = _scales(res1, res2, batch)
  loss, metrics = _point_terms(res1, res2, batch, scales, alpha)
  points = {1: res1['pts3d'], 2: res2['pts3d_in_other_view']}
  motion_errors = []
  for name, view in MOTION_TERMS:
    res = res1 if view == 1 else res2
    term, err = conf_term(points[view] + res[f'motion_{name}'], batch[f'target_{name}'],
                          batch[f'valid_{name}'] & batch[f'valid{view}'], res[f'conf_{name}'], *scales, alpha)
    loss = loss + term
    metrics[f'loss_{name}'] = term
    metrics[f'{name}_motion_pc_error'] = err
    motion_errors.append(err)
  metrics['avg_motion_pc_error'] = sum(motion_errors) / len(motion_errors)
  return loss, metrics


def _lower_median(x, valid):
  """(B,) torch.nanmedian over each item's valid entries: the lower of the two middle values for an even
  count (NaN where none). x, valid: (B, n)."""
  n = jnp.sum(valid, axis=1)
  ordered = jnp.sort(jnp.where(valid, x, jnp.inf), axis=1)
  median = jnp.take_along_axis(ordered, jnp.maximum(n - 1, 0)[:, None] // 2, axis=1)[:, 0]
  return jnp.where(n > 0, median, jnp.nan)


def _shift_scale(pts, valid):
  """DUSt3R's ShiftInv then ScaleInv normalisers of one side (no gradient): pts (B, n, 3) with z shifted by
  the median z, and the scale nanmedian ‖X − c‖ with c the per-coordinate median of the shifted points."""
  shift = jax.lax.stop_gradient(_lower_median(pts[..., 2], valid))
  pts = pts.at[..., 2].add(-shift[:, None])
  centre = jnp.stack([_lower_median(pts[..., k], valid) for k in range(3)], -1)
  scale = _lower_median(jnp.linalg.norm(pts - centre[:, None], axis=-1), valid)
  return pts, jax.lax.stop_gradient(scale)


def scale_shift_inv_loss(res1, res2, batch):
  """DUSt3R's test criterion `Regr3D_ScaleShiftInv(L21, gt_scale=True)` (spec dust3r.md §2) → (loss, metrics).

  The prediction is avg_dis-normalised with the GT masks; both sides get their z shifted by their median z
  over the valid pixels of both views, then the prediction is rescaled by s_gt/s_pred (s = median distance
  to the per-coordinate median; s_pred clipped to [1e-3, 1e3]); the loss is the mean ‖P − G‖ over the valid
  pixels of the batch, per view, summed over the views. Medians are torch's nanmedian (lower middle value)."""
  b = batch['pts3d1'].shape[0]
  valid = jnp.concatenate([batch['valid1'].reshape(b, -1), batch['valid2'].reshape(b, -1)], axis=1)
  gt = jnp.concatenate([batch['pts3d1'].reshape(b, -1, 3), batch['pts3d2'].reshape(b, -1, 3)], axis=1)
  pred = jnp.concatenate([res1['pts3d'].reshape(b, -1, 3), res2['pts3d_in_other_view'].reshape(b, -1, 3)], axis=1)
  pred = pred / avg_dis_scale(res1['pts3d'], res2['pts3d_in_other_view'], batch['valid1'], batch['valid2'])[:, None, None]
  gt, s_gt = _shift_scale(gt, valid)
  pred, s_pred = _shift_scale(pred, valid)
  pred = pred * (s_gt / jnp.clip(s_pred, 1e-3, 1e3))[:, None, None]
  dist = _norm(pred - gt, valid)
  half = batch['valid1'][0].size
  terms = []
  for view, part in ((1, slice(None, half)), (2, slice(half, None))):
    n = jnp.sum(valid[:, part])
    terms.append(jnp.where(n > 0, jnp.sum(dist[:, part]) / jnp.maximum(n, 1), 0.0))
  return terms[0] + terms[1], {'Regr3D_ScaleShiftInv_pts3d_1': terms[0], 'Regr3D_ScaleShiftInv_pts3d_2': terms[1]}
