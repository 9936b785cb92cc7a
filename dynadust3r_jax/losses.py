"""DUSt3R's and DynaDUSt3R's training losses (spec dust3r.md §2, dynadust3r.md §d.2), float32.

`ConfLoss(Regr3D(L21, norm_mode='avg_dis'), alpha=0.2)`: pointmaps in camera-1 coordinates; prediction
and ground truth each divided by their own per-pair scale, the mean distance to the origin of the valid
GT pixels of both views (the prediction's scale uses the GT masks too); per pixel e = ‖p/s_pr − g/s_gt‖
and the loss C·e − α·log C, averaged over all valid pixels of the batch (pooled, not per pair); a term
with no valid pixel in the batch contributes 0.

DynaDUSt3R adds four motion terms of the same form on the positions at the query time (pointmap +
predicted displacement vs the track's GT position), with the motion heads' confidences, the pointmaps'
scales, and masks = source pixel valid ∧ target valid. All six terms weigh 1.

Batches are the data pipeline's dicts (data/stereo4d.py): pts3d1, pts3d2, valid1, valid2, target_*,
valid_*; predictions are the model's outputs (model/dust3r.py, model/dyna_dust3r.py).
"""
import jax
import jax.numpy as jnp

ALPHA = 0.2
MOTION_TERMS = (('l2m', 1), ('l2r', 1), ('r2m', 2), ('r2l', 2))  # (target, view it starts from)


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
