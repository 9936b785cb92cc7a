"""D4RT's training loss (spec d4rt.md §5, §13), float32, jit-able.

L = mean_3d[c·λ3D·L3D − λconf·log c] + λ2D·mean_3d[L2D] + λvis·mean_vis[Lvis] + λdisp·mean_3d[Ldisp]
    + λnormal·mean_normal[Lnormal]

Readings of the spec's open points (§5, §11.5, §11.6):
- Normalisation set: per clip, the queries of mask_3d; the mean depth is the mean of z over them (§12.7).
  The target set is divided by its mean z̄*, the predicted set by its own mean ẑ̄ (which carries gradient,
  as DUSt3R's prediction scale does); ẑ̄ is clamped ≥ 1e-3 (§13: at init it can be ≈ 0), and so is z̄*
  (a no-op for valid targets, which have z > 0; it keeps a clip with no valid query finite).
- L3D_i = mean over xyz of |f(P̂_i/ẑ̄) − f(P*_i/z̄*)| with f(x) = sign(x)·log(1 + |x|) (its derivative
  1/(1 + |x|) also at x = 0).
- Confidence: ONE −λconf·log c term. App. A's extracted equation writes "+λconf·Lconf" a second time;
  that reads as the same term written twice (a typo), so it is not added again. A weight '3d' of 0 with
  'conf' > 0 leaves −λconf·log c alone, which is unbounded below (c → ∞): zero both together.
- Ldisp_i = mean over xyz of |d̂_i/ẑ̄ − d*_i/z̄*|: "scale by the same 1/z̄* as L3D" read as the same
  normalisation as L3D, i.e. each side by its own mean depth. The displacement head shares the point
  head's (free) scale, so a prediction equal to the target × s for a clip has Ldisp = 0 like L3D; the
  target's 1/z̄* alone on the prediction would not be scale-free. No f() on displacements (plain L1).
- L2D_i = mean over (u, v) of |uv̂_i − uv*_i| (normalised coordinates, no depth scaling), over mask_uv when the
  batch has it (data/d4rt.py: mask_3d and the target in front of camera t_cam, where a projection exists), else mask_3d.
- Lvis_i = BCE with logits of vis_logit against target_vis, over mask_vis.
- Lnormal_i = 1 − cos(n̂_i, n*_i) over mask_normal (the cosine divides by both norms, eps-clamped).
- Pooling: each term is a masked mean over the batch's valid queries, pooled over clips (a clip with more
  valid queries weighs more), as the project's DUSt3R losses pool over pixels (§5's (1/N)·Σ_i with the
  normaliser inferred per mask); a term whose mask is empty in the whole batch is 0.
- Weights: a weight multiplies its term (weights may be a partial dict over D4RT_WEIGHTS); a weight of 0
  drops the term from the loss (0 × a finite term, with a zero gradient). Where the weight is the Python
  number 0 and the term's inputs are missing, the term is skipped and not in the metrics (e.g. λnormal = 0
  for Stereo4D, whose batches may carry no normals); otherwise it is still computed and logged.

Masked entries are replaced by harmless constants before any arithmetic, so extreme (finite) values there
give neither a NaN loss nor a NaN gradient; their gradient is exactly 0.

pred (model): xyz (B,Q,3) with the +1 depth offset applied, uv (B,Q,2), vis_logit (B,Q), disp (B,Q,3),
normal (B,Q,3), conf (B,Q) ≥ 1. batch (data pipeline): target_xyz, target_uv, target_vis (float {0,1}),
target_disp, target_normal, and the bool masks mask_3d (L3D, L2D, Ldisp), mask_vis, mask_normal.
"""
import jax
import jax.numpy as jnp

D4RT_WEIGHTS = {'3d': 1.0, '2d': 0.1, 'vis': 0.1, 'disp': 0.1, 'normal': 0.5, 'conf': 0.2}
MIN_MEAN_DEPTH = 1e-3
_EPS = 1e-8


@jax.custom_jvp
def signed_log1p(x):
  """f(x) = sign(x)·log(1 + |x|), elementwise."""
  return jnp.sign(x) * jnp.log1p(jnp.abs(x))


@signed_log1p.defjvp
def _signed_log1p_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  return signed_log1p(x), t / (1.0 + jnp.abs(x))


def _f32(x):
  return jnp.asarray(x, jnp.float32)


def _masked(x, mask, fill=0.0):
  """x where mask (broadcast over trailing axes), fill elsewhere."""
  mask = mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))
  return jnp.where(mask, x, fill)


def _masked_mean(values, mask):
  """Mean of values (B,Q) over the True entries of mask (pooled over the batch); 0 if there are none."""
  n = jnp.sum(mask)
  return jnp.where(n > 0, jnp.sum(jnp.where(mask, values, 0.0)) / jnp.maximum(n, 1), 0.0)


def _norm(x, eps=0.0):
  """‖x‖ over the last axis, max(‖x‖, eps), with a finite gradient at x = 0."""
  sq = jnp.sum(jnp.square(x), axis=-1)
  return jnp.sqrt(jnp.maximum(sq, max(eps, _EPS) ** 2))


