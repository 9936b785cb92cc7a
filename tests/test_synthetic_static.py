"""Synthetic static multi-view scenes in the processed CO3D layout (data/synthetic.py write_static_scenes):
read back by data/co3d.py, completion marker and ensure semantics, and the views' geometry (points seen in
two views reproject onto each other's depth with the same colour)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data import co3d, synthetic

ROOT = Path(__file__).resolve().parents[1]
SIZE, VIEWS, SCENES, SEED = 64, 4, 2, 3
ARGS = dict(size=SIZE, seed=SEED)


@pytest.fixture(scope='module')
def written(tmp_path_factory):
  root = tmp_path_factory.mktemp('static')
  return root, synthetic.write_static_scenes(str(root), 'train', SCENES, VIEWS, **ARGS)


def _arrays(k):
  return synthetic.make_static_scene(synthetic.clip_seed(SEED, k), VIEWS, SIZE)


def test_layout_and_read_back(written):
  root, seq_dirs = written
  names = [f'synthetic/train_{k:04d}' for k in range(SCENES)]
  assert seq_dirs == [str(root / n) for n in names]
  assert co3d.sequence_names(str(root), 'train') == names
  assert json.loads((root / 'selected_seqs_train.json').read_text()) == {
      'synthetic': {f'train_{k:04d}': list(range(VIEWS)) for k in range(SCENES)}}
  assert not list(root.rglob('.partial'))
  for k, name in enumerate(names):
    arrays = _arrays(k)
    seq = co3d.load_sequence(str(root), name, split='train')
    assert seq.frames == [f'frame{t:06d}' for t in range(VIEWS)] and seq.category == 'synthetic'
    for t in range(VIEWS):
      frame = co3d.read_frame(seq_dirs[k], t)
      np.testing.assert_allclose(frame['K'], arrays['K'], rtol=1e-6)
      np.testing.assert_allclose(frame['c2w'], arrays['c2w'][t], rtol=1e-6, atol=1e-6)
      np.testing.assert_allclose(np.linalg.inv(seq.world_to_camera[t]), arrays['c2w'][t], atol=1e-5)
      depth = arrays['depth'][t]
      assert np.all(np.isfinite(depth)) and depth.min() > 0       # the room closes the scene: depth everywhere
      error = np.abs(frame['depth'] - depth)
      assert error.max() <= depth.max() / 65535 * (1 + 1e-5) + 1e-6
      np.testing.assert_array_equal(frame['mask'], arrays['object_id'][t] > 0)
      assert 0.02 < frame['mask'].mean() < 0.9                     # objects and background in every view
      assert np.abs(frame['image'].astype(int) - arrays['images'][t]).mean() < 12  # JPEG (PIL's quality 75)
      assert frame['image'].shape == (SIZE, SIZE, 3)
  # K: fx = fy = (W/2)/tan(30°), centre (W/2 − 0.5, H/2 − 0.5) (pixel-index convention)
  np.testing.assert_allclose(arrays['K'], [[SIZE / 2 / np.tan(np.pi / 6), 0, SIZE / 2 - 0.5],
                                           [0, SIZE / 2 / np.tan(np.pi / 6), SIZE / 2 - 0.5], [0, 0, 1]])


def _reproject(depth_i, K, c2w_i, c2w_j):
  """View i's pixels (pixel-index convention) in view j: nearest pixel (row, col), camera z and in-image mask."""
  rows, cols = np.mgrid[:depth_i.shape[0], :depth_i.shape[1]]
  cam = np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones_like(depth_i)], -1) * depth_i[..., None]
  world = cam.reshape(-1, 3) @ c2w_i[:3, :3].T + c2w_i[:3, 3]
  w2c = np.linalg.inv(c2w_j)
  xj = world @ w2c[:3, :3].T + w2c[:3, 3]
  with np.errstate(divide='ignore', invalid='ignore'):
    u, v = K[0, 0] * xj[:, 0] / xj[:, 2] + K[0, 2], K[1, 1] * xj[:, 1] / xj[:, 2] + K[1, 2]
  col, row = np.round(u), np.round(v)
  inside = (xj[:, 2] > 0) & (col >= 0) & (col < depth_i.shape[1]) & (row >= 0) & (row < depth_i.shape[0])
  return row[inside].astype(int), col[inside].astype(int), xj[inside, 2], inside


