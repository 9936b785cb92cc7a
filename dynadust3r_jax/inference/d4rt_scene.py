"""A D4RT reconstruction of a video: processed views (load_images' dicts) → a Scene like the global alignment's.

Clips (spec/d4rt.md §8 "Long videos", App. B). The model sees clips of T = cfg.num_frames frames: clip k
starts at k·(T − overlap) and the last clip is shifted back to end at the last frame, so every clip is full
length (one compile); a video shorter than T is padded with copies of its last frame (their outputs are
dropped). Each clip is encoded once (inference.d4rt.Decoder) and answers, for every frame position p:
  camera pose   `extrinsics` (Umeyama on a grid x grid of paired queries): camera p → camera 0 of the clip,
  intrinsics    `intrinsics` (median estimate): normalised (f_x, f_y), principal point (0.5, 0.5),
  depth         (u, v, p, p, p) at the pixel centres of the processed h x w view,
  points        (u, v, p, p, 0): the point cloud in the clip's camera 0 (no pose composition), with 'conf',
  motion        (u, v, p, p+1, 0) − points: each pixel's 3D displacement to the next frame.
Clip k > 0 is mapped into the world of clip 0 by a similarity (Umeyama with scale) fitted on the overlap
frames' points seen in both clips, on the `top_fraction` (the paper's 85%) most confident of them (confidence:
the product of the two clips'); a frame keeps the values of the first clip that holds it, its motion those
of the first clip that holds it and the next frame. No loop closure.

Conventions: the Scene's intrinsics are in processed pixels with pixel-index coordinates (export/common.py):
D4RT's (u, v) puts pixel j's centre at (j + 0.5)/w, so K = [[f_x·w, 0, w/2 − 0.5], [0, f_y·h, h/2 − 0.5]];
`focals` is sqrt(f_x·f_y)·(w·h)^½ (one number per image, as DUSt3R's Scene; K keeps both). The scale is the
model's normalised one, fixed by clip 0. The video goes to the encoder resized to img_size² (cv2, as the
training data) with the aspect ratio w/h of the processed view.
"""
import dataclasses

import numpy as np
from flax import nnx

from dynadust3r_jax.common.geometry import similarity_matrix, umeyama
from dynadust3r_jax.common.video import crop_resize
from dynadust3r_jax.inference import d4rt
from dynadust3r_jax.inference.scene import Scene

TOP_FRACTION = 0.85  # App. B: the Sim(3) fit uses the top 85% most confident points of the overlap


@dataclasses.dataclass
class D4RTScene(Scene):
  """A Scene (scene.py) plus D4RT's motion confidence and the clips it came from; its motion: each pixel's world
  displacement to the next frame (motion_target −1: none, the last frame)."""
  motion_conf: np.ndarray | None = None      # (N, h, w) the motion queries' confidence
  clips: list = dataclasses.field(default_factory=list)       # [(start, stop)] frame ranges, in order
  clip_scales: list = dataclasses.field(default_factory=list)  # each clip's similarity scale into clip 0's world


def clip_starts(num_frames: int, clip_frames: int, overlap: int) -> list[int]:
  """First frames of the clips covering 0..num_frames-1: every (clip_frames − overlap), the last one shifted back
  to end at the last frame (a single clip from 0 when the video is not longer than a clip)."""
  if not 0 <= overlap < clip_frames:
    raise ValueError(f'overlap={overlap} must be in [0, clip frames = {clip_frames}) (config.d4rt.overlap)')
  if num_frames <= clip_frames:
    return [0]
  step = clip_frames - overlap
  starts = list(range(0, num_frames - clip_frames, step)) + [num_frames - clip_frames]
  return sorted(set(starts))


def view_frames(views) -> tuple[np.ndarray, int, int]:
  """(N, h, w, 3) uint8 frames of processed views of one size, with h, w."""
  shapes = {tuple(int(x) for x in np.asarray(v['true_shape']).reshape(-1)[:2]) for v in views}
  if len(shapes) != 1:
    raise ValueError(f'D4RT reconstructs a video: the images must have one processed size, got {sorted(shapes)} '
                     '(give a video or images of one size)')
  (h, w), = shapes
  frames = np.stack([np.asarray(v['img'], np.float32).reshape(h, w, 3) for v in views])
  return np.round((frames + 1) * 127.5).clip(0, 255).astype(np.uint8), h, w


def clip_opener(model, frames, chunk=d4rt.DEFAULT_CHUNK):
  """(open_clip, T) of `model`: load_model's Predictor of a D4RT checkpoint or a D4RT network (open_clip(frame_ids
  (T,)) → a Decoder of those frames resized to img_size²), or a clip opener itself (a callable with `num_frames`:
  open_clip(frame_ids) → decode, e.g. exact geometry for tests); T frames per clip."""
  model = getattr(model, 'module', model)  # a Predictor's network
  if not isinstance(model, nnx.Module):
    return model, int(model.num_frames)
  size = model.cfg.img_size
  h, w = frames.shape[1:3]
  resized = np.stack([crop_resize(f, (0, 0, w, h), size) for f in frames]).astype(np.float32) / 127.5 - 1

  def open_clip(ids):
    return d4rt.Decoder(model, resized[ids], aspect_ratio=w / h, chunk=chunk)
  return open_clip, model.cfg.num_frames


