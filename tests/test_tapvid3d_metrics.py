"""TAPVid-3D metrics (dynadust3r_jax/evaluation/tapvid3d.py): parity with the official function's outputs
(tests/fixtures/tapvid3d_reference.npz, made by tools/make_tapvid3d_fixtures.py) and small hand-worked cases."""
import json
import os

import numpy as np
import pytest

from dynadust3r_jax.evaluation.tapvid3d import compute_tapvid3d_metrics

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'tapvid3d_reference.npz')
KEYS = ['occlusion_accuracy'] + [f'{m}_{d}' for d in (1, 2, 4, 8, 16) for m in ('pts_within', 'jaccard')] + [
    'average_jaccard', 'average_pts_within_thresh']
VIDEO_KEYS = ('gt_occluded', 'gt_tracks', 'pred_occluded', 'pred_tracks', 'intrinsics_params', 'query_points')


def _case_inputs(ref, i, kwargs):
  """The case's inputs, arranged as tools/make_tapvid3d_fixtures.py `arrange` does."""
  order, scaling = kwargs['order'], kwargs['scaling']
  vids = [[ref[f'video{k}_{name}'] for name in VIDEO_KEYS] for k in range(int(ref[f'case{i}_num_videos']))]
  batched = order.startswith('b')
  x = [np.stack([v[j] for v in vids]) if batched else vids[0][j] for j in range(6)]
  if order.endswith('t n'):
    x[0], x[2] = np.swapaxes(x[0], -2, -1), np.swapaxes(x[2], -2, -1)
    x[1], x[3] = np.swapaxes(x[1], -3, -2), np.swapaxes(x[3], -3, -2)
  if scaling == 'per_trajectory' and not batched:
    x[5] = x[5][None]
  if scaling not in ('per_trajectory', 'median_on_queries', 'local_neighborhood'):
    x[5] = None
  return dict(zip(VIDEO_KEYS, x))


def _reference_cases():
  ref = np.load(FIXTURE)
  names = [str(n) for n in ref['metric_names']]
  for i in range(int(ref['num_cases'])):
    kwargs = json.loads(str(ref[f'case{i}_kwargs']))
    yield ref, i, kwargs, names


def test_matches_official_outputs():
  seen = set()
  for ref, i, kwargs, names in _reference_cases():
    out = compute_tapvid3d_metrics(**_case_inputs(ref, i, kwargs), **kwargs)
    assert list(out) == names == KEYS
    expected = ref[f'case{i}_out']
    for m, name in enumerate(names):
      assert np.shape(out[name]) == expected[m].shape, (i, kwargs, name)
      np.testing.assert_allclose(out[name], expected[m], rtol=0, atol=1e-6, err_msg=f'{i} {kwargs} {name}')
    seen.add(kwargs['scaling'])
  assert seen == {'median', 'mean', 'none', 'per_trajectory', 'median_on_queries', 'reproduce_2d',
                  'local_neighborhood'}


def test_lenient_where_official_raises():
  """(n, 3) query points for unbatched per_trajectory equal the (1, n, 3) ones; local_neighborhood without
  trackwise metrics gives scalars whose averages are the means over δ; batched 'median' scales each video."""
  ref = np.load(FIXTURE)
  v = [{name: ref[f'video{k}_{name}'] for name in VIDEO_KEYS} for k in range(2)]
  a = compute_tapvid3d_metrics(**v[0], scaling='per_trajectory')
  b = compute_tapvid3d_metrics(**{**v[0], 'query_points': v[0]['query_points'][None]}, scaling='per_trajectory')
  for k in KEYS:
    np.testing.assert_array_equal(a[k], b[k])
  ln = compute_tapvid3d_metrics(**v[0], scaling='local_neighborhood')
  assert np.shape(ln['average_jaccard']) == ()
  np.testing.assert_allclose(ln['average_jaccard'], np.mean([ln[f'jaccard_{d}'] for d in (1, 2, 4, 8, 16)]))
  batched = compute_tapvid3d_metrics(**{k: np.stack([v[0][k], v[1][k]]) for k in VIDEO_KEYS},
                                     scaling='median', order='b n t')
  for j in range(2):
    single = compute_tapvid3d_metrics(**v[j], scaling='median')
    for k in KEYS:
      np.testing.assert_allclose(batched[k][j], single[k][0], atol=1e-12)


def _hand_case():
  # Two tracks × two frames, 'n t'. Entries (n, t): GT occluded only at (1,1); pred occluded only at (0,1).
  gt = np.array([[[0, 0, 1], [0, 0, 2]], [[1, 0, 4], [1, 0, 4]]], float)
  pred = gt + np.array([[[0, 0, 0], [0.1, 0, 0]], [[0.3, 0, 0], [0, 0, 0]]])  # squared errors 0, .01, .09, 0
  gt_occ = np.array([[False, False], [False, True]])
  pred_occ = np.array([[False, True], [False, False]])
  return gt_occ, gt, pred_occ, pred


