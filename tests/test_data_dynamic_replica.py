"""The Dynamic Replica reader (data/dynamic_replica.py) on a tiny synthetic split written in the official
layout: known OpenCV cameras stored the PyTorch3D way, float16-bit depth PNGs, torch.save trajectories."""
import gzip
import json
import os

import cv2
import numpy as np
import pytest

from data import dynamic_replica
from data.sequence import LayoutError
from tests import torch_format

H, W, T, N = 16, 24, 3, 40
F = np.diag([-1.0, -1.0, 1.0])
SEQ = 'abc123-3_obj_source'
INTRINSICS = dynamic_replica.INTRINSICS_FORMATS


def _rotation(axis, angle):
  axis = np.asarray(axis, float) / np.linalg.norm(axis)
  return cv2.Rodrigues(axis * angle)[0]


def _cameras():
  """Per frame: OpenCV K, R_cv, t_cv (world → camera), and an intrinsics format."""
  out = []
  for t in range(T):
    K = np.array([[20.0 + t, 0, 11.3 - t], [0, 22.0, 7.6 + 0.5 * t], [0, 0, 1]])
    R = _rotation([0.3, 1.0, -0.2], 0.1 + 0.1 * t)
    out.append((K, R, np.array([0.1 * t, -0.2, 0.3]), INTRINSICS[t % 2]))
  return out


def _viewpoint(K, R_cv, t_cv, fmt):
  """The FrameAnnotation viewpoint of an OpenCV camera: R = R_cvᵀ·F, T = F·t_cv, NDC focal / centre."""
  half = np.array([W, H]) / 2
  scale = half if fmt == 'ndc_norm_image_bounds' else np.full(2, half.min())
  focal = np.array([K[0, 0], K[1, 1]]) / scale
  principal = (half - K[:2, 2]) / scale
  return {'R': (R_cv.T @ F).tolist(), 'T': (F @ t_cv).tolist(), 'focal_length': focal.tolist(),
          'principal_point': principal.tolist(), 'intrinsics_format': fmt}


def _write_split(root, rng):
  """Writes <root>/test/ with sequence SEQ (left with trajectories, right without) and one more; returns
  the ground truth of SEQ's left view."""
  split = os.path.join(root, 'test')
  cams = _cameras()
  start = rng.uniform([-1, -1, 3], [1.5, 1, 6], (N, 3))
  velocity = rng.normal(0, 0.05, (N, 3))
  truth = {'K': [], 'w2c': [], 'image': [], 'depth16': [], 'xyz': [], 'vis': [], 'uv': []}
  entries = []
  for seq, views in ((SEQ, ('left', 'right')), ('zzz999-1_obj_source', ('left',))):
    for camera in views:
      folder = f'{seq}_{camera}'
      for sub in ('images', 'depths', 'trajectories'):
        os.makedirs(os.path.join(split, folder, sub), exist_ok=True)
      for t, (K, R, tv, fmt) in enumerate(cams):
        image = rng.integers(0, 256, (H, W, 4 if t == 1 else 3), np.uint8)
        image_path = f'{folder}/images/{folder}-{t:04d}.png'
        cv2.imwrite(os.path.join(split, image_path), cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if t == 1
                                                                   else cv2.COLOR_RGB2BGR))
        world = (start + t * velocity).astype(np.float32)
        cam = world.astype(np.float64) @ R.T + tv
        uvz = cam @ K.T
        uv = uvz[:, :2] / uvz[:, 2:]
        vis = rng.random(N) < 0.8
        depth = rng.uniform(1, 9, (H, W)).astype(np.float16)
        depth[0, :4] = [0, 1e-6, np.nan, np.inf]
        rounded = np.rint(uv).astype(int)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] <= W - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= H - 1)
        taken = set()
        for n in np.flatnonzero(vis & inside):  # one visible vertex per pixel, its z in the depth map
          if (rounded[n, 1], rounded[n, 0]) in taken:
            vis[n] = False
            continue
          taken.add((rounded[n, 1], rounded[n, 0]))
          depth[rounded[n, 1], rounded[n, 0]] = cam[n, 2]
        depth_path = f'{folder}/depths/{folder}_{t:04d}.geometric.png'
        cv2.imwrite(os.path.join(split, depth_path), depth.view(np.uint16))
        entry = {'sequence_name': seq, 'camera_name': camera, 'frame_number': t, 'frame_timestamp': t / 30,
                 'image': {'path': image_path, 'size': [H, W]},
                 'depth': {'path': depth_path, 'scale_adjustment': 1.0, 'mask_path': None},
                 'mask': None, 'viewpoint': _viewpoint(K, R, tv, fmt), 'meta': {}}
        if camera == 'left':
          traj_path = f'{folder}/trajectories/{t:06d}.pth'
          torch_format.save(os.path.join(split, traj_path), {
              'traj_3d_world': world, 'traj_2d': np.concatenate([uv, cam[:, 2:]], 1).astype(np.float32),
              'verts_inds_vis': vis, 'img': image[..., :3], 'instances': np.ones(N, np.uint8)})
          entry['trajectories'] = {'path': traj_path}
        entries.append(entry)
        if seq == SEQ and camera == 'left':
          e = np.eye(4)
          e[:3, :3], e[:3, 3] = R, tv
          truth['K'].append(K), truth['w2c'].append(e), truth['image'].append(image[..., :3])
          truth['depth16'].append(depth), truth['xyz'].append(cam), truth['vis'].append(vis & inside)
          truth['uv'].append(uv)
  rng.shuffle(entries)  # the reader must not rely on the file order
  with gzip.open(os.path.join(split, 'frame_annotations_test.jgz'), 'wt', encoding='utf8') as f:
    json.dump(entries, f)
  return {k: np.stack(v) for k, v in truth.items()}