def _clip_outputs(decode, h, w, grid, with_motion):
  """One clip's per-position outputs (module docstring), numpy."""
  T = decode.num_frames
  out = {'pose': d4rt.extrinsics(decode, None, grid=grid, reference=0),
         'focal': d4rt.intrinsics(decode, None, grid=grid),
         'depth': d4rt.depth_maps(decode, None, h=h, w=w)}
  out['pts3d'], out['conf'] = d4rt.point_cloud(decode, None, h=h, w=w, reference_frame=0)
  if with_motion and T > 1:
    moved, out['motion_conf'] = d4rt.moved_points(decode, None, h=h, w=w, reference_frame=0)
    out['motion'] = moved - out['pts3d'][:-1]
  return out


def _similarity(src, dst, conf, top_fraction):
  """(4,4) s·R|t mapping src (K,3) onto dst (K,3) on the top_fraction most confident points."""
  keep = np.isfinite(src).all(-1) & np.isfinite(dst).all(-1) & np.isfinite(conf)
  if keep.sum() < 3:
    raise ValueError('D4RT clip alignment: fewer than 3 finite points in the overlap of two clips')
  src, dst, conf = src[keep], dst[keep], conf[keep]
  top = conf >= np.quantile(conf, 1 - top_fraction)
  s, R, t = umeyama(src[top], dst[top], np.ones(int(top.sum())))
  return similarity_matrix(s, R, t), s


def reconstruct_views(model, views, *, overlap: int | None = None, grid: int = 32, chunk: int = d4rt.DEFAULT_CHUNK,
                      min_conf_thr: float = 3.0, top_fraction: float = TOP_FRACTION,
                      with_motion: bool = True) -> D4RTScene:
  """The D4RT scene of processed views of one size (a video's frames in time order; module docstring).

  model: see clip_opener. overlap: frames shared by consecutive clips (default T // 4, at least 1)."""
  frames, h, w = view_frames(views)
  n = len(frames)
  open_clip, T = clip_opener(model, frames, chunk)
  overlap = max(1, T // 4) if overlap is None else int(overlap)
  starts = clip_starts(n, T, overlap)
  c2w = np.zeros((n, 4, 4))
  fxy = np.zeros((n, 2))
  depth, pts3d, conf = (np.zeros((n, h, w) + s, np.float32) for s in ((), (3,), ()))
  motion, motion_conf = np.zeros((n, h, w, 3), np.float32), np.zeros((n, h, w), np.float32)
  target = np.full(n, -1, np.int64)
  placed, moved = np.zeros(n, bool), np.zeros(n, bool)
  clips, scales = [], []
  for start in starts:
    ids = np.minimum(np.arange(start, start + T), n - 1)  # padded with the last frame when n < T
    out = _clip_outputs(open_clip(ids), h, w, grid, with_motion)
    real = ids[:min(T, n - start)]                          # positions 0..len(real)-1 are distinct frames
    if start == 0:
      to_world, s = np.eye(4), 1.0
    else:
      shared = [p for p, t in enumerate(real) if placed[t]]
      to_world, s = _similarity(out['pts3d'][shared].reshape(-1, 3), pts3d[real[shared]].reshape(-1, 3),
                                (out['conf'][shared] * conf[real[shared]]).reshape(-1), top_fraction)
    rot = to_world[:3, :3] / s
    for p, t in enumerate(real):
      if not placed[t]:
        c2w[t] = to_world @ out['pose'][p]
        c2w[t, :3, :3] = rot @ out['pose'][p][:3, :3]     # the pose's rotation without the scale
        fxy[t], depth[t] = out['focal'][p], s * out['depth'][p]
        pts3d[t] = out['pts3d'][p] @ to_world[:3, :3].T + to_world[:3, 3]
        conf[t] = out['conf'][p]
        placed[t] = True
      if 'motion' in out and p + 1 < len(real) and not moved[t]:
        motion[t], motion_conf[t] = out['motion'][p] @ to_world[:3, :3].T, out['motion_conf'][p]
        target[t], moved[t] = real[p + 1], True
    clips.append((int(start), int(real[-1]) + 1))
    scales.append(float(s))
  K = np.zeros((n, 3, 3), np.float32)
  K[:, 0, 0], K[:, 1, 1] = fxy[:, 0] * w, fxy[:, 1] * h
  K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = w / 2 - 0.5, h / 2 - 0.5, 1
  imgs = frames.astype(np.float32) / 255
  return D4RTScene(cam_to_world=c2w.astype(np.float32), focals=np.sqrt(K[:, 0, 0] * K[:, 1, 1]),
                   principal_points=K[:, :2, 2].copy(), intrinsics=K, depthmaps=depth, pts3d=pts3d, conf=conf,
                   min_conf_thr=min_conf_thr, imgs=imgs,
                   motion=list(motion) if with_motion else None, motion_target=target if with_motion else None,
                   motion_conf=motion_conf if with_motion else None, clips=clips, clip_scales=scales)


def motion_records(scene: D4RTScene) -> list[dict]:
  """scene.motion as motion.write_motion's records (inference/motion.py): frame t's pixels moved to frame t + 1."""
  return [{'edge': -1, 'src': t, 'dst': int(dst), 'key': 'd4rt_next_frame', 'q': 1.0, 'fraction': 1.0,
           'time': float(dst), 'flow': scene.motion[t], 'conf': scene.motion_conf[t]}
          for t, dst in enumerate(scene.motion_target) if dst >= 0]
