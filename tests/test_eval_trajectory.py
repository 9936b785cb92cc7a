"""Trajectory metrics (dynadust3r_jax/evaluation/trajectory.py, MonST3R's eval_metrics via evo): zero error,
Sim(3) invariance, an ATE checked against an independent Umeyama, RPE hand cases and TUM files."""
import math
import subprocess
import sys
import types

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dynadust3r_jax.common.tum import read_tum_poses
from dynadust3r_jax.evaluation.trajectory import trajectory_metrics
from dynadust3r_jax.inference.export.cameras import write_tum_poses


def _trajectory(n, seed=0):
  """(n, 4, 4) camera→world poses along a smooth random path."""
  rng = np.random.default_rng(seed)
  c2w = np.tile(np.eye(4), (n, 1, 1))
  c2w[:, :3, 3] = np.cumsum(rng.normal(size=(n, 3)), axis=0)
  c2w[:, :3, :3] = Rotation.from_rotvec(np.cumsum(0.1 * rng.normal(size=(n, 3)), axis=0)).as_matrix()
  return c2w


def _noisy(c2w, seed=1):
  rng = np.random.default_rng(seed)
  out = c2w.copy()
  out[:, :3, 3] += 0.1 * rng.normal(size=(len(c2w), 3))
  out[:, :3, :3] = Rotation.from_rotvec(0.02 * rng.normal(size=(len(c2w), 3))).as_matrix() @ c2w[:, :3, :3]
  return out


