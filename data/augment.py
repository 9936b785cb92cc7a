"""Photometric augmentation of the two input views (spec dynadust3r.md §c.3), uint8 with numpy + Pillow.

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


def _shift_hsv(img, rng):
  """Hue, saturation and value shifts in Pillow's uint8 HSV (hue 0..255 = 0..360°), like OpenCV's."""
  hsv = np.asarray(Image.fromarray(img).convert('HSV')).astype(np.int16)
  hsv[..., 0] = (hsv[..., 0] + int(round(rng.uniform(-HUE_SHIFT_DEG, HUE_SHIFT_DEG) * 256 / 360))) % 256
  hsv[..., 1] = np.clip(hsv[..., 1] + int(round(rng.uniform(-SAT_SHIFT, SAT_SHIFT))), 0, 255)
  hsv[..., 2] = np.clip(hsv[..., 2] + int(round(rng.uniform(-VAL_SHIFT, VAL_SHIFT))), 0, 255)
  return np.asarray(Image.fromarray(hsv.astype(np.uint8), 'HSV').convert('RGB'))


def _motion_kernel(rng):
  size = int(rng.choice([3, 5, 7]))
  kernel = np.zeros((size, size))
  angle = rng.uniform(0, np.pi)
  t = np.linspace(-(size - 1) / 2, (size - 1) / 2, 4 * size)
  rows = np.clip(np.round(size // 2 + t * np.sin(angle)).astype(int), 0, size - 1)
  cols = np.clip(np.round(size // 2 + t * np.cos(angle)).astype(int), 0, size - 1)
  kernel[rows, cols] = 1.0
  return kernel / kernel.sum()


# Compare-exchange pairs of a 19-step network whose element 4 ends up the median of 9 (Paeth's median
# network, as in Devillard's "fast median search"): a 3×3 median as 38 vectorised min/max operations.
_MEDIAN9 = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8), (4, 7),
            (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median3x3(img):
  """3×3 median of each channel of (H, W, C) uint8, replicated borders (OpenCV's medianBlur(3))."""
  h, w = img.shape[:2]
  padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode='edge')
  p = [padded[i:i + h, j:j + w] for i in range(3) for j in range(3)]
  for a, b in _MEDIAN9:
    p[a], p[b] = np.minimum(p[a], p[b]), np.maximum(p[a], p[b])
  return p[4]


def _blur(img, rng):
  names, weights = zip(*BLUR_CHOICES)
  kind = rng.choice(names, p=np.array(weights) / sum(weights))
  if kind == 'median':
    return median3x3(img)
  kernel = np.full((3, 3), 1 / 9, np.float32) if kind == 'box' else _motion_kernel(rng).astype(np.float32)
  x = img.astype(np.float32)
  out = np.stack([ndimage.correlate(x[..., c], kernel, mode='reflect') for c in range(3)], axis=-1)
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _jpeg(img, rng):
  buffer = io.BytesIO()
  Image.fromarray(img).save(buffer, format='JPEG', quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
  return np.asarray(Image.open(buffer).convert('RGB'))


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """(H, W, 3) uint8 RGB → augmented (H, W, 3) uint8, with randomness only from rng."""
  out = image
  if rng.random() < P_BRIGHTNESS_CONTRAST:
    alpha = 1.0 + rng.uniform(-CONTRAST_LIMIT, CONTRAST_LIMIT)
    beta = rng.uniform(-BRIGHTNESS_LIMIT, BRIGHTNESS_LIMIT) * 255.0
    out = np.clip(np.rint(out.astype(np.float32) * alpha + beta), 0, 255).astype(np.uint8)
  if rng.random() < P_HSV:
    out = _shift_hsv(out, rng)
  if rng.random() < P_GRAY:
    gray = np.rint(out.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    out = np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
  if rng.random() < P_JPEG:
    out = _jpeg(out, rng)
  if rng.random() < P_BLUR:
    out = _blur(out, rng)
  return out