def mean_depth(xyz, mask):
  """(B,) mean z over each clip's masked queries, clamped ≥ MIN_MEAN_DEPTH (also for a clip with none)."""
  total = jnp.sum(jnp.where(mask, xyz[..., 2], 0.0), axis=1)
  return jnp.maximum(total / jnp.maximum(jnp.sum(mask, axis=1), 1), MIN_MEAN_DEPTH)


def bce_with_logits(logit, target):
  """Binary cross-entropy of sigmoid(logit) against target in [0, 1], stable for large |logit|."""
  return jnp.maximum(logit, 0.0) - logit * target + jnp.log1p(jnp.exp(-jnp.abs(logit)))


def _wanted(weight, pred, batch, pred_keys, batch_keys):
  """Whether to compute a term: its weight is not the Python number 0, or all its inputs are there."""
  if not (isinstance(weight, (int, float)) and weight == 0):
    return True
  return all(k in pred for k in pred_keys) and all(k in batch for k in batch_keys)


def d4rt_loss(pred, batch, weights=D4RT_WEIGHTS):
  """The D4RT loss → (loss, metrics): each term (unweighted), mean conf, the scale-normalised 3D error
  mean ‖P̂/ẑ̄ − P*/z̄*‖ and the visibility accuracy (logit > 0 vs target_vis > 0.5), all float32 scalars."""
  unknown = sorted(set(weights) - set(D4RT_WEIGHTS))
  if unknown:
    raise ValueError(f'd4rt_loss: unknown weight(s) {unknown}; the terms are {sorted(D4RT_WEIGHTS)}')
  weights = {**D4RT_WEIGHTS, **weights}
  m3 = jnp.asarray(batch['mask_3d'], bool)
  metrics = {}

  xyz = _masked(_f32(pred['xyz']), m3, 1.0)
  xyz_gt = _masked(_f32(batch['target_xyz']), m3, 1.0)
  z_pred = mean_depth(xyz, m3)[:, None, None]
  z_gt = jax.lax.stop_gradient(mean_depth(xyz_gt, m3))[:, None, None]
  p, g = xyz / z_pred, xyz_gt / z_gt
  l3d = jnp.mean(jnp.abs(signed_log1p(p) - signed_log1p(g)), axis=-1)
  conf = _masked(_f32(pred['conf']), m3, 1.0)
  log_conf = jnp.log(conf)
  conf_term = conf * weights['3d'] * l3d - weights['conf'] * log_conf
  loss = _masked_mean(conf_term, m3)
  metrics['loss_3d'] = _masked_mean(l3d, m3)
  metrics['loss_3d_conf'] = loss
  metrics['mean_log_conf'] = _masked_mean(log_conf, m3)
  metrics['mean_conf'] = _masked_mean(conf, m3)
  metrics['scaled_3d_error'] = _masked_mean(_norm(p - g), m3)

  if _wanted(weights['2d'], pred, batch, ['uv'], ['target_uv']):
    m2 = jnp.asarray(batch.get('mask_uv', m3), bool)  # data/d4rt.py: mask_3d and in front of camera t_cam
    uv = _masked(_f32(pred['uv']), m2)
    uv_gt = _masked(_f32(batch['target_uv']), m2)
    metrics['loss_2d'] = _masked_mean(jnp.mean(jnp.abs(uv - uv_gt), axis=-1), m2)
    loss = loss + weights['2d'] * metrics['loss_2d']

  if _wanted(weights['disp'], pred, batch, ['disp'], ['target_disp']):
    disp = _masked(_f32(pred['disp']), m3) / z_pred
    disp_gt = _masked(_f32(batch['target_disp']), m3) / z_gt
    metrics['loss_disp'] = _masked_mean(jnp.mean(jnp.abs(disp - disp_gt), axis=-1), m3)
    loss = loss + weights['disp'] * metrics['loss_disp']

  if _wanted(weights['vis'], pred, batch, ['vis_logit'], ['target_vis', 'mask_vis']):
    mv = jnp.asarray(batch['mask_vis'], bool)
    logit = _masked(_f32(pred['vis_logit']), mv)
    vis_gt = _masked(_f32(batch['target_vis']), mv)
    metrics['loss_vis'] = _masked_mean(bce_with_logits(logit, vis_gt), mv)
    metrics['vis_accuracy'] = _masked_mean(((logit > 0) == (vis_gt > 0.5)).astype(jnp.float32), mv)
    loss = loss + weights['vis'] * metrics['loss_vis']

  if _wanted(weights['normal'], pred, batch, ['normal'], ['target_normal', 'mask_normal']):
    mn = jnp.asarray(batch['mask_normal'], bool)
    up = jnp.array([0.0, 0.0, 1.0], jnp.float32)
    n_pred = jnp.where(mn[..., None], _f32(pred['normal']), up)
    n_gt = jnp.where(mn[..., None], _f32(batch['target_normal']), up)
    cos = jnp.sum(n_pred * n_gt, axis=-1) / (_norm(n_pred, 1e-6) * _norm(n_gt, 1e-6))
    metrics['loss_normal'] = _masked_mean(1.0 - cos, mn)
    loss = loss + weights['normal'] * metrics['loss_normal']

  return loss, metrics
