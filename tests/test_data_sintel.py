"""MPI Sintel reader (data/sintel.py) on a tiny training/ folder written in the Sintel SDK's formats."""
import os

import numpy as np
import pytest
from PIL import Image

from data.sequence import LayoutError
from data.sintel import (POSE_SEQUENCES, load_sequence, read_cam, read_dpt, sequence_names, write_cam,
                         write_dpt)

H, W, T = 8, 12, 3
TAG = np.float32(202021.25)


def _sdk_dpt(path, depth):
  """As the Sintel SDK's depth_write: float32 tag, int32 W, int32 H, float32 data."""
  with open(path, 'wb') as f:
    np.array([TAG], '<f4').tofile(f)
    np.array([depth.shape[1], depth.shape[0]], '<i4').tofile(f)
    depth.astype('<f4').tofile(f)


def _sdk_cam(path, K, w2c):
  """As the Sintel SDK's cam_write: float32 tag, 9 float64 K, 12 float64 [R | t]."""
  with open(path, 'wb') as f:
    np.array([TAG], '<f4').tofile(f)
    K.astype('<f8').tofile(f)
    w2c.astype('<f8').tofile(f)


def _depth(i):
  depth = np.random.default_rng(i).uniform(0.5, 80, (H, W)).astype(np.float32)
  depth[0, :4] = [np.nan, np.inf, -1.0, 0.0]  # invalid
  return depth


def _camera(i):
  a = 0.2 * i
  K = np.array([[20.0 + i, 0, 5.5], [0, 21.0, 3.5], [0, 0, 1]])
  w2c = np.array([[np.cos(a), -np.sin(a), 0, 0.1 * i], [np.sin(a), np.cos(a), 0, -0.2], [0, 0, 1, 1.5 + i]])
  return K, w2c


def _image(i, pass_name):
  image = np.zeros((H, W, 3), np.uint8)
  image[..., 0], image[..., 1], image[..., 2] = 10 * i, np.arange(W)[None] * 7, 100 if pass_name == 'final' else 50
  return image


@pytest.fixture
def root(tmp_path):
  root = tmp_path / 'training'
  for seq in ('market_2', 'alley_2'):
    for sub in ('clean', 'final', 'depth', 'camdata_left'):
      os.makedirs(root / sub / seq)
    for i in range(1, T + 1):
      for pass_name in ('clean', 'final'):
        Image.fromarray(_image(i, pass_name)).save(root / pass_name / seq / f'frame_{i:04d}.png')
      _sdk_dpt(root / 'depth' / seq / f'frame_{i:04d}.dpt', _depth(i))
      _sdk_cam(root / 'camdata_left' / seq / f'frame_{i:04d}.cam', *_camera(i))
  return root


def test_reads_every_field(root):
  seq = load_sequence(str(root), 'alley_2')
  assert (seq.dataset, seq.name, seq.frames) == ('sintel', 'alley_2', ['frame_0001', 'frame_0002', 'frame_0003'])
  np.testing.assert_array_equal(seq.timestamps, [1.0, 2.0, 3.0])
  for t in range(T):
    i = t + 1
    np.testing.assert_array_equal(seq.load_image(t), _image(i, 'final'))
    depth, expected = seq.load_depth(t), _depth(i)
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth[0, :4], 0)
    np.testing.assert_array_equal(depth.view(np.uint32)[1:], expected.view(np.uint32)[1:])  # bit-exact
    K, w2c = _camera(i)
    np.testing.assert_array_equal(seq.intrinsics[t], K)
    np.testing.assert_array_equal(seq.world_to_camera[t], np.vstack([w2c, [0, 0, 0, 1]]))
    world = np.array([0.4, -0.3, 2.0, 1.0])  # x = K·[R | t]·X lands where the camera-frame point projects
    cam = seq.world_to_camera[t] @ world
    pixel = seq.intrinsics[t] @ cam[:3]
    np.testing.assert_allclose(pixel[:2] / pixel[2], [K[0, 0] * cam[0] / cam[2] + K[0, 2],
                                                      K[1, 1] * cam[1] / cam[2] + K[1, 2]], atol=1e-12)
  np.testing.assert_array_equal(load_sequence(str(root), 'alley_2', pass_name='clean').load_image(1),
                                _image(2, 'clean'))


def test_names(root):
  assert sequence_names(str(root)) == ['alley_2', 'market_2']
  assert sequence_names(str(root), sequences=('market_2',)) == ['market_2']
  assert len(POSE_SEQUENCES) == 14 and len(set(POSE_SEQUENCES)) == 14
  assert {'alley_2', 'market_2', 'temple_3'} <= set(POSE_SEQUENCES)
  with pytest.raises(LayoutError, match=f'{root / "final" / "ambush_4"}: missing'):
    sequence_names(str(root), sequences=POSE_SEQUENCES)
  with pytest.raises(ValueError, match='pass_name'):
    sequence_names(str(root), pass_name='albedo')


def test_writers_mirror_the_format(root, tmp_path):
  sdk = root / 'depth' / 'alley_2' / 'frame_0001.dpt'
  write_dpt(tmp_path / 'a.dpt', _depth(1))
  assert (tmp_path / 'a.dpt').read_bytes() == sdk.read_bytes()
  np.testing.assert_array_equal(read_dpt(str(tmp_path / 'a.dpt')).view(np.uint32), _depth(1).view(np.uint32))
  write_cam(tmp_path / 'a.cam', *_camera(1))
  assert (tmp_path / 'a.cam').read_bytes() == (root / 'camdata_left' / 'alley_2' / 'frame_0001.cam').read_bytes()
  K, w2c = read_cam(str(tmp_path / 'a.cam'))
  np.testing.assert_array_equal(K, _camera(1)[0])
  np.testing.assert_array_equal(w2c, _camera(1)[1])


def test_layout_errors(root, tmp_path):
  with pytest.raises(LayoutError, match=f'{tmp_path / "final"}: missing'):
    sequence_names(str(tmp_path))
  with pytest.raises(LayoutError, match=f'{root / "final" / "cave_2"}: missing'):
    load_sequence(str(root), 'cave_2')
  dpt = root / 'depth' / 'alley_2' / 'frame_0002.dpt'
  data = dpt.read_bytes()
  dpt.write_bytes(np.array([202021.0], '<f4').tobytes() + data[4:])
  seq = load_sequence(str(root), 'alley_2')
  with pytest.raises(LayoutError, match=f'{dpt}: no .dpt tag'):
    seq.load_depth(1)
  dpt.write_bytes(data[:-4])
  with pytest.raises(LayoutError, match=f'{dpt}: {len(data) - 4} bytes for W={W}, H={H}'):
    seq.load_depth(1)
  cam = root / 'camdata_left' / 'market_2' / 'frame_0003.cam'
  cam.write_bytes(b'\0' * 4 + cam.read_bytes()[4:])
  with pytest.raises(LayoutError, match=f'{cam}: not a .cam file'):
    load_sequence(str(root), 'market_2')
  os.remove(cam)
  with pytest.raises(LayoutError, match=f'{cam}: missing'):
    load_sequence(str(root), 'market_2')
  os.remove(root / 'depth' / 'market_2' / 'frame_0001.dpt')
  with pytest.raises(LayoutError, match=f'{root / "depth" / "market_2" / "frame_0001.dpt"}: missing'):
    load_sequence(str(root), 'market_2')
