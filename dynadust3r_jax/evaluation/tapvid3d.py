"""TAPVid-3D metrics (spec evaluation.md §4.4): the official `compute_tapvid3d_metrics` in numpy.

Same name, arguments and output keys as tapnet's `tapvid3d/evaluation/metrics.py`, and the same numbers.
No protocol calls it yet (the tests hold it to the official numbers): it is the metric of the TAPVid-3D tracking
protocol the evaluate job is to run on track-predicting models (D4RT).
Per video (or per track with get_trackwise_metrics), with `s` the scale from `scaling`:

  occlusion_accuracy = mean[pred_occ == gt_occ]
  within_δ  = ‖s·pred − gt‖² < thr_δ²,  thr_δ = δ·z_gt/√(fx·fy)  (or the fixed metric thr_δ, in metres)
  pts_within_δ = Σ(within ∧ visible) / Σ visible
  jaccard_δ    = TP / (Σ visible + FP),  TP = within ∧ visible ∧ pred_visible,
                 FP = pred_visible ∧ (¬visible ∨ ¬within)
  average_pts_within_thresh, average_jaccard = means over δ ∈ {1, 2, 4, 8, 16}

Where the official code raises, these cases are given a value here instead (and only there do the two differ):
  - 'per_trajectory' with unbatched tracks and query_points of shape (n, 3): the official
    np.take_along_axis needs (1, n, 3) and raises (so tapnet's evaluate_model.py, which passes (n, 3),
    scores 'per_trajectory' as all zeros); here the batch axis is added;
  - 'local_neighborhood' without get_trackwise_metrics: the official averages over δ with
    np.stack(axis=-2) on scalars and raises; here the averages are scalars too;
  - 'median', 'mean', 'median_on_queries' with a batch of several videos: the official (b, 1, 1) scale does
    not broadcast against (b, n, t, 3) (and its 'median_on_queries' indexing mixes videos); here each video
    gets its own s. With one video (and for unbatched inputs) the two agree.
"""
import numpy as np

THRESHOLDS = (1, 2, 4, 8, 16)
# Fixed metric thresholds (metres) used in place of thr_δ when use_fixed_metric_threshold is set.
PIXEL_TO_FIXED_METRIC_THRESH = {1: 0.01, 2: 0.04, 4: 0.16, 8: 0.64, 16: 2.56}
_ORDERS = ('n t', 't n', 'b n t', 'b t n')


def get_pointwise_threshold_multiplier(gt_tracks, intrinsics_params):
  """z_gt / √(fx·fy): one pixel of the (rescaled) image back-projected to each GT point's depth."""
  mean_focal = np.sqrt(intrinsics_params[..., 0] * intrinsics_params[..., 1])
  return gt_tracks[..., -1] / mean_focal[..., None, None]


def _reorder(x, order, batched, add_batch):
  """Transposes x from `order` (+ trailing axes) to 'b n t' or 'n t'; add_batch prepends a batch axis."""
  axes = order.split()
  target = ['b', 'n', 't'] if batched else ['n', 't']
  x = np.transpose(x, [axes.index(a) for a in target] + list(range(len(axes), x.ndim)))
  return x[None] if add_batch else x


