"""The Grain pipeline of DUSt3R's pairs (data/multiview_pipeline.py) on synthetic static scenes: one resolution per
global batch, determinism, host sharding, both orders as exact swaps, GT geometry, skipped samples, resuming."""
import json
import pickle
import shutil

import cv2
import numpy as np
import pytest

from data import multiview, pipeline, synthetic
from data import multiview_pipeline as mvp
from data.dust3r_views import aspect_ratio_for_batch

RESOLUTIONS = [(48, 32), (32, 32), (32, 16)]
SCENES, VIEWS = 3, 5
KEYS = {f'{k}{v}' for k in ('img', 'pts3d', 'valid', 'true_shape', 'camera_pose', 'camera_intrinsics')
        for v in (1, 2)} | {'num_skipped'}


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  out = tmp_path_factory.mktemp('static')
  synthetic.write_static_scenes(str(out), 'train', SCENES, VIEWS, size=64, seed=0)
  return out


def _mixture(root, **options):
  config = {'kind': 'co3d', 'root': str(root), 'split': 'train', 'pairs': 'all', 'aug_crop': 8, 'mask_bg': 'rand'}
  config = {k: v for k, v in dict(config, **options).items() if v is not None}   # None: the key left out
  return multiview.Mixture([config], seed=0)


def _dataset(root, *, batch_size=4, shard_count=1, seed=0, resolutions=RESOLUTIONS, mixture=None, **kwargs):
  return mvp.make_dataset(mixture or _mixture(root), batch_size=batch_size, global_batch_size=batch_size * shard_count,
                          seed=seed, shard_count=shard_count, resolutions=resolutions, **kwargs)


def _examples(batch):
  n = len(batch['num_skipped'])
  return [{k: v[i] for k, v in batch.items()} for i in range(n)]


def _assert_equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _to_camera(pose_from, pose_to, points):
  """Points in camera `pose_from`'s frame → camera `pose_to`'s (poses camera → world)."""
  m = np.linalg.inv(pose_to.astype(np.float64)) @ pose_from.astype(np.float64)
  return points.astype(np.float64) @ m[:3, :3].T + m[:3, 3]


def _real_layout(points, valid, K, true_shape):
  """A stored view back in its real orientation: a portrait view's image axes and K's rows swapped back."""
  if true_shape[0] > true_shape[1]:
    points, valid, K = points.swapaxes(0, 1), valid.swapaxes(0, 1), K[[1, 0, 2]]
  assert valid.shape == tuple(true_shape)
  return points, valid, K


def _assert_projects_onto_own_pixels(points, valid, K):
  rows, cols = np.nonzero(valid)
  assert len(rows) > 20
  p = points[rows, cols].astype(np.float64)
  assert np.all(p[:, 2] > 0)
  uv = p @ K.astype(np.float64).T
  np.testing.assert_allclose(uv[:, :2] / uv[:, 2:], np.stack([cols, rows], -1), atol=1e-3)


def test_one_resolution_per_batch_covering_the_list(root):
  ds = _dataset(root)
  seen, portrait = set(), 0
  for s in range(12):
    batch = ds[s]
    assert set(batch) == KEYS
    w, h = aspect_ratio_for_batch(0, s, RESOLUTIONS)
    seen.add((w, h))
    for k in (1, 2):
      assert batch[f'img{k}'].shape == (4, h, w, 3) and batch[f'img{k}'].dtype == np.float32
      assert batch[f'pts3d{k}'].shape == (4, h, w, 3) and batch[f'pts3d{k}'].dtype == np.float32
      assert batch[f'valid{k}'].shape == (4, h, w) and batch[f'valid{k}'].dtype == bool
      assert batch[f'true_shape{k}'].dtype == np.int32 and batch[f'camera_pose{k}'].shape == (4, 4, 4)
      assert batch[f'camera_intrinsics{k}'].shape == (4, 3, 3) and batch[f'camera_pose{k}'].dtype == np.float32
      assert {tuple(t) for t in batch[f'true_shape{k}'].tolist()} <= {(h, w), (w, h)}
      portrait += int(np.sum(batch[f'true_shape{k}'][:, 0] > batch[f'true_shape{k}'][:, 1]))
      assert np.abs(batch[f'img{k}']).max() <= 1 and np.all(batch[f'valid{k}'].any(axis=(1, 2)))
      assert np.all(np.isfinite(batch[f'pts3d{k}'])) and np.all(batch[f'pts3d{k}'][~batch[f'valid{k}']] == 0)
    assert batch['num_skipped'].dtype == np.int32 and not batch['num_skipped'].any()
  assert seen == set(RESOLUTIONS)
  assert portrait > 0                                             # square images: random orientation


