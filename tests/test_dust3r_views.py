"""DUSt3R's view pipeline: K follows the crop/resize (geometry and image content), orientation rule,
aug_crop focal, pts3d / valid_mask, colour jitter, per-batch aspect ratio."""
import numpy as np
import pytest

from data import dust3r_views as dv


def _K(fx, fy, cx, cy):
  return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)


def _frame(w, h, K=None):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  return image, np.ones((h, w), np.float32), (_K(500, 520, w / 2, h / 2) if K is None else K)


def _project(K, pts):
  p = pts @ K.T
  return p[:, :2] / p[:, 2:]


def _rotation(axis, angle):
  axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
  cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def test_points_land_where_the_new_K_says():
  """640x480, principal point (340.3, 228.6) → rounded (340, 229): window x 40..640, y 0..458 (600x458);
  s = max(512/600, 384/458) + 1e-8 = 0.853333, new size floor = 512x390, offset o = (s·size - new)/2,
  final crop at (0, 3). A pixel moves to u' = s(u - 40 + 0.5) - o_x - 0.5, v' = s(v + 0.5) - o_y - 0.5 - 3."""
  K = _K(500, 520, 340.3, 228.6)
  image, depth, _ = _frame(640, 480)
  img2, depth2, K2 = dv.crop_resize(image, depth, K, (512, 384), np.random.default_rng(0))
  assert img2.shape == (384, 512, 3) and depth2.shape == (384, 512) and K2.dtype == np.float64
  s = 512 / 600 + 1e-8
  o = 0.5 * (np.array([600, 458]) * s - [512, 390])
  rng = np.random.default_rng(1)
  pts = np.c_[rng.uniform(-1, 1, (50, 2)), rng.uniform(1, 5, 50)]
  uv = _project(K, pts)
  expected = s * (uv - [40, 0] + 0.5) - o - 0.5 - [0, 3]
  np.testing.assert_allclose(_project(K2, pts), expected, atol=1e-3)
  np.testing.assert_allclose(K2[[0, 1], [0, 1]], [500 * s, 520 * s], rtol=1e-12)


