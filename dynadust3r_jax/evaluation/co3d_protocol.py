"""Relative camera pose on CO3Dv2 (spec evaluation.md §2.4, §8.3): DUSt3R's Table 2 protocol.

Per sequence, `num_frames` (10) frames drawn without replacement by the sequence's own generator
(pair_protocol.sequence_rng), aligned globally from the complete pair graph; every unordered pair of them
(45) is scored with PoseDiffusion's rotation and translation-angle errors against the GT (pose.py).
Errors are pooled per category, the metrics computed per category, and the reported value is the mean
over categories. DUSt3R's processed CO3D uses the set-list test split capped at 50 sequences per category,
not PoseDiffusion's annotation set, so the numbers are comparable, not identical (spec §8.3).
"""
import collections

import numpy as np

from data.errors import BadClip
from dynadust3r_jax.evaluation.pair_protocol import sequence_rng
from dynadust3r_jax.evaluation.pose import mean_over_categories, pose_metrics, relative_pose_errors
from dynadust3r_jax.evaluation.video_protocol import reconstruct_sequence


def evaluate_sequence(seq, model, co3d, *, seed, size, square_ok, batch_size) -> dict:
  """Per-pair rotation / translation errors (degrees) of one sequence; BadClip (skipped) when it is too short."""
  if seq.num_frames < co3d.num_frames:
    raise BadClip(f'{seq.name}: {seq.num_frames} frames, fewer than config.co3d.num_frames={co3d.num_frames}')
  frames = sorted(int(t) for t in sequence_rng(seed, seq.name).choice(seq.num_frames, co3d.num_frames, replace=False))
  scene, _ = reconstruct_sequence(seq, model, frames, size=size, square_ok=square_ok, scene_graph=co3d.scene_graph,
                                  niter=co3d.niter, lr=0.01, schedule='cosine', batch_size=batch_size)
  rot, trans = relative_pose_errors(np.linalg.inv(np.asarray(scene.cam_to_world, np.float64)),
                                    seq.world_to_camera[frames])
  return {'category': seq.category, 'frames': frames, 'rot_err': [float(x) for x in rot],
          'trans_err': [float(x) for x in trans]}


def aggregate(records: dict) -> dict:
  """Per-category metrics over the pooled pairs, and their mean over categories."""
  pooled = collections.defaultdict(lambda: ([], []))
  for r in records.values():
    pooled[r['category']][0].extend(r['rot_err'])
    pooled[r['category']][1].extend(r['trans_err'])
  per_category = {c: pose_metrics(np.array(rot), np.array(trans)) for c, (rot, trans) in sorted(pooled.items())}
  return {'per_category': per_category, **mean_over_categories(per_category)}
