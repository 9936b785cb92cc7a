"""DynaDUSt3R's motion (4D) in the aligned world: per-edge scene flow, per-image flow for the frames, exports.

Frames and times. Edge e = (i, j) is the pair (view 1 = image i, view 2 = image j); its pointmaps and motions
are in camera i's frame at the edge's own scale. Query times are normalised per pair — image i at 0, image j
at 1 — and the model takes query_times (E,3) = [q_mid, q_r, q_l] (default [0.5, 1, 0]):
  res1 'motion_l2m' / 'motion_l2r': image i's pixels from time 0 to q_mid / q_r,
  res2 'motion_r2m' / 'motion_r2l': image j's pixels from time 1 to q_mid / q_l.
The scene's time of image n is its index n (a video's frames are indexed in time order), so a query q of
edge (i, j) is the time i + q·(j − i) in frame units; a flow's `fraction` is how far it goes from its source
image's time towards the other image's: q for image i, 1 − q for image j (1 = all the way).

World frame. The global alignment maps edge e's predictions into the world by P_e = σ_e·[R_e | t_e]
(global_align.pairwise_poses), so a displacement m (no translation) becomes flow = σ_e R_e m, anchored at the
aligned world points scene.pts3d[src]: moved = pts3d[src] + flow. PairViewer's scene has no pw_poses: the
edge's frame is camera i, whose pose is known (R_e = cam_to_world[i][:3,:3]), and σ_e = the median of scene
depth[i] / edge depth (pred1 'pts3d' z) over pixels with both positive — exactly 1 for the edge whose view 1
is PairViewer's world camera.

Per-image `motion` (for frames/frame_XXXX.npz and the viewer): image n's flow to the time of the next frame
in the graph — image n + 1 when an edge joins them, else the nearest later image joined to n — taken from
edge (n, k)'s 'motion_l2r' when present, else edge (k, n)'s 'motion_r2l', only from flows with fraction 1;
zeros and motion_target −1 (the mask: no flow) where there is none (e.g. the last frame).
"""
import json
import os

import numpy as np

from dynadust3r_jax.common.motion_terms import MOTION_QUERIES
from dynadust3r_jax.inference.export.common import read_scene, scene_attr, to_uint8
from dynadust3r_jax.inference.export.points import write_ply_points

DEFAULT_QUERY_TIMES = (0.5, 1.0, 0.0)
RECORD_ORDER = ('l2r', 'l2m', 'r2l', 'r2m')  # the records' order per edge: each view to the other's time first
# (prediction, output name, column of query_times, view side): side 0 = image i (time 0), 1 = image j (time 1)
MOTION_OUTPUTS = tuple((f'pred{view}', name, col, view - 1) for name in RECORD_ORDER
                       for view, col in [MOTION_QUERIES[name]])


def has_motion(output) -> bool:
  """Whether an inference output has DynaDUSt3R's motion outputs."""
  return all(f'motion_{name}' in output[pred] for pred, name, _, _ in MOTION_OUTPUTS)


def pair_query_times(n_pairs: int, query_times=DEFAULT_QUERY_TIMES) -> np.ndarray:
  """(E,3) float32: the same normalised [q_mid, q_r, q_l] for every pair."""
  q = np.asarray(query_times, np.float32).reshape(-1)
  if q.shape != (3,) or not np.isfinite(q).all():
    raise ValueError(f'query_times must be 3 finite numbers [t_mid, t_view2, t_view1], got {query_times!r}')
  return np.tile(q, (n_pairs, 1))


def _edges(output):
  ei = np.asarray(output['view1']['idx']).reshape(-1).astype(int)
  ej = np.asarray(output['view2']['idx']).reshape(-1).astype(int)
  return list(zip(ei.tolist(), ej.tolist()))


def edge_transforms(output, scene, base_scale=0.5, norm_pw_scale=True):
  """Per edge the rotation and scale taking its camera-1 frame to the world: (E,3,3) R, (E,) σ (float64).

  From scene.params['pw_poses'] (global alignment; base_scale, norm_pw_scale as given to it), else
  PairViewer's rule (module docstring)."""
  edges = _edges(output)
  params = scene_attr(scene, 'params')
  if params is not None and 'pw_poses' in params:
    from dynadust3r_jax.inference.global_align import pairwise_poses  # jax only on this path
    P = np.asarray(pairwise_poses(np.asarray(params['pw_poses'], np.float32), base_scale, norm_pw_scale), np.float64)
    if len(P) != len(edges):
      raise ValueError(f'scene has {len(P)} pw_poses for {len(edges)} edges of the output')
    sigma = np.linalg.norm(P[:, :3, 0], axis=-1)
    return P[:, :3, :3] / sigma[:, None, None], sigma
  c2w = np.asarray(scene_attr(scene, 'cam_to_world'), np.float64)
  depth = scene_attr(scene, 'depthmaps')
  R, sigma = [], []
  for e, (i, _) in enumerate(edges):
    d_scene, d_edge = np.asarray(depth[i], np.float64), np.asarray(output['pred1']['pts3d'][e][..., 2], np.float64)
    ok = (d_scene > 0) & (d_edge > 0) & np.isfinite(d_scene) & np.isfinite(d_edge)
    R.append(c2w[i, :3, :3])
    sigma.append(float(np.median(d_scene[ok] / d_edge[ok])) if ok.any() else 1.0)
  return np.stack(R), np.array(sigma)