def test_hand_worked_fixed_thresholds():
  # Fixed thresholds², δ → 1e-4, .0016, .0256, .4096, 6.5536. Visible = (0,0), (0,1), (1,0): 3 entries.
  #   OA: (0,0) ok, (0,1) wrong, (1,0) ok, (1,1) wrong → 1/2.
  #   δ=1, 2: within (0,0), (1,1) → correct (0,0) → pts 1/3; TP (0,0) = 1; FP = (1,0) far + (1,1) occluded = 2
  #           → J = 1/(3+2) = 0.2.
  #   δ=4:    (0,1) now within → pts 2/3; TP still 1 ((0,1) is predicted occluded); FP 2 → J 0.2.
  #   δ=8, 16: all within → pts 1; TP (0,0), (1,0) = 2; FP (1,1) = 1 → J 2/4 = 0.5.
  #   averages: pts (1/3+1/3+2/3+1+1)/5 = 2/3, J (0.2·3 + 0.5·2)/5 = 0.32.
  gt_occ, gt, pred_occ, pred = _hand_case()
  out = compute_tapvid3d_metrics(gt_occ, gt, pred_occ, pred, np.array([100.0, 100, 64, 64]), scaling='none',
                                 use_fixed_metric_threshold=True)
  expect = dict(occlusion_accuracy=0.5, pts_within_1=1 / 3, jaccard_1=0.2, pts_within_2=1 / 3, jaccard_2=0.2,
                pts_within_4=2 / 3, jaccard_4=0.2, pts_within_8=1.0, jaccard_8=0.5, pts_within_16=1.0,
                jaccard_16=0.5, average_pts_within_thresh=2 / 3, average_jaccard=0.32)
  assert list(out) == KEYS
  for k, e in expect.items():
    np.testing.assert_allclose(out[k], [e], atol=1e-12, err_msg=k)
  # Trackwise, track 0: visible 2, correct at δ=1 only (0,0) → 1/2, J = 1/(2+0) = 1/2; track 1: OA 1/2,
  # δ=1 correct none → 0, J 0/(1+2) = 0.
  tw = compute_tapvid3d_metrics(gt_occ, gt, pred_occ, pred, np.array([100.0, 100, 64, 64]), scaling='none',
                                use_fixed_metric_threshold=True, get_trackwise_metrics=True)
  np.testing.assert_allclose(tw['occlusion_accuracy'], [[0.5, 0.5]])
  np.testing.assert_allclose(tw['pts_within_1'], [[0.5, 0.0]])
  np.testing.assert_allclose(tw['jaccard_1'], [[0.5, 0.0]])
  # 't n' order is the transpose.
  tn = compute_tapvid3d_metrics(gt_occ.T, gt.transpose(1, 0, 2), pred_occ.T, pred.transpose(1, 0, 2),
                                np.array([100.0, 100, 64, 64]), scaling='none', use_fixed_metric_threshold=True,
                                order='t n')
  for k in KEYS:
    np.testing.assert_array_equal(tn[k], out[k])


def test_hand_worked_pixel_thresholds_and_scaling():
  # fx = fy = 100 and z = 1: thr_δ = δ·1/100. A 1.5 cm x-error is within δ=2 but not δ=1.
  gt = np.tile(np.array([0.0, 0.0, 1.0]), (3, 4, 1))
  occ = np.zeros((3, 4), bool)
  intr = np.array([100.0, 100.0, 50.0, 50.0])
  off = gt + np.array([0.015, 0, 0])
  out = compute_tapvid3d_metrics(occ, gt, occ, off, intr, scaling='none')
  assert out['pts_within_1'][0] == 0.0 and out['pts_within_2'][0] == 1.0
  # 'median': a prediction at twice the scale is rescaled by 1/2 → exact → every metric 1.
  # 'per_trajectory': track n predicted at scale c_n is rescaled by its own query-frame depth ratio → exact.
  moving = gt + np.arange(4)[None, :, None] * np.array([0.1, 0.0, 0.2])
  queries = np.array([[0, 10, 10], [2, 10, 10], [3, 10, 10]], float)
  for scaling, pred in (('median', 2 * moving), ('per_trajectory', moving * np.array([0.5, 2, 3])[:, None, None]),
                        ('reproduce_2d', moving * 1.7), ('median_on_queries', 3 * moving)):
    out = compute_tapvid3d_metrics(occ, moving, occ, pred, intr, scaling=scaling, query_points=queries)
    for k in KEYS:
      np.testing.assert_allclose(out[k], [1.0], atol=1e-12, err_msg=f'{scaling} {k}')


def test_local_neighborhood_weights():
  # Tracks 0 and 1 are 1 cm apart (neighbours at 5 cm), track 2 is far. Track 0's pool is tracks {0, 1} over
  # all frames, weighted Σ_t visible(0) / Σ visible(pool) = 2/4, so each track keeps its own total weight.
  gt = np.array([[[0, 0, 1]] * 2, [[0.01, 0, 1]] * 2, [[1, 0, 3]] * 2], float)
  occ = np.zeros((3, 2), bool)
  pred_occ = occ.copy()
  pred_occ[1, 0] = True  # occluded prediction of track 1 at t = 0: 1 of track 0's 4 pooled entries is wrong
  out = compute_tapvid3d_metrics(occ, gt, pred_occ, gt, np.array([100.0, 100, 50, 50]), scaling='local_neighborhood',
                                 query_points=np.zeros((3, 3)), get_trackwise_metrics=True)
  np.testing.assert_allclose(out['occlusion_accuracy'], [0.75, 0.75, 1.0])
  np.testing.assert_allclose(out['pts_within_1'], [1.0, 1.0, 1.0])
  np.testing.assert_allclose(out['jaccard_1'], [0.75, 0.75, 1.0])


def test_rejects_unknown_options():
  gt_occ, gt, pred_occ, pred = _hand_case()
  with pytest.raises(ValueError):
    compute_tapvid3d_metrics(gt_occ, gt, pred_occ, pred, np.ones(4), scaling='bogus')
  with pytest.raises(ValueError):
    compute_tapvid3d_metrics(gt_occ, gt, pred_occ, pred, np.ones(4), order='n t b')
  with pytest.raises(ValueError):
    compute_tapvid3d_metrics(gt_occ[None], gt[None], pred_occ[None], pred[None], np.ones(4),
                             scaling='local_neighborhood', order='b n t')
