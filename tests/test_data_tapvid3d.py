"""TAPVid-3D reader (data/tapvid3d.py) on tiny clips written as tapnet's generators write them."""
import io

import numpy as np
import pytest
from PIL import Image

from data.sequence import LayoutError
from data.tapvid3d import (dataset_of, load_sequence, requires_extrinsics_message, sequence_names,
                           write_prediction)

T, N, H, W = 3, 4, 8, 12
FX_FY_CX_CY = np.array([10.0, 11.0, 6.0, 4.0])


def _images():
  """Smooth frames (JPEG keeps them within a few levels)."""
  rows, cols = np.mgrid[0:H, 0:W]
  return [np.stack([rows * 8 + 40 * t, cols * 6 + 20, np.full((H, W), 200 - 50 * t)], -1).astype(np.uint8)
          for t in range(T)]


def _jpeg(image):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='JPEG', quality=95)
  return buffer.getvalue()


def _clip(extrinsics=True):
  """Static world points seen by a moving camera: the npz arrays and the world points."""
  rng = np.random.default_rng(0)
  world = np.c_[rng.uniform(-1, 1, (N, 2)), rng.uniform(3, 5, N)]
  w2c = np.tile(np.eye(4), (T, 1, 1))
  for t in range(T):
    a = 0.1 * t
    w2c[t, :3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    w2c[t, :3, 3] = [0.2 * t, -0.1 * t, 0.3 * t]
  tracks = np.einsum('tij,nj->tni', w2c[:, :3, :3], world) + w2c[:, None, :3, 3]
  query_t = np.array([0, 1, 2, 1])
  xyz = tracks[query_t, np.arange(N)]
  fx, fy, cx, cy = FX_FY_CX_CY
  queries = np.c_[fx * xyz[:, 0] / xyz[:, 2] + cx, fy * xyz[:, 1] / xyz[:, 2] + cy, query_t]
  arrays = dict(images_jpeg_bytes=[_jpeg(im) for im in _images()], fx_fy_cx_cy=FX_FY_CX_CY,
                tracks_XYZ=tracks.astype(np.float32), visibility=rng.uniform(size=(T, N)) > 0.3,
                queries_xyt=queries)
  if extrinsics:
    arrays['extrinsics_w2c'] = w2c
  return arrays, world


def test_reads_every_field(tmp_path):
  arrays, world = _clip()
  np.savez(tmp_path / 'tapvid3d_1_a.npz', **arrays)  # a list of bytes → a fixed-width 'S' array, as tapnet
  seq = load_sequence(str(tmp_path), 'tapvid3d_1_a')
  assert (seq.dataset, seq.name, seq.num_frames) == ('drivetrack', 'tapvid3d_1_a', T)
  assert seq.load_depth is None and seq.timestamps is None
  for t, image in enumerate(_images()):
    got = seq.load_image(t)
    assert got.dtype == np.uint8 and got.shape == (H, W, 3)
    assert np.abs(got.astype(int) - image).max() <= 8
  K = np.array([[10.0, 0, 6], [0, 11, 4], [0, 0, 1]])
  np.testing.assert_array_equal(seq.intrinsics, np.repeat(K[None], T, 0))
  assert seq.tracks_xyz.dtype == np.float64
  np.testing.assert_array_equal(seq.tracks_xyz, arrays['tracks_XYZ'].astype(np.float64))
  np.testing.assert_array_equal(seq.visibility, arrays['visibility'])
  np.testing.assert_array_equal(seq.queries_xyt, arrays['queries_xyt'])
  np.testing.assert_array_equal(seq.world_to_camera, arrays['extrinsics_w2c'])
  for n, (x, y, t) in enumerate(seq.queries_xyt):  # K projects a track's camera xyz to its query pixel
    p = seq.intrinsics[int(t)] @ seq.tracks_xyz[int(t), n]
    np.testing.assert_allclose(p[:2] / p[2], [x, y], atol=1e-5)
  c2w = np.linalg.inv(seq.world_to_camera)  # the tracks are static world points
  back = np.einsum('tij,tnj->tni', c2w[:, :3, :3], seq.tracks_xyz) + c2w[:, None, :3, 3]
  np.testing.assert_allclose(back, np.broadcast_to(world, back.shape), atol=1e-5)


def test_object_array_and_missing_extrinsics(tmp_path):
  arrays, _ = _clip(extrinsics=False)
  arrays['images_jpeg_bytes'] = np.array(arrays['images_jpeg_bytes'], dtype=object)  # pickled variant
  np.savez(tmp_path / 'Apartment_release_work_seq108_0.npz', **arrays)
  seq = load_sequence(str(tmp_path), 'Apartment_release_work_seq108_0')
  assert seq.dataset == 'adt' and seq.world_to_camera is None
  assert np.abs(seq.load_image(2).astype(int) - _images()[2]).max() <= 8
  message = requires_extrinsics_message('/x/Apartment_release_work_seq108_0.npz')
  assert '/x/Apartment_release_work_seq108_0.npz' in message and 'extrinsics_w2c' in message
  assert 'PR #137' in message


def test_dataset_rule():
  assert dataset_of('tapvid3d_9142545919543484617_86_000_106_000_2_5AKc') == 'drivetrack'
  assert dataset_of('Lite_release_recognition_Flask_seq033_2') == 'adt'
  assert dataset_of('Apartment_release_meal_seq136_8') == 'adt'
  assert dataset_of('basketball_5') == 'pstudio'


def test_names_and_subset(tmp_path):
  arrays, _ = _clip()
  for name in ('softball_2', 'basketball_5', 'Lite_x_1'):
    np.savez(tmp_path / f'{name}.npz', **arrays)
  (tmp_path / 'notes.txt').write_text('not a clip')
  assert sequence_names(str(tmp_path)) == ['Lite_x_1', 'basketball_5', 'softball_2']
  assert sequence_names(str(tmp_path), subset=['softball_2.npz', 'Lite_x_1']) == ['Lite_x_1', 'softball_2']
  assert load_sequence(str(tmp_path), 'basketball_5', subset=['basketball_5']).dataset == 'pstudio'
  with pytest.raises(LayoutError, match='juggle_4.npz: missing'):
    sequence_names(str(tmp_path), subset=['juggle_4'])


def test_layout_errors(tmp_path):
  with pytest.raises(LayoutError, match=f'{tmp_path / "nope"}: not a folder'):
    sequence_names(str(tmp_path / 'nope'))
  with pytest.raises(LayoutError, match=f'{tmp_path}: no \\*.npz'):
    sequence_names(str(tmp_path))
  with pytest.raises(LayoutError, match='absent.npz: missing'):
    load_sequence(str(tmp_path), 'absent')
  arrays, _ = _clip()
  del arrays['visibility'], arrays['queries_xyt']
  np.savez(tmp_path / 'broken.npz', **arrays)
  with pytest.raises(LayoutError) as e:
    load_sequence(str(tmp_path), 'broken')
  assert str(tmp_path / 'broken.npz') in str(e.value) and "['visibility', 'queries_xyt']" in str(e.value)
  arrays, _ = _clip()
  arrays['visibility'] = arrays['visibility'][:, :2]
  np.savez(tmp_path / 'mismatch.npz', **arrays)
  with pytest.raises(LayoutError, match='mismatch.npz: inconsistent shapes'):
    load_sequence(str(tmp_path), 'mismatch')
  arrays, _ = _clip()
  arrays['fx_fy_cx_cy'] = FX_FY_CX_CY[:3]
  np.savez(tmp_path / 'no_cy.npz', **arrays)
  with pytest.raises(LayoutError, match=r'no_cy.npz: inconsistent shapes \(fx_fy_cx_cy \(3,\)'):
    load_sequence(str(tmp_path), 'no_cy')
  (tmp_path / 'garbage.npz').write_bytes(b'not a zip')
  with pytest.raises(LayoutError, match='garbage.npz: unreadable npz'):
    load_sequence(str(tmp_path), 'garbage')


def test_write_prediction(tmp_path):
  tracks, visibility = np.arange(T * N * 3, dtype=np.float32).reshape(T, N, 3), np.eye(T, N, dtype=bool)
  path = tmp_path / 'predictions' / 'adt' / 'Lite_x_1.npz'
  write_prediction(str(path), tracks, visibility)
  with np.load(path) as z:  # what tapnet's evaluate_model.py reads
    assert sorted(z.files) == ['tracks_XYZ', 'visibility']
    np.testing.assert_array_equal(z['tracks_XYZ'], tracks)
    np.testing.assert_array_equal(z['visibility'], visibility)
  with pytest.raises(ValueError, match='must be'):
    write_prediction(str(path), tracks, visibility[:, :1])
