"""Camera trajectory metrics of MonST3R (spec evaluation.md §2.3, `eval_metrics` of `dust3r/utils/vo_eval.py`).

The numbers are evo's (`evo.main_ape.ape`, `evo.main_rpe.rpe`), called as MonST3R calls them, on camera→world
trajectories. The predicted timestamps are replaced by the GT ones when both have as many poses, then
`sync.associate_trajectories` pairs the poses (nearest time, within 0.01). With P the estimate after a Sim(3)
Umeyama alignment of its positions to the GT ones (over all poses) and Q the GT:

  ate       = RMSE_i ‖trans(P_i) − trans(Q_i)‖
  rpe_trans = RMSE_i ‖trans(E_i)‖,  rpe_rot = RMSE_i |angle(rot(E_i))| in degrees,
              E_i = (Q_i⁻¹ Q_{i+1})⁻¹ (P_i⁻¹ P_{i+1})   (delta = 1 frame, all pairs)
A dataset reports the unweighted mean over its sequences. MonST3R passes the same trajectories to the three
calls, which align them in place; here each call gets its own copies (the same numbers, as re-aligning an
aligned trajectory is the identity). Importing evo leaves the root logger alone (evo adds a NullHandler to its
own); its results are logged at INFO level on the `evo` loggers. TUM files: common/tum.py's read_tum_poses,
inference/export/cameras.py's write_tum_poses.
"""
import copy

import numpy as np
from evo import main_ape, main_rpe
from evo.core import sync
from evo.core.metrics import PoseRelation, Unit
from evo.core.trajectory import PoseTrajectory3D


def to_trajectory(c2w, timestamps):
  """evo PoseTrajectory3D of (N, 4, 4) camera→world poses at (N,) timestamps."""
  return PoseTrajectory3D(poses_se3=list(np.asarray(c2w, dtype=np.float64)),
                          timestamps=np.asarray(timestamps, dtype=np.float64))


def trajectory_metrics(c2w_pred, c2w_gt, timestamps=None, timestamps_pred=None):
  """{'ate', 'rpe_trans', 'rpe_rot' (degrees)} of (N, 4, 4) predicted vs (M, 4, 4) GT camera→world poses.

  timestamps: the GT's (M,) (default 0..M−1); timestamps_pred: the prediction's, needed only when N ≠ M
  (otherwise the GT ones are used, as MonST3R does).
  """
  if timestamps is None:
    timestamps = np.arange(len(c2w_gt), dtype=np.float64)
  if len(c2w_pred) == len(c2w_gt):
    timestamps_pred = timestamps
  elif timestamps_pred is None:
    raise ValueError(f'{len(c2w_pred)} predicted and {len(c2w_gt)} GT poses: timestamps_pred is needed')
  gt, pred = sync.associate_trajectories(to_trajectory(c2w_gt, timestamps), to_trajectory(c2w_pred, timestamps_pred))
  ate = main_ape.ape(copy.deepcopy(gt), copy.deepcopy(pred), pose_relation=PoseRelation.translation_part,
                     align=True, correct_scale=True)
  out = {'ate': float(ate.stats['rmse'])}
  for name, relation in (('rpe_trans', PoseRelation.translation_part), ('rpe_rot', PoseRelation.rotation_angle_deg)):
    rpe = main_rpe.rpe(copy.deepcopy(gt), copy.deepcopy(pred), pose_relation=relation, delta=1,
                       delta_unit=Unit.frames, rel_delta_tol=0.01, all_pairs=True, align=True, correct_scale=True)
    out[name] = float(rpe.stats['rmse'])
  return out
