"""The D4RT loss against an independent numpy implementation (loops over clips and queries) on hand cases."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynadust3r_jax.d4rt_losses import D4RT_WEIGHTS, d4rt_loss

B, Q = 3, 7
TERMS = ('loss_3d', 'loss_2d', 'loss_vis', 'loss_disp', 'loss_normal')


def _numpy_loss(pred, batch, w=D4RT_WEIGHTS):
  """Spec d4rt.md §5 query by query: per-clip mean depths over mask_3d, pooled masked means over the batch."""
  w = {**D4RT_WEIGHTS, **w}
  f = lambda x: math.copysign(math.log1p(abs(x)), x)
  m3, mv, mn = batch['mask_3d'], batch['mask_vis'], batch['mask_normal']
  mu = batch.get('mask_uv', m3)  # L2D's queries: those with a projection in frame t_cam (data/d4rt.py)

  def mean_z(xyz, b):
    zs = [float(xyz[b, q, 2]) for q in range(Q) if m3[b, q]]
    return max(sum(zs) / max(len(zs), 1), 1e-3)
  z_pr = [mean_z(pred['xyz'], b) for b in range(B)]
  z_gt = [mean_z(batch['target_xyz'], b) for b in range(B)]
  conf3d, l3d, l2d, ldisp, err, confs, logc, lvis, acc, lnorm = ([] for _ in range(10))
  for b in range(B):
    for q in range(Q):
      if m3[b, q]:
        p, g = pred['xyz'][b, q] / z_pr[b], batch['target_xyz'][b, q] / z_gt[b]
        e3 = sum(abs(f(p[k]) - f(g[k])) for k in range(3)) / 3
        c = float(pred['conf'][b, q])
        conf3d.append(c * w['3d'] * e3 - w['conf'] * math.log(c))
        l3d.append(e3)
        confs.append(c)
        logc.append(math.log(c))
        err.append(math.sqrt(sum((p[k] - g[k]) ** 2 for k in range(3))))
        ldisp.append(sum(abs(pred['disp'][b, q, k] / z_pr[b] - batch['target_disp'][b, q, k] / z_gt[b])
                         for k in range(3)) / 3)
      if mu[b, q]:
        l2d.append(sum(abs(pred['uv'][b, q, k] - batch['target_uv'][b, q, k]) for k in range(2)) / 2)
      if mv[b, q]:
        x, y = float(pred['vis_logit'][b, q]), float(batch['target_vis'][b, q])
        s = 1 / (1 + math.exp(-x))
        lvis.append(-(y * math.log(s) + (1 - y) * math.log(1 - s)))
        acc.append(float((x > 0) == (y > 0.5)))
      if mn[b, q]:
        n, m = pred['normal'][b, q], batch['target_normal'][b, q]
        lnorm.append(1 - float(np.dot(n, m)) / (math.sqrt(np.dot(n, n)) * math.sqrt(np.dot(m, m))))
  mean = lambda v: sum(v) / len(v) if v else 0.0
  metrics = {'loss_3d_conf': mean(conf3d), 'loss_3d': mean(l3d), 'loss_2d': mean(l2d), 'loss_disp': mean(ldisp),
             'loss_vis': mean(lvis), 'loss_normal': mean(lnorm), 'mean_conf': mean(confs),
             'mean_log_conf': mean(logc), 'scaled_3d_error': mean(err), 'vis_accuracy': mean(acc)}
  loss = metrics['loss_3d_conf'] + sum(w[k] * metrics[f'loss_{k}'] for k in ('2d', 'vis', 'disp', 'normal'))
  return loss, metrics


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _case(seed, p_valid=0.6):
  rng = np.random.default_rng(seed)
  xyz = lambda: rng.normal(0, 1, (B, Q, 3)) + [0, 0, 3]
  mask = lambda: rng.random((B, Q)) < p_valid
  batch = {'target_xyz': xyz() * rng.uniform(0.5, 5, (B, 1, 1)), 'target_uv': rng.random((B, Q, 2)),
           'target_vis': (rng.random((B, Q)) < 0.5).astype(np.float64), 'target_disp': rng.normal(0, .5, (B, Q, 3)),
           'target_normal': _unit(rng.normal(0, 1, (B, Q, 3))), 'mask_3d': mask(), 'mask_vis': mask(),
           'mask_normal': mask()}
  batch['mask_3d'][0, 0] = batch['mask_vis'][0, 0] = batch['mask_normal'][0, 0] = True
  pred = {'xyz': xyz(), 'uv': rng.random((B, Q, 2)), 'vis_logit': rng.normal(0, 2, (B, Q)),
          'disp': rng.normal(0, .5, (B, Q, 3)), 'normal': _unit(rng.normal(0, 1, (B, Q, 3))),
          'conf': 1 + np.exp(rng.normal(0, 1, (B, Q)))}
  # mask_uv: a subset of mask_3d (the targets with a projection in frame t_cam), so L2D's set differs from L3D's
  batch['mask_uv'] = batch['mask_3d'] & (rng.random((B, Q)) < 0.7)
  batch['mask_uv'][0, 0] = True
  batch['mask_uv'][tuple(np.argwhere(batch['mask_3d'])[-1])] = False  # at least one query differs ((0, 0) aside)
  return pred, batch


def _jax(d):
  return {k: jnp.asarray(v, jnp.float32 if v.dtype.kind == 'f' else v.dtype) for k, v in d.items()}


def _run(pred, batch, weights=D4RT_WEIGHTS):
  loss, metrics = d4rt_loss(_jax(pred), _jax(batch), weights)
  return float(loss), {k: float(v) for k, v in metrics.items()}


def _grads(pred, batch, weights=D4RT_WEIGHTS):
  return jax.grad(lambda p: d4rt_loss(p, _jax(batch), weights)[0])(_jax(pred))


def _assert_finite_grads(pred, batch, weights=D4RT_WEIGHTS):
  grads = _grads(pred, batch, weights)
  for k, g in grads.items():
    assert np.all(np.isfinite(g)), k
  return grads


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_cases_match_numpy(seed):
  pred, batch = _case(seed)
  batch['mask_3d'][2] = False                      # a clip without any 3D target
  loss, metrics = _run(pred, batch)
  want_loss, want = _numpy_loss(pred, batch)
  assert loss == pytest.approx(want_loss, rel=1e-5)
  assert set(metrics) == set(want)
  for k in want:
    assert metrics[k] == pytest.approx(want[k], rel=1e-5, abs=1e-6), k


def test_jit_matches_eager():
  pred, batch = _case(3)
  eager = d4rt_loss(_jax(pred), _jax(batch))
  jitted = jax.jit(d4rt_loss)(_jax(pred), _jax(batch))
  assert jitted[0].dtype == jnp.float32
  np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-6)
  for k in eager[1]:
    np.testing.assert_allclose(jitted[1][k], eager[1][k], rtol=1e-6, atol=1e-7)


def test_perfect_prediction():
  """P̂ = P*, uv, disp, normals exact, logits ±50 on the labels: the loss is −0.2·Σ log c / n over mask_3d."""
  pred, batch = _case(4)
  for p, t in (('xyz', 'target_xyz'), ('uv', 'target_uv'), ('disp', 'target_disp'), ('normal', 'target_normal')):
    pred[p] = batch[t].copy()
  pred['vis_logit'] = np.where(batch['target_vis'] > 0.5, 50.0, -50.0)
  loss, metrics = _run(pred, batch)
  for k in TERMS:
    assert metrics[k] == pytest.approx(0.0, abs=1e-6), k
  assert metrics['scaled_3d_error'] == pytest.approx(0.0, abs=1e-6) and metrics['vis_accuracy'] == 1.0
  c = pred['conf'][batch['mask_3d']]
  assert loss == pytest.approx(-0.2 * np.sum(np.log(c)) / c.size, rel=1e-5)
  _assert_finite_grads(pred, batch)                # |·|' at 0 is finite


def test_pure_scale_is_free():
  """P̂ = s_b·P* and d̂ = s_b·d* with one scale per clip: L3D = Ldisp = 0 (each side by its own mean depth);
  the displacement alone at the target's scale is an error of |d*|·|1/s_b − 1|/z̄*, as the numpy reference."""
  pred, batch = _case(5)
  scale = np.array([3.7, 1 / 3.7, 0.02])[:, None, None]
  pred['xyz'], pred['disp'] = batch['target_xyz'] * scale, batch['target_disp'] * scale
  _, metrics = _run(pred, batch)
  for k in ('loss_3d', 'loss_disp', 'scaled_3d_error'):
    assert metrics[k] == pytest.approx(0.0, abs=1e-6), k
  pred['disp'] = batch['target_disp'].copy()
  _, metrics = _run(pred, batch)
  m3 = batch['mask_3d']
  z_gt = np.array([batch['target_xyz'][b, m3[b], 2].mean() for b in range(B)])[:, None, None]
  want = np.abs(batch['target_disp'] / z_gt * (1 / scale - 1)).mean(-1)[m3].mean()
  assert metrics['loss_disp'] == pytest.approx(want, rel=1e-5) and want > 0.01
  assert metrics['loss_disp'] == pytest.approx(_numpy_loss(pred, batch)[1]['loss_disp'], rel=1e-5)


