"""Video-depth metrics (dynadust3r_jax/evaluation/depth.py, MonST3R's depth_evaluation): exact recoveries of
known alignments, LAD2 against an independently written float64 Adam, masks and hand-worked values."""
import math

import numpy as np
import pytest

from dynadust3r_jax.evaluation.depth import (ALIGNMENTS, METRICS, _adam_lad, depth_evaluation, resize_to,
                                             weighted_average)


def _gt(shape=(3, 8, 10), seed=0):
  return np.random.default_rng(seed).uniform(0.5, 20.0, shape)


@pytest.mark.parametrize('align', ALIGNMENTS)
def test_perfect_prediction(align):
  gt = _gt()
  metrics, count = depth_evaluation(gt, gt, align=align)
  assert count == gt.size
  for k in ('abs_rel', 'sq_rel', 'rmse', 'log_rmse'):
    assert metrics[k] == pytest.approx(0.0, abs=1e-9)
  for k in METRICS[4:]:
    assert metrics[k] == 1.0


@pytest.mark.parametrize('align', ALIGNMENTS)
def test_scaled_prediction_is_recovered(align):
  # A 2x prediction: the median ratio is exactly 1/2, from which lad and lad2 start (and stay).
  gt = _gt()
  metrics, _ = depth_evaluation(2.0 * gt, gt, align=align)
  assert metrics['abs_rel'] == pytest.approx(0.0, abs=1e-7)
  assert metrics['rmse'] == pytest.approx(0.0, abs=1e-6)
  assert metrics['delta_1.25'] == 1.0


def test_lstsq_recovers_scale_and_shift_median_the_scale():
  gt = _gt()
  s, t = 2.5, 0.7
  metrics, _ = depth_evaluation((gt - t) / s, gt, align='lstsq')
  assert metrics['abs_rel'] == pytest.approx(0.0, abs=1e-12)
  assert depth_evaluation((gt - t) / s, gt, align='median')[0]['abs_rel'] > 1e-3  # a shift median can't undo
  assert depth_evaluation(gt / s, gt, align='median')[0]['abs_rel'] == pytest.approx(0.0, abs=1e-12)


def _reference_adam(p, g, s0, lr, max_iters):
  """Adam (torch defaults) in the other textbook form: α_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), ε̂ = ε·√(1−β₂ᵗ)."""
  b1, b2, eps = 0.9, 0.999, 1e-8
  s, t = s0, 0.0
  ms = mt = vs = vt = 0.0
  prev = None
  for it in range(max_iters):
    r = s * p + t - g
    loss = float(np.abs(r).sum())
    gs, gt_ = float((np.sign(r) * p).sum()), float(np.sign(r).sum())
    ms, mt = b1 * ms + (1 - b1) * gs, b1 * mt + (1 - b1) * gt_
    vs, vt = b2 * vs + (1 - b2) * gs ** 2, b2 * vt + (1 - b2) * gt_ ** 2
    k = it + 1
    alpha = lr * math.sqrt(1 - b2 ** k) / (1 - b1 ** k)
    eps_hat = eps * math.sqrt(1 - b2 ** k)
    s -= alpha * ms / (math.sqrt(vs) + eps_hat)
    t -= alpha * mt / (math.sqrt(vt) + eps_hat)
    if prev is not None and abs(prev - loss) < 1e-6:
      break
    prev = loss
  return s, t


