"""MonST3R's video protocols (spec evaluation.md §6, §7): Bonn and Sintel depth, Sintel camera poses.

A sequence goes through the reconstruction pipeline: load_images' processing of every frame, the pair
graph (MonST3R's default window of 5, not cyclic), batched inference and DUSt3R's global alignment
(MonST3R adds flow and smoothness terms to its own aligner; this is DUSt3R's, so rows of DUSt3R-GA are
the comparable ones); the model's family decides (families/: `reconstruct_frames`; a D4RT checkpoint
reconstructs the sequence from its queries instead, as the reconstruct job does). The aligned depth maps go back to the GT's pixels: the processed image covers a
centred crop of the original, so each depth map is resized (cv2 INTER_CUBIC, as MonST3R's notebook) to
that crop's size in original pixels and compared with the GT inside the crop (without a crop, as for
Bonn's 640×480 → 512×384, this is exactly MonST3R's resize to the GT size). Depth metrics:
`depth.depth_evaluation` with one alignment for the whole sequence; the dataset value is the mean over
sequences weighted by valid pixels. Poses: the aligned cam-to-world against the GT (evo, Sim(3)), mean over
sequences; a trajectory evo cannot align (degenerate: e.g. all cameras at one point) gets NaN, named in the
record, and is left out of the mean.
"""
import numpy as np
from absl import logging
from evo.core.geometry import GeometryException

from dynadust3r_jax.evaluation.depth import depth_evaluation, resize_to
from dynadust3r_jax.evaluation.trajectory import trajectory_metrics
from dynadust3r_jax.inference.images import load_arrays

TRAJECTORY_METRICS = ('ate', 'rpe_trans', 'rpe_rot')


def crop_window(view) -> tuple[slice, slice]:
  """(rows, cols) of the original image that a processed view covers (its crop, scaled back)."""
  (h0, w0), (h1, w1), (top, left) = view['orig_shape'], view['resized_shape'], view['crop_offset']
  h, w = (int(x) for x in view['true_shape'][0])
  rows = slice(int(round(top * h0 / h1)), int(round((top + h) * h0 / h1)))
  cols = slice(int(round(left * w0 / w1)), int(round((left + w) * w0 / w1)))
  return rows, cols


def reconstruct_sequence(seq, model, frames, *, size, square_ok, scene_graph, niter, lr, schedule, batch_size):
  """The scene of `frames` of a Sequence, with the processed views: `model.family.reconstruct_frames` (model: a
  model handle, pretrained.Predictor; DUSt3R's pair graph + global alignment, D4RT's clips)."""
  imgs = load_arrays([seq.load_image(t) for t in frames], [seq.frames[t] for t in frames], size=size,
                     square_ok=square_ok)
  scene = model.family.reconstruct_frames(model, imgs, scene_graph=scene_graph, niter=niter, lr=lr,
                                          schedule=schedule, batch_size=batch_size)
  return scene, imgs


def evaluate_video(seq, model, video, *, size, square_ok, batch_size, with_poses) -> dict:
  """One sequence's depth metrics (+ valid pixel count) and, with_poses, trajectory metrics."""
  frames = list(range(seq.num_frames if not video.max_frames else min(video.max_frames, seq.num_frames)))
  scene, imgs = reconstruct_sequence(seq, model, frames, size=size, square_ok=square_ok,
                                     scene_graph=video.scene_graph, niter=video.niter, lr=video.lr,
                                     schedule=video.schedule, batch_size=batch_size)
  pred, gt = [], []
  for t, view, depth in zip(frames, imgs, scene.depthmaps):
    rows, cols = crop_window(view)                   # the processed depth over its crop window of the original
    pred.append(resize_to(depth, (rows.stop - rows.start, cols.stop - cols.start)))
    gt.append(seq.load_depth(t)[rows, cols])
  metrics, valid = depth_evaluation(np.stack(pred), np.stack(gt), max_depth=video.max_depth or None,
                                    align=video.align, post_clip_max=video.post_clip_max or None)
  record = {'frames': len(frames), 'valid_pixels': int(valid), 'depth': {k: float(v) for k, v in metrics.items()}}
  if with_poses:
    gt_c2w = np.linalg.inv(seq.world_to_camera[frames])
    stamps = None if seq.timestamps is None else np.asarray(seq.timestamps)[frames]
    try:
      metrics = trajectory_metrics(np.asarray(scene.cam_to_world, np.float64), gt_c2w, stamps)
      record['pose'] = {k: float(v) for k, v in metrics.items()}
    except GeometryException as e:  # e.g. all predicted cameras at one point: no Sim(3) alignment exists
      logging.warning('%s: no trajectory metrics (%s)', seq.name, e)
      record['pose'] = {k: float('nan') for k in TRAJECTORY_METRICS}
      record['pose_error'] = str(e)
  return record
