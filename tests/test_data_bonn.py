"""Bonn RGB-D Dynamic reader (data/bonn.py) on a tiny sequence in the dataset's own layout."""
import os

import cv2
import numpy as np
import pytest

from data.bonn import SEQUENCES, load_sequence, sequence_names
from data.sequence import LayoutError

H, W, N_FRAMES = 8, 12, 150


def _quat_to_matrix(x, y, z, w):
  """Unit quaternion → rotation, written out (independent of scipy)."""
  return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                   [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                   [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _rgb(i):
  image = np.zeros((H, W, 3), np.uint8)
  image[..., 0], image[..., 1], image[..., 2] = i, 255 - i, np.arange(W) * 20
  return image


def _depth(i):
  png = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 37 + 1000 + 11 * i).astype(np.uint16)
  png[0, :3] = 0  # invalid
  return png


def _write_sequence(folder, n, rgb_dir='rgb', depth_dir='depth', gt_file='groundtruth.txt', start=0):
  """n frames with TUM-style time-stamp names; groundtruth rows with random unit quaternions."""
  rng = np.random.default_rng(start)
  os.makedirs(folder / rgb_dir)
  os.makedirs(folder / depth_dir)
  rows = []
  for k in range(n):
    i = start + k
    stamp = 1548266469.0 + i / 24
    cv2.imwrite(str(folder / rgb_dir / f'{stamp:.6f}.png'), _rgb(i)[..., ::-1])  # cv2 writes BGR
    cv2.imwrite(str(folder / depth_dir / f'{stamp + 0.004:.6f}.png'), _depth(i))
    q = rng.normal(size=4)
    rows.append([stamp + 0.002, *rng.uniform(-2, 2, 3), *(q / np.linalg.norm(q))])
  header = '# ground truth trajectory\n# file: rgbd_bonn_x.bag\n# timestamp tx ty tz qx qy qz qw\n'
  (folder / gt_file).write_text(header + ''.join(' '.join(f'{v:.9f}' for v in r) + '\n' for r in rows))
  return np.array(rows)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  root = tmp_path_factory.mktemp('rgbd_bonn_dataset')
  rows = _write_sequence(root / 'rgbd_bonn_balloon2', N_FRAMES)
  for name in SEQUENCES[1:] + ('static',):
    os.makedirs(root / f'rgbd_bonn_{name}')
  return root, rows


def test_reads_frames_30_to_140(root):
  root, rows = root
  seq = load_sequence(str(root), 'balloon2')
  assert (seq.dataset, seq.name, seq.num_frames) == ('bonn', 'balloon2', 110)
  assert seq.frames[0] == f'{1548266469.0 + 30 / 24:.6f}' and seq.frames[-1] == f'{1548266469.0 + 139 / 24:.6f}'
  for t in (0, 57, 109):
    np.testing.assert_array_equal(seq.load_image(t), _rgb(30 + t))
    depth = seq.load_depth(t)
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, (_depth(30 + t) / 5000.0).astype(np.float32))
    assert np.all(depth[0, :3] == 0)
  np.testing.assert_array_equal(seq.timestamps, np.round(rows[30:140, 0], 9))
  K = np.array([[542.82, 0, 315.59], [0, 542.58, 237.76], [0, 0, 1]])
  np.testing.assert_array_equal(seq.intrinsics, np.repeat(K[None], 110, 0))
  for t in (0, 109):  # a point at camera xyz p sits in the world at R p + c (TUM camera→world)
    r = np.round(rows[30 + t], 9)
    p = np.array([0.3, -0.2, 2.5])
    world = _quat_to_matrix(*r[4:8]) @ p + r[1:4]
    np.testing.assert_allclose(seq.world_to_camera[t] @ np.append(world, 1), np.append(p, 1), atol=1e-7)


def test_all_frames_and_names(root):
  root, _ = root
  seq = load_sequence(str(root), 'balloon2', frames=None)
  assert seq.num_frames == N_FRAMES
  np.testing.assert_array_equal(seq.load_image(149), _rgb(149))
  assert sequence_names(str(root)) == sorted(SEQUENCES)
  assert sequence_names(str(root), sequences=None) == sorted(SEQUENCES + ('static',))
  assert sequence_names(str(root), sequences=('crowd2',)) == ['crowd2']


def test_prepared_layout(tmp_path):
  """MonST3R's rgb_110/ + depth_110/ + groundtruth_110.txt: read unsliced for the default frames."""
  folder = tmp_path / 'rgbd_bonn_crowd2'
  _write_sequence(folder, 40)
  rows = _write_sequence(folder, 5, 'rgb_110', 'depth_110', 'groundtruth_110.txt', start=30)
  seq = load_sequence(str(tmp_path), 'crowd2')
  assert seq.num_frames == 5
  np.testing.assert_array_equal(seq.load_image(0), _rgb(30))
  np.testing.assert_array_equal(seq.load_depth(4), (_depth(34) / 5000.0).astype(np.float32))
  np.testing.assert_array_equal(seq.timestamps, np.round(rows[:, 0], 9))
  assert load_sequence(str(tmp_path), 'crowd2', frames=(2, 7)).frames[0] == f'{1548266469.0 + 2 / 24:.6f}'


def test_layout_errors(root, tmp_path):
  root, _ = root
  with pytest.raises(LayoutError, match=f'{tmp_path / "nope"}: not a folder'):
    sequence_names(str(tmp_path / 'nope'))
  with pytest.raises(LayoutError, match=f'{tmp_path}: no rgbd_bonn_<seq>/'):
    sequence_names(str(tmp_path), sequences=None)
  with pytest.raises(LayoutError, match=f'{tmp_path / "rgbd_bonn_balloon2"}: missing'):
    sequence_names(str(tmp_path))
  with pytest.raises(LayoutError, match=f'{root / "rgbd_bonn_crowd3" / "rgb"}: missing'):
    load_sequence(str(root), 'crowd3')
  folder = tmp_path / 'rgbd_bonn_synchronous'
  _write_sequence(folder, 3)
  os.remove(folder / 'groundtruth.txt')
  with pytest.raises(LayoutError, match=f'{folder / "groundtruth.txt"}: missing'):
    load_sequence(str(tmp_path), 'synchronous', frames=None)
  (folder / 'groundtruth.txt').write_text('# header\n1 2 3 4 0 0 0 1\n')
  with pytest.raises(LayoutError, match=f'{folder}: 3 rgb frames, 3 depth frames, 1 groundtruth.txt rows'):
    load_sequence(str(tmp_path), 'synchronous', frames=None)
  (folder / 'groundtruth.txt').write_text('1 2 3 4 0 0 1\n' * 3)
  with pytest.raises(LayoutError, match='groundtruth.txt: 7 columns'):
    load_sequence(str(tmp_path), 'synchronous', frames=None)
