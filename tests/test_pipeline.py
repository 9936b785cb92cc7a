"""Stereo4D reading, targets and the Grain pipeline on synthetic clips in the official format."""
import os
import warnings

import numpy as np
import pytest

from data import pipeline, synthetic
from data.stereo4d import Mp4Clip, intrinsics, load_clip, make_example
from tests.broken_clips import BrokenCopy

SIZE, FRAMES = 128, 16


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  out = tmp_path_factory.mktemp('stereo4d')
  synthetic.write_clips(str(out), 'train', num_clips=3, num_frames=FRAMES, size=SIZE, seed=0)
  return out


def _paths(root, k=0):
  entries = pipeline.find_clips(str(root), 'train')
  return entries[k].npz, entries[k].mp4


def _project(points, K):
  """(…, 3) camera points → (…, 2) pixel (col, row) indices, floor convention."""
  return np.floor(points[..., :2] / points[..., 2:] * K[[0, 1], [0, 1]] + K[[0, 1], [2, 2]]).astype(int)


def test_pointmap_pixels_project_into_themselves(root):
  ex = make_example(*_paths(root), frames=(2, 5, 11))
  K = intrinsics(SIZE, SIZE)
  rows, cols = np.nonzero(ex['valid1'])
  assert len(rows) > 200
  np.testing.assert_array_equal(_project(ex['pts3d1'][rows, cols], K), np.stack([cols, rows], -1))
  # view 2: its pixels hold camera-l coordinates; back in camera r they project into themselves
  w2c_l, w2c_r = ex['world_to_cam'][0].astype(np.float64), ex['world_to_cam'][2].astype(np.float64)
  rows, cols = np.nonzero(ex['valid2'])
  world = (ex['pts3d2'][rows, cols] - w2c_l[:3, 3]) @ w2c_l[:3, :3]
  in_r = world @ w2c_r[:3, :3].T + w2c_r[:3, 3]
  np.testing.assert_array_equal(_project(in_r, K), np.stack([cols, rows], -1))


def test_targets_are_track_positions_at_destination(root):
  npz, mp4 = _paths(root)
  l, m, r = 1, 6, 13
  ex = make_example(npz, mp4, frames=(l, m, r))
  clip = load_clip(npz)
  tracks = clip.dense_tracks()                         # (N, T, 3) world, NaN where unseen
  w2c_l = ex['world_to_cam'][0].astype(np.float64)
  K = intrinsics(SIZE, SIZE)
  for name, src, dst, view in (('l2m', l, m, 1), ('l2r', l, r, 1), ('r2m', r, m, 2), ('r2l', r, l, 2)):
    valid = ex[f'valid_{name}']
    assert valid.sum() > 50, name
    assert not (valid & ~ex[f'valid{view}']).any()    # targets only where the source pixel has a point
    # the target's track: the one at the source pixel whose source position equals the pointmap value
    src_cam = tracks[:, src] @ w2c_l[:3, :3].T + w2c_l[:3, 3]
    rows, cols = np.nonzero(valid)
    for row, col in list(zip(rows, cols))[::17]:
      k = np.nanargmin(np.linalg.norm(src_cam - ex[f'pts3d{view}'][row, col], axis=-1))
      np.testing.assert_allclose(src_cam[k], ex[f'pts3d{view}'][row, col], atol=1e-5)
      want = tracks[k, dst] @ w2c_l[:3, :3].T + w2c_l[:3, 3]
      np.testing.assert_allclose(ex[f'target_{name}'][row, col], want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ex['query_times'], [(m - l) / (r - l), 1, 0])
  assert K[0, 0] == pytest.approx(SIZE / 2 / np.tan(np.pi / 6))


def test_colours_agree_along_tracks(root):
  """img1 at a pixel and img2 where that pixel's track is at time r show the same surface colour."""
  ex = make_example(*_paths(root, 1), frames=(0, 4, 9))
  K = intrinsics(SIZE, SIZE)
  w2c_l, w2c_r = ex['world_to_cam'][0].astype(np.float64), ex['world_to_cam'][2].astype(np.float64)
  rows, cols = np.nonzero(ex['valid_l2r'])
  world = (ex['target_l2r'][rows, cols] - w2c_l[:3, 3]) @ w2c_l[:3, :3]
  q = _project(world @ w2c_r[:3, :3].T + w2c_r[:3, 3], K)
  inside = (q >= 0).all(-1) & (q < SIZE).all(-1)
  c1 = ex['img1'][rows[inside], cols[inside]]
  c2 = ex['img2'][q[inside, 1], q[inside, 0]]
  grey_levels = np.median(np.abs(c1 - c2)) * 127.5
  shuffled = np.median(np.abs(c1 - np.random.default_rng(0).permutation(c2))) * 127.5
  # both samples are whole pixels around the same surface point (±½ px on a textured surface) after
  # H.264: a few grey levels apart, while unrelated pixels differ several times more
  assert inside.sum() > 100 and grey_levels < 10 and shuffled > 2.5 * grey_levels


