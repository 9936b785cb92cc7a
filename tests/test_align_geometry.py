"""Geometry helpers of the global alignment (dynadust3r_jax/common/geometry.py)."""
import jax.numpy as jnp
import numpy as np
import pytest

from dynadust3r_jax.common import geometry as geo


def _random_rotations(n, seed=0):
  q = np.random.default_rng(seed).normal(size=(n, 4))
  return np.asarray(geo.quat_to_rotmat(jnp.asarray(q, jnp.float32)), np.float64), q / np.linalg.norm(q, axis=1,
                                                                                                          keepdims=True)


def test_quat_to_rotmat_is_a_rotation_of_the_normalised_quaternion():
  R, _ = _random_rotations(64)
  np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=2e-6)
  np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=2e-6)
  # a quarter turn about z, XYZW = (0, 0, sin 45°, cos 45°), scaled by 3 (normalised inside)
  Rz = np.asarray(geo.quat_to_rotmat(jnp.array([0.0, 0.0, 3 * np.sqrt(0.5), 3 * np.sqrt(0.5)])))
  np.testing.assert_allclose(Rz, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-6)


def test_rotmat_to_quat_inverts_quat_to_rotmat_up_to_sign():
  R, q = _random_rotations(64, seed=1)
  q2 = geo.rotmat_to_quat(R)
  np.testing.assert_allclose(np.abs(np.sum(q * q2, axis=1)), 1.0, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(q2, axis=1), 1.0, atol=1e-12)
  # roma's sign choice: the component chosen by the largest diagonal entry is positive
  np.testing.assert_allclose(geo.rotmat_to_quat(np.eye(3)), [0, 0, 0, 1])
  np.testing.assert_allclose(geo.rotmat_to_quat(np.diag([1.0, -1.0, -1.0])), [1, 0, 0, 0], atol=1e-12)


def test_signed_log1p_and_expm1_are_inverse_and_odd():
  x = np.array([-5.0, -0.3, 0.0, 1e-4, 2.0, 40.0])
  y = geo.signed_log1p(x)
  np.testing.assert_allclose(y, np.sign(x) * np.log1p(np.abs(x)))
  np.testing.assert_allclose(np.asarray(geo.signed_expm1(jnp.asarray(y, jnp.float32))), x, rtol=1e-6, atol=1e-9)


def test_pose_matrix_round_trip_with_scale():
  R, _ = _random_rotations(1, seed=2)
  T = geo.similarity_matrix(1.0, R[0], [0.3, -2.0, 5.0])
  p = geo.matrix_to_pose(T, scale=0.25)
  assert p.shape == (8,)
  np.testing.assert_allclose(p[-1], np.log(0.25))
  np.testing.assert_allclose(np.sign(p[4:7]) * np.expm1(np.abs(p[4:7])), [1.2, -8.0, 20.0], rtol=1e-12)  # t / scale
  M = np.asarray(geo.pose_to_matrix(jnp.asarray(geo.matrix_to_pose(T), jnp.float32)))
  np.testing.assert_allclose(M, T, atol=3e-6)


def test_weighted_umeyama_recovers_a_similarity_and_respects_weights():
  rng = np.random.default_rng(3)
  U, _, Vt = np.linalg.svd(_random_rotations(1, seed=4)[0][0])
  R = (U @ Vt)[None]  # exactly orthonormal in float64
  x = rng.normal(size=(500, 3))
  y = 2.5 * x @ R[0].T + np.array([1.0, -2.0, 0.5])
  w = rng.uniform(1, 5, 500)
  s, R2, t = geo.umeyama(x, y, w)
  np.testing.assert_allclose([s], [2.5], rtol=1e-12)
  np.testing.assert_allclose(R2, R[0], atol=1e-12)
  np.testing.assert_allclose(t, [1.0, -2.0, 0.5], atol=1e-12)
  # outliers with zero weight are ignored
  y_bad = y.copy()
  y_bad[:50] += 100.0
  w_bad = w.copy()
  w_bad[:50] = 0.0
  s3, R3, t3 = geo.umeyama(x, y_bad, w_bad)
  np.testing.assert_allclose([s3], [2.5], rtol=1e-12)
  np.testing.assert_allclose(t3, [1.0, -2.0, 0.5], atol=1e-10)


def test_umeyama_never_returns_a_reflection():
  x = np.random.default_rng(5).normal(size=(100, 3))
  y = x * np.array([1.0, 1.0, -1.0])  # a mirror image: the best rotation, not the reflection
  _, R, _ = geo.umeyama(x, y, np.ones(100))
  np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)


@pytest.mark.parametrize('pp', [None, (14.0, 13.0)])
def test_weiszfeld_focal_of_a_pinhole_pointmap(pp):
  H, W, f = 24, 32, 29.5
  c = np.array([W / 2, H / 2]) if pp is None else np.array(pp)
  v, u = np.mgrid[:H, :W].astype(np.float64)
  z = 2.0 + np.random.default_rng(6).uniform(0, 1, (H, W))
  pts = np.stack([(u - c[0]) / f * z, (v - c[1]) / f * z, z], -1)
  assert geo.estimate_focal_weiszfeld(pts, pp) == pytest.approx(f, rel=1e-9)
  pts[0, 0] = [1.0, 1.0, 0.0]  # z = 0 gives inf/nan rays, ignored (set to 0) as in the reference
  assert geo.estimate_focal_weiszfeld(pts, pp) == pytest.approx(f, rel=1e-3)


def test_rotation_angle():
  a = np.radians(0.5)
  Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
  assert geo.rotation_angle_deg(np.eye(3), Rz) == pytest.approx(0.5, rel=1e-9)
  assert geo.rotation_angle_deg(Rz, Rz) == pytest.approx(0.0, abs=1e-9)
