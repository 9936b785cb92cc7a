"""Photometric augmentation of the two input views (spec dynadust3r.md §c.3), numpy + Pillow.

The unofficial DynaDUSt3R recipe (Albumentations, each image independently, no geometric change —
the pointmaps stay aligned with the pixels):
  RandomBrightnessContrast(p=0.2), HueSaturationValue(p=0.2), ToGray(p=0.2),
  ImageCompression(quality 30..100, p=0.5), OneOf([MotionBlur, MedianBlur(3), Blur(3)], p=0.2).
Parameter ranges are Albumentations' defaults.
"""
import io

import numpy as np
from PIL import Image
from scipy import ndimage

P_BRIGHTNESS_CONTRAST, BRIGHTNESS_LIMIT, CONTRAST_LIMIT = 0.2, 0.2, 0.2
P_HSV, HUE_SHIFT_DEG, SAT_SHIFT, VAL_SHIFT = 0.2, 40.0, 30.0, 20.0  # OpenCV hue unit is 2°: ±20 → ±40°
P_GRAY = 0.2
P_JPEG, JPEG_QUALITY = 0.5, (30, 100)
P_BLUR, BLUR_CHOICES = 0.2, (('motion', 0.2), ('median', 0.1), ('box', 0.1))  # OneOf weights


def _rgb_to_hsv(rgb):
  """(..., 3) float RGB in [0, 255] → hue [0, 360), saturation and value in [0, 255]."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  v = rgb.max(-1)
  c = v - rgb.min(-1)
  s = np.where(v > 0, 255.0 * c / np.maximum(v, 1e-6), 0.0)
  safe_c = np.maximum(c, 1e-6)
  h = np.where(v == r, (g - b) / safe_c, np.where(v == g, 2.0 + (b - r) / safe_c, 4.0 + (r - g) / safe_c))
  h = np.where(c > 0, (h * 60.0) % 360.0, 0.0)
  return np.stack([h, s, v], -1)


def _hsv_to_rgb(hsv):
  h, s, v = hsv[..., 0] / 60.0, hsv[..., 1] / 255.0, hsv[..., 2]
  k = lambda n: (n + h) % 6
  f = lambda n: v - v * s * np.clip(np.minimum(k(n), 4 - k(n)), 0, 1)
  return np.stack([f(5), f(3), f(1)], -1)


def _motion_kernel(rng):
  size = int(rng.choice([3, 5, 7]))
  kernel = np.zeros((size, size))
  angle = rng.uniform(0, np.pi)
  t = np.linspace(-(size - 1) / 2, (size - 1) / 2, 4 * size)
  rows = np.clip(np.round(size // 2 + t * np.sin(angle)).astype(int), 0, size - 1)
  cols = np.clip(np.round(size // 2 + t * np.cos(angle)).astype(int), 0, size - 1)
  kernel[rows, cols] = 1.0
  return kernel / kernel.sum()


def _blur(img, rng):
  names, weights = zip(*BLUR_CHOICES)
  kind = rng.choice(names, p=np.array(weights) / sum(weights))
  if kind == 'median':
    return ndimage.median_filter(img, size=(3, 3, 1))
  if kind == 'box':
    return ndimage.uniform_filter(img, size=(3, 3, 1))
  return ndimage.convolve(img, _motion_kernel(rng)[..., None], mode='reflect')


def _jpeg(img, rng):
  buffer = io.BytesIO()
  Image.fromarray(img).save(buffer, format='JPEG', quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
  return np.asarray(Image.open(buffer).convert('RGB'))


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """(H, W, 3) uint8 RGB → augmented (H, W, 3) uint8, with randomness only from rng."""
  x = image.astype(np.float32)
  if rng.random() < P_BRIGHTNESS_CONTRAST:
    alpha = 1.0 + rng.uniform(-CONTRAST_LIMIT, CONTRAST_LIMIT)
    beta = rng.uniform(-BRIGHTNESS_LIMIT, BRIGHTNESS_LIMIT) * 255.0
    x = np.clip(x * alpha + beta, 0, 255)
  if rng.random() < P_HSV:
    hsv = _rgb_to_hsv(x)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-HUE_SHIFT_DEG, HUE_SHIFT_DEG)) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] + rng.uniform(-SAT_SHIFT, SAT_SHIFT), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + rng.uniform(-VAL_SHIFT, VAL_SHIFT), 0, 255)
    x = _hsv_to_rgb(hsv)
  if rng.random() < P_GRAY:
    x = np.repeat((x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, axis=-1)
  out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
  if rng.random() < P_JPEG:
    out = _jpeg(out, rng)
  if rng.random() < P_BLUR:
    out = _blur(out, rng)
  return out
