"""Training targets on hand-made frames whose answers are known (data/stereo4d.py)."""
import numpy as np
import pytest

from data.stereo4d import Frame, build_example, intrinsics, world_to_camera

H = W = 8
HFOV = 90.0  # f = W/2 = 4: easy arithmetic


def _cam(centre=(0.0, 0.0, 0.0)):
  """camera2world with identity rotation at `centre`."""
  return np.concatenate([np.eye(3), np.asarray(centre, float)[:, None]], axis=1)


def _point_at(col, row, depth, centre=(0.0, 0.0, 0.0), offset=0.25):
  """A world point seen by an identity camera at `centre` inside pixel (row, col), at `offset` of its
  width from the left/top edge."""
  f, c = W / 2, W / 2
  x = (col + offset - c) * depth / f
  y = (row + offset - c) * depth / f
  return np.array([x, y, depth]) + np.asarray(centre)


def _frame(centre, ids, xyz):
  return Frame(np.zeros((H, W, 3), np.uint8), _cam(centre), np.asarray(ids), np.asarray(xyz, np.float32))


def test_intrinsics_and_world_to_camera():
  K = intrinsics(512, 512, 60.0)
  assert K[0, 0] == pytest.approx(443.405, abs=1e-3) and K[0, 2] == 256 and K[1, 2] == 256
  c2w = np.array([[0.0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3]])
  w2c = world_to_camera(c2w)
  np.testing.assert_allclose(w2c @ np.append(c2w[:, 3], 1), [0, 0, 0, 1], atol=1e-12)


def test_pointmaps_targets_and_nearest_track_wins():
  cl, cm, cr = (0, 0, 0), (0.5, 0, 0), (1, 0, 0)
  a_l, b_l = _point_at(2, 3, 5.0, cl), _point_at(2, 3, 2.0, cl)   # a behind b on pixel (3, 2) in l
  c_l = _point_at(6, 1, 4.0, cl)
  a_m, b_m = a_l + [0, 0.1, 0], b_l + [0.2, 0, 0]
  a_r, b_r, c_r = a_l + [0, 0.3, 0], b_l + [0.4, 0, 0], c_l
  frames = (_frame(cl, [0, 1, 2], [a_l, b_l, c_l]),
            _frame(cm, [0, 1], [a_m, b_m]),          # c unseen at m
            _frame(cr, [0, 1, 2], [a_r, b_r, c_r]))
  ex = build_example(frames, (10, 13, 20), hfov=HFOV)
  np.testing.assert_allclose(ex['query_times'], [0.3, 1.0, 0.0])
  # view 1 (camera l = world here): b is nearer than a on pixel (3, 2)
  assert ex['valid1'].sum() == 2 and ex['valid1'][3, 2] and ex['valid1'][1, 6]
  np.testing.assert_allclose(ex['pts3d1'][3, 2], b_l, rtol=1e-6)
  # motion targets follow the winning track b; c has none at m
  np.testing.assert_allclose(ex['target_l2m'][3, 2], b_m, rtol=1e-6)
  np.testing.assert_allclose(ex['target_l2r'][3, 2], b_r, rtol=1e-6)
  assert ex['valid_l2m'].sum() == 1 and ex['valid_l2r'].sum() == 2
  np.testing.assert_allclose(ex['target_l2r'][1, 6], c_r, rtol=1e-6)
  # view 2: pixels of camera r, values in camera l (translation of 1 m along x)
  for xyz, lpos in ((b_r, b_l), (c_r, c_l)):
    cam_r = xyz - np.array(cr)
    col = int(np.floor(4 * cam_r[0] / cam_r[2] + 4))
    row = int(np.floor(4 * cam_r[1] / cam_r[2] + 4))
    assert ex['valid2'][row, col]
    np.testing.assert_allclose(ex['pts3d2'][row, col], xyz, rtol=1e-6)     # camera l = world
    np.testing.assert_allclose(ex['target_r2l'][row, col], lpos, rtol=1e-6)
  np.testing.assert_array_equal(ex['world_to_cam'][2][:3, 3], [-1, 0, 0])


def test_pixel_rounding_floor_vs_round():
  """A point at 0.75 of pixel column 2: official floor → column 2, unofficial round → column 3."""
  p = _point_at(2, 3, 5.0, offset=0.75)
  frames = tuple(_frame((0, 0, 0), [0], [p]) for _ in range(3))
  assert build_example(frames, (0, 1, 2), hfov=HFOV)['valid1'][3, 2]
  assert build_example(frames, (0, 1, 2), hfov=HFOV, pixel_rounding='round')['valid1'][4, 3]


def test_points_behind_or_outside_are_dropped():
  behind = np.array([0.0, 0.0, -1.0])
  outside = _point_at(9, 3, 5.0)
  frames = tuple(_frame((0, 0, 0), [0, 1], [behind, outside]) for _ in range(3))
  ex = build_example(frames, (0, 1, 2), hfov=HFOV)
  assert not ex['valid1'].any() and not ex['valid_l2r'].any()
  assert ex['img1'].min() == -1.0 and ex['img1'].dtype == np.float32
