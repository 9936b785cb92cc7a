"""Photometric augmentation: deterministic given the generator, shape-preserving, really photometric."""
import numpy as np

from data import augment


def _image(seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)


def test_median3x3_matches_scipy():
  from scipy import ndimage
  img = _image(3)
  np.testing.assert_array_equal(augment.median3x3(img), ndimage.median_filter(img, size=(3, 3, 1), mode='nearest'))


def test_deterministic_given_rng_and_shape_preserving():
  img = _image()
  a = augment.augment(img, np.random.default_rng(5))
  b = augment.augment(img, np.random.default_rng(5))
  np.testing.assert_array_equal(a, b)
  assert a.shape == img.shape and a.dtype == np.uint8


def test_each_operation_fires_at_its_rate():
  """Over many draws about 1 - Π(1 - p) of the images change, and some change a lot."""
  img = _image()
  changed = [not np.array_equal(augment.augment(img, np.random.default_rng(s)), img) for s in range(400)]
  p_any = 1 - (1 - 0.2) ** 4 * (1 - 0.5)
  assert abs(np.mean(changed) - p_any) < 0.08


def _only(monkeypatch, name):
  """Make one operation certain and the others impossible."""
  for p in ('P_BRIGHTNESS_CONTRAST', 'P_HSV', 'P_GRAY', 'P_JPEG', 'P_BLUR'):
    monkeypatch.setattr(augment, p, 1.0 if p == name else 0.0)


def test_gray(monkeypatch):
  _only(monkeypatch, 'P_GRAY')
  out = augment.augment(_image(), np.random.default_rng(0))
  assert np.ptp(out.astype(int), axis=-1).max() == 0


def test_jpeg_and_blur_are_lossy_but_close(monkeypatch):
  smooth = np.clip(np.cumsum(_image().astype(float), axis=1) / 8 % 256, 0, 255).astype(np.uint8)
  for name in ('P_JPEG', 'P_BLUR', 'P_BRIGHTNESS_CONTRAST', 'P_HSV'):
    _only(monkeypatch, name)
    out = augment.augment(smooth, np.random.default_rng(1))
    assert not np.array_equal(out, smooth), name
    assert np.corrcoef(out.ravel(), smooth.ravel())[0, 1] > 0.5, name  # same picture, other photometry
