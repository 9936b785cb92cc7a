"""Post-processing of an aligned scene, as DUSt3R's (spec dust3r.md §3.5): which points to keep.

  confidence_masks   conf > min_conf_thr on the RAW confidence (>= 1; DUSt3R's library default 3). DUSt3R's
                     demo compares log(slider) to the raw value (dust3r#118); here the threshold has one
                     meaning, the raw confidence, everywhere.
  clean_pointcloud   lowers the confidence of points seen in front of another camera's depth where that
                     camera is more confident (DUSt3R's `clean_pointcloud`, its result exactly; in JAX).
  segment_sky        DUSt3R's colour-rule sky mask (OpenCV HSV, opening, largest components); the job sets the
                     confidence of sky pixels to 0 with `mask_sky`.
"""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage


def confidence_masks(conf, min_conf_thr: float = 3.0):
  """(N, H, W) raw confidences → (N, H, W) bool: the points kept."""
  return np.asarray(conf) > min_conf_thr


@jax.jit
def _clean(conf, intrinsics, world_to_cam, depthmaps, pts3d, sizes, tol, bad_conf):
  n = conf.shape[0]

  def image(i, conf):
    # image i's world points in every camera j: (N, H, W, 3); pixels rounded (half to even, as torch)
    cam = jnp.einsum('hwc,jdc->jhwd', pts3d[i], world_to_cam[:, :3, :3]) + world_to_cam[:, None, None, :3, 3]
    uvw = jnp.einsum('jhwc,jdc->jhwd', cam, intrinsics)
    u = jnp.round(uvw[..., 0] / uvw[..., 2])
    v = jnp.round(uvw[..., 1] / uvw[..., 2])
    z = cam[..., 2]
    h, w = sizes[:, 0, None, None], sizes[:, 1, None, None]   # camera j's own image size
    inside = (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h) & (jnp.arange(n) != i)[:, None, None]
    ui, vi = jnp.clip(u, 0, w - 1).astype(jnp.int32), jnp.clip(v, 0, h - 1).astype(jnp.int32)
    at = jax.vmap(lambda a, vv, uu: a[vv, uu])
    # DUSt3R walks j in order and clips conf_i as it goes; clipping only lowers conf_i, so a point is clipped
    # iff some j finds it in front and less confident than its original value: the same result, in parallel.
    front = inside & (z < (1 - tol) * at(depthmaps, vi, ui)) & (conf[i] < at(conf, vi, ui))
    return conf.at[i].set(jnp.where(front.any(0), jnp.minimum(conf[i], bad_conf), conf[i]))

  return jax.lax.fori_loop(0, n, image, conf)


def _padded(arrays, shape):
  """Per-image arrays (h_i, w_i, ...) → one (N, H, W, ...) float32 array, zero beyond each image."""
  out = np.zeros((len(arrays), *shape, *np.shape(arrays[0])[2:]), np.float32)
  for k, a in enumerate(arrays):
    out[k, :a.shape[0], :a.shape[1]] = a
  return out


def clean_pointcloud(conf, intrinsics, cam_to_world, depthmaps, pts3d, tol: float = 0.001, bad_conf: float = 0.0):
  """New confidences: conf_i clipped to `bad_conf` where image i's point lies in front of camera j's depth (by
  more than `tol`, relative) and conf_i < conf_j there, for every j != i in turn; images in order, each using
  the others' already cleaned values (DUSt3R's order).
  conf, depthmaps (N, H, W); intrinsics (N, 3, 3); cam_to_world (N, 4, 4); pts3d (N, H, W, 3) world. Images
  of different sizes come as lists of per-image arrays (as the Scene holds them), and so does the result:
  they are padded to the largest size, each camera seeing only its own pixels."""
  if not 0 <= tol < 1:
    raise ValueError(f'clean_pointcloud: tol={tol} must be in [0, 1)')
  shapes = [np.shape(c) for c in conf]
  shape = tuple(np.max(shapes, axis=0))
  f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
  world_to_cam = jnp.linalg.inv(f32(cam_to_world))
  cleaned = np.asarray(_clean(f32(_padded(conf, shape)), f32(intrinsics), world_to_cam,
                              f32(_padded(depthmaps, shape)), f32(_padded(pts3d, shape)),
                              jnp.asarray(shapes, jnp.int32), jnp.float32(tol), jnp.float32(bad_conf)))
  if isinstance(conf, list):
    return [c[:h, :w] for c, (h, w) in zip(cleaned, shapes)]
  return cleaned


def segment_sky(img) -> np.ndarray:
  """(H, W, 3) RGB, float in [0, 1] or uint8 → (H, W) bool sky mask, exactly DUSt3R's `segment_sky`.

  DUSt3R converts its RGB image with OpenCV's BGR→HSV, so its "hue 0–30" band is what it calls blue; kept
  as is, since it is the reference's result. Then luminous greys, a 5×5 opening, and the connected
  components (8-connected) larger than half the largest."""
  img = np.asarray(img)
  if np.issubdtype(img.dtype, np.floating):
    img = np.uint8(255 * img.clip(min=0, max=1))
  hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
  s, v = hsv[..., 1], hsv[..., 2]
  mask = cv2.inRange(hsv, np.array([0, 0, 100]), np.array([30, 255, 255])).astype(bool)
  mask |= ((s < 10) & (v > 150)) | ((s < 30) & (v > 180)) | ((s < 50) & (v > 220))
  opened = ndimage.binary_opening(mask, structure=np.ones((5, 5), np.uint8))
  _, labels, stats, _ = cv2.connectedComponentsWithStats(opened.view(np.uint8), connectivity=8)
  sizes = stats[1:, cv2.CC_STAT_AREA]
  if not len(sizes):
    return np.zeros(mask.shape, bool)
  return np.isin(labels, 1 + np.flatnonzero(sizes > sizes.max() / 2))