def _extreme_masked(pred, batch):
  """Masked entries with NaN-free but extreme values."""
  m3, mv, mn = batch['mask_3d'], batch['mask_vis'], batch['mask_normal']
  pred['xyz'][~m3] = [3e38, -3e38, 0.0]
  pred['uv'][~batch.get('mask_uv', m3)] = 1e30
  pred['disp'][~m3] = -3e38
  pred['conf'][~m3] = 3e38
  pred['vis_logit'][~mv] = -3e38
  pred['normal'][~mn] = 0.0
  batch['target_xyz'][~m3] = [0.0, 0.0, -3e38]
  batch['target_normal'][~mn] = 0.0
  return pred, batch


def test_empty_masks_give_zero_terms_and_finite_gradients():
  pred, batch = _case(6)
  for k in ('mask_3d', 'mask_uv', 'mask_vis', 'mask_normal'):
    batch[k] = np.zeros_like(batch[k])
  pred, batch = _extreme_masked(pred, batch)
  loss, metrics = _run(pred, batch)
  assert loss == 0.0 and all(v == 0.0 for v in metrics.values())
  grads = _assert_finite_grads(pred, batch)
  assert all(np.all(g == 0) for g in grads.values())


def test_extreme_masked_values_leave_the_loss_and_finite_gradients():
  pred, batch = _case(7)
  loss, metrics = _run(pred, batch)
  pred, batch = _extreme_masked(pred, batch)
  assert _run(pred, batch)[0] == pytest.approx(loss, rel=1e-6)
  grads = _assert_finite_grads(pred, batch)
  assert np.all(grads['xyz'][~batch['mask_3d']] == 0) and np.all(grads['conf'][~batch['mask_3d']] == 0)
  assert np.all(grads['vis_logit'][~batch['mask_vis']] == 0)
  assert np.all(grads['normal'][~batch['mask_normal']] == 0)
  assert np.any(grads['xyz'][batch['mask_3d']] != 0)


