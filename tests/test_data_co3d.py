"""The processed-CO3Dv2 reader and writer (data/co3d.py) on files written the way DUSt3R's
preprocess_co3d.py writes them (independently here: PIL JPEG, cv2 16-bit / 8-bit PNGs, np.savez)."""
import os

import cv2
import numpy as np
import PIL.Image
import pytest

from data import co3d
from data.sequence import LayoutError

H, W = 20, 30


def _frame(rng, i):
  """A smooth image (JPEG keeps it close), depth with holes, a soft mask, K and a c2w."""
  y, x = np.mgrid[:H, :W]
  image = np.stack([x * 8, y * 12, np.full_like(x, 40 + 10 * i)], -1).astype(np.uint8)
  depth = rng.uniform(0.5, 7.0, (H, W)).astype(np.float32)
  depth[:3, :5] = 0
  mask = np.clip(rng.uniform(-0.2, 1.2, (H, W)), 0, 1).astype(np.float32)
  mask[0, :3] = [0.05, 0.11, 0.5]  # → 12 (< 0.1·255: background), 28, 127
  K = np.array([[25.0 + i, 0, 14.6], [0, 26.0, 9.4], [0, 0, 1]])
  R = cv2.Rodrigues(rng.normal(0, 0.5, 3))[0]
  c2w = np.eye(4)
  c2w[:3, :3], c2w[:3, 3] = R, rng.normal(0, 2, 3)
  return {'image': image, 'depth': depth, 'mask': mask, 'K': K, 'c2w': c2w}


def _write_like_preprocess(seq_dir, i, f):
  """preprocess_co3d.py's own save calls."""
  for sub in ('images', 'depths', 'masks'):
    os.makedirs(os.path.join(seq_dir, sub), exist_ok=True)
  save_img_path = os.path.join(seq_dir, 'images', f'frame{i:06d}.jpg')
  PIL.Image.fromarray(f['image']).save(save_img_path)
  cv2.imwrite(os.path.join(seq_dir, 'depths', f'frame{i:06d}.jpg.geometric.png'),
              (f['depth'] / np.max(f['depth']) * 65535).astype(np.uint16))
  cv2.imwrite(os.path.join(seq_dir, 'masks', f'frame{i:06d}.png'), (f['mask'] * 255).astype(np.uint8))
  np.savez(save_img_path.replace('jpg', 'npz'), camera_intrinsics=f['K'].astype(np.float32),
           camera_pose=f['c2w'].astype(np.float32), maximum_depth=np.max(f['depth']))


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  """Test split: apple/110_1 (frames 5, 3, 9), apple/empty (no frames), bench/7_2 (frame 1); train:
  bench/8_1 (frame 2). Frame 5 of apple/110_1 is written by the test's own code, the rest by write_frame."""
  root = str(tmp_path_factory.mktemp('co3d'))
  rng = np.random.default_rng(0)
  frames = {}
  for name, indices in (('apple/110_1', (5, 3, 9)), ('bench/7_2', (1,)), ('bench/8_1', (2,))):
    seq_dir = os.path.join(root, *name.split('/'))
    for i in indices:
      frames[name, i] = f = _frame(rng, i)
      if (name, i) == ('apple/110_1', 5):
        _write_like_preprocess(seq_dir, i, f)
      else:
        co3d.write_frame(seq_dir, i, **f)
  co3d.write_selected_seqs(root, 'test', {'apple': {'110_1': [5, 3, 9], 'empty': []}, 'bench': {'7_2': [1]}})
  co3d.write_selected_seqs(root, 'train', {'bench': {'8_1': [2]}})
  return root, frames


def _check(got, want, path):
  """image, depth and mask read back against what was written."""
  np.testing.assert_array_equal(got['image'], cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB))
  assert np.abs(got['image'].astype(int) - want['image']).mean() < 3  # JPEG of a smooth image
  assert got['depth'].dtype == np.float32 and got['depth'].shape == (H, W)
  maximum = want['depth'].max()
  assert np.all(np.abs(got['depth'] - want['depth']) <= maximum / 65535 * (1 + 1e-5))  # spec §9
  assert np.all(got['depth'] <= want['depth'] * (1 + 1e-6))  # the writer truncates
  np.testing.assert_array_equal(got['depth'][:3, :5], 0)
  np.testing.assert_array_equal(got['mask'], (want['mask'] * 255).astype(np.uint8) / 255.0 > 0.1)
  np.testing.assert_array_equal(got['mask'][0, :3], [False, True, True])


