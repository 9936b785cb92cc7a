"""What every export shares: reading a scene, and the camera conventions.

Conventions (README "Export conventions"):
  * Camera axes are OpenCV's everywhere except nerfstudio's transforms.json and the GLB: x right, y down,
    z forward. `cam_to_world` (4,4) maps camera coordinates to world ones; `world_to_cam` is its inverse.
  * The scene's intrinsics K (N,3,3) are DUSt3R's, in processed-image pixels with *pixel-index*
    coordinates (OpenCV's convention): the 3D point of pixel (column c, row r) projects to exactly (c, r).
    The global alignment unprojects depth on the integer grid with pp = (W/2, H/2) (spec/dust3r.md §3.3),
    and DUSt3R's training data use the same convention (its crop/rescale of intrinsics goes OpenCV → COLMAP
    (+0.5), scales, and back (−0.5); depth is unprojected on the integer grid). So pp = (W/2, H/2) sits
    half a pixel right of / below the image centre ((W−1)/2, (H−1)/2): a DUSt3R quirk, kept as is.
  * Intrinsics at the original image size (cameras.json, COLMAP, transforms.json) use COLMAP's pixel-edge
    convention: pixel (c0, r0) of the original image covers [c0, c0+1)×[r0, r0+1), its centre at
    (c0+0.5, r0+0.5), the image spans [0, W0]×[0, H0]. Going from one to the other:
      K0 = A @ S @ K,  S = [[1,0,.5],[0,1,.5],[0,0,1]] (index → edge coordinates, processed image),
      A = to_original_matrix(view) (edge coordinates, processed → original: resize and crop undone).
    For OpenCV's pixel-centre-at-integer convention at the original size subtract 0.5 from cx0 and cy0.
"""
import numpy as np

from dynadust3r_jax.common.geometry import INDEX_TO_EDGE, invert_pose
from dynadust3r_jax.inference.images import to_original_matrix


def original_intrinsics(K, view):
  """(3,3) K in processed pixel-index coordinates → (3,3) K0 at the original size, pixel-edge convention."""
  return to_original_matrix(view) @ INDEX_TO_EDGE @ np.asarray(K, np.float64)


def processed_intrinsics(K0, view):
  """(3,3) K0 of the original image in OpenCV's pixel-index convention → (3,3) K of the processed image
  (same convention): what a dataset's K becomes after load_images' resize and crop."""
  return np.linalg.inv(INDEX_TO_EDGE) @ np.linalg.inv(to_original_matrix(view)) @ INDEX_TO_EDGE @ np.asarray(K0, np.float64)


def processed_to_original_pixels(xy, view):
  """(...,2) processed pixel-index coordinates (centre of pixel (c, r) = (c, r)) → (...,2) original pixel-edge
  coordinates (centre of pixel (c0, r0) = (c0+0.5, r0+0.5)), the convention of COLMAP's points2D."""
  M = to_original_matrix(view) @ INDEX_TO_EDGE
  xy = np.asarray(xy, np.float64)
  return xy * np.diag(M)[:2] + M[:2, 2]


def to_uint8(rgb):
  """(...,3) float RGB in [0,1] → uint8 (rounded, clipped)."""
  return np.round(np.clip(np.asarray(rgb, np.float64), 0., 1.) * 255.).astype(np.uint8)


def scene_attr(scene, name):
  """scene.name, called if it is a method (DUSt3R-style accessors); None when missing."""
  value = getattr(scene, name, None)
  return value() if callable(value) else value


def read_scene(scene, views=None):
  """A duck-typed scene → dict of numpy arrays, per-image lists where images may differ in size.

  Reads cam_to_world (N,4,4), intrinsics (N,3,3), depthmaps [(H,W)], pts3d [(H,W,3)] world, conf [(H,W)],
  masks [(H,W)] bool (default: all pixels) and imgs [(H,W,3)] in [0,1] (default: the views' 'img', else
  grey). Masks also drop non-finite points. Returns keys 'cam_to_world', 'world_to_cam', 'K', 'depth',
  'pts3d', 'conf', 'mask', 'rgb', 'n'.
  """
  c2w = np.asarray(scene_attr(scene, 'cam_to_world'), np.float64)
  K = np.asarray(scene_attr(scene, 'intrinsics'), np.float64)
  n = len(c2w)
  if c2w.shape != (n, 4, 4) or K.shape != (n, 3, 3):
    raise ValueError(f'scene: cam_to_world {c2w.shape} and intrinsics {K.shape} must be (N,4,4) and (N,3,3)')
  pts3d = [np.asarray(p, np.float32) for p in scene_attr(scene, 'pts3d')]
  depth = [np.asarray(d, np.float32) for d in scene_attr(scene, 'depthmaps')]
  conf = scene_attr(scene, 'conf')
  conf = [np.asarray(c, np.float32) for c in conf] if conf is not None else [np.ones(d.shape, np.float32)
                                                                                for d in depth]
  masks = scene_attr(scene, 'masks')
  masks = [np.asarray(m, bool) for m in masks] if masks is not None else [np.ones(d.shape, bool) for d in depth]
  masks = [m & np.isfinite(p).all(-1) for m, p in zip(masks, pts3d)]
  imgs = scene_attr(scene, 'imgs')
  if imgs is not None:
    rgb = [np.asarray(x, np.float32) for x in imgs]
  elif views is not None and all('img' in v for v in views):
    rgb = [(np.asarray(v['img'], np.float32)[0] + 1.) / 2. for v in views]  # (1,H,W,3) in [-1,1]
  else:
    rgb = [np.full(d.shape + (3,), 0.5, np.float32) for d in depth]
  for name, arrs in (('pts3d', pts3d), ('depthmaps', depth), ('conf', conf), ('masks', masks), ('imgs', rgb)):
    if len(arrs) != n:
      raise ValueError(f'scene: {name} has {len(arrs)} images, cam_to_world has {n}')
  for i in range(n):
    h, w = depth[i].shape
    if (pts3d[i].shape != (h, w, 3) or conf[i].shape != (h, w) or masks[i].shape != (h, w)
        or rgb[i].shape != (h, w, 3)):
      raise ValueError(f'scene: image {i} has depthmap {depth[i].shape}, pts3d {pts3d[i].shape}, conf '
                       f'{conf[i].shape}, mask {masks[i].shape}, imgs {rgb[i].shape}: expected (H,W)(,3)')
  if views is not None:
    if len(views) != n:
      raise ValueError(f'{len(views)} views for a scene of {n} images')
    for i, v in enumerate(views):
      if 'true_shape' in v and tuple(np.asarray(v['true_shape']).reshape(-1)[:2]) != depth[i].shape:
        raise ValueError(f'view {i} ({v.get("name")}): true_shape {tuple(np.asarray(v["true_shape"])[0])} '
                         f'differs from the scene image {depth[i].shape}')
  return {'n': n, 'cam_to_world': c2w, 'world_to_cam': invert_pose(c2w), 'K': K, 'depth': depth,
          'pts3d': pts3d, 'conf': conf, 'mask': masks, 'rgb': rgb}


def image_names(views):
  """The views' 'name's, which must be unique (they key cameras.json and COLMAP's images)."""
  names = [str(v['name']) for v in views]
  dup = sorted({x for x in names if names.count(x) > 1})
  if dup:
    raise ValueError(f'image names must be unique for the exports; repeated: {dup}')
  return names


def original_size(view):
  """(width, height) of the original image."""
  h0, w0 = view['orig_shape']
  return int(w0), int(h0)