@pytest.mark.parametrize('term', sorted(D4RT_WEIGHTS))
def test_zero_weight_removes_its_term(term):
  pred, batch = _case(8)
  loss, metrics = _run(pred, batch)
  removed = {'3d': metrics['loss_3d_conf'] + 0.2 * metrics['mean_log_conf'],   # the mean c·L3D
             'conf': -0.2 * metrics['mean_log_conf']}.get(term)
  if removed is None:
    removed = D4RT_WEIGHTS[term] * metrics[f'loss_{term}']
  got, _ = _run(pred, batch, {term: 0.0})
  assert got == pytest.approx(loss - removed, rel=1e-5)
  assert got == pytest.approx(_numpy_loss(pred, batch, {term: 0.0})[0], rel=1e-5)


def test_unknown_weight_is_an_error():
  pred, batch = _case(8)
  with pytest.raises(ValueError, match=r"unknown weight\(s\) \['viz'\]"):
    d4rt_loss(_jax(pred), _jax(batch), {'viz': 0.5})


def test_zero_normal_weight_without_normals():
  """Stereo4D has no normals: λnormal = 0 and no normal inputs at all."""
  pred, batch = _case(9)
  weights = {**D4RT_WEIGHTS, 'normal': 0.0}
  want, _ = _run(pred, batch, weights)
  del pred['normal'], batch['target_normal'], batch['mask_normal']
  loss, metrics = _run(pred, batch, weights)
  assert loss == pytest.approx(want, rel=1e-6) and 'loss_normal' not in metrics
  with pytest.raises(KeyError):
    d4rt_loss(_jax(pred), _jax(batch))


@pytest.mark.parametrize('z', [0.0, 1e-7, -1e-3])
def test_predicted_mean_depth_clamp(z):
  """Predicted z all ≈ 0 (or a negative mean): ẑ̄ is clamped at 1e-3, the loss and its gradient are finite."""
  pred, batch = _case(10)
  pred['xyz'][..., 2] = z
  pred['xyz'][..., :2] *= 1e-4
  loss, metrics = _run(pred, batch)
  assert np.isfinite(loss) and all(np.isfinite(v) for v in metrics.values())
  assert loss == pytest.approx(_numpy_loss(pred, batch)[0], rel=1e-5)
  _assert_finite_grads(pred, batch)
