"""DUSt3R's view pipeline for posed multi-view data (spec dust3r.md §5.2, §5.3, §1.3), numpy + Pillow + cv2.

One frame (image, depth, K, camera-to-world) becomes one view dict as DUSt3R's datasets give it
(`_crop_resize_if_necessary` + `__getitem__` of dust3r/datasets/base/base_stereo_view_dataset.py,
dust3r/datasets/utils/cropping.py):
  1. crop to the largest window centred on the rounded principal point (cx, cy) = round(K[:2, 2]):
     half-sizes m = min(c, size - c), which must exceed size/5 (else the principal point is rejected);
  2. orientation: `resolution` (W, H) is given landscape; it is transposed when the cropped image is
     portrait (H > 1.1 W), and with probability 1/2 when it is square-ish (0.9 < H/W < 1.1);
     aug_crop > 1: target = resolution + a, a ~ U{0..aug_crop-1} on both W and H (focal augmentation);
  3. rescale so the image covers the target: s = max(target / size) + 1e-8, new size floor(size·s),
     Pillow LANCZOS if s < 1 else BICUBIC, depth nearest (cv2); K scaled in COLMAP's pixel-centre
     convention, with a centring offset o = (size·s - new size)/2 (`camera_matrix_of_crop`):
       f' = s·f,  c' = s·(c + 0.5) - o - 0.5;
  4. centre crop to `resolution` at (l, t) = round((new size - resolution)/2) (half to even, as
     np.round), K principal point - (l, t).
Then ColorJitter(0.5, 0.5, 0.5, 0.1), img = 2·rgb/255 - 1, pts3d = c2w · depth·K⁻¹(u, v, 1) at
integer pixel coordinates (OpenCV: pixel (u, v) is at u, v), valid_mask = depth > 0 & finite.

K of step 3 holds one scale s for both axes, while the image is resized by new size/size per axis
(floor): on the axis that does not set s the content is off K by at most (size·s - new size)/2 < 0.5 px
at the borders, zero at the centre (DUSt3R's behaviour, kept).

Portrait views (height > width) are stored transposed, as DUSt3R's dataset does (`transpose_to_landscape`,
its last step): img, depthmap, pts3d and valid_mask swap their two image axes and the rows of K are
reordered [1, 0, 2] (so that K·(x, y, z) still gives the stored pixel (v, u) swapped), while
`true_shape` keeps the real (height, width). The model's ManyAR patch embedding transposes such items
back (dynadust3r_jax/model/patch_embed.py) and its heads return the stored layout, so every batch is
landscape-shaped.

ColorJitter is torchvision's on a PIL image (DUSt3R transforms the PIL image): a random order of the
four operations, brightness, contrast and saturation factors ~ U[1 - 0.5, 1 + 0.5], hue ~ U[-0.1, 0.1],
applied with PIL's ImageEnhance.Brightness / Contrast / Color and a shift of PIL's 8-bit HSV hue by
trunc(255·hue) mod 256 (torchvision's functional_pil). The draws come from the numpy generator.

Batches share one aspect ratio, drawn uniformly from the resolutions (`BatchedRandomSampler`), here from
a generator seeded by (seed, batch index), so that a batch is a function of them (data/pipeline.py).
"""
import zlib

import cv2
import numpy as np
from PIL import Image, ImageEnhance

RESOLUTIONS_512 = [(512, 384), (512, 336), (512, 288), (512, 256), (512, 160)]  # (W, H)
COLOR_JITTER = (0.5, 0.5, 0.5, 0.1)  # brightness, contrast, saturation, hue
PORTRAIT_RATIO = 1.1
_ASPECT_RATIO_STREAM = zlib.crc32(b'dust3r aspect ratio')


def _crop(image, depth, K, l, t, r, b):
  """`crop_image_depthmap`: the window [l, r) × [t, b) and K with its principal point moved."""
  K = K.copy()
  K[:2, 2] -= (l, t)
  return image[t:b, l:r], depth[t:b, l:r], K


def camera_matrix_of_crop(K, input_size, output_size, scaling=1.0):
  """K (3, 3) of an image of `input_size` (W, H) scaled by `scaling` then centre-cropped to `output_size`,
  in COLMAP's pixel-centre convention (principal point + 0.5 before scaling, - 0.5 after)."""
  offset = 0.5 * (np.asarray(input_size) * scaling - np.asarray(output_size))
  if np.any(offset < 0):
    raise ValueError(f'cannot crop {tuple(output_size)} out of {tuple(input_size)} scaled by {scaling}')
  K = np.array(K, np.float64)
  K[:2, 2] += 0.5
  K[:2, :] *= scaling
  K[:2, 2] -= offset
  K[:2, 2] -= 0.5
  return K


def crop_to_principal_point(image, depth, K):
  """Step 1: the largest window centred on round(K[:2, 2]); K float64 with its principal point at
  (W/2, H/2) of the window up to the rounding."""
  K = np.array(K, np.float64)
  h, w = depth.shape
  if image.shape[:2] != (h, w):
    raise ValueError(f'image {image.shape[:2]} and depth {depth.shape} differ in size')
  cx, cy = np.round(K[:2, 2]).astype(int)
  mx, my = min(cx, w - cx), min(cy, h - cy)
  if not (mx > w / 5 and my > h / 5):
    raise ValueError(f'principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) too far off the centre of a {w}x{h} image')
  return _crop(image, depth, K, cx - mx, cy - my, cx + mx, cy + my)


def orient_resolution(resolution, width, height, rng):
  """The (W, H) target of an image of width × height: `resolution` (landscape) or its transpose."""
  if resolution[0] < resolution[1]:
    raise ValueError(f'resolution {resolution} must be given landscape (W >= H)')
  if height > PORTRAIT_RATIO * width:
    return tuple(resolution[::-1])
  if 0.9 < height / width < 1.1 and resolution[0] != resolution[1] and rng.integers(2):
    return tuple(resolution[::-1])
  return tuple(resolution)