def test_same_seed_same_batches_and_exact_resume(root):
  clips = pipeline.Mp4Clips(pipeline.find_clips(str(root), 'train'))
  ds = pipeline.make_dataset(clips, batch_size=2, seed=7)
  it = pipeline.make_iterator(ds)
  first = next(it)
  state = it.get_state()
  rest = [next(it) for _ in range(2)]
  again = pipeline.make_iterator(pipeline.make_dataset(clips, batch_size=2, seed=7))
  _assert_batches_equal(first, next(again))
  resumed = pipeline.make_iterator(pipeline.make_dataset(clips, batch_size=2, seed=7))
  resumed.set_state(state)
  for want in rest:
    _assert_batches_equal(want, next(resumed))
  other = next(pipeline.make_iterator(pipeline.make_dataset(clips, batch_size=2, seed=8)))
  assert not np.array_equal(other['img1'], first['img1'])
  assert first['img1'].shape == (2, SIZE, SIZE, 3) and first['num_skipped'].tolist() == [0, 0]


def test_host_shards_are_disjoint_slices(root):
  clips = pipeline.Mp4Clips(pipeline.find_clips(str(root), 'train'))
  full = pipeline.make_dataset(clips, batch_size=1, seed=3, augment_images=False)
  host1 = pipeline.make_dataset(clips, batch_size=1, seed=3, shard_index=1, shard_count=2, augment_images=False)
  _assert_batches_equal(host1[0], full[1])
  _assert_batches_equal(host1[1], full[3])


def _assert_batches_equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# --- bad input ---------------------------------------------------------------------------------------


@pytest.fixture
def broken_root(root, tmp_path):
  """A copy of the clips plus one broken clip of each kind, and unpaired files."""
  broken = BrokenCopy(root, tmp_path / 'broken')
  arrays, good_npz, good_mp4 = broken.arrays, broken.good_npz, broken.good_mp4
  broken.add('nan_cameras', camera2world=broken.nan_cameras())
  broken.add('missing_keys', track_coordinates=None)
  broken.add('empty_tracks', track_lengths=np.zeros_like(arrays['track_lengths']),
             track_indices=np.zeros(0, np.int64), track_coordinates=np.zeros((0, 3), np.float32))
  broken.add('truncated_mp4', mp4_bytes=good_mp4.read_bytes()[: len(good_mp4.read_bytes()) // 3])
  broken.add('garbage_mp4', mp4_bytes=b'not a video')
  broken.add('more_cameras_than_frames',
             camera2world=np.concatenate([arrays['camera2world'], arrays['camera2world'][:4]]))
  (broken.npz_dir / 'unpaired.npz').write_bytes(good_npz.read_bytes())
  (broken.mp4_dir / f'lonely{pipeline.VIDEO_SUFFIX}').write_bytes(good_mp4.read_bytes())
  return broken.out


def test_bad_clips_are_skipped_and_counted(broken_root, caplog):
  entries = pipeline.find_clips(str(broken_root), 'train')
  assert 'npz without video' in caplog.text and '1 npz without video and 1 videos without npz' in caplog.text
  clips = pipeline.Mp4Clips(entries)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    batches = [b for b, _ in zip(pipeline.make_iterator(pipeline.make_dataset(clips, batch_size=4, seed=0)),
                                 range(6))]
  skipped = sum(int(b['num_skipped'].sum()) for b in batches)
  assert skipped > 0                                       # broken clips were drawn, skipped, counted
  for b in batches:
    assert all(np.isfinite(b[k]).all() for k in b if b[k].dtype.kind == 'f')   # no NaN in any batch
  messages = ' '.join(str(w.message) for w in caught)
  assert 'more_cameras_than_frames' in messages and 'using the first' in messages


def test_more_cameras_than_frames_uses_common_length(broken_root):
  npz_dir = broken_root / 'train'
  mp4 = broken_root / pipeline.VIDEO_DIR / 'train' / f'more_cameras_than_frames{pipeline.VIDEO_SUFFIX}'
  with pytest.warns(UserWarning, match='using the first'):
    clip = Mp4Clip(str(npz_dir / 'more_cameras_than_frames.npz'), str(mp4))
  assert clip.num_frames == FRAMES


def test_no_usable_clip_is_one_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='no usable Stereo4D clip.*lefteye-perspective'):
    pipeline.find_clips(str(tmp_path), 'train')
