"""Evaluation metrics against direct numpy definitions (dynadust3r_jax/evaluation/depth_motion.py)."""
import jax.numpy as jnp
import numpy as np
import pytest

from dynadust3r_jax import evaluation


def _pts(rng, b=2, h=4, w=5):
  return rng.normal(0, 0.5, (b, h, w, 3)) + [0, 0, 5]


def test_scale_aligned_prediction_is_perfect():
  rng = np.random.default_rng(0)
  gt = _pts(rng)
  valid = rng.random(gt.shape[:3]) < 0.7
  pred = gt / np.array([2.0, 0.5])[:, None, None, None]      # right up to a per-pair scale
  scale = evaluation.median_scale(jnp.asarray(pred), jnp.asarray(gt), jnp.asarray(valid))
  np.testing.assert_allclose(scale, [2.0, 0.5], rtol=1e-6)
  m = evaluation.depth_metrics(jnp.asarray(pred), jnp.asarray(gt), jnp.asarray(valid), scale)
  np.testing.assert_allclose(m['abs_rel'], 0, atol=1e-6)
  np.testing.assert_allclose(m['delta_1.25'], 1.0)


def test_depth_and_motion_metrics_match_numpy():
  rng = np.random.default_rng(1)
  gt, pred = _pts(rng), _pts(rng)
  valid = rng.random(gt.shape[:3]) < 0.6
  scale = np.array([1.3, 0.8])
  m = evaluation.depth_metrics(jnp.asarray(pred), jnp.asarray(gt), jnp.asarray(valid), jnp.asarray(scale))
  for b in range(2):
    d_hat, d = scale[b] * pred[b, ..., 2][valid[b]], gt[b, ..., 2][valid[b]]
    assert m['abs_rel'][b] == pytest.approx(np.mean(np.abs(d_hat - d) / d), rel=1e-5)
    assert m['delta_1.25'][b] == pytest.approx(np.mean(np.maximum(d_hat / d, d / d_hat) < 1.25), rel=1e-6)
  motion_gt = rng.normal(0, 0.1, gt.shape)
  motion_pred = motion_gt / scale[:, None, None, None] + rng.normal(0, 0.05, gt.shape)
  mm = evaluation.motion_metrics(jnp.asarray(motion_pred), jnp.asarray(motion_gt), jnp.asarray(valid),
                                 jnp.asarray(scale))
  for b in range(2):
    err = np.linalg.norm(scale[b] * motion_pred[b] - motion_gt[b], axis=-1)[valid[b]]
    assert mm['epe3d'][b] == pytest.approx(err.mean(), rel=1e-5)
    assert mm['delta_0.05'][b] == pytest.approx(np.mean(err < 0.05))
    assert mm['delta_0.10'][b] == pytest.approx(np.mean(err < 0.10))


def test_pairs_without_valid_pixels_are_left_out():
  rng = np.random.default_rng(2)
  gt = _pts(rng)
  valid = np.zeros(gt.shape[:3], bool)
  valid[0, 1, 1] = True
  m = evaluation.depth_metrics(jnp.asarray(gt), jnp.asarray(gt), jnp.asarray(valid), jnp.ones(2))
  assert m['abs_rel'][0] == 0 and np.isnan(m['abs_rel'][1])