def scene_flows(output, scene, query_times=None, base_scale=0.5, norm_pw_scale=True) -> list[dict]:
  """World-frame scene flow of every edge's four motion outputs → list of records, in MOTION_OUTPUTS order
  within each edge:
    edge (e), src, dst (images), key ('motion_l2r', ...), q (normalised query time), fraction (0..1 of the way
    from src's time to dst's), time (frame units), flow (H,W,3) float32 world, conf (H,W) the motion's raw
    confidence (ones when the model gives none).
  query_times: the (E,3) given to inference (default DEFAULT_QUERY_TIMES for every pair)."""
  if not has_motion(output):
    raise ValueError('scene_flows: the inference output has no motion outputs (a DynaDUSt3R model run with '
                     'query_times gives them)')
  edges = _edges(output)
  qt = pair_query_times(len(edges)) if query_times is None else np.asarray(query_times, np.float64)
  R, sigma = edge_transforms(output, scene, base_scale, norm_pw_scale)
  records = []
  for e, (i, j) in enumerate(edges):
    for pred, name, col, side in MOTION_OUTPUTS:
      m = np.asarray(output[pred][f'motion_{name}'][e], np.float64)
      conf = output[pred].get(f'conf_{name}')
      q = float(qt[e, col])
      src, dst = (i, j) if side == 0 else (j, i)
      records.append({'edge': e, 'src': src, 'dst': dst, 'key': f'motion_{name}', 'q': q,
                      'fraction': q if side == 0 else 1.0 - q, 'time': i + q * (j - i),
                      'flow': (sigma[e] * m @ R[e].T).astype(np.float32),
                      'conf': np.ones(m.shape[:2], np.float32) if conf is None else np.asarray(conf[e], np.float32)})
  return records


def per_image_motion(records, n_imgs, shapes):
  """→ motion [(H,W,3)] float32 (zeros where none), target (N,) int: the image each flow goes to (−1: none).
  The module docstring's rule: nearest later image; edge (n, k)'s l2r before edge (k, n)'s r2l; fraction 1."""
  full = [r for r in records if np.isclose(r['fraction'], 1.0)]
  order = {'motion_l2r': 0, 'motion_r2l': 1}
  motion = [np.zeros(tuple(hw) + (3,), np.float32) for hw in shapes]
  target = np.full(n_imgs, -1, np.int64)
  for n in range(n_imgs):
    later = sorted((r['dst'], order.get(r['key'], 2), r['edge'], k) for k, r in enumerate(full)
                   if r['src'] == n and r['dst'] > n)
    if later:
      rec = full[later[0][3]]
      motion[n], target[n] = rec['flow'], rec['dst']
  return motion, target


def cloud_name(rec) -> str:
  """'frame_0000_to_0001' (src's points at dst's time) or 'frame_0000_to_0001_at_0.50' (a fraction of the way)."""
  base = f'frame_{rec["src"]:04d}_to_{rec["dst"]:04d}'
  return base if np.isclose(rec['fraction'], 1.0) else f'{base}_at_{rec["fraction"]:.2f}'


def image_plane_flow(pts, flow, K, w2c):
  """(H,W,2) pixel displacement of the flow seen from the source camera: π(X + F) − π(X) (NaN behind it)."""
  def project(X):
    cam = X @ w2c[:3, :3].T + w2c[:3, 3]
    z = np.where(cam[..., 2:] > 1e-9, cam[..., 2:], np.nan)
    return (cam @ K.T)[..., :2] / z
  return project(pts + flow) - project(pts)


