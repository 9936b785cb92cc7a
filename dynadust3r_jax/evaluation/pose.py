"""Relative camera pose metrics of PoseDiffusion for CO3D (spec evaluation.md §2.4, `pose_diffusion/util/metric.py`).

For every frame pair i < j (torch.combinations order) of N world→camera poses [R|t] (OpenCV column form,
equivalent to PoseDiffusion's inv(M_i)·M_j of PyTorch3D row matrices): R_ij = R_j R_iᵀ, t_ij = t_j − R_ij t_i, and

  rotation error    e_R = acos_lin((tr(R_ij,gt R_ij,predᵀ) − 1) / 2)  (PyTorch3D so3_relative_angle)
  translation error e_t = arccos √(1 − max(1 − (t̂_gt·t̂_pred)², 1e-15)),  t̂ = t / (‖t‖ + 1e-15)
                    (sign-invariant, in [0°, 90°]; NaN or Inf → 1e6)
both in degrees. acos_lin is current PyTorch3D's acos_linear_extrapolation with cos_bound = 1e-4: arccos inside
[−1 + 1e-4, 1 − 1e-4], its first-order Taylor expansion at the bound outside. So angles below ≈0.81° (the
arccos of the bound) are not exact: identical rotations read ≈0.405° (MIN_ROTATION_ERROR_DEG). Summary
(PoseDiffusion test.py), over all pairs of a category:

  RRA@τ = mean(e_R < τ)·100,  RTA@τ = mean(e_t < τ)·100,  τ ∈ {5, 15, 30}
  mAA@30 = 100 · mean_k cumsum(histogram(max(e_R, e_t), bins 0..30)_k) / P   (calculate_auc_np; the last bin
           [29, 30] is closed, errors above 30 count nowhere)
The reported number is the unweighted mean over categories (`mean_over_categories`).
"""
import math

import numpy as np

COS_BOUND = 1e-4
_BOUND = 1.0 - COS_BOUND
MIN_ROTATION_ERROR_DEG = math.degrees(math.acos(_BOUND) - COS_BOUND / math.sqrt(1.0 - _BOUND * _BOUND))
THRESHOLDS = (5, 15, 30)


def _acos_linear_extrapolation(x):
  """PyTorch3D's acos_linear_extrapolation(x, (−1 + 1e-4, 1 − 1e-4))."""
  slope = -1.0 / math.sqrt(1.0 - _BOUND * _BOUND)
  upper = (x - _BOUND) * slope + math.acos(_BOUND)
  lower = (x + _BOUND) * slope + math.acos(-_BOUND)
  return np.where(x >= _BOUND, upper, np.where(x <= -_BOUND, lower, np.arccos(np.clip(x, -_BOUND, _BOUND))))


def rotation_angle_deg(rot_gt, rot_pred, eps=1e-4):
  """(P,) angle of R_gt R_predᵀ in degrees, (P, 3, 3) inputs; raises where tr is outside [−1 − eps, 3 + eps]."""
  trace = np.einsum('pij,pij->p', rot_gt, rot_pred)
  if np.any((trace < -1.0 - eps) | (trace > 3.0 + eps)):
    raise ValueError('A matrix has trace outside valid range [-1-eps,3+eps].')
  return np.degrees(_acos_linear_extrapolation((trace - 1.0) * 0.5))


def translation_angle_deg(t_gt, t_pred, eps=1e-15, default_err=1e6):
  """(P,) sign-invariant angle between (P, 3) translation directions in degrees; NaN/Inf → default_err."""
  t_pred = t_pred / (np.linalg.norm(t_pred, axis=1, keepdims=True) + eps)
  t_gt = t_gt / (np.linalg.norm(t_gt, axis=1, keepdims=True) + eps)
  loss = np.maximum(1.0 - np.sum(t_pred * t_gt, axis=1) ** 2, eps)
  with np.errstate(invalid='ignore'):
    err = np.degrees(np.arccos(np.sqrt(1.0 - loss)))
  return np.where(np.isfinite(err), err, default_err)


def relative_poses(w2c):
  """(R_ij (P, 3, 3), t_ij (P, 3)) of all pairs i < j of (N, 4, 4) world→camera poses."""
  i, j = np.triu_indices(len(w2c), k=1)
  rot, trans = w2c[:, :3, :3], w2c[:, :3, 3]
  rot_ij = rot[j] @ np.transpose(rot[i], (0, 2, 1))
  return rot_ij, trans[j] - np.einsum('pab,pb->pa', rot_ij, trans[i])


def relative_pose_errors(w2c_pred, w2c_gt):
  """(rotation errors (P,), translation errors (P,)) in degrees, P = N(N−1)/2, of (N, 4, 4) w2c poses."""
  rot_pred, trans_pred = relative_poses(np.asarray(w2c_pred, dtype=np.float64))
  rot_gt, trans_gt = relative_poses(np.asarray(w2c_gt, dtype=np.float64))
  return rotation_angle_deg(rot_gt, rot_pred), translation_angle_deg(trans_gt, trans_pred)


def pose_auc(rot_err, trans_err, max_threshold=30):
  """mAA as a fraction: mean of the cumulative histogram (bins 0..max_threshold) of max(e_R, e_t) / P."""
  max_err = np.maximum(np.asarray(rot_err, dtype=np.float64), np.asarray(trans_err, dtype=np.float64))
  histogram, _ = np.histogram(max_err, bins=np.arange(max_threshold + 1))
  return float(np.mean(np.cumsum(histogram / float(len(max_err)))))


def pose_metrics(rot_err, trans_err):
  """{'RRA@τ', 'RTA@τ' for τ in 5, 15, 30, 'mAA@30'} in % of (P,) errors in degrees."""
  rot_err, trans_err = np.asarray(rot_err), np.asarray(trans_err)
  out = {f'RRA@{tau}': float(np.mean(rot_err < tau) * 100) for tau in THRESHOLDS}
  out.update({f'RTA@{tau}': float(np.mean(trans_err < tau) * 100) for tau in THRESHOLDS})
  out['mAA@30'] = pose_auc(rot_err, trans_err, 30) * 100
  return out


def mean_over_categories(per_category):
  """{metric: unweighted mean over categories} of {category: {metric: value}}."""
  metrics = list(per_category.values())
  return {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}