def _umeyama_rmse(src, dst):
  """RMSE after the Sim(3) least-squares fit of src (n, 3) to dst (Umeyama 1991), written for the test."""
  mu_s, mu_d = src.mean(0), dst.mean(0)
  xs, xd = src - mu_s, dst - mu_d
  u, d, vt = np.linalg.svd(xd.T @ xs / len(src))
  sign = np.eye(3)
  sign[2, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
  rot = u @ sign @ vt
  scale = np.trace(np.diag(d) @ sign) / np.mean(np.sum(xs ** 2, axis=1))
  aligned = scale * xs @ rot.T + mu_d
  return math.sqrt(np.mean(np.sum((aligned - dst) ** 2, axis=1)))


def test_identical_trajectories():
  c2w = _trajectory(12)
  out = trajectory_metrics(c2w, c2w)
  assert out == pytest.approx({'ate': 0.0, 'rpe_trans': 0.0, 'rpe_rot': 0.0}, abs=1e-9)


def test_invariant_to_a_sim3_of_the_estimate():
  gt = _trajectory(15)
  est = _noisy(gt)
  ref = trajectory_metrics(est, gt)
  sim = np.eye(4)
  sim[:3, :3] = 3.7 * Rotation.random(random_state=4).as_matrix()
  sim[:3, 3] = [4.0, -1.0, 2.5]
  moved = sim @ est
  moved[:, :3, :3] /= 3.7  # camera→world poses stay rigid: rotation Q·R, centre s·Q·c + t
  out = trajectory_metrics(moved, gt)
  assert out['ate'] == pytest.approx(ref['ate'], abs=1e-6)
  assert out['rpe_trans'] == pytest.approx(ref['rpe_trans'], abs=1e-6)
  assert out['rpe_rot'] == pytest.approx(ref['rpe_rot'], abs=1e-6)
  assert ref['ate'] > 0.01 and ref['rpe_rot'] > 0.5


def test_ate_hand_case():
  # GT on an L of two straight lines (evo refuses collinear positions: the rotation about the line would be
  # free), the estimate shifted off it at one pose.
  gt = np.tile(np.eye(4), (10, 1, 1))
  gt[:6, 0, 3] = np.arange(6.0)
  gt[6:, 0, 3], gt[6:, 1, 3] = 5.0, np.arange(1.0, 5.0)
  est = gt.copy()
  est[4, :3, 3] += [0.0, 0.3, 0.5]
  ate = trajectory_metrics(est, gt)['ate']
  assert ate == pytest.approx(_umeyama_rmse(est[:, :3, 3], gt[:, :3, 3]), abs=1e-9)
  assert 0.05 < ate < math.hypot(0.3, 0.5) / math.sqrt(10)  # the alignment takes up part of the offset


def test_rpe_of_an_extra_yaw_step():
  # The estimate turns 2° more about z at every frame, on the GT positions (a zigzag in the xy plane, steps
  # d_i of length √1.25): E_i = Rz(2°) and ‖trans(E_i)‖ = ‖Rz(−2i°)·d_i − d_i‖ = 2·sin(i°)·√1.25.
  n = 20
  gt = np.tile(np.eye(4), (n, 1, 1))
  gt[:, 0, 3], gt[:, 1, 3] = np.arange(n), 0.5 * (np.arange(n) % 2)
  est = gt.copy()
  est[:, :3, :3] = Rotation.from_euler('z', 2.0 * np.arange(n)[:, None], degrees=True).as_matrix()
  out = trajectory_metrics(est, gt)
  assert out['rpe_rot'] == pytest.approx(2.0, abs=1e-9)
  steps = 2 * np.sin(np.radians(np.arange(n - 1))) * math.sqrt(1.25)
  assert out['rpe_trans'] == pytest.approx(math.sqrt(np.mean(steps ** 2)), abs=1e-9)
  assert out['ate'] == pytest.approx(0.0, abs=1e-9)


def test_timestamps():
  gt = _trajectory(10)
  est = _noisy(gt)
  ref = trajectory_metrics(est, gt)
  # As many poses: the estimate takes the GT timestamps (whatever they are).
  assert trajectory_metrics(est, gt, timestamps=100.0 + 0.5 * np.arange(10)) == pytest.approx(ref, abs=1e-12)
  # Fewer predicted poses: associated to the GT by time (here the even frames).
  sub = trajectory_metrics(est[::2], gt, timestamps=np.arange(10.0), timestamps_pred=np.arange(0.0, 10.0, 2.0))
  assert sub == pytest.approx(trajectory_metrics(est[::2], gt[::2]), abs=1e-12)
  with pytest.raises(ValueError, match='timestamps_pred'):
    trajectory_metrics(est[::2], gt)


def test_tum_round_trip(tmp_path):
  """The export's TUM files: time stamps exact, poses to the 10 digits written."""
  c2w = _trajectory(7)
  stamps = 1305031102.175304 + 0.033 * np.arange(7)
  write_tum_poses(types.SimpleNamespace(cam_to_world=c2w), tmp_path / 'traj.txt', stamps)
  rows = np.loadtxt(tmp_path / 'traj.txt')
  assert rows.shape == (7, 8)
  np.testing.assert_array_equal(rows[:, 0], stamps)
  np.testing.assert_allclose(rows[:, 1:4], c2w[:, :3, 3], atol=1e-8)
  quat = Rotation.from_matrix(c2w[:, :3, :3]).as_quat()  # scalar-last, the TUM order; q and −q are one rotation
  np.testing.assert_allclose(np.abs(np.sum(rows[:, 4:] * quat, axis=1)), 1.0, atol=1e-8)
  t, back = read_tum_poses(tmp_path / 'traj.txt')
  np.testing.assert_array_equal(t, stamps)
  np.testing.assert_allclose(back, c2w, atol=1e-8)
  (tmp_path / 'hand.txt').write_text('# timestamp tx ty tz qx qy qz qw\n0.5 1 2 3 0 0 0.7071067811865476 '
                                     '0.7071067811865476\n')
  t, back = read_tum_poses(tmp_path / 'hand.txt')
  assert t.tolist() == [0.5]
  np.testing.assert_allclose(back[0], [[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]], atol=1e-12)


def test_import_is_quiet():
  # evo's import (the package's own imports, e.g. absl's handler, come first) leaves the root logger alone
  # and loads no matplotlib.
  code = ('import logging, sys\nimport dynadust3r_jax.evaluation\nassert "evo" not in sys.modules\n'
          'root = logging.getLogger()\nbefore = (list(root.handlers), root.level)\n'
          'import dynadust3r_jax.evaluation.trajectory\nassert (root.handlers, root.level) == before\n'
          "assert not any(m.startswith('matplotlib') for m in sys.modules)\n")
  run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
  assert run.returncode == 0, run.stderr
  assert run.stdout == ''