def test_lad2_matches_reference_adam():
  rng = np.random.default_rng(1)
  gt = rng.uniform(1.0, 10.0, (2, 12, 16))
  pred = (gt - 0.3) / 1.7 * rng.uniform(0.9, 1.1, gt.shape)
  p, g = pred.ravel(), gt.ravel()
  s0 = np.sort(g)[(g.size - 1) // 2] / np.sort(p)[(p.size - 1) // 2]
  s_ref, t_ref = _reference_adam(p, g, s0, 1e-4, 1000)
  s, t = _adam_lad(p, g, s0, 0.0, 1e-4, 1000)
  assert (s, t) == pytest.approx((s_ref, t_ref), abs=1e-9)
  assert abs(t_ref) > 0.05  # 1000 steps of ~lr moved the shift well away from 0
  metrics, _ = depth_evaluation(pred, gt, align='lad2')
  assert metrics['abs_rel'] == pytest.approx(np.mean(np.abs(s_ref * p + t_ref - g) / g), abs=1e-9)
  # lr and max_iters are honoured.
  s, t = _adam_lad(p, g, s0, 0.0, 1e-3, 50)
  assert (s, t) == pytest.approx(_reference_adam(p, g, s0, 1e-3, 50), abs=1e-9)


def test_lad2_stops_when_the_loss_stalls():
  # At the exact fit the gradient is 0: the loss stalls at the second step, the parameters never move.
  p = np.array([1.0, 2.0, 3.0])
  assert _adam_lad(p, 2 * p, 2.0, 0.0, 1e-4, 1000) == (2.0, 0.0)


def test_hand_values():
  # medians 2 and 2: s = 1; errors (0.6, 0, -1); ratios 1.6, 1, 4/3.
  gt = np.array([[1.0, 2.0, 4.0]])
  pred = np.array([[1.6, 2.0, 3.0]])
  metrics, count = depth_evaluation(pred, gt)
  assert count == 3
  assert metrics['abs_rel'] == pytest.approx((0.6 + 0.25) / 3, abs=1e-12)
  assert metrics['sq_rel'] == pytest.approx((0.36 + 0.25) / 3, abs=1e-12)
  assert metrics['rmse'] == pytest.approx(math.sqrt((0.36 + 1.0) / 3), abs=1e-12)
  assert metrics['log_rmse'] == pytest.approx(math.sqrt((math.log(1.6) ** 2 + math.log(0.75) ** 2) / 3), abs=1e-12)
  assert metrics['delta_1.25'] == pytest.approx(1 / 3)
  assert metrics['delta_1.25^2'] == pytest.approx(2 / 3)  # 1.6 > 1.5625
  assert metrics['delta_1.25^3'] == 1.0


def test_median_is_torch_lower_median():
  # Lower medians 2 and 2 (np.median would give 2.5 and 3.5): s = 1.
  gt = np.array([[1.0, 2.0, 3.0, 4.0]])
  metrics, _ = depth_evaluation(np.array([[1.0, 2.0, 5.0, 6.0]]), gt)
  assert metrics['abs_rel'] == pytest.approx((2 / 3 + 2 / 4) / 4, abs=1e-12)


def test_scale_weiszfeld_ignores_an_outlier():
  gt = np.arange(1.0, 11.0)[None]
  pred = gt / 3.0
  pred[0, -1] = 0.5
  # L1 fit of s: the p-weighted median of g/p, i.e. 3 (the outlier weighs 0.5 against 15); the mean start
  # (s₀ = 5.5/2.5 = 2.2) is far from it. The 9 inliers are exact, the outlier reads 1.5 for 10.
  metrics, _ = depth_evaluation(pred, gt, align='scale')
  assert metrics['delta_1.25'] == pytest.approx(0.9)
  assert metrics['abs_rel'] == pytest.approx(8.5 / 10 / 10, rel=1e-6)
  assert depth_evaluation(pred, gt, align='median')[0]['delta_1.25'] < 0.9


def test_valid_mask_and_max_depth():
  gt = np.array([[1.0, 2.0, 0.0, 90.0, np.nan, 3.0]])
  pred = np.array([[1.0, 2.0, 7.0, 5.0, 4.0, 3.5]])
  metrics, count = depth_evaluation(pred, gt, max_depth=70)
  assert count == 3  # 0, above max_depth and NaN GT are out
  assert metrics['abs_rel'] == pytest.approx(0.5 / 3 / 3, abs=1e-12)
  metrics, count = depth_evaluation(pred, gt)
  assert count == 4  # no max_depth: only gt > 0
  empty, count = depth_evaluation(pred, np.zeros_like(gt))
  assert count == 0 and empty == dict.fromkeys(METRICS, 0.0)


def test_post_clip():
  gt = np.array([[1.0, 2.0, 3.0]])
  metrics, _ = depth_evaluation(gt, gt, post_clip_max=2.5)
  assert metrics['abs_rel'] == pytest.approx(0.5 / 3 / 3, abs=1e-12)
  metrics, _ = depth_evaluation(gt, gt, post_clip_min=1.5)
  assert metrics['abs_rel'] == pytest.approx(0.5 / 3, abs=1e-12)


def test_resize_to():
  pred = np.stack([np.full((4, 6), 2.0, np.float32), np.full((4, 6), 5.0, np.float32)])
  out = resize_to(pred, (9, 12))
  assert out.shape == (2, 9, 12) and out.dtype == np.float32
  np.testing.assert_allclose(out[0], 2.0, atol=1e-6)
  np.testing.assert_allclose(out[1], 5.0, atol=1e-6)
  ramp = np.tile(np.arange(8.0), (4, 1))
  np.testing.assert_array_equal(resize_to(ramp, (4, 8)), ramp)  # the GT size already: unchanged
  # Bicubic (OpenCV a = −0.75) 2x upsampling of a ramp: the interior samples at x = i/2 − 1/4 read
  # x − 3/64 (even i) and x + 3/64 (odd i): the kernel does not reproduce linear functions off the pixel grid.
  out = resize_to(ramp, (4, 16))
  x = np.arange(16.0) / 2 - 0.25
  np.testing.assert_allclose(out[:, 3:13], np.tile(x + np.where(np.arange(16) % 2, 3, -3) / 64, (4, 1))[:, 3:13],
                             atol=1e-9)


def test_weighted_average():
  seqs = [{'abs_rel': 0.1, 'delta_1.25': 0.9}, {'abs_rel': 0.3, 'delta_1.25': 0.5}]
  out = weighted_average(seqs, [100, 300])
  assert out == pytest.approx({'abs_rel': 0.25, 'delta_1.25': 0.6})