def _blob_image(w, h, centres, sigma):
  y, x = np.mgrid[:h, :w]
  img = np.full((h, w), 40.0)
  for cx, cy in centres:
    img += 200 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))
  return np.repeat(np.clip(np.rint(img), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _centroid(img, u, v, r=10):
  y, x = np.mgrid[:img.shape[0], :img.shape[1]]
  wgt = (img[..., 0].astype(np.float64) - 40) * ((x - u) ** 2 + (y - v) ** 2 <= r ** 2)
  return np.array([(wgt * x).sum(), (wgt * y).sum()]) / wgt.sum()


@pytest.mark.parametrize('size, K, resolution, tol', [
    ((640, 480), _K(500, 500, 320, 240), (512, 288), 0.03),   # s = 0.8 (LANCZOS), crop rows 48..336
    ((320, 240), _K(250, 250, 160, 120), (512, 384), 0.03),   # s = 1.6 (BICUBIC)
    ((640, 480), _K(500, 520, 340.3, 228.6), (512, 384), 0.45),  # y: floor(390.83) - K off by <= o_y = 0.41 px
])
def test_image_content_moves_where_K_says(size, K, resolution, tol):
  w, h = size
  centres = [(w * a, h * b) for a, b in ((0.5, 0.5), (0.3, 0.4), (0.7, 0.6), (0.4, 0.7), (0.65, 0.3))]
  image = _blob_image(w, h, centres, sigma=3.0)
  img2, _, K2 = dv.crop_resize(image, np.ones((h, w), np.float32), K, resolution, np.random.default_rng(0))
  rays = np.c_[np.linalg.solve(K, np.c_[centres, np.ones(len(centres))].T).T]
  for (u, v) in _project(K2, rays):
    np.testing.assert_allclose(_centroid(img2, u, v), [u, v], atol=tol)


def test_principal_point_centred_by_the_first_crop():
  image, depth, _ = _frame(640, 480)
  for cx, cy in [(340.3, 228.6), (300.0, 250.0), (321.7, 239.2)]:
    img, dep, K = dv.crop_to_principal_point(image, depth, _K(500, 500, cx, cy))
    h, w = dep.shape
    assert img.shape[:2] == (h, w)
    assert abs(K[0, 2] - w / 2) <= 0.5 and abs(K[1, 2] - h / 2) <= 0.5
    np.testing.assert_allclose(K[:2, 2] - [w / 2, h / 2], [cx - round(cx), cy - round(cy)], atol=1e-12)
  with pytest.raises(ValueError, match='principal point'):
    dv.crop_to_principal_point(image, depth, _K(500, 500, 100, 240))  # margin 100 <= 640/5


def test_aug_crop_enlarges_the_focal_by_the_drawn_margin():
  image, depth, K = _frame(640, 480)  # not square-ish: the only draw is the aug_crop integer
  focals = set()
  for seed in range(10):
    a = np.random.default_rng(seed).integers(0, 16)
    _, dep, K2 = dv.crop_resize(image, depth, K, (512, 384), np.random.default_rng(seed), aug_crop=16)
    assert dep.shape == (384, 512)
    s = max((512 + a) / 640, (384 + a) / 480) + 1e-8
    np.testing.assert_allclose(K2[0, 0], 500 * s, rtol=1e-12)
    focals.add(round(K2[0, 0], 6))
  assert len(focals) > 3 and min(focals) >= 400
  _, _, K1 = dv.crop_resize(image, depth, K, (512, 384), np.random.default_rng(0), aug_crop=1)  # no draw
  np.testing.assert_allclose(K1[0, 0], 400, rtol=1e-7)


def test_orientation_rule():
  rng = np.random.default_rng(0)
  res = (512, 384)
  assert dv.orient_resolution(res, 500, 560, rng) == (384, 512)  # H = 1.12 W: portrait
  assert dv.orient_resolution(res, 600, 480, rng) == (512, 384)  # H/W = 0.8: landscape
  for w, h in [(500, 525), (520, 480)]:  # square-ish: either
    assert {dv.orient_resolution(res, w, h, rng) for _ in range(40)} == {(512, 384), (384, 512)}
  assert dv.orient_resolution((512, 512), 500, 500, rng) == (512, 512)
  with pytest.raises(ValueError, match='landscape'):
    dv.orient_resolution((384, 512), 500, 500, rng)
  image, depth, K = _frame(480, 720)
  img, dep, K2 = dv.crop_resize(image, depth, K, res, rng)
  assert img.shape == (512, 384, 3) and dep.shape == (512, 384)


@pytest.mark.parametrize('size', [(640, 480), (1024, 768), (300, 200), (480, 640), (700, 690)])
def test_output_shapes_equal_the_resolution(size):
  image, depth, K = _frame(*size)
  for res in dv.RESOLUTIONS_512:
    img, dep, _ = dv.crop_resize(image, depth, K, res, np.random.default_rng(1), aug_crop=16)
    assert img.dtype == np.uint8 and dep.dtype == np.float32
    assert dep.shape in (res[::-1], res) and img.shape[:2] == dep.shape
    if size[1] > 1.1 * size[0]:
      assert dep.shape == res  # portrait: (H, W) = transposed resolution


def _c2w():
  c2w = np.eye(4)
  c2w[:3, :3] = _rotation([0.3, -1.0, 0.2], 0.7)
  c2w[:3, 3] = [1.5, -0.4, 2.0]
  return c2w


@pytest.mark.parametrize('size, stored, true_shape', [((640, 480), (336, 512), (336, 512)),
                                                     ((480, 640), (336, 512), (512, 336))])
def test_pts3d_of_a_constant_depth_plane(size, stored, true_shape):
  image, _, K = _frame(*size)
  depth = np.full(size[::-1], 2.0, np.float32)
  c2w = _c2w()
  view = dv.view_from_frame(image, depth, K, c2w[:3], (512, 336), np.random.default_rng(0))
  assert view['img'].shape == stored + (3,) and view['pts3d'].shape == stored + (3,)
  assert view['depthmap'].shape == stored and view['valid_mask'].all()
  np.testing.assert_array_equal(view['true_shape'], true_shape)
  assert view['true_shape'].dtype == np.int32
  np.testing.assert_allclose(view['camera_pose'], c2w, atol=1e-7)
  cam = (view['pts3d'].reshape(-1, 3) - c2w[:3, 3]) @ c2w[:3, :3]  # world → camera
  np.testing.assert_allclose(cam[:, 2], 2.0, atol=1e-5)
  rows, cols = np.mgrid[:stored[0], :stored[1]]
  # K (rows swapped for a portrait view) projects onto the stored (column, row)
  np.testing.assert_allclose(_project(view['camera_intrinsics'].astype(np.float64), cam),
                             np.c_[cols.ravel(), rows.ravel()], atol=2e-3)


def test_valid_mask_excludes_zero_and_non_finite_depth():
  image, depth, K = _frame(640, 480, _K(500, 500, 320, 240))  # s = 0.8 exactly, crop rows 48..336
  depth = depth * 3
  depth[:, :100] = 0
  depth[200:300, 300:400] = np.nan
  depth[300:400, 500:] = np.inf
  view = dv.view_from_frame(image, depth, K, np.eye(4), (512, 288), np.random.default_rng(0))
  valid = view['valid_mask']
  assert valid.dtype == bool and np.isfinite(view['pts3d']).all()
  np.testing.assert_array_equal(valid, view['depthmap'] > 0)
  expected = np.ones((288, 512), bool)  # original pixels × 0.8, rows - 48
  expected[:, :80] = expected[112:192, 240:320] = expected[192:272, 400:] = False
  np.testing.assert_array_equal(valid, expected)


def test_color_jitter():
  image, _, _ = _frame(64, 48)
  np.testing.assert_array_equal(dv.apply_color_jitter(image, np.random.default_rng(0), (0, 0, 0, 0)), image)
  grey = np.repeat(image[..., :1], 3, axis=-1)
  np.testing.assert_array_equal(dv.apply_color_jitter(grey, np.random.default_rng(0), (0, 0, 0, 0.1)), grey)
  a = dv.apply_color_jitter(image, np.random.default_rng(3))
  np.testing.assert_array_equal(a, dv.apply_color_jitter(image, np.random.default_rng(3)))
  assert a.dtype == np.uint8 and a.shape == image.shape and not np.array_equal(a, image)
  for seed in range(5):  # brightness alone: one factor in [0.5, 1.5] on every channel (PIL truncates)
    b = dv.apply_color_jitter(image, np.random.default_rng(seed), (0.5, 0, 0, 0)).astype(np.float64)
    keep = b < 255
    f = (b[keep] * image[keep]).sum() / (image[keep].astype(np.float64) ** 2).sum()
    assert 0.5 <= f <= 1.5 and np.abs(b[keep] - f * image[keep]).max() <= 1.01


def test_view_image_normalisation_and_jitter_range():
  image, depth, K = _frame(640, 480)
  res = (512, 384)
  img, _, _ = dv.crop_resize(image, depth, K, res, np.random.default_rng(0))
  plain = dv.view_from_frame(image, depth, K, np.eye(4), res, np.random.default_rng(0), color_jitter=False)
  assert plain['img'].dtype == np.float32
  np.testing.assert_allclose(plain['img'], img / 127.5 - 1, atol=1e-6)
  for seed in range(5):
    jittered = dv.view_from_frame(image, depth, K, np.eye(4), res, np.random.default_rng(seed))['img']
    assert jittered.min() >= -1 and jittered.max() <= 1 and not np.allclose(jittered, plain['img'])
  assert all(v.dtype in (np.float32, np.int32, bool) for v in plain.values())


def test_aspect_ratio_for_batch():
  draws = [dv.aspect_ratio_for_batch(7, i) for i in range(1000)]
  assert draws == [dv.aspect_ratio_for_batch(7, i) for i in range(1000)]
  assert draws != [dv.aspect_ratio_for_batch(8, i) for i in range(1000)]
  counts = {r: draws.count(r) for r in dv.RESOLUTIONS_512}
  assert set(draws) == set(dv.RESOLUTIONS_512) and all(150 < c < 250 for c in counts.values())
  assert dv.aspect_ratio_for_batch(0, 3, [(224, 224)]) == (224, 224)