def test_deterministic_in_seed_and_index(root):
  a, b, c = _dataset(root), _dataset(root), _dataset(root, seed=1)
  for s in (0, 5):
    _assert_equal(a[s], b[s])
  assert any(not np.array_equal(a[s]['img1'], c[s]['img1']) for s in range(3))
  first = _examples(a[0])
  assert not np.array_equal(first[0]['img1'], first[2]['img1'])  # different pairs


def test_two_hosts_slices_concatenate_to_the_global_batch(root):
  one = _dataset(root, batch_size=4)
  hosts = [mvp.make_dataset(_mixture(root), batch_size=2, global_batch_size=4, seed=0, shard_index=p,
                            shard_count=2, resolutions=RESOLUTIONS) for p in range(2)]
  for s in range(4):
    _assert_equal({k: np.concatenate([hosts[0][s][k], hosts[1][s][k]]) for k in KEYS}, one[s])


def test_both_orders_are_exact_swaps(root):
  batch = _dataset(root, batch_size=8)[2]
  for a, b in zip(*[iter(_examples(batch))] * 2):
    for key in ('img', 'valid', 'true_shape', 'camera_pose', 'camera_intrinsics'):
      np.testing.assert_array_equal(b[f'{key}1'], a[f'{key}2'])
      np.testing.assert_array_equal(b[f'{key}2'], a[f'{key}1'])
    assert b['num_skipped'] == a['num_skipped']
    p1, p2 = a['camera_pose1'], a['camera_pose2']                 # a: (view 1, view 2), b: (view 2, view 1)
    v1, v2 = a['valid1'], a['valid2']
    np.testing.assert_allclose(b['pts3d2'][v1], _to_camera(p1, p2, a['pts3d1'][v1]), atol=1e-4)
    np.testing.assert_allclose(b['pts3d1'][v2], _to_camera(p1, p2, a['pts3d2'][v2]), atol=1e-4)
  # element 2k of both orders is element k of one order: the pair's draw does not depend on the order
  single = [(32, 32)]
  both, once = _dataset(root, batch_size=4, resolutions=single), _dataset(root, batch_size=2, resolutions=single,
                                                                           both_orders=False)
  pairs = _examples(both[0])[::2] + _examples(both[1])[::2]
  for x, y in zip(pairs, _examples(once[0]) + _examples(once[1])):
    _assert_equal(x, y)


def test_gt_pointmaps_project_onto_their_pixels(root):
  ds = _dataset(root, batch_size=4)
  portrait = 0
  for s in range(6):
    for ex in _examples(ds[s]):
      points, valid, K = _real_layout(ex['pts3d1'], ex['valid1'], ex['camera_intrinsics1'], ex['true_shape1'])
      _assert_projects_onto_own_pixels(points, valid, K)          # view 1: its own camera
      in_2 = _to_camera(ex['camera_pose1'], ex['camera_pose2'], ex['pts3d2'])
      _assert_projects_onto_own_pixels(*_real_layout(in_2, ex['valid2'], ex['camera_intrinsics2'],
                                                     ex['true_shape2']))
      # stored layout: K · p / z is (column, row) of the stored array in both orientations
      _assert_projects_onto_own_pixels(ex['pts3d1'], ex['valid1'], ex['camera_intrinsics1'])
      portrait += int(ex['true_shape1'][0] > ex['true_shape1'][1])
  assert portrait > 0


def _copy(root, tmp_path):
  out = tmp_path / 'static'
  shutil.copytree(root, out)
  return out


