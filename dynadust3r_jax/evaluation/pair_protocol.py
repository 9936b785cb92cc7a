"""The pairs protocol of DynaDUSt3R's tables (spec evaluation.md §3, §4.5, §5.7): Stereo4D test, ADT, Dynamic Replica.

Per sequence, `per_sequence` distinct random frame pairs (t1, t2) with min_gap <= t2 − t1 <= max_gap (uniform
over all such pairs) are drawn from a
generator seeded by (seed, the sequence's name), so a pair set does not depend on which other sequences
run or in what order (a resumed evaluation draws the same pairs). Each pair is one network call, view 1 =
frame t1, view 2 = frame t2, a DynaDUSt3R model with query times [1, 1, 0] (motion of view 1 to t2, of
view 2 to t1). Ground truth: Stereo4D clips through the training targets (data/stereo4d.py), the others
from their 3D tracks (data/pair_targets.py) at the processed image size. Metrics per pair
(`depth_motion.pair_metrics`, the scale rule and motion error from the config), kept per pair;
aggregates are means over all pairs (pairs without valid pixels are left out). A D4RT model answers the
same pairs with queries on a clip holding both frames (d4rt_pairs.py), scored by the same `score_pairs`.
"""
import zlib

import numpy as np

from data.pair_targets import pair_targets
from data.stereo4d import Mp4Clip, build_example
from dynadust3r_jax.evaluation.depth_motion import pair_metrics
from dynadust3r_jax.inference.export.common import processed_intrinsics
from dynadust3r_jax.inference.images import load_arrays
from dynadust3r_jax.inference.inference import inference
from dynadust3r_jax.inference.motion import pair_query_times

GT_KEYS = ('pts3d1', 'valid1', 'pts3d2', 'valid2', 'target_l2r', 'valid_l2r', 'target_r2l', 'valid_r2l')
QUERY_TIMES = (1.0, 1.0, 0.0)  # [t_mid, t_view2, t_view1]: the mid query is unused here


def sequence_rng(seed: int, name: str) -> np.random.Generator:
  """A generator of its own for each sequence (stable across runs, orders and subsets)."""
  return np.random.default_rng([seed, zlib.crc32(name.encode())])


def sample_pairs(num_frames: int, count: int, max_gap: int, rng: np.random.Generator,
                 min_gap: int = 1) -> list[tuple[int, int]]:
  """`count` distinct pairs (t1, t2), min_gap <= t2 − t1 <= max_gap, uniform over all such pairs (all of
  them when there are fewer), in drawing order. min_gap = max_gap = 30: a fixed gap (the unofficial ADT
  evaluation's 'every_30_frames', spec evaluation.md §4.5)."""
  candidates = [(t1, t2) for t1 in range(num_frames)
                for t2 in range(t1 + max(1, min_gap), min(num_frames, t1 + max_gap + 1))]
  picked = rng.permutation(len(candidates))[:count]
  return [candidates[i] for i in picked]


def stereo4d_examples(clip: Mp4Clip, pairs) -> list[dict]:
  """Pair (l, r) of an opened clip → the training example of triplet (l, r, r) (l2m = l2r), images as the
  mp4 has them."""
  examples = []
  for l, r in pairs:
    frames = (clip.frame(l), clip.frame(r, with_image=False), clip.frame(r))
    ex = build_example(frames, (l, r, r))
    examples.append({'img1': ex['img1'], 'img2': ex['img2'], **{k: ex[k] for k in GT_KEYS}})
  return examples


def sequence_examples(seq, pairs, size: int, square_ok: bool) -> list[dict]:
  """Pairs of a data/sequence.py Sequence with tracks → examples at load_images' processed size."""
  frames = sorted({t for pair in pairs for t in pair})
  views = dict(zip(frames, load_arrays([seq.load_image(t) for t in frames], [seq.frames[t] for t in frames],
                                       size=size, square_ok=square_ok)))
  examples = []
  for t1, t2 in pairs:
    v1, v2 = views[t1], views[t2]
    hw = tuple(int(x) for x in v1['true_shape'][0])
    Ks = (processed_intrinsics(seq.intrinsics[t1], v1), processed_intrinsics(seq.intrinsics[t2], v2))
    gt = pair_targets(seq.tracks_xyz, seq.visibility, seq.world_to_camera, Ks, hw, t1, t2)
    examples.append({'img1': v1['img'][0], 'img2': v2['img'][0], **gt})
  return examples


def _view(img, idx):
  h, w = img.shape[:2]
  return {'img': img[None], 'true_shape': np.array([[h, w]], np.int32), 'idx': idx, 'instance': str(idx)}


def predict_pairs(examples, model, *, batch_size: int, with_motion: bool) -> tuple[dict, dict]:
  """(pred1, pred2) of a pair model (a DUSt3R-family model handle) for a sequence's examples, stacked (B, H, W, ...):
  view 1 = the example's img1, view 2 = img2, batched inference with QUERY_TIMES where motion is scored."""
  pairs = [(_view(ex['img1'], 2 * e), _view(ex['img2'], 2 * e + 1)) for e, ex in enumerate(examples)]
  query_times = pair_query_times(len(pairs), QUERY_TIMES) if with_motion else None
  out = inference(pairs, model, batch_size=batch_size, query_times=query_times, progress=False)
  return out['pred1'], out['pred2']


def evaluate_pairs(examples, model, *, batch_size: int, scale_rule: str, motion_error: str,
                   with_motion: bool) -> dict:
  """Per-pair metrics of a pair model on a sequence's examples: {metric: [value per pair]} (NaN where a pair has
  no GT)."""
  pred1, pred2 = predict_pairs(examples, model, batch_size=batch_size, with_motion=with_motion)
  return score_pairs(examples, pred1, pred2, scale_rule=scale_rule, motion_error=motion_error,
                     with_motion=with_motion)


def score_pairs(examples, pred1, pred2, *, scale_rule: str, motion_error: str, with_motion: bool) -> dict:
  """Per-pair metrics of predictions stacked over the examples (B, H, W, ...) against their GT: {metric: [value
  per pair]}, whichever family predicted them (families/: predict_pairs above, D4RT's d4rt_pairs.py)."""
  batch = {k: np.stack([ex[k] for ex in examples]) for k in GT_KEYS}
  metrics = pair_metrics(pred1, pred2, batch, scale_rule, motion_error, with_motion)
  return {k: [float(x) for x in np.asarray(v)] for k, v in metrics.items()}