def _consistency(frames, i, j, c2w_j):
  """Fraction of view i's pixels that land in view j on its depth (1 %), their colour error, and the
  fraction of them on the objects."""
  fi, fj = frames[i], frames[j]
  row, col, z, inside = _reproject(fi['depth'], fi['K'], fi['c2w'], c2w_j)
  agree = np.abs(fj['depth'][row, col] - z) <= 0.01 * z
  colour_i = fi['image'].reshape(-1, 3)[inside][agree].astype(float)
  colour_j = fj['image'][row[agree], col[agree]].astype(float)
  on_objects = fi['mask'].reshape(-1)[inside][agree]
  return agree.sum() / fi['depth'].size, np.median(np.abs(colour_i - colour_j)), on_objects.mean()


def _turned(c2w, degrees):
  """c2w with the camera turned about its y axis."""
  a = np.deg2rad(degrees)
  out = c2w.copy()
  out[:3, :3] = out[:3, :3] @ np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
  return out


@pytest.mark.parametrize('source', ['files', 'renderer'])
def test_views_overlap_and_agree_geometrically(written, source):
  """Through the files (JPEG, 16-bit depth) and on the renderer's own arrays (colours are view-independent,
  so a point seen in two views has one colour up to rounding)."""
  _, seq_dirs = written
  for k, seq_dir in enumerate(seq_dirs):
    if source == 'files':
      frames, colour_tolerance = [co3d.read_frame(seq_dir, t) for t in range(VIEWS)], 12
    else:
      a = _arrays(k)
      frames = [{'image': a['images'][t], 'depth': a['depth'][t].astype(np.float64), 'mask': a['mask'][t],
                 'K': a['K'], 'c2w': a['c2w'][t]} for t in range(VIEWS)]
      colour_tolerance = 3
    centres = np.stack([f['c2w'][:3, 3] for f in frames])
    assert np.linalg.norm(np.diff(centres, axis=0), axis=1).min() > 0.2   # distinct cameras
    for i, j in [(0, 1), (1, 2), (0, VIEWS - 1)]:
      seen, colour_error, objects = _consistency(frames, i, j, frames[j]['c2w'])
      assert seen > 0.2, (seq_dir, i, j, seen)                           # a large shared part
      assert colour_error <= colour_tolerance                             # the same surface points
      assert objects > 0.05                                               # the objects are shared too
      seen_wrong, colour_wrong, _ = _consistency(frames, i, j, _turned(frames[j]['c2w'], 5))   # control
      assert seen_wrong < 0.8 * seen and colour_wrong > 2 * max(colour_error, 3)


