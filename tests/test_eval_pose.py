"""Relative pose metrics (dynadust3r_jax/evaluation/pose.py, PoseDiffusion's CO3D protocol): hand cases of the
angles, the mAA histogram, the pair order, NaN handling and invariance to a change of world frame."""
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dynadust3r_jax.evaluation.pose import (MIN_ROTATION_ERROR_DEG, mean_over_categories, pose_auc, pose_metrics,
                                            relative_pose_errors, translation_angle_deg)


def _cameras(n, seed=0):
  """(n, 4, 4) random world→camera poses."""
  rng = np.random.default_rng(seed)
  w2c = np.tile(np.eye(4), (n, 1, 1))
  w2c[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
  w2c[:, :3, 3] = rng.normal(size=(n, 3))
  return w2c


def test_mAA_hand_cases():
  zeros = np.zeros(45)
  assert pose_auc(zeros, zeros) == 1.0
  assert pose_metrics(zeros, zeros) == dict.fromkeys(
      ['RRA@5', 'RRA@15', 'RRA@30', 'RTA@5', 'RTA@15', 'RTA@30', 'mAA@30'], 100.0)
  assert pose_auc(np.full(45, 15.5), zeros) == pytest.approx(0.5)  # counted from k = 16 on: 15/30
  assert pose_auc(zeros, np.full(45, 15.5)) == pytest.approx(0.5)  # max of the two errors
  assert pose_auc(np.array([30.0]), np.array([0.0])) == pytest.approx(1 / 30)  # the last bin is closed
  assert pose_auc(np.array([30.5]), np.array([0.0])) == 0.0
  m = pose_metrics(np.array([1.0, 10.0, 20.0, 40.0]), np.array([6.0, 1.0, 1.0, 1.0]))
  assert (m['RRA@5'], m['RRA@15'], m['RRA@30']) == (25.0, 50.0, 75.0)
  assert (m['RTA@5'], m['RTA@15'], m['RTA@30']) == (75.0, 100.0, 100.0)
  # max errors 6, 10, 20, 40: frac(m < k) summed over k = 1..30 is 24 + 20 + 10 + 0.
  assert m['mAA@30'] == pytest.approx(100 * (24 + 20 + 10) / 4 / 30)


def test_perfect_prediction():
  w2c = _cameras(5)
  rot, trans = relative_pose_errors(w2c, w2c)
  assert rot.shape == trans.shape == (10,)
  # PyTorch3D's linear extrapolation of arccos beyond cos = 1 − 1e-4: identical rotations read 0.405°.
  np.testing.assert_allclose(rot, MIN_ROTATION_ERROR_DEG, atol=1e-6)
  assert MIN_ROTATION_ERROR_DEG == pytest.approx(0.4051, abs=1e-4)
  # The 1e-15 floor under 1 − cos²: at least √1e-15 rad (rounding of cos adds a few 1e-15).
  assert np.all(trans >= math.degrees(math.sqrt(1e-15)) * (1 - 1e-6)) and np.all(trans < 1e-5)
  assert pose_metrics(rot, trans)['mAA@30'] == 100.0


def test_known_rotation_and_pair_order():
  # Camera 1 turned by 20° about an axis: every pair with camera 1 reads 20°, the others ~0.
  w2c = _cameras(4)
  pred = w2c.copy()
  pred[1, :3, :3] = Rotation.from_rotvec(np.radians(20.0) * np.array([1.0, 2.0, 2.0]) / 3).as_matrix() @ w2c[1, :3, :3]
  rot, _ = relative_pose_errors(pred, w2c)
  m0 = MIN_ROTATION_ERROR_DEG
  np.testing.assert_allclose(rot, [20.0, m0, m0, 20.0, 20.0, m0], atol=1e-6)  # (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)


def test_translation_angle_hand_cases():
  t_gt = np.array([[2.0, 0.0, 0.0]] * 3)
  t_pred = np.array([[math.cos(math.radians(30)), math.sin(math.radians(30)), 0.0],
                     [math.cos(math.radians(150)), math.sin(math.radians(150)), 0.0], [0.0, 0.0, 5.0]])
  np.testing.assert_allclose(translation_angle_deg(t_gt, t_pred), [30.0, 30.0, 90.0], atol=1e-6)


def test_sign_flipped_translation_reads_zero():
  w2c = _cameras(5)
  flipped = w2c.copy()
  flipped[:, :3, 3] *= -1  # every t_ij flips sign
  rot, trans = relative_pose_errors(w2c, flipped)
  np.testing.assert_allclose(trans, 0.0, atol=1e-5)
  np.testing.assert_allclose(rot, MIN_ROTATION_ERROR_DEG, atol=1e-6)


def test_invariant_to_a_similarity_of_the_predicted_world():
  gt = _cameras(6, seed=1)
  pred = _cameras(6, seed=2)
  rot, trans = relative_pose_errors(pred, gt)
  # X' = s·Q·X + c changes the w2c [R|t] into [R Qᵀ | s·t − R Qᵀ c].
  q, s, c = Rotation.random(random_state=3).as_matrix(), 3.7, np.array([0.5, -2.0, 1.0])
  moved = pred.copy()
  moved[:, :3, :3] = pred[:, :3, :3] @ q.T
  moved[:, :3, 3] = s * pred[:, :3, 3] - moved[:, :3, :3] @ c
  rot2, trans2 = relative_pose_errors(moved, gt)
  np.testing.assert_allclose(rot2, rot, atol=1e-9)
  np.testing.assert_allclose(trans2, trans, atol=1e-9)
  assert np.all(rot > 1.0) and np.all(trans > 1e-3)  # a real prediction error, not the trivial case


def test_nan_translation_reads_1e6():
  w2c = _cameras(3)
  pred = w2c.copy()
  pred[0, 0, 3] = np.nan
  _, trans = relative_pose_errors(pred, w2c)
  assert trans[0] == trans[1] == 1e6  # the pairs (0, 1) and (0, 2)
  assert trans[2] < 1e-5
  assert pose_metrics(np.zeros(3), trans)['RTA@30'] == pytest.approx(100 / 3)


def test_mean_over_categories():
  out = mean_over_categories({'apple': {'RRA@15': 90.0, 'mAA@30': 70.0}, 'bench': {'RRA@15': 80.0, 'mAA@30': 50.0}})
  assert out == {'RRA@15': 85.0, 'mAA@30': 60.0}


def test_not_a_rotation_raises():
  w2c = _cameras(3)
  pred = w2c.copy()
  pred[:, :3, :3] *= 2.0  # PyTorch3D's trace check: tr = 12 > 3 + 1e-4
  with pytest.raises(ValueError, match='trace'):
    relative_pose_errors(pred, w2c)
