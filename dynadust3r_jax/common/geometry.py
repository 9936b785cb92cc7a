"""The numpy geometry several layers share (data/, inference, exports, evaluation): rigid inverse, transforms,
projection, camera-axis and pixel conventions, and DUSt3R's global-alignment geometry (spec dust3r.md §3.3):
quaternions, signed log1p/expm1, weighted Umeyama, Weiszfeld focal, pose parameters.

Quaternions are roma's XYZW. The `jnp` functions are used inside the jitted optimiser; the `np` ones
(float64) by the one-off initialisation and everywhere else.
"""
import jax.numpy as jnp
import numpy as np

# OpenCV camera axes (x right, y down, z forward) <-> OpenGL ones (x right, y up, z backward); its own inverse.
OPENCV_TO_OPENGL = np.diag([1., -1., -1., 1.])

# Pixel-index coordinates (pixel centres at integers) → pixel-edge coordinates (centres at +0.5).
INDEX_TO_EDGE = np.array([[1., 0., .5], [0., 1., .5], [0., 0., 1.]])


def invert_pose(T):
  """(...,4,4) rigid transform → its inverse [R^T, -R^T t] (exact for rotations)."""
  T = np.asarray(T, np.float64)
  R, t = T[..., :3, :3], T[..., :3, 3]
  out = np.zeros_like(T)
  out[..., :3, :3] = np.swapaxes(R, -1, -2)
  out[..., :3, 3] = -np.einsum('...ji,...j->...i', R, t)
  out[..., 3, 3] = 1.
  return out


def signed_expm1(x):
  """sign(x)·expm1(|x|) (jnp): decodes a translation parameter."""
  return jnp.sign(x) * jnp.expm1(jnp.abs(x))


def signed_log1p(x):
  """sign(x)·log1p(|x|) (np): encodes a translation parameter."""
  x = np.asarray(x, np.float64)
  return np.sign(x) * np.log1p(np.abs(x))


def quat_to_rotmat(q):
  """(...,4) XYZW quaternion, not necessarily unit → (...,3,3) rotation of q/‖q‖ (jnp, roma's formula)."""
  q = q / jnp.linalg.norm(q, axis=-1, keepdims=True)
  x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  rows = [x * x - y * y - z * z + w * w, 2 * (x * y - z * w), 2 * (x * z + y * w),
          2 * (x * y + z * w), -x * x + y * y - z * z + w * w, 2 * (y * z - x * w),
          2 * (x * z - y * w), 2 * (y * z + x * w), -x * x - y * y + z * z + w * w]
  return jnp.stack(rows, axis=-1).reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(R):
  """(...,3,3) rotation → (...,4) unit XYZW quaternion (np), Markley's method with roma's sign choice."""
  R = np.asarray(R, np.float64)
  A = np.swapaxes(R, -1, -2)
  a11, a12, a13 = A[..., 0, 0], A[..., 0, 1], A[..., 0, 2]
  a21, a22, a23 = A[..., 1, 0], A[..., 1, 1], A[..., 1, 2]
  a31, a32, a33 = A[..., 2, 0], A[..., 2, 1], A[..., 2, 2]
  x = np.stack([1 + a11 - a22 - a33, a12 + a21, a13 + a31, a23 - a32,
                a21 + a12, 1 + a22 - a33 - a11, a23 + a32, a31 - a13,
                a31 + a13, a32 + a23, 1 + a33 - a11 - a22, a12 - a21,
                a23 - a32, a31 - a13, a12 - a21, 1 + a11 + a22 + a33], axis=-1).reshape(R.shape[:-2] + (4, 4))
  i = np.argmax(np.diagonal(x, axis1=-2, axis2=-1), axis=-1)
  x_i = np.take_along_axis(x, i[..., None, None], axis=-2)[..., 0, :]
  return x_i / np.linalg.norm(x_i, axis=-1, keepdims=True)


def pose_to_matrix(pose):
  """(...,≥7) parameters [q XYZW (4), τ (3), …] → (...,4,4) [R | sign(τ)·expm1|τ|] (jnp)."""
  R = quat_to_rotmat(pose[..., :4])
  t = signed_expm1(pose[..., 4:7])
  top = jnp.concatenate([R, t[..., None]], axis=-1)
  bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], pose.dtype), pose.shape[:-1] + (1, 4))
  return jnp.concatenate([top, bottom], axis=-2)


