"""One synthetic clip (data/synthetic.py: frames, depth, cameras, 3D tracks) written in each evaluation
dataset's official on-disk format, for end-to-end tests of the evaluation job.

Geometry of the clip: K with pixel centres at integers (data/sequence.py), camera z depth per pixel, world
tracks (NaN where absent). Each writer returns the root to give as config.data.root.
"""
import gzip
import io
import json
import os

import cv2
import numpy as np
import PIL.Image
from scipy.spatial.transform import Rotation

from data import co3d, sintel, stereo4d, synthetic
from dynadust3r_jax import families
from tests import torch_format

F = np.diag([-1.0, -1.0, 1.0])


class Clip:
  """A synthetic clip's frames and ground truth in data/sequence.py's conventions."""

  def __init__(self, seed=3, num_frames=8, size=64):
    arrays = synthetic.make_clip(seed=seed, num_frames=num_frames, size=size)
    self.images, self.depth = arrays['frames'], arrays['depth']
    self.K = stereo4d.intrinsics(size, size) - np.array([[0, 0, .5], [0, 0, .5], [0, 0, 0]])
    self.c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    self.c2w[:, :3] = arrays['camera2world']
    self.w2c = np.linalg.inv(self.c2w)
    self.stereo4d = tracks = stereo4d.Clip('c', arrays['camera2world'].astype(np.float64),
                           np.repeat(np.arange(len(arrays['track_lengths'])), arrays['track_lengths']),
                           arrays['track_indices'].astype(np.int64), arrays['track_coordinates'])
    self.world = tracks.dense_tracks().transpose(1, 0, 2).astype(np.float64)    # (T, N, 3), NaN: absent
    self.camera = np.einsum('tij,tnj->tni', self.w2c[:, :3, :3], self.world) + self.w2c[:, None, :3, 3]
    self.visible = np.isfinite(self.world).all(-1)

  @property
  def num_frames(self):
    return len(self.images)


def _png(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  PIL.Image.fromarray(array).save(path)


def write_tapvid3d(clip: Clip, root: str, name='Apartment_release_clip_0') -> str:
  """<root>/<name>.npz as tapnet's generator writes it (JPEG bytes, camera-frame tracks, extrinsics)."""
  jpegs = []
  for image in clip.images:
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format='JPEG', quality=95)
    jpegs.append(buffer.getvalue())
  first = np.argmax(clip.visible, axis=0)                              # each track's first visible frame
  uv = np.einsum('ij,nj->ni', clip.K, clip.camera[first, np.arange(clip.camera.shape[1])])
  queries = np.stack([uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2], first], 1)
  os.makedirs(root, exist_ok=True)
  np.savez(os.path.join(root, f'{name}.npz'), images_jpeg_bytes=jpegs,
           fx_fy_cx_cy=np.array([clip.K[0, 0], clip.K[1, 1], clip.K[0, 2], clip.K[1, 2]]),
           tracks_XYZ=clip.camera, visibility=clip.visible, queries_xyt=queries, extrinsics_w2c=clip.w2c)
  return root


def write_sintel(clip: Clip, root: str, name='alley_2') -> str:
  """<root>/{final,depth,camdata_left}/<name>/frame_%04d.* (1-based), as the Sintel SDK writes them."""
  for t in range(clip.num_frames):
    stem = f'frame_{t + 1:04d}'
    _png(os.path.join(root, 'final', name, stem + '.png'), clip.images[t])
    os.makedirs(os.path.join(root, 'depth', name), exist_ok=True)
    os.makedirs(os.path.join(root, 'camdata_left', name), exist_ok=True)
    sintel.write_dpt(os.path.join(root, 'depth', name, stem + '.dpt'), clip.depth[t])
    sintel.write_cam(os.path.join(root, 'camdata_left', name, stem + '.cam'), clip.K, clip.w2c[t, :3])
  return root