def _wheel(d, valid):
  """(H,W,2) displacement → (H,W,3) RGB in [0,1]: hue = direction, value = |d| / its 99th percentile."""
  from matplotlib.colors import hsv_to_rgb
  mag = np.linalg.norm(d, axis=-1)
  top = np.percentile(mag[valid], 99) if valid.any() else 1.0
  hsv = np.stack([(np.arctan2(d[..., 1], d[..., 0]) / (2 * np.pi)) % 1.0, np.ones_like(mag),
                  np.clip(mag / max(top, 1e-12), 0, 1)], -1)
  rgb = hsv_to_rgb(np.nan_to_num(hsv))
  rgb[~valid] = 0.5
  return rgb, float(top)


def write_flow_picture(path, rgb, pts, flow, mask, K, w2c, title):
  """One PNG: the image, |flow| (scene units, colour bar), and the image-plane direction (HSV wheel + legend)."""
  from matplotlib.figure import Figure
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  mag = np.linalg.norm(flow, axis=-1)
  d = image_plane_flow(pts, flow, K, w2c)
  valid = mask & np.isfinite(d).all(-1)
  wheel, top = _wheel(np.nan_to_num(d), valid)
  fig = Figure(figsize=(10, 3.6), dpi=100, layout='constrained')
  FigureCanvasAgg(fig)
  fig.suptitle(title)
  ax = fig.subplots(1, 3)
  ax[0].imshow(np.clip(rgb, 0, 1))
  ax[0].set_title('image')
  im = ax[1].imshow(np.ma.masked_array(mag, ~mask), cmap='magma')
  fig.colorbar(im, ax=ax[1], label='|flow| (scene units)')
  ax[1].set_title('flow magnitude (world)')
  ax[2].imshow(wheel)
  ax[2].set_title(f'direction in the image plane\n(value: |Δpx| up to {top:.3g} px)')
  v, u = np.mgrid[-1:1:64j, -1:1:64j]
  key, _ = _wheel(np.stack([u, v], -1), u ** 2 + v ** 2 <= 1)
  inset = ax[2].inset_axes([0.78, 0.78, 0.22, 0.22])
  inset.imshow(key)
  inset.set_axis_off()
  for a in ax:
    a.set_axis_off()
  fig.savefig(path)
  return path


def write_motion(scene, records, outdir, views=None, pictures=True) -> dict:
  """Writes under outdir, for each (src, dst, fraction) once (the first record in scene_flows' order):
    NAME.ply  src's masked points moved by the flow (x, y, z, colours), NAME.npz  points (H,W,3) = pts3d +
    flow, flow (H,W,3), mask (H,W), conf (H,W), src, dst, fraction, time, edge, key (NAME: cloud_name);
  flow_frame_XXXX.png for every image with a motion target (scene.motion_target, else per_image_motion);
  index.json (each cloud's fields, the per-image targets). → {'clouds': [...], 'pictures': [...], 'index': path}."""
  s = read_scene(scene, views)
  os.makedirs(outdir, exist_ok=True)
  clouds, entries, seen = [], [], set()
  for rec in records:
    name = cloud_name(rec)
    if name in seen:
      continue
    seen.add(name)
    n = rec['src']
    pts, mask = s['pts3d'][n], s['mask'][n]
    moved = pts + rec['flow']
    write_ply_points(os.path.join(outdir, name + '.ply'), moved[mask].reshape(-1, 3).astype(np.float32),
                     to_uint8(s['rgb'][n][mask]).reshape(-1, 3))
    meta = {k: rec[k] for k in ('src', 'dst', 'fraction', 'time', 'edge', 'key', 'q')}
    np.savez(os.path.join(outdir, name + '.npz'), points=moved.astype(np.float32), flow=rec['flow'], mask=mask,
             conf=rec['conf'], **meta)
    clouds.append(os.path.join(outdir, name + '.ply'))
    entries.append({'name': name, 'points': int(mask.sum()), **meta})
  target = scene_attr(scene, 'motion_target')
  motion = scene_attr(scene, 'motion')
  if target is None or motion is None:
    motion, target = per_image_motion(records, s['n'], [d.shape for d in s['depth']])
  paths = []
  if pictures:
    for n in range(s['n']):
      if target[n] < 0:
        continue
      path = os.path.join(outdir, f'flow_frame_{n:04d}.png')
      paths.append(write_flow_picture(path, s['rgb'][n], s['pts3d'][n], np.asarray(motion[n]), s['mask'][n],
                                      s['K'][n], s['world_to_cam'][n], f'frame {n} → frame {int(target[n])}'))
  index = os.path.join(outdir, 'index.json')
  with open(index, 'w') as f:
    json.dump({'clouds': entries, 'motion_target': [int(t) for t in target],
               'conventions': 'see dynadust3r_jax/inference/motion.py'}, f, indent=1)
  return {'clouds': clouds, 'pictures': paths, 'index': index}
