"""Losses against an independent numpy implementation (loops over pixels) on hand-made cases."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynadust3r_jax import losses
from tests.conftest import FIXTURES

B, H, W = 2, 3, 4
NAMES = ('l2m', 'l2r', 'r2m', 'r2l')


def _numpy_loss(res1, res2, batch, alpha=0.2):
  """Spec dynadust3r.md §d.2, pixel by pixel."""
  def scale(p1, p2, b):
    vals = [np.linalg.norm(p[b, i, j]) for p, v in ((p1, batch['valid1']), (p2, batch['valid2']))
            for i in range(H) for j in range(W) if v[b, i, j]]
    return max(sum(vals) / (len(vals) + 1e-8), 1e-8)
  s_gt = [scale(batch['pts3d1'], batch['pts3d2'], b) for b in range(B)]
  s_pr = [scale(res1['pts3d'], res2['pts3d_in_other_view'], b) for b in range(B)]

  def term(pred, gt, valid, conf):
    values = [conf[b, i, j] * np.linalg.norm(pred[b, i, j] / s_pr[b] - gt[b, i, j] / s_gt[b])
              - alpha * np.log(conf[b, i, j]) for b in range(B) for i in range(H) for j in range(W) if valid[b, i, j]]
    return float(np.mean(values)) if values else 0.0
  total = term(res1['pts3d'], batch['pts3d1'], batch['valid1'], res1['conf'])
  total += term(res2['pts3d_in_other_view'], batch['pts3d2'], batch['valid2'], res2['conf'])
  for name in NAMES:
    view = 1 if name[0] == 'l' else 2
    res, points = (res1, res1['pts3d']) if view == 1 else (res2, res2['pts3d_in_other_view'])
    total += term(points + res[f'motion_{name}'], batch[f'target_{name}'],
                  batch[f'valid_{name}'] & batch[f'valid{view}'], res[f'conf_{name}'])
  return total


def _case(seed, p_valid=0.6):
  rng = np.random.default_rng(seed)
  pts = lambda: rng.normal(0, 1, (B, H, W, 3)) + [0, 0, 4]
  mask = lambda: rng.random((B, H, W)) < p_valid
  batch = {'pts3d1': pts(), 'pts3d2': pts(), 'valid1': mask(), 'valid2': mask()}
  batch.update({f'target_{n}': pts() for n in NAMES} | {f'valid_{n}': mask() for n in NAMES})
  conf = lambda: 1 + np.exp(rng.normal(0, 1, (B, H, W)))
  res1 = {'pts3d': pts(), 'conf': conf()} | {f'motion_{n}': rng.normal(0, .3, (B, H, W, 3)) for n in NAMES[:2]}
  res1 |= {f'conf_{n}': conf() for n in NAMES[:2]}
  res2 = {'pts3d_in_other_view': pts(), 'conf': conf()} | {f'motion_{n}': rng.normal(0, .3, (B, H, W, 3))
                                                             for n in NAMES[2:]}
  res2 |= {f'conf_{n}': conf() for n in NAMES[2:]}
  return res1, res2, batch


def _jax_loss(res1, res2, batch):
  to_jax = lambda d: {k: jnp.asarray(v, jnp.float32 if v.dtype.kind == 'f' else v.dtype) for k, v in d.items()}
  return float(losses.dynadust3r_loss(to_jax(res1), to_jax(res2), to_jax(batch))[0])


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_cases_match_numpy(seed):
  res1, res2, batch = _case(seed)
  assert _jax_loss(res1, res2, batch) == pytest.approx(_numpy_loss(res1, res2, batch), rel=1e-5)


def test_perfect_prediction_and_pure_scale_change():
  """A prediction equal to the GT up to a global scale per pair has zero error: loss = -α·Σ mean log C."""
  res1, res2, batch = _case(3)
  for scale in (1.0, 0.37):
    res1['pts3d'] = batch['pts3d1'] * np.array([scale, 2 * scale])[:, None, None, None]
    res2['pts3d_in_other_view'] = batch['pts3d2'] * np.array([scale, 2 * scale])[:, None, None, None]
    for n in NAMES:
      view = 1 if n[0] == 'l' else 2
      base, points = (batch['pts3d1'], res1['pts3d']) if view == 1 else (batch['pts3d2'], res2['pts3d_in_other_view'])
      res = res1 if view == 1 else res2
      res[f'motion_{n}'] = points / base * batch[f'target_{n}'] - points  # scaled target position
    for res in (res1, res2):
      for k in res:
        if k.startswith('conf'):
          res[k] = np.ones_like(res[k])  # log 1 = 0: the loss is the error alone
    assert _jax_loss(res1, res2, batch) == pytest.approx(0.0, abs=1e-5)


def test_empty_masks_contribute_zero_and_one_pixel():
  res1, res2, batch = _case(4)
  for k in list(batch):
    if k.startswith('valid'):
      batch[k] = np.zeros_like(batch[k])
  assert _jax_loss(res1, res2, batch) == 0.0
  batch['valid1'][1, 2, 3] = True          # one valid pixel, in view 1 only
  batch['valid_l2r'][1, 2, 3] = True
  got = _jax_loss(res1, res2, batch)
  assert got == pytest.approx(_numpy_loss(res1, res2, batch), rel=1e-5) and got != 0.0


def test_gradients_finite_with_invalid_zero_pixels():
  res1, res2, batch = _case(5)
  res1['pts3d'][~batch['valid1']] = 0.0    # exact zeros where masked: norm'(0) must not leak NaN
  to_jax = lambda d: {k: jnp.asarray(v, jnp.float32 if v.dtype.kind == 'f' else v.dtype) for k, v in d.items()}
  grads = jax.grad(lambda r1: losses.dynadust3r_loss(r1, to_jax(res2), to_jax(batch))[0])(to_jax(res1))
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_scale_shift_inv_equals_dust3r():
  """Regr3D_ScaleShiftInv(L21, gt_scale=True) against DUSt3R's chain in torch (tools/make_loss_fixtures.py:
  torch.nanmedian's lower middle value, one view almost empty)."""
  r = np.load(FIXTURES / 'scale_shift_inv_reference.npz')
  batch = {'pts3d1': r['gt1'], 'pts3d2': r['gt2'], 'valid1': r['valid1'], 'valid2': r['valid2']}
  loss, metrics = losses.scale_shift_inv_loss({'pts3d': r['pred1']}, {'pts3d_in_other_view': r['pred2']}, batch)
  np.testing.assert_allclose(loss, r['loss'], rtol=1e-5)
  np.testing.assert_allclose(metrics['Regr3D_ScaleShiftInv_pts3d_1'], r['loss1'], rtol=1e-5)
  np.testing.assert_allclose(metrics['Regr3D_ScaleShiftInv_pts3d_2'], r['loss2'], rtol=1e-5)
  scaled = [2.5 * r[k] + np.float32([0, 0, -1.5]) for k in ('gt1', 'gt2')]   # GT up to scale and z shift: 0
  loss, _ = losses.scale_shift_inv_loss({'pts3d': scaled[0]}, {'pts3d_in_other_view': scaled[1]}, batch)
  assert float(loss) < 1e-5
