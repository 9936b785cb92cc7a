"""Relative pose of a pair from DUSt3R's two pointmaps, scored as PoseDiffusion scores CO3D (spec dust3r.md §4.1,
evaluation.md §2.4): the training validation's RRA@15, RTA@15 and mAA@30, jitted with the eval step.

A batch made with both orders (data/multiview_pipeline.py: element 2k = pair (a, b), 2k+1 = (b, a)) predicts
view b twice: in camera a (element 2k's pts3d_in_other_view) and in camera b (element 2k+1's pts3d), pixel for
pixel. The similarity that maps the second onto the first (weighted Umeyama, weights = the product of the two
confidences on the pixels with GT depth in both) gives camera b → camera a up to scale; against the GT
inv(camera_pose_a)·camera_pose_b:
  e_R = arccos((tr(R_gt R̂ᵀ) − 1)/2) and e_t = the sign-invariant angle between the translations (degrees),
  RRA@15 = mean(e_R < 15)·100, RTA@15 = mean(e_t < 15)·100, mAA@30 = mean over k = 1..30 of mean(max(e_R, e_t) < k)·100
  (≤ 30 for k = 30: the histogram's last bin is closed).
The cosine is clipped to [−1, 1] (PyTorch3D extrapolates below 0.81°: no difference at these thresholds);
a NaN angle counts as 1e6 (PoseDiffusion's rule). evaluation/pose.py has the numpy versions for the evaluate job.
"""
import jax.numpy as jnp


def weighted_umeyama(src, dst, w):
  """s, R, t minimising Σ w‖s·R·src + t − dst‖² per item: src, dst (K, n, 3), w (K, n) → (K,), (K,3,3), (K,3)."""
  w = w / jnp.maximum(jnp.sum(w, axis=1, keepdims=True), 1e-12)
  mu_s, mu_d = jnp.einsum('kn,knc->kc', w, src), jnp.einsum('kn,knc->kc', w, dst)
  xs, xd = src - mu_s[:, None], dst - mu_d[:, None]
  cov = jnp.einsum('kn,kni,knj->kij', w, xd, xs)
  u, sigma, vt = jnp.linalg.svd(cov)
  d = jnp.sign(jnp.linalg.det(u) * jnp.linalg.det(vt))
  flip = jnp.ones_like(sigma).at[:, 2].set(d)
  rot = jnp.einsum('kij,kj,kjl->kil', u, flip, vt)
  var = jnp.einsum('kn,kn->k', w, jnp.sum(xs ** 2, -1))
  scale = jnp.sum(sigma * flip, -1) / jnp.maximum(var, 1e-12)
  return scale, rot, mu_d - scale[:, None] * jnp.einsum('kij,kj->ki', rot, mu_s)


def _angle(cos):
  return jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))


def pair_pose_errors(res1, res2, batch):
  """(rotation, translation) errors in degrees, (B/2,) each, of the pairs of a both-orders batch."""
  b = batch['pts3d1'].shape[0] // 2
  in_a = res2['pts3d_in_other_view'][0::2].reshape(b, -1, 3)
  in_b = res1['pts3d'][1::2].reshape(b, -1, 3)
  w = (res2['conf'][0::2] * res1['conf'][1::2] * batch['valid2'][0::2] * batch['valid1'][1::2]).reshape(b, -1)
  _, rot, t = weighted_umeyama(in_b, in_a, w.astype(jnp.float32))
  gt = jnp.linalg.inv(batch['camera_pose1'][0::2]) @ batch['camera_pose2'][0::2]       # camera b → camera a
  rot_err = _angle((jnp.einsum('kij,kij->k', gt[:, :3, :3], rot) - 1) / 2)
  t_gt, t_pred = gt[:, :3, 3], t
  cos = jnp.abs(jnp.sum(t_gt * t_pred, -1)) / (jnp.linalg.norm(t_gt, axis=-1) * jnp.linalg.norm(t_pred, axis=-1) + 1e-15)
  trans_err = _angle(cos)
  return tuple(jnp.where(jnp.isfinite(e), e, 1e6) for e in (rot_err, trans_err))


def pair_pose_metrics(res1, res2, batch) -> dict:
  """RRA@15, RTA@15, mAA@30 (in %) of a both-orders batch."""
  rot_err, trans_err = pair_pose_errors(res1, res2, batch)
  worst = jnp.maximum(rot_err, trans_err)
  thresholds = jnp.arange(1, 31, dtype=jnp.float32)
  return {'RRA@15': 100 * jnp.mean(rot_err < 15), 'RTA@15': 100 * jnp.mean(trans_err < 15),
          'mAA@30': 100 * jnp.mean((worst[:, None] < thresholds) | ((worst[:, None] == 30) & (thresholds == 30)))}
