"""D4RT in the pairs protocol (pair_protocol.py): each frame pair (t1, t2) answered by queries on one clip holding both.

Clip. D4RT sees T = num_frames frames at img_size² (the checkpoint's config). Pair (t1, t2), t2 − t1 < T, gets
the contiguous window [s, s + T) of the sequence centred on it: s = ceil((t1 + t2) / 2) − T // 2, clamped to
[0, n − T] for a sequence of n frames (both frames stay inside). A sequence shorter than T is frames 0..n−1
followed by copies of frame n − 1 (a still end: t1 and t2 keep their own positions, no frame is invented).
Pairs with the same window share one encoder pass. The frames are the protocol's processed images (a Stereo4D
clip's mp4 frames, the other datasets' load_images crop, as pair_protocol gives the DUSt3R path), each resized
to img_size² as data/d4rt.py resizes a training crop; the aspect ratio is their W/H (a training crop's).

Queries, at the pixel centres ((j + .5)/W, (i + .5)/H) of that processed H × W grid, so the ground truth maps and
masks of the DUSt3R path apply unchanged; with p1, p2 the clip positions of t1, t2, query_t = [t_src, t_tgt, t_cam]:
  pred1 pts3d                xyz(p1, p1, p1)                      view 1 in camera t1
  pred2 pts3d_in_other_view  xyz(p2, p2, p1)                      view 2 in camera t1
  pred1 motion_l2r           xyz(p1, p2, p1) − xyz(p1, p1, p1)    view 1's pixels moved to t2, in camera t1
  pred2 motion_r2l           xyz(p2, p1, p1) − xyz(p2, p2, p1)    view 2's pixels moved to t1, in camera t1
  pred{1,2} conf             'conf' of the view's pointmap queries
D4RT's xyz has normalised scale (its loss divides each clip's points by their mean depth, one factor for all of
a clip's queries); pair_metrics aligns it with the protocol's scale rule exactly as it aligns DUSt3R's (one
factor from view 1's depths, applied to both views and to the motion).
"""
import numpy as np

from data.stereo4d import Mp4Clip
from dynadust3r_jax.common.video import crop_resize
from dynadust3r_jax.inference.d4rt import Decoder, query_grid
from dynadust3r_jax.inference.images import load_arrays


def clip_window(t1: int, t2: int, num_frames: int, clip_frames: int) -> np.ndarray:
  """(clip_frames,) int: the sequence frame at each clip position of pair (t1, t2), t2 − t1 < clip_frames, in a
  sequence of num_frames frames (module docstring)."""
  if num_frames < clip_frames:
    return np.minimum(np.arange(clip_frames), num_frames - 1)
  start = min(max((t1 + t2 + 1) // 2 - clip_frames // 2, 0), num_frames - clip_frames)
  return start + np.arange(clip_frames)


def pair_queries(hw, p1: int, p2: int, with_motion: bool):
  """(query_uv (K·H·W, 2), query_t (K·H·W, 3)): K = 2 (4 with motion) sets of all pixel centres of an (H, W) grid,
  at the times of the module docstring's table, in its order."""
  times = [(p1, p1, p1), (p2, p2, p1)] + ([(p1, p2, p1), (p2, p1, p1)] if with_motion else [])
  grid = query_grid(*hw)
  return np.tile(grid, (len(times), 1)), np.repeat(np.array(times, np.int32), len(grid), axis=0)


def predict_pair(decode, hw, p1: int, p2: int, with_motion: bool) -> tuple[dict, dict]:
  """(pred1, pred2) of one pair at clip positions p1, p2, as the DUSt3R path gives the metrics: (H, W, ...) arrays."""
  out = decode(*pair_queries(hw, p1, p2, with_motion))
  xyz = np.asarray(out['xyz'], np.float32).reshape(-1, *hw, 3)   # (K, H, W, 3)
  conf = np.asarray(out['conf'], np.float32).reshape(-1, *hw)    # (K, H, W)
  pred1, pred2 = {'pts3d': xyz[0], 'conf': conf[0]}, {'pts3d_in_other_view': xyz[1], 'conf': conf[1]}
  if with_motion:
    pred1['motion_l2r'], pred2['motion_r2l'] = xyz[2] - xyz[0], xyz[3] - xyz[1]
  return pred1, pred2


def predict_pairs(pairs, num_frames: int, hw, clip_frames: int, decoder_for, with_motion: bool) -> tuple[dict, dict]:
  """(pred1, pred2) of all pairs of a sequence of num_frames frames, stacked (B, H, W, ...). decoder_for(window
  (clip_frames,) sequence frames) -> a decode(query_uv, query_t) callable (inference/d4rt.py), called once per
  distinct window."""
  windows = [tuple(int(t) for t in clip_window(t1, t2, num_frames, clip_frames)) for t1, t2 in pairs]
  preds = [None] * len(pairs)
  for window in dict.fromkeys(windows):          # distinct windows, in order
    decode = decoder_for(np.array(window))
    for i, (t1, t2) in enumerate(pairs):
      if windows[i] == window:
        preds[i] = predict_pair(decode, hw, window.index(t1), window.index(t2), with_motion)
  return tuple({k: np.stack([p[view][k] for p in preds]) for k in preds[0][view]} for view in (0, 1))


def frame_loader(opened, size: int, square_ok: bool):
  """t -> frame t as the pairs protocol processes it, (H, W, 3) float32 in [-1, 1]: a Stereo4D clip's mp4 frame,
  else a data/sequence.py Sequence's frame through load_arrays (as pair_protocol.sequence_examples loads it)."""
  if isinstance(opened, Mp4Clip):
    return lambda t: opened.frame(t).image.astype(np.float32) / 127.5 - 1
  return lambda t: load_arrays([opened.load_image(t)], [opened.frames[t]], size=size, square_ok=square_ok)[0]['img'][0]


def model_decoders(model, load_frame, img_size: int, aspect_ratio: float):
  """decoder_for (see predict_pairs) of a D4RT network: the window's frames (load_frame(t)) resized to img_size²,
  encoded once. Resized frames are kept for the sequence's other windows (they overlap)."""
  frames = {}

  def resized(t):
    if t not in frames:
      image = load_frame(t)
      frames[t] = crop_resize(image, (0, 0, image.shape[1], image.shape[0]), img_size)
    return frames[t]

  return lambda window: Decoder(model, np.stack([resized(int(t)) for t in window]), aspect_ratio)


def predict(examples, pairs, opened, model, *, size: int, square_ok: bool, with_motion: bool) -> tuple[dict, dict]:
  """(pred1, pred2) of a D4RT network (an nnx.Module, or load_model's Predictor of one) for the examples of `pairs`
  of the opened sequence, stacked (B, H, W, ...), scored by pair_protocol.score_pairs; size, square_ok: the
  protocol's load_images options. The pair frames are the examples' images (decoded once); the windows' other
  frames are loaded here."""
  model = getattr(model, 'module', model)  # a Predictor's network
  hw = examples[0]['valid1'].shape
  decoded = {t: ex[f'img{v}'] for (t1, t2), ex in zip(pairs, examples) for v, t in ((1, t1), (2, t2))}
  load = frame_loader(opened, size, square_ok)
  decoder_for = model_decoders(model, lambda t: decoded[t] if t in decoded else load(t), model.cfg.img_size,
                               hw[1] / hw[0])
  return predict_pairs(pairs, opened.num_frames, hw, model.cfg.num_frames, decoder_for, with_motion)