@pytest.fixture(scope='module')
def split(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('dynamic_replica'))
  return root, _write_split(root, np.random.default_rng(0))


def test_sequence_names(split):
  root, _ = split
  assert dynamic_replica.sequence_names(root) == [SEQ, 'zzz999-1_obj_source']
  assert dynamic_replica.sequence_names(root, camera='right') == [SEQ]


def test_every_field(split):
  root, truth = split
  seq = dynamic_replica.load_sequence(root, SEQ)
  assert seq.dataset == 'dynamic_replica' and seq.name == SEQ and seq.num_frames == T
  assert seq.frames == [f'{SEQ}_left-{t:04d}' for t in range(T)]
  np.testing.assert_allclose(seq.intrinsics, truth['K'], atol=1e-12)
  np.testing.assert_allclose(seq.world_to_camera, truth['w2c'], atol=1e-12)
  np.testing.assert_allclose(seq.timestamps, np.arange(T) / 30)
  for t in range(T):
    image = seq.load_image(t)
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    np.testing.assert_array_equal(image, truth['image'][t])
    depth, want = seq.load_depth(t), truth['depth16'][t].astype(np.float32)
    assert depth.dtype == np.float32 and depth.shape == (H, W)
    np.testing.assert_array_equal(depth[0, :4], 0)  # 0, 1e-6, NaN, inf: invalid
    np.testing.assert_array_equal(depth[1:], want[1:])  # bit-exact float16 round trip
    np.testing.assert_array_equal(depth[0, 4:], want[0, 4:])
  np.testing.assert_allclose(seq.tracks_xyz, truth['xyz'], atol=1e-9)
  np.testing.assert_array_equal(seq.visibility, truth['vis'])
  assert seq.visibility.any() and not seq.visibility.all()  # some vertices hidden or outside the image
  np.testing.assert_allclose(seq.tracks_uv, truth['uv'], atol=1e-4)


