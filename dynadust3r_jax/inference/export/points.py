"""Point exports: a coloured PLY of the masked world points, and per-frame npz files (MonST3R-like layout)."""
import os

import numpy as np

from dynadust3r_jax.inference.export.common import original_intrinsics, read_scene, scene_attr, to_uint8


def masked_points(s):
  """read_scene dict → (P,3) float32 world points and (P,3) uint8 colours of the masked pixels, image by image,
  row-major within an image."""
  xyz = np.concatenate([p[m] for p, m in zip(s['pts3d'], s['mask'])]).reshape(-1, 3)
  rgb = np.concatenate([to_uint8(c[m]) for c, m in zip(s['rgb'], s['mask'])]).reshape(-1, 3)
  return xyz.astype(np.float32), rgb


def write_ply(scene, path, views=None):
  """Binary little-endian PLY: the scene's masked world points (x, y, z float32; red, green, blue uint8)."""
  xyz, rgb = masked_points(read_scene(scene, views))
  return write_ply_points(path, xyz, rgb)


def write_ply_points(path, xyz, rgb):
  """(P,3) float points + (P,3) uint8 colours → binary PLY at path."""
  rec = np.empty(len(xyz), dtype=[('x', '<f4'), ('y', '<f4'), ('z', '<f4'),
                                  ('red', 'u1'), ('green', 'u1'), ('blue', 'u1')])
  for k, name in enumerate('xyz'):
    rec[name] = xyz[:, k]
  for k, name in enumerate(('red', 'green', 'blue')):
    rec[name] = rgb[:, k]
  header = ('ply\nformat binary_little_endian 1.0\n'
            f'element vertex {len(rec)}\n'
            'property float x\nproperty float y\nproperty float z\n'
            'property uchar red\nproperty uchar green\nproperty uchar blue\n'
            'end_header\n')
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(header.encode('ascii'))
    f.write(rec.tobytes())
  return path


def write_frames(scene, views, outdir, prefix='frame_'):
  """One outdir/{prefix}{i:04d}.npz per image, at the processed size (H,W):
  depth (H,W) f32, confidence (H,W) f32 (raw), mask (H,W) bool, pointmap (H,W,3) f32 world, image (H,W,3)
  uint8, cam_to_world (4,4) OpenCV axes, K (3,3) processed (pixel-index convention), K_original (3,3)
  (pixel-edge convention), name, orig_shape (H0,W0), and motion (H,W,3) f32 (world displacement per pixel,
  DynaDUSt3R) when the scene has a `motion` attribute (N,H,W,3) or list, and motion_target () int64 (the image
  the motion goes to, −1: none, zeros) when it has `motion_target` (N,). Returns the list of paths."""
  s = read_scene(scene, views)
  motion = scene_attr(scene, 'motion')
  motion_target = scene_attr(scene, 'motion_target')
  os.makedirs(outdir, exist_ok=True)
  paths = []
  for i in range(s['n']):
    view = views[i] if views is not None else None
    extra = {}
    if motion is not None:
      extra['motion'] = np.asarray(motion[i], np.float32)
      if extra['motion'].shape != s['pts3d'][i].shape:
        raise ValueError(f'scene.motion[{i}] has shape {extra["motion"].shape}, expected {s["pts3d"][i].shape}')
    if motion_target is not None:
      extra['motion_target'] = np.int64(motion_target[i])
    if view is not None:
      extra |= {'name': np.str_(view['name']), 'orig_shape': np.asarray(view['orig_shape'], np.int64),
               'K_original': original_intrinsics(s['K'][i], view)}
    path = os.path.join(outdir, f'{prefix}{i:04d}.npz')
    np.savez(path, depth=s['depth'][i], confidence=s['conf'][i], mask=s['mask'][i], pointmap=s['pts3d'][i],
             image=to_uint8(s['rgb'][i]), cam_to_world=s['cam_to_world'][i], K=s['K'][i], **extra)
    paths.append(path)
  return paths