def test_broken_frames_are_skipped_and_counted(root, tmp_path):
  out = _copy(root, tmp_path)
  jpeg = out / 'synthetic' / 'train_0000' / 'images' / 'frame000000.jpg'
  jpeg.write_bytes(jpeg.read_bytes()[:100])                        # a truncated JPEG: frame 0 of scene 0
  npz = out / 'synthetic' / 'train_0002' / 'images' / 'frame000000.npz'
  npz.write_bytes(npz.read_bytes()[:100])                          # a truncated camera npz: frame 0 of scene 2
  for t in range(VIEWS):                                           # scene 1: no valid depth anywhere
    png = out / 'synthetic' / 'train_0001' / 'depths' / f'frame{t:06d}.jpg.geometric.png'
    cv2.imwrite(str(png), np.zeros(cv2.imread(str(png), cv2.IMREAD_UNCHANGED).shape, np.uint16))
  mixture = _mixture(out, mask_bg=False)
  n = len(mixture)                                                 # one epoch: every pair drawn first once
  with pytest.warns(UserWarning) as record:
    batch = mvp.make_dataset(mixture, batch_size=n, global_batch_size=n, seed=0, resolutions=[(32, 32)],
                             both_orders=False)[0]
  messages = ' '.join(str(w.message) for w in record)
  assert 'frame000000.jpg' in messages and 'not a readable image' in messages
  assert 'train_0001: no frame with valid depth' in messages
  assert 'train_0002/images/frame000000.npz: not an npz' in messages
  assert np.sum(batch['num_skipped'] > 0) == 2 * (VIEWS - 1) + VIEWS * (VIEWS - 1) // 2   # 4 + 10 + 4 bad first draws
  assert np.all(np.isfinite(batch['pts3d1'])) and np.all(batch['valid1'].any(axis=(1, 2)))

  broken = tmp_path / 'broken'
  synthetic.write_static_scenes(str(broken), 'train', 1, 2, size=32, seed=1)
  for jpeg in (broken / 'synthetic' / 'train_0000' / 'images').glob('*.jpg'):
    jpeg.write_bytes(b'')
  ds = mvp.make_dataset(_mixture(broken), batch_size=2, global_batch_size=2, seed=0, resolutions=[(32, 32)],
                        max_attempts=5)
  with pytest.warns(UserWarning), pytest.raises(RuntimeError, match='5 consecutive samples failed.*not a readable'):
    ds[0]


def test_scene_with_fewer_than_2_frames_is_named(root, tmp_path):
  out = _copy(root, tmp_path)
  selection = out / 'selected_seqs_train.json'
  selected = json.loads(selection.read_text())
  selected['synthetic']['train_0002'] = [3]
  selection.write_text(json.dumps(selected))
  with pytest.raises(ValueError, match=r'1 scene\(s\) with fewer than 2 frames.*synthetic/train_0002 \(1 frame'):
    _dataset(out, mixture=_mixture(out))


def test_options_and_arguments(root):
  plain = _dataset(root, resolutions=[(32, 32)], mixture=_mixture(root, aug_crop=None), aug_crop=0,
                   color_jitter=False)[0]
  own = _dataset(root, resolutions=[(32, 32)], mixture=_mixture(root, aug_crop=0, color_jitter=False))[0]
  jittered = _dataset(root, resolutions=[(32, 32)], mixture=_mixture(root, aug_crop=0))[0]
  np.testing.assert_array_equal(plain['img1'], own['img1'])        # a dataset's options override the defaults
  np.testing.assert_array_equal(plain['pts3d1'], jittered['pts3d1'])
  assert not np.array_equal(plain['img1'], jittered['img1'])       # default color_jitter=True
  draw = mvp.DrawPair(_mixture(root), seed=0, global_batch_size=4, resolutions=RESOLUTIONS)
  _assert_equal(pickle.loads(pickle.dumps(draw)).random_map(5), draw.random_map(5))   # as Grain's workers get it
  with pytest.raises(ValueError, match='unknown option'):
    _dataset(root, mixture=_mixture(root, resolution=(224, 224)))
  with pytest.raises(ValueError, match='aug_crop'):
    _dataset(root, aug_crop=-1)
  with pytest.raises(ValueError, match='global_batch_size'):
    mvp.make_dataset(_mixture(root), batch_size=2, global_batch_size=8, seed=0, shard_count=2, resolutions=RESOLUTIONS)
  with pytest.raises(ValueError, match='even'):
    _dataset(root, batch_size=3)
  with pytest.raises(ValueError, match='landscape'):
    _dataset(root, resolutions=[(16, 32)])


def test_iterator_state_round_trip(root):
  it = pipeline.make_iterator(_dataset(root))
  for _ in range(2):
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(3)]
  resumed = pipeline.make_iterator(_dataset(root))
  resumed.set_state(state)
  for batch, want in zip((next(resumed) for _ in range(3)), expected):
    _assert_equal(batch, want)