def crop_resize(image, depth, K, resolution, rng, aug_crop=0):
  """(H, W, 3) uint8, (H, W) depth, K (3, 3) OpenCV → image, depth, K (float64) of size `resolution`
  (W, H) or its transpose (steps 1-4 above). Randomness (orientation of square-ish images, aug_crop)
  from rng."""
  image, depth, K = crop_to_principal_point(image, depth, K)
  h, w = depth.shape
  resolution = orient_resolution(resolution, w, h, rng)
  target = np.array(resolution)
  if aug_crop > 1:
    target += rng.integers(0, aug_crop)

  size = np.array([w, h])
  scale = max(target / size) + 1e-8
  new_size = tuple(int(n) for n in np.floor(size * scale))
  resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
  image = np.asarray(Image.fromarray(image).resize(new_size, resample=resample))
  depth = cv2.resize(depth, new_size, interpolation=cv2.INTER_NEAREST)
  K = camera_matrix_of_crop(K, size, new_size, scaling=scale)

  l, t = np.round(K[:2, 2] - camera_matrix_of_crop(K, new_size, resolution)[:2, 2]).astype(int)
  return _crop(image, depth, K, l, t, l + resolution[0], t + resolution[1])


def apply_color_jitter(image, rng, strengths=COLOR_JITTER):
  """torchvision ColorJitter(brightness, contrast, saturation, hue) of (H, W, 3) uint8 → uint8.
  A zero strength skips its operation (and its draw), as torchvision does."""
  brightness, contrast, saturation, hue = strengths
  order = rng.permutation(4)
  factors = [None if x == 0 else rng.uniform(max(0.0, 1 - x), 1 + x) for x in (brightness, contrast, saturation)]
  factors.append(None if hue == 0 else rng.uniform(-hue, hue))
  enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
  img = Image.fromarray(image)
  for i in order:
    if factors[i] is None:
      continue
    if i < 3:
      img = enhancers[i](img).enhance(factors[i])
    else:
      h, s, v = img.convert('HSV').split()
      h = Image.fromarray(((np.asarray(h, np.int32) + int(factors[i] * 255)) % 256).astype(np.uint8), 'L')
      img = Image.merge('HSV', (h, s, v)).convert('RGB')
  return np.asarray(img)


def depth_to_world(depth, K, c2w):
  """(H, W) depth, K (3, 3), c2w (4, 4) → (H, W, 3) world points of the pixels (u, v) at integer
  coordinates (DUSt3R's `depthmap_to_absolute_camera_coordinates`; K's skew is ignored as there)."""
  h, w = depth.shape
  u, v = np.meshgrid(np.arange(w), np.arange(h))
  z = depth.astype(np.float64)
  cam = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=-1)
  return cam @ c2w[:3, :3].T + c2w[:3, 3]


def view_from_frame(image, depth, K, c2w, resolution, rng, aug_crop=0, color_jitter=True):
  """One frame → DUSt3R's view dict.

  image (H, W, 3) uint8, depth (H, W) (0 = unknown; non-finite values are treated as 0, DUSt3R asserts
  there are none; Co3d's mask_bg is applied before, by data/multiview.py), K (3, 3) OpenCV, c2w (3 or 4, 4),
  resolution (W, H) landscape.
  Returns img (h, w, 3) float32 in [-1, 1], depthmap (h, w), camera_pose (4, 4), camera_intrinsics
  (3, 3), pts3d (h, w, 3) world, valid_mask (h, w) bool and true_shape int32 (height, width); float32
  arrays. A portrait view (height > width) is stored transposed, (h, w) = (width, height) (§1.3).
  DUSt3R's other keys (dataset, label, instance, idx, rng) are the caller's.
  """
  depth = np.where(np.isfinite(depth), depth, 0).astype(np.float32)
  pose = np.eye(4)
  pose[:np.shape(c2w)[0]] = c2w

  image, depth, K = crop_resize(image, depth, K, resolution, rng, aug_crop)
  if color_jitter:
    image = apply_color_jitter(image, rng)
  pts3d = depth_to_world(depth, K, pose)
  view = {
      'img': (image.astype(np.float32) / 255 - 0.5) / 0.5,  # ToTensor, Normalize(0.5, 0.5)
      'depthmap': depth,
      'camera_pose': pose.astype(np.float32),
      'camera_intrinsics': K.astype(np.float32),
      'pts3d': pts3d.astype(np.float32),
      'valid_mask': (depth > 0) & np.isfinite(pts3d).all(axis=-1),
      'true_shape': np.int32(depth.shape),
  }
  return transpose_to_landscape(view)


def transpose_to_landscape(view):
  """A portrait view (true_shape height > width) stored transposed: image axes swapped, K rows [1, 0, 2]."""
  height, width = view['true_shape']
  if width >= height:
    return view
  view = dict(view)
  for key in ('img', 'depthmap', 'pts3d', 'valid_mask'):
    view[key] = np.ascontiguousarray(view[key].swapaxes(0, 1))
  view['camera_intrinsics'] = view['camera_intrinsics'][[1, 0, 2]]
  return view


def aspect_ratio_for_batch(seed: int, batch_index: int, resolutions=RESOLUTIONS_512) -> tuple[int, int]:
  """The (W, H) of batch `batch_index`: uniform over `resolutions`, a function of (seed, batch_index)."""
  rng = np.random.default_rng([seed, batch_index, _ASPECT_RATIO_STREAM])
  return tuple(resolutions[int(rng.integers(len(resolutions)))])
