"""Make the TAPVid-3D metric parity fixture tests/fixtures/tapvid3d_reference.npz (dev tool; CI only reads it).

usage:  PYTHONPATH=<dir holding tapnet/> /work/venv/tapnet/bin/python tools/make_tapvid3d_fixtures.py tests/fixtures

The reference is the official `tapnet.tapvid3d.evaluation.metrics.compute_tapvid3d_metrics`
(google-deepmind/tapnet, spec evaluation.md §4.4); it needs only numpy and einops. tapnet is not on PyPI, so any
checkout of its source on PYTHONPATH will do (venv: `python3.12 -m venv /work/venv/tapnet;
/work/venv/tapnet/bin/pip install numpy einops`).

Inputs (numpy, seed 0): N=10 tracks × T=7 frames in 'n t' order, GT in clusters of a few tracks a few cm apart
(so 'local_neighborhood' pools neighbours), depths 1.5–5 m, ~25 % GT-occluded and ~20 % pred-occluded entries,
predictions = GT × a global scale (0.6) × a per-track factor (±3 %) + noise of 1 cm, intrinsics ≈ 140 px (the
256-px evaluation size). Each case runs one call of the official function on videos[:num_videos], arranged by
`arrange` below: batched orders stack the videos, 't n' orders swap the n and t axes, query_points are passed
only to the modes that read them, with a batch axis for unbatched 'per_trajectory'. Cases where the official
function raises are left out (see dynadust3r_jax/evaluation/tapvid3d.py).

Keys:  video{k}_{gt_occluded (N,T) bool, gt_tracks (N,T,3), pred_occluded, pred_tracks, intrinsics_params (4,),
query_points (N,3) (t, y, x)} for k < 3, in 'n t' order;  per case i: case{i}_kwargs (JSON string: scaling,
order, get_trackwise_metrics, use_fixed_metric_threshold[, local_neighborhood_thresh]), case{i}_num_videos,
case{i}_out (M, ...) float64: the official outputs stacked in the order of metric_names (M,) (the dict's order);
num_cases.
"""
import json
import os
import sys

import numpy as np

N, T = 10, 7


def make_video(rng):
  centres = rng.uniform([-1.0, -1.0, 1.5], [1.0, 1.0, 5.0], size=(4, 3))
  cluster = rng.integers(0, 4, size=N)
  start = centres[cluster] + rng.normal(0.0, 0.02, size=(N, 3))
  velocity = rng.normal(0.0, 0.05, size=(N, 3))
  gt = start[:, None] + velocity[:, None] * np.arange(T)[None, :, None]
  gt_occ = rng.uniform(size=(N, T)) < 0.25
  pred = gt * 0.6 * rng.uniform(0.97, 1.03, size=(N, 1, 1)) + rng.normal(0.0, 0.01, size=(N, T, 3))
  pred_occ = rng.uniform(size=(N, T)) < 0.2
  t_query = rng.integers(0, T, size=N)
  queries = np.stack([t_query, rng.uniform(0, 256, N), rng.uniform(0, 256, N)], axis=-1)  # (t, y, x)
  intrinsics = np.array([140.0, 150.0, 128.0, 128.0]) * rng.uniform(0.9, 1.1)
  return gt_occ, gt, pred_occ, pred, intrinsics, queries


def cases(videos):
  """Yields (the videos of the case, kwargs)."""
  for scaling in ('median', 'mean', 'none', 'per_trajectory', 'median_on_queries', 'reproduce_2d'):
    for trackwise in (False, True):
      for fixed in (False, True):
        for order in ('n t', 't n', 'b n t', 'b t n'):
          # The official per-video scale of these modes broadcasts only for one video.
          batch = 1 if scaling in ('median', 'mean', 'median_on_queries') else 2
          vids = videos[:batch] if order.startswith('b') else videos[:1]
          yield vids, dict(scaling=scaling, order=order, get_trackwise_metrics=trackwise,
                           use_fixed_metric_threshold=fixed)
  for fixed in (False, True):
    for order in ('n t', 't n'):
      for thresh in (0.05, 0.1):
        yield videos[:1], dict(scaling='local_neighborhood', order=order, get_trackwise_metrics=True,
                               use_fixed_metric_threshold=fixed, local_neighborhood_thresh=thresh)


def arrange(vids, kwargs):
  """Stacks / transposes the videos into the case's order; query_points as the official code needs them."""
  order, scaling = kwargs['order'], kwargs['scaling']
  stack = lambda k: np.stack([v[k] for v in vids]) if order.startswith('b') else vids[0][k]
  gt_occ, gt, pred_occ, pred, intr, queries = (stack(k) for k in range(6))
  if order.endswith('t n'):
    swap = lambda x: np.swapaxes(x, -2, -1) if x.ndim == len(order.split()) else np.swapaxes(x, -3, -2)
    gt_occ, gt, pred_occ, pred = swap(gt_occ), swap(gt), swap(pred_occ), swap(pred)
  if scaling == 'per_trajectory' and not order.startswith('b'):
    queries = queries[None]  # official np.take_along_axis needs the batch axis here
  if scaling not in ('per_trajectory', 'median_on_queries', 'local_neighborhood'):
    queries = None
  return dict(gt_occluded=gt_occ, gt_tracks=gt, pred_occluded=pred_occ, pred_tracks=pred,
              intrinsics_params=intr, query_points=queries)


VIDEO_KEYS = ('gt_occluded', 'gt_tracks', 'pred_occluded', 'pred_tracks', 'intrinsics_params', 'query_points')


def main(out_dir):
  from tapnet.tapvid3d.evaluation import metrics as official
  rng = np.random.default_rng(0)
  videos = [make_video(rng) for _ in range(3)]
  data = {}
  for k, video in enumerate(videos):
    for name, value in zip(VIDEO_KEYS, video):
      data[f'video{k}_{name}'] = value
  i = 0
  for vids, kwargs in cases(videos):
    inputs = arrange(vids, kwargs)
    out = official.compute_tapvid3d_metrics(**inputs, **kwargs)
    data[f'case{i}_kwargs'] = np.array(json.dumps(kwargs, sort_keys=True))
    data[f'case{i}_num_videos'] = np.array(len(vids))
    data['metric_names'] = np.array(list(out))
    data[f'case{i}_out'] = np.stack([np.asarray(v, dtype=np.float64) for v in out.values()])
    i += 1
  data['num_cases'] = np.array(i)
  path = os.path.join(out_dir, 'tapvid3d_reference.npz')
  np.savez_compressed(path, **data)
  print(f'{path}: {i} cases')


if __name__ == '__main__':
  main(sys.argv[1])