def matrix_to_pose(T, scale=None):
  """(4,4) [R|t] → (7,) [q, signed_log1p(t/scale)] or, with a scale, (8,) [q, signed_log1p(t/s), log s] (np)."""
  T = np.asarray(T, np.float64)
  q = rotmat_to_quat(T[:3, :3])
  if scale is None:
    return np.concatenate([q, signed_log1p(T[:3, 3])])
  return np.concatenate([q, signed_log1p(T[:3, 3] / scale), [np.log(scale)]])


def umeyama(x, y, weights):
  """Weighted similarity (s, R (3,3), t (3,)) minimising Σ w‖s R x + t − y‖² (np float64; roma's
  rigid_points_registration with compute_scaling). x, y: (...,3) matched points, weights: (...)."""
  x = np.asarray(x, np.float64).reshape(-1, 3)
  y = np.asarray(y, np.float64).reshape(-1, 3)
  w = np.asarray(weights, np.float64).reshape(-1)
  w = w / w.sum()
  xm, ym = w @ x, w @ y
  xc, yc = x - xm, y - ym
  M = np.einsum('k,ki,kj->ij', w, yc, xc)
  U, _, Vt = np.linalg.svd(M)
  d = np.sign(np.linalg.det(U @ Vt))
  R = U @ np.diag([1.0, 1.0, d]) @ Vt
  s = np.sum(R * M) / np.einsum('k,ki,ki->', w, xc, xc)
  return s, R, ym - s * R @ xm


def similarity_matrix(s, R, t):
  """(4,4) [s·R | t]."""
  T = np.eye(4)
  T[:3, :3] = s * np.asarray(R)
  T[:3, 3] = np.asarray(t).reshape(3)
  return T


def apply_transform(T, pts):
  """(4,4) transform applied to (...,3) points (np)."""
  return pts @ T[:3, :3].T + T[:3, 3]


def project(K: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(n, 3) camera points → ((n, 2) normalised (u, v), (n,) bool z > 0 and (u, v) ∈ [0, 1)²), K normalised
  by the image size (D4RT's K^n, data/d4rt.py)."""
  z = points[:, 2]
  with np.errstate(divide='ignore', invalid='ignore'):
    uv = np.stack([K[0, 0] * points[:, 0] / z + K[0, 2], K[1, 1] * points[:, 1] / z + K[1, 2]], -1)
  inside = (z > 0) & np.all((uv >= 0) & (uv < 1), -1)
  return uv, inside


def pixel_grid(H, W):
  """(H,W,2) float32 pixel coordinates (u = column, v = row)."""
  return np.mgrid[:W, :H].T.astype(np.float32)


def estimate_focal_weiszfeld(pts3d, pp=None, n_iter=10):
  """Focal of a (H,W,3) pointmap in its camera frame: L2 closed form, then `n_iter` IRLS (Weiszfeld) steps
  minimising Σ‖p − f·(x/z, y/z)‖ over centred pixels p (post_process.estimate_focal_knowing_depth). pp
  defaults to (W/2, H/2). Returns a float."""
  H, W, _ = pts3d.shape
  pp = np.array([W / 2, H / 2]) if pp is None else np.asarray(pp, np.float64)
  pixels = pixel_grid(H, W).reshape(-1, 2).astype(np.float64) - pp
  pts = np.asarray(pts3d, np.float64).reshape(-1, 3)
  with np.errstate(divide='ignore', invalid='ignore'):
    xy_over_z = np.nan_to_num(pts[:, :2] / pts[:, 2:3], nan=0.0, posinf=0.0, neginf=0.0)
  dot_xy_px = np.sum(xy_over_z * pixels, axis=-1)
  dot_xy_xy = np.sum(xy_over_z ** 2, axis=-1)
  focal = dot_xy_px.mean() / dot_xy_xy.mean()
  for _ in range(n_iter):
    dist = np.linalg.norm(pixels - focal * xy_over_z, axis=-1)
    w = 1.0 / np.maximum(dist, 1e-8)
    focal = (w * dot_xy_px).mean() / (w * dot_xy_xy).mean()
  return float(focal)


def rotation_angle_deg(R1, R2):
  """Angle in degrees of R1ᵀR2 for (...,3,3) rotations (np; atan2 form, accurate near 0)."""
  Rrel = np.swapaxes(np.asarray(R1, np.float64), -1, -2) @ np.asarray(R2, np.float64)
  cos = (np.trace(Rrel, axis1=-2, axis2=-1) - 1) / 2
  axis = np.stack([Rrel[..., 2, 1] - Rrel[..., 1, 2], Rrel[..., 0, 2] - Rrel[..., 2, 0],
                   Rrel[..., 1, 0] - Rrel[..., 0, 1]], axis=-1)
  return np.degrees(np.arctan2(np.linalg.norm(axis, axis=-1) / 2, cos))
