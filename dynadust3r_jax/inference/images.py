"""Image loading for reconstruction: DUSt3R's `load_images` (spec/dust3r.md §1.2), NHWC and numpy.

Each image goes through exactly the steps of `dust3r.utils.image.load_images`:
  EXIF transpose → RGB → resize (size == 224: long side round(224·max(W/H, H/W)), i.e. short side ≈ 224;
  otherwise: long side = size; new dims int(round(x·long/S)); LANCZOS when shrinking, BICUBIC otherwise)
  → centre crop (224: square of side 2·min(W//2, H//2); otherwise both dims floored to multiples of
  `patch_size`, and a square result becomes 4:3 (height 3/4 of the width) unless `square_ok`)
  → x = (rgb/255 − 0.5)/0.5 in float32.

Each result is a dict
  'img': (1,H,W,3) float32 in [-1,1]   'true_shape': (1,2) int32 [[H,W]]   'idx': int   'instance': str(idx)
plus what exports need to go back to the original image:
  'name': file name (video frames: '<video stem>_<frame index:06d>')
  'orig_shape': (H0, W0) of the image as displayed (after the EXIF transpose)
  'resized_shape': (H1, W1) after the resize, before the crop
  'crop_offset': (top, left) of the crop in the resized image, in pixels
See `to_original_matrix` for the exact coordinate mapping.
"""
import glob
import os

import numpy as np
import PIL.Image
from PIL.ImageOps import exif_transpose

from dynadust3r_jax.common.video import VideoError, open_video

try:  # optional HEIC/HEIF support, as in DUSt3R
  from pillow_heif import register_heif_opener  # pylint: disable=import-error
  register_heif_opener()
  IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.heic', '.heif')
except ImportError:
  IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v')


def load_images(paths_or_dir, size=512, square_ok=False, patch_size=16, frame_stride=1, max_frames=None,
                verbose=False, keep_original=False):
  """Load images (a folder, a glob pattern, a list of image paths, or one video file) as DUSt3R does.

  Folder and glob: the files with an image extension (case-insensitive .jpg/.jpeg/.png, + .heic/.heif
  when pillow_heif is installed), sorted by name; other entries are skipped as in DUSt3R. A list: every entry
  must be an image file. A video (.mp4 .avi .mov .mkv .webm .m4v): frames 0, frame_stride, 2·frame_stride, …
  (at most max_frames). 'idx' counts the loaded images from 0. keep_original: also keep each decoded image
  (PIL RGB, EXIF-transposed, original size) as 'original', for `save_originals` (no second decoding).
  """
  return _load(_list_sources(paths_or_dir, frame_stride, max_frames), size, square_ok, patch_size, verbose,
               keep_original)


def load_arrays(images, names, size=512, square_ok=False, patch_size=16, keep_original=False):
  """`load_images` for images already in memory (e.g. an evaluation dataset's frames): (H,W,3) uint8 RGB
  arrays, one name each, processed exactly as image files are."""
  if len(images) != len(names):
    raise ValueError(f'load_arrays: {len(images)} images for {len(names)} names')
  sources = [(name, lambda im=im: PIL.Image.fromarray(np.asarray(im, np.uint8)).convert('RGB'))
             for im, name in zip(images, names)]
  return _load(sources, size, square_ok, patch_size, False, keep_original)


def _load(sources, size, square_ok, patch_size, verbose, keep_original):
  imgs = []
  for name, open_image in sources:
    img = open_image()  # PIL RGB, EXIF-transposed
    out = _preprocess(img, name, size, square_ok, patch_size)
    out['idx'] = len(imgs)
    out['instance'] = str(len(imgs))
    if keep_original:
      out['original'] = img
    if verbose:
      (h0, w0), (_, h, w) = out['orig_shape'], out['img'].shape[:3]
      print(f' - adding {name} with resolution {w0}x{h0} --> {w}x{h}')
    imgs.append(out)
  return imgs


def save_originals(views, directory):
  """Write each view's 'original' (load_images(..., keep_original=True)) as directory/<name>: what the
  exports' image paths (transforms.json's images/<name>) point at. A name without an image suffix (a
  duplicated single image's '<name>_2') is written as PNG under that name."""
  os.makedirs(directory, exist_ok=True)
  formats = PIL.Image.registered_extensions()
  for view in views:
    ext = os.path.splitext(view['name'])[1].lower()
    view['original'].save(os.path.join(directory, view['name']), format=formats.get(ext, 'PNG'), quality=95)


def to_original_matrix(view):
  """(3,3) float64 A mapping processed pixel coordinates to original ones: [x0, y0, 1] = A @ [x, y, 1].

  Coordinates are continuous with pixel edges at integers (pixel (c, r) covers [c, c+1)×[r, r+1), its centre
  at (c+0.5, r+0.5)); this is the convention of PIL's resize (and COLMAP's).
    x0 = (x + left)·W0/W1,   y0 = (y + top)·H0/H1
  with (H0, W0) = orig_shape, (H1, W1) = resized_shape, (top, left) = crop_offset. The two scales can
  differ slightly (the resized dims are rounded). DUSt3R's K puts pixel (c, r) at (c, r) (OpenCV's
  convention), so the original-size K is A @ [[1,0,.5],[0,1,.5],[0,0,1]] @ K: `export.original_intrinsics`.
  """
  (h0, w0), (h1, w1), (top, left) = view['orig_shape'], view['resized_shape'], view['crop_offset']
  sx, sy = w0 / w1, h0 / h1
  return np.array([[sx, 0., sx * left], [0., sy, sy * top], [0., 0., 1.]])