def test_read_frame_of_preprocess_output(dataset):
  root, frames = dataset
  seq_dir = os.path.join(root, 'apple', '110_1')
  got, want = co3d.read_frame(seq_dir, 5), frames['apple/110_1', 5]
  _check(got, want, os.path.join(seq_dir, 'images', 'frame000005.jpg'))
  assert got['K'].dtype == got['c2w'].dtype == np.float64
  np.testing.assert_array_equal(got['K'], want['K'].astype(np.float32))
  np.testing.assert_array_equal(got['c2w'], want['c2w'].astype(np.float32))


def test_write_frame_writes_as_preprocess(dataset, tmp_path):
  root, frames = dataset
  f = frames['apple/110_1', 5]
  co3d.write_frame(str(tmp_path), 5, **f)
  reference = os.path.join(root, 'apple', '110_1')
  for rel in ('images/frame000005.jpg', 'depths/frame000005.jpg.geometric.png', 'masks/frame000005.png'):
    assert (tmp_path / rel).read_bytes() == open(os.path.join(reference, rel), 'rb').read(), rel
  with np.load(tmp_path / 'images/frame000005.npz') as got, \
       np.load(os.path.join(reference, 'images/frame000005.npz')) as want:
    assert sorted(got.files) == ['camera_intrinsics', 'camera_pose', 'maximum_depth']
    for key in want.files:
      assert got[key].dtype == want[key].dtype == np.float32 and got[key].shape == want[key].shape
      np.testing.assert_array_equal(got[key], want[key])
  with pytest.raises(ValueError, match='depth maximum'):
    co3d.write_frame(str(tmp_path), 6, **{**f, 'depth': np.zeros((H, W))})


def test_sequence(dataset):
  root, frames = dataset
  seq = co3d.load_sequence(root, 'apple/110_1')
  assert seq.dataset == 'co3d' and seq.category == 'apple' and seq.name == 'apple/110_1'
  assert seq.frames == ['frame000005', 'frame000003', 'frame000009']  # the JSON's order
  for t, i in enumerate((5, 3, 9)):
    want = frames['apple/110_1', i]
    got = {'image': seq.load_image(t), 'depth': seq.load_depth(t),
           'mask': co3d.load_mask(root, seq.name, seq.frames[t])}
    _check(got, want, os.path.join(root, 'apple', '110_1', 'images', f'frame{i:06d}.jpg'))
    np.testing.assert_array_equal(seq.intrinsics[t], want['K'].astype(np.float32))
    c2w = want['c2w'].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(seq.world_to_camera[t] @ c2w, np.eye(4), atol=1e-12)
    np.testing.assert_array_equal(seq.world_to_camera[t][3], [0, 0, 0, 1])
  assert seq.intrinsics.dtype == seq.world_to_camera.dtype == np.float64


def test_splits_and_categories(dataset):
  root, _ = dataset
  assert co3d.sequence_names(root) == ['apple/110_1', 'bench/7_2']  # apple/empty has no frames
  assert co3d.sequence_names(root, categories=['bench']) == ['bench/7_2']
  assert co3d.sequence_names(root, split='train') == ['bench/8_1']
  assert co3d.sequence_names(root, split='train', categories=['apple']) == []
  assert co3d.load_sequence(root, 'bench/8_1', split='train').frames == ['frame000002']
  with pytest.raises(LayoutError, match="no sequence 'bench/8_1'"):
    co3d.load_sequence(root, 'bench/8_1')
  with pytest.raises(LayoutError, match="no sequence 'bench/7_2'"):
    co3d.load_sequence(root, 'bench/7_2', categories=['apple'])
  with pytest.raises(ValueError, match='split'):
    co3d.sequence_names(root, split='val')


def test_layout_errors(dataset, tmp_path):
  root, _ = dataset
  with pytest.raises(LayoutError) as error:
    co3d.sequence_names(str(tmp_path))
  json_path = tmp_path / 'selected_seqs_test.json'
  assert str(error.value).startswith(f"{json_path}: no such file; expected DUSt3R's")
  for rel in ('images/frame000001.npz', 'depths/frame000001.jpg.geometric.png'):
    path = os.path.join(root, 'bench', '7_2', rel)
    os.rename(path, path + '.moved')
    try:
      with pytest.raises(LayoutError) as error:
        co3d.load_sequence(root, 'bench/7_2')
      assert str(error.value).startswith(f'{path}: no such file; expected')
    finally:
      os.rename(path + '.moved', path)
  with pytest.raises(LayoutError, match='frame000004.png: no such file'):
    co3d.load_mask(root, 'bench/7_2', 'frame000004')