def create_local_tracks(gt_occluded, gt_tracks, pred_occluded, pred_tracks, thresh):
  """For each track n ('n t' inputs), pools every (track, frame) entry whose GT is within `thresh` of
  track n's GT at that frame. Returns (gt_occ, gt_tracks, pred_occ, pred_tracks, weights), each of
  shape (n, L[, 3]) zero-padded to the largest pool L; weights are 0 on padding and otherwise
  Σ_t visible(n) / max(1, Σ visible(pool)), so each track keeps the weight of its own visible frames."""
  num_tracks = gt_occluded.shape[0]
  flat = lambda x: x.reshape((-1,) + x.shape[2:])
  pools = []
  for idx in range(num_tracks):
    near = np.sum(np.square(gt_tracks - gt_tracks[idx:idx + 1]), axis=-1) < thresh * thresh
    near = near.reshape(-1)
    pools.append([flat(gt_occluded)[near], flat(gt_tracks)[near], flat(pred_occluded)[near],
                  flat(pred_tracks)[near]])
  largest = max(p[0].shape[0] for p in pools)

  def stack(i, like):
    out = np.zeros((num_tracks, largest) + like.shape[2:], dtype=like.dtype)
    for idx, p in enumerate(pools):
      out[idx, :p[i].shape[0]] = p[i]
    return out

  out_gt_occ, out_gt_tr = stack(0, gt_occluded), stack(1, gt_tracks)
  out_pr_occ, out_pr_tr = stack(2, pred_occluded), stack(3, pred_tracks)
  valid = np.zeros((num_tracks, largest), dtype=gt_occluded.dtype)
  for idx, p in enumerate(pools):
    valid[idx, :p[0].shape[0]] = 1
  weighting = np.sum(1.0 - gt_occluded, axis=1, keepdims=True) / np.maximum(
      1.0, np.sum((1.0 - out_gt_occ) * valid, axis=1, keepdims=True))
  return out_gt_occ, out_gt_tr, out_pr_occ, out_pr_tr, valid * weighting


def _depth_at_query(z, query_points):
  """max(z[..., n, t_q(n)], 1e-12)[..., None] with t_q = round(query t); z is (b, n, t) or (n, t)."""
  query_frame = np.round(query_points[..., 0]).astype(np.int32)[..., None]
  if query_frame.ndim < z.ndim:
    query_frame = query_frame.reshape((1,) * (z.ndim - query_frame.ndim) + query_frame.shape)
  return np.maximum(np.take_along_axis(z, query_frame, axis=-1), 1e-12)[..., None]