def test_complete_marker_and_ensure(tmp_path, monkeypatch):
  root = str(tmp_path)
  args = dict(size=32, seed=1)
  synthetic.write_static_scenes(root, 'test', 2, 3, **args)
  assert synthetic.is_static_complete(root, 'test', 2, 3, **args)
  marker = json.loads((tmp_path / '.complete_test.json').read_text())
  assert marker['sequences'] == ['test_0000', 'test_0001'] and marker['num_views'] == 3 and marker['seed'] == 1
  for other in (dict(num_scenes=3), dict(num_views=4), dict(seed=2), dict(size=48), dict(category='x')):
    kwargs = {'num_scenes': 2, 'num_views': 3, **args, **other}
    assert not synthetic.is_static_complete(root, 'test', **kwargs)
  assert not synthetic.is_static_complete(root, 'train', 2, 3, **args)
  depth = tmp_path / 'synthetic' / 'test_0001' / 'depths' / 'frame000002.jpg.geometric.png'
  depth.rename(str(depth) + '.moved')                        # a file of the set missing
  assert not synthetic.is_static_complete(root, 'test', 2, 3, **args)
  Path(str(depth) + '.moved').rename(depth)
  assert synthetic.is_static_complete(root, 'test', 2, 3, **args)

  # a complete set is kept as it is
  stamp = os.stat(depth).st_mtime_ns
  synthetic.ensure_static_scenes(root, 'test', 2, 3, **args)
  assert os.stat(depth).st_mtime_ns == stamp

  # a rewrite with other arguments killed half-way: no marker, a staged sequence left behind
  calls = {'n': 0}
  write_frame = co3d.write_frame

  def dying_write_frame(*a, **kw):
    calls['n'] += 1
    if calls['n'] == 6:
      raise KeyboardInterrupt('killed')
    write_frame(*a, **kw)

  monkeypatch.setattr(co3d, 'write_frame', dying_write_frame)
  with pytest.raises(KeyboardInterrupt):
    synthetic.write_static_scenes(root, 'test', 2, 4, **args)        # dies on scene 1's second frame
  monkeypatch.setattr(co3d, 'write_frame', write_frame)
  assert not (tmp_path / '.complete_test.json').exists()
  assert (tmp_path / '.partial' / 'test' / 'synthetic' / 'test_0001').is_dir()
  assert not synthetic.is_static_complete(root, 'test', 2, 4, **args)
  assert not synthetic.is_static_complete(root, 'test', 2, 3, **args)

  # ensure remakes it: the old sequences of this split are gone, the staging folder too
  synthetic.ensure_static_scenes(root, 'test', 1, 4, **args)
  assert synthetic.is_static_complete(root, 'test', 1, 4, **args)
  assert sorted(os.listdir(tmp_path / 'synthetic')) == ['test_0000']
  assert co3d.sequence_names(root, 'test') == ['synthetic/test_0000']
  assert not (tmp_path / '.partial').exists()
  assert len(os.listdir(tmp_path / 'synthetic' / 'test_0000' / 'depths')) == 4


def test_splits_share_a_root(tmp_path):
  root = str(tmp_path)
  synthetic.write_static_scenes(root, 'train', 1, 2, size=16, seed=0)
  synthetic.ensure_static_scenes(root, 'test', 1, 2, size=16, seed=1)
  assert co3d.sequence_names(root, 'train') == ['synthetic/train_0000']
  assert co3d.sequence_names(root, 'test') == ['synthetic/test_0000']
  assert synthetic.is_static_complete(root, 'train', 1, 2, size=16, seed=0)
  with pytest.raises(ValueError, match='splits'):
    synthetic.write_static_scenes(root, 'val', 1, 2, size=16)
  with pytest.raises(ValueError, match='num_views'):
    synthetic.make_static_scene(0, 1, 16)


def test_same_seed_same_scene():
  a, b, c = (synthetic.make_static_scene(s, 3, 24) for s in (5, 5, 6))
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a['images'], c['images'])


def test_cli_writes_the_co3d_layout(tmp_path):
  command = [sys.executable, '-m', 'data.synthetic', '--layout=co3d', f'--output={tmp_path}', '--split=test',
             '--num_scenes=2', '--num_views=3', '--size=32', '--seed=4', '--category=toys']
  subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=120)
  assert co3d.sequence_names(str(tmp_path), 'test') == ['toys/test_0000', 'toys/test_0001']
  assert synthetic.is_static_complete(str(tmp_path), 'test', 2, 3, size=32, seed=4, category='toys')
  frame = co3d.read_frame(str(tmp_path / 'toys' / 'test_0001'), 2)
  np.testing.assert_allclose(frame['c2w'], synthetic.make_static_scene(synthetic.clip_seed(4, 1), 3, 32)['c2w'][2],
                             atol=1e-6)