def test_options(split):
  root, truth = split
  seq = dynamic_replica.load_sequence(root, SEQ, sample_len=2, tracks=False)
  assert seq.num_frames == 2 and seq.tracks_xyz is None and seq.tracks_uv is None
  np.testing.assert_allclose(seq.world_to_camera, truth['w2c'][:2], atol=1e-12)
  right = dynamic_replica.load_sequence(root, SEQ, camera='right')
  assert right.frames[0] == f'{SEQ}_right-0000' and right.tracks_xyz is None
  monst3r = dynamic_replica.load_sequence(root, SEQ, camera_convention='monst3r', tracks=False)
  np.testing.assert_allclose(monst3r.intrinsics, truth['K'], atol=1e-12)
  R_p3d = truth['w2c'][:, :3, :3].transpose(0, 2, 1) @ F
  np.testing.assert_allclose(monst3r.world_to_camera[:, :3, :3], R_p3d, atol=1e-12)
  np.testing.assert_allclose(monst3r.world_to_camera[:, :3, 3], truth['w2c'][:, :3, 3] @ F, atol=1e-12)
  with pytest.raises(ValueError, match='camera_convention'):
    dynamic_replica.load_sequence(root, SEQ, camera_convention='opengl')


def test_check_reprojection_tells_the_convention(split):
  root, _ = split
  right = dynamic_replica.load_sequence(root, SEQ)
  wrong = dynamic_replica.load_sequence(root, SEQ, camera_convention='monst3r')
  for t in range(T):
    pixel_err, depth_err = dynamic_replica.check_reprojection(right, t)
    assert len(pixel_err) == right.visibility[t].sum() > 5
    assert np.abs(pixel_err).max() < 1e-3
    z = right.tracks_xyz[t][right.visibility[t], 2]
    assert np.all(np.abs(depth_err) <= z * 2.0 ** -11 + 1e-6)  # float16 rounding of the GT depth
    pixel_err, _ = dynamic_replica.check_reprojection(wrong, t)
    assert np.nanmedian(np.linalg.norm(pixel_err, axis=1)) > 5


def test_read_image_of_grey_and_broken_pngs(tmp_path):
  grey = np.arange(H * W, dtype=np.uint8).reshape(H, W)
  cv2.imwrite(str(tmp_path / 'grey.png'), grey)
  np.testing.assert_array_equal(dynamic_replica.read_image(str(tmp_path / 'grey.png')),
                                np.repeat(grey[..., None], 3, axis=-1))
  (tmp_path / 'broken.png').write_bytes(b'not a png')
  with pytest.raises(LayoutError, match=f'{tmp_path / "broken.png"}: not a readable image'):
    dynamic_replica.read_image(str(tmp_path / 'broken.png'))


def test_layout_errors(split, tmp_path):
  root, _ = split
  with pytest.raises(LayoutError, match='frame_annotations_test.jgz: no such file; expected a Dynamic'):
    dynamic_replica.sequence_names(str(tmp_path))
  with pytest.raises(LayoutError, match="no sequence 'nope' with camera 'left'"):
    dynamic_replica.load_sequence(root, 'nope')
  folder = 'zzz999-1_obj_source_left'
  depth = os.path.join(root, 'test', folder, 'depths', f'{folder}_0001.geometric.png')
  os.rename(depth, depth + '.moved')
  try:
    with pytest.raises(LayoutError) as error:
      dynamic_replica.load_sequence(root, 'zzz999-1_obj_source')
    assert str(error.value).startswith(f'{depth}: no such file; expected a Dynamic Replica root')
  finally:
    os.rename(depth + '.moved', depth)
  jgz = tmp_path / 'test' / 'frame_annotations_test.jgz'
  jgz.parent.mkdir()
  with gzip.open(jgz, 'wt', encoding='utf8') as f:   # no depth entry
    json.dump([{'sequence_name': 's', 'camera_name': 'left', 'frame_number': 0, 'image': {'path': 'a.png'}}], f)
  with pytest.raises(LayoutError, match=f"{jgz}: sequence 's': an annotation without .*KeyError: 'depth'"):
    dynamic_replica.load_sequence(str(tmp_path), 's')