def write_bonn(clip: Clip, root: str, name='balloon2') -> str:
  """MonST3R's prepared Bonn layout: rgbd_bonn_<name>/{rgb_110,depth_110}/*.png, groundtruth_110.txt (TUM)."""
  folder = os.path.join(root, f'rgbd_bonn_{name}')
  lines = ['# timestamp tx ty tz qx qy qz qw']
  for t in range(clip.num_frames):
    stamp = 1548266469.0 + t / 30
    _png(os.path.join(folder, 'rgb_110', f'{stamp:.6f}.png'), clip.images[t])
    os.makedirs(os.path.join(folder, 'depth_110'), exist_ok=True)
    cv2.imwrite(os.path.join(folder, 'depth_110', f'{stamp:.6f}.png'), np.round(clip.depth[t] * 5000).astype(np.uint16))
    q = Rotation.from_matrix(clip.c2w[t, :3, :3]).as_quat()            # x, y, z, w
    lines.append(' '.join(f'{v:.9f}' for v in (stamp, *clip.c2w[t, :3, 3], *q)))
  with open(os.path.join(folder, 'groundtruth_110.txt'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return root


def write_dynamic_replica(clip: Clip, root: str, name='a1b2c3-1_obj_source') -> str:
  """<root>/test/frame_annotations_test.jgz + <name>_left/{images,depths,trajectories}: PyTorch3D NDC cameras
  (R = R_cvᵀ·F, T = F·t_cv), float16-bit depth PNGs, torch.save trajectories of the tracks present throughout."""
  split = os.path.join(root, 'test')
  folder = f'{name}_left'
  h, w = clip.images.shape[1:3]
  kept = clip.visible.all(0)                                           # DR: the same vertices in every frame
  entries = []
  for t in range(clip.num_frames):
    image_path, depth_path = f'{folder}/images/{folder}-{t:04d}.png', f'{folder}/depths/{folder}_{t:04d}.geometric.png'
    traj_path = f'{folder}/trajectories/{t:06d}.pth'
    _png(os.path.join(split, image_path), clip.images[t])
    os.makedirs(os.path.join(split, folder, 'depths'), exist_ok=True)
    cv2.imwrite(os.path.join(split, depth_path), clip.depth[t].astype(np.float16).view(np.uint16))
    uvz = clip.camera[t, kept] @ clip.K.T
    os.makedirs(os.path.join(split, folder, 'trajectories'), exist_ok=True)
    torch_format.save(os.path.join(split, traj_path), {
        'traj_3d_world': clip.world[t, kept].astype(np.float32),
        'traj_2d': np.concatenate([uvz[:, :2] / uvz[:, 2:], uvz[:, 2:]], 1).astype(np.float32),
        'verts_inds_vis': np.ones(kept.sum(), bool)})
    half = np.array([w, h]) / 2
    scale = np.full(2, half.min())                                     # ndc_isotropic
    R_cv, t_cv = clip.w2c[t, :3, :3], clip.w2c[t, :3, 3]
    viewpoint = {'R': (R_cv.T @ F).tolist(), 'T': (F @ t_cv).tolist(),
                 'focal_length': (np.diag(clip.K)[:2] / scale).tolist(),
                 'principal_point': ((half - clip.K[:2, 2]) / scale).tolist(), 'intrinsics_format': 'ndc_isotropic'}
    entries.append({'sequence_name': name, 'camera_name': 'left', 'frame_number': t, 'frame_timestamp': t / 30,
                    'image': {'path': image_path, 'size': [h, w]},
                    'depth': {'path': depth_path, 'scale_adjustment': 1.0, 'mask_path': None}, 'mask': None,
                    'viewpoint': viewpoint, 'meta': {}, 'trajectories': {'path': traj_path}})
  with gzip.open(os.path.join(split, 'frame_annotations_test.jgz'), 'wt', encoding='utf8') as f:
    json.dump(entries, f)
  return root


def write_co3d(clip: Clip, root: str, category='apple', name='000_00000_00000') -> str:
  """DUSt3R's processed CO3D: <root>/<category>/<seq>/{images,depths,masks}/ + selected_seqs_test.json."""
  seq_dir = os.path.join(root, category, name)
  for t in range(clip.num_frames):
    co3d.write_frame(seq_dir, t, clip.images[t], clip.depth[t], np.ones(clip.depth[t].shape, bool), clip.K, clip.c2w[t])
  co3d.write_selected_seqs(root, 'test', {category: {name: list(range(clip.num_frames))}})
  return root


class OracleModel:
  """A stand-in for the network that answers each pair with the clip's GT pointmaps (depth unprojected with
  K; view 2's points in view 1's camera), confidence 10: the protocols' numbers must then be near perfect.
  It recognises a frame by its processed image (load_images' output for `size`, square kept)."""
  family = families.for_arch('AsymmetricCroCo3DStereo')  # a pair model: the protocols run DUSt3R's path

  def __init__(self, clip: Clip, images_of_frames):
    h, w = clip.depth.shape[1:]
    rows, cols = np.mgrid[:h, :w]
    rays = np.stack([(cols - clip.K[0, 2]) / clip.K[0, 0], (rows - clip.K[1, 2]) / clip.K[1, 1], np.ones((h, w))], -1)
    self.points = rays[None] * clip.depth[..., None]                  # (T, H, W, 3) in each frame's camera
    self.clip = clip
    self.frame_of = {np.asarray(img, np.float32).tobytes(): t for t, img in enumerate(images_of_frames)}

  def _frame(self, img):
    return self.frame_of[np.asarray(img, np.float32).tobytes()]

  def __call__(self, view1, view2, query_times=None):
    res1, res2 = {'pts3d': [], 'conf': []}, {'pts3d_in_other_view': [], 'conf': []}
    for a, b in zip(view1['img'], view2['img']):
      i, j = self._frame(a), self._frame(b)
      j_to_i = self.clip.w2c[i] @ self.clip.c2w[j]
      res1['pts3d'].append(self.points[i])
      res2['pts3d_in_other_view'].append(self.points[j] @ j_to_i[:3, :3].T + j_to_i[:3, 3])
      for res in (res1, res2):
        res['conf'].append(np.full(self.points.shape[1:3], 10.0))
    return ({k: np.stack(v).astype(np.float32) for k, v in res1.items()},
            {k: np.stack(v).astype(np.float32) for k, v in res2.items()})


class D4RTOracle:
  """A stand-in for a D4RT network (a clip opener, inference/d4rt_scene.clip_opener): each clip of `num_frames`
  frames answers a query (u, v, t_src, t_tgt, t_cam) with the GT point of pixel (u, v) of frame t_src (its depth
  unprojected with K) in camera t_cam, confidence 10; static, so t_tgt is ignored (no motion queries)."""
  family = families.for_arch('D4RT')

  def __init__(self, clip: Clip, num_frames: int):
    self.points = OracleModel(clip, []).points              # (T, H, W, 3) in each frame's camera
    self.clip, self.num_frames = clip, num_frames

  def __call__(self, ids):
    h, w = self.points.shape[1:3]

    def decode(uv, qt):
      src, cam = ids[qt[:, 0]], ids[qt[:, 2]]
      cols, rows = (np.floor(uv[:, 0] * w).astype(int), np.floor(uv[:, 1] * h).astype(int))
      to_cam = self.clip.w2c[cam] @ self.clip.c2w[src]
      xyz = np.einsum('qij,qj->qi', to_cam[:, :3, :3], self.points[src, rows, cols]) + to_cam[:, :3, 3]
      return {'xyz': xyz, 'conf': np.full(len(uv), 10.0), 'vis_logit': np.ones(len(uv))}
    decode.num_frames = len(ids)
    return decode