def compute_tapvid3d_metrics(gt_occluded, gt_tracks, pred_occluded, pred_tracks, intrinsics_params,
                             get_trackwise_metrics=False, scaling='median', query_points=None,
                             use_fixed_metric_threshold=False, local_neighborhood_thresh=0.05, order='n t'):
  """TAPVid-3D metrics of predicted 3D tracks (the official function; see the module docstring).

  gt_occluded, pred_occluded: bool, shaped by `order` ('n t', 't n', 'b n t' or 'b t n');
  gt_tracks, pred_tracks: the same + a trailing xyz axis (camera frame, metres); intrinsics_params:
  [fx, fy, cx, cy] at the evaluation resolution (or (b, 4)); query_points: (…, n, 3) as (t, y, x), needed
  by 'per_trajectory', 'local_neighborhood' and 'median_on_queries'. scaling: 'median' (default), 'mean',
  'none', 'per_trajectory', 'median_on_queries', 'reproduce_2d' or 'local_neighborhood' (unbatched only).
  Returns a dict of arrays: occlusion_accuracy, pts_within_{δ}, jaccard_{δ}, average_jaccard,
  average_pts_within_thresh, each of shape (b,) ((b, n) trackwise; unbatched inputs have b = 1;
  'local_neighborhood' gives () or (n,)).
  """
  if order not in _ORDERS:
    raise ValueError(f'Unknown order: {order!r} (expected one of {_ORDERS})')
  batched = len(order.split()) == 3
  local = scaling == 'local_neighborhood'
  if local and batched:
    raise ValueError("local_neighborhood scaling doesn't support batched inputs")
  add_batch = not batched and not local
  gt_occluded = _reorder(np.asarray(gt_occluded), order, batched, add_batch)
  pred_occluded = _reorder(np.asarray(pred_occluded), order, batched, add_batch)
  gt_tracks = _reorder(np.asarray(gt_tracks), order, batched, add_batch)
  pred_tracks = _reorder(np.asarray(pred_tracks), order, batched, add_batch)
  intrinsics_params = np.asarray(intrinsics_params)
  if query_points is not None:
    query_points = np.asarray(query_points)

  summing_axis = (-1,) if get_trackwise_metrics else (-2, -1)
  weights = np.ones(gt_occluded.shape)

  # The scale factor s applied to the predicted tracks.
  if scaling == 'reproduce_2d':
    scale = gt_tracks[..., -1:] / pred_tracks[..., -1:]
  elif scaling in ('per_trajectory', 'local_neighborhood'):
    scale = _depth_at_query(gt_tracks[..., -1], query_points) / _depth_at_query(pred_tracks[..., -1],
                                                                                query_points)
    if local:
      gt_occluded, gt_tracks, pred_occluded, pred_tracks, weights = create_local_tracks(
          gt_occluded, gt_tracks, pred_occluded, pred_tracks, thresh=local_neighborhood_thresh)
  elif scaling == 'none':
    scale = 1.0
  elif scaling in ('median', 'mean', 'median_on_queries'):
    # Norms √max(1e-12, ‖x‖²) of the entries visible in both GT and prediction (NaN elsewhere).
    either_occluded = np.logical_or(gt_occluded, pred_occluded)
    pred_norms = np.where(either_occluded, np.nan, np.sqrt(np.maximum(1e-12, np.sum(np.square(pred_tracks), -1))))
    gt_norms = np.where(either_occluded, np.nan, np.sqrt(np.maximum(1e-12, np.sum(np.square(gt_tracks), -1))))
    if scaling == 'median_on_queries':
      # Only each track's query frame: (b, n, 1).
      query_frame = np.round(query_points[..., 0]).astype(np.int32).reshape(gt_norms.shape[0], -1, 1)
      pred_norms = np.take_along_axis(pred_norms, query_frame, axis=-1)
      gt_norms = np.take_along_axis(gt_norms, query_frame, axis=-1)
    reduce = np.nanmean if scaling == 'mean' else np.nanmedian
    scale = reduce(gt_norms, axis=(-2, -1), keepdims=True) / reduce(pred_norms, axis=(-2, -1), keepdims=True)
    scale = scale[..., None]  # (b, 1, 1, 1): one s per video
  else:
    raise ValueError('Unknown scaling:' + str(scaling))
  pred_tracks = pred_tracks * scale

  def weighted_sum(x):
    return np.sum(x * weights, axis=summing_axis)

  accuracy = weighted_sum(np.equal(pred_occluded, gt_occluded)) / np.sum(weights, axis=summing_axis)
  metrics = {'occlusion_accuracy': accuracy}
  visible = np.logical_not(gt_occluded)
  pred_visible = np.logical_not(pred_occluded)
  sq_dist = np.sum(np.square(pred_tracks - gt_tracks), axis=-1)
  if not use_fixed_metric_threshold:
    multiplier = get_pointwise_threshold_multiplier(gt_tracks, intrinsics_params)
  all_within, all_jaccard = [], []
  for delta in THRESHOLDS:
    thr = PIXEL_TO_FIXED_METRIC_THRESH[delta] if use_fixed_metric_threshold else delta * multiplier
    within = sq_dist < np.square(thr)
    correct = np.logical_and(within, visible)
    gt_positives = weighted_sum(visible)
    frac_within = weighted_sum(correct) / gt_positives
    true_positives = weighted_sum(correct & pred_visible)
    false_positives = weighted_sum(((~visible) & pred_visible) | ((~within) & pred_visible))
    jaccard = true_positives / (gt_positives + false_positives)
    metrics[f'pts_within_{delta}'] = frac_within
    metrics[f'jaccard_{delta}'] = jaccard
    all_within.append(frac_within)
    all_jaccard.append(jaccard)
  metrics['average_jaccard'] = np.mean(np.stack(all_jaccard), axis=0)
  metrics['average_pts_within_thresh'] = np.mean(np.stack(all_within), axis=0)
  return metrics