def _preprocess(img, name, size, square_ok, patch_size):
  """One PIL RGB image → the output dict (without idx/instance)."""
  w0, h0 = img.size
  if size == 224:
    img = _resize_long_side(img, round(size * max(w0 / h0, h0 / w0)))  # short side → ~224
  else:
    img = _resize_long_side(img, size)
  w1, h1 = img.size
  cx, cy = w1 // 2, h1 // 2
  if size == 224:
    halfw = halfh = min(cx, cy)
  else:
    halfw, halfh = ((2 * cx) // patch_size) * (patch_size // 2), ((2 * cy) // patch_size) * (patch_size // 2)
    if not square_ok and w1 == h1:
      halfh = 3 * halfw / 4  # a float, rounded by PIL's crop like the box below
  box = (cx - halfw, cy - halfh, cx + halfw, cy + halfh)
  left, top, right, bottom = (int(round(v)) for v in box)  # what PIL.Image.crop does with the box
  if right - left < patch_size or bottom - top < patch_size:
    raise ValueError(f'{name}: a {w0}x{h0} image becomes {right - left}x{bottom - top} at size={size}, '
                     f'smaller than one {patch_size}-pixel patch; use a larger image')
  img = img.crop(box)
  rgb = np.asarray(img, dtype=np.uint8)  # (H,W,3)
  x = (rgb.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)  # torchvision's ops
  h, w = rgb.shape[:2]
  return {'img': x[None],  # (1,H,W,3)
          'true_shape': np.array([[h, w]], dtype=np.int32),  # (1,2)
          'name': name, 'orig_shape': (h0, w0), 'resized_shape': (h1, w1), 'crop_offset': (top, left)}


def _resize_long_side(img, long_edge):
  """DUSt3R's _resize_pil_image: long side → long_edge; LANCZOS when shrinking, BICUBIC otherwise."""
  s = max(img.size)
  interp = PIL.Image.LANCZOS if s > long_edge else PIL.Image.BICUBIC
  new_size = tuple(int(round(x * long_edge / s)) for x in img.size)
  return img.resize(new_size, interp)


def _is_image(path):
  return str(path).lower().endswith(IMAGE_EXTENSIONS)


def _is_video(path):
  return str(path).lower().endswith(VIDEO_EXTENSIONS)


def _list_sources(paths_or_dir, frame_stride, max_frames):
  """→ [(name, open_image)] where open_image() returns a PIL RGB image (EXIF-transposed)."""
  exts = ', '.join(IMAGE_EXTENSIONS)
  if isinstance(paths_or_dir, (list, tuple)):
    if not paths_or_dir:
      raise ValueError('load_images: empty list of images')
    for p in paths_or_dir:
      if not os.path.isfile(p):
        raise FileNotFoundError(f'{p}: no such image file')
      if not _is_image(p):
        raise ValueError(f'{p}: not an image file (accepted: {exts})')
    return [_image_source(p) for p in paths_or_dir]
  if not isinstance(paths_or_dir, (str, os.PathLike)):
    raise TypeError(f'load_images: expected a folder, a glob pattern, a video, or a list of image paths, '
                    f'got {type(paths_or_dir).__name__}')
  path = os.fspath(paths_or_dir)
  if os.path.isdir(path):
    names = [n for n in sorted(os.listdir(path)) if _is_image(n) and os.path.isfile(os.path.join(path, n))]
    if not names:
      raise ValueError(f'{path}: no images in this folder (accepted: {exts})')
    return [_image_source(os.path.join(path, n)) for n in names]
  if os.path.isfile(path):
    if _is_video(path):
      return _video_sources(path, frame_stride, max_frames)
    if _is_image(path):
      return [_image_source(path)]
    raise ValueError(f'{path}: neither an image ({exts}) nor a video ({", ".join(VIDEO_EXTENSIONS)})')
  if glob.has_magic(path):
    matches = [p for p in sorted(glob.glob(path)) if os.path.isfile(p) and _is_image(p)]
    if not matches:
      raise ValueError(f'{path}: the pattern matches no image files (accepted: {exts})')
    return [_image_source(p) for p in matches]
  raise FileNotFoundError(f'{path}: no such file, folder or glob pattern')


def _image_source(path):
  def open_image():
    try:
      with PIL.Image.open(path) as f:
        return exif_transpose(f).convert('RGB')  # convert() decodes: truncated files fail here
    except (OSError, ValueError, SyntaxError) as e:  # PIL.UnidentifiedImageError is an OSError
      raise ValueError(f'{path}: unreadable image ({type(e).__name__}: {e})') from None
  return os.path.basename(path), open_image


def _video_sources(path, frame_stride, max_frames):
  if int(frame_stride) < 1:
    raise ValueError(f'load_images: frame_stride must be >= 1, got {frame_stride}')
  try:
    video = open_video(path)
  except VideoError as e:
    raise ValueError(str(e)) from None
  indices = list(range(0, len(video), int(frame_stride)))
  if max_frames is not None:
    indices = indices[:int(max_frames)]
  if not indices:
    raise ValueError(f'{path}: the video has no frames')
  stem = os.path.splitext(os.path.basename(path))[0]

  def frame_source(i):
    def open_image():
      try:
        return PIL.Image.fromarray(video[i]).convert('RGB')  # (H,W,3) uint8
      except VideoError as e:
        raise ValueError(str(e)) from None
    return f'{stem}_{i:06d}.png', open_image
  return [frame_source(i) for i in indices]
