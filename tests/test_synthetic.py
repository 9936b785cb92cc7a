"""Synthetic Stereo4D clips (data/synthetic.py): the official schema and layout, byte-reproducibility,
and tracks that agree with the rendered geometry and with the colours of the encoded video."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data import synthetic

ROOT = Path(__file__).resolve().parents[1]
SIZE, FRAMES = 128, 24


@pytest.fixture(scope='module')
def clip():
  return synthetic.make_clip(7, FRAMES, SIZE)


@pytest.fixture(scope='module')
def written(tmp_path_factory):
  return synthetic.write_clips(str(tmp_path_factory.mktemp('clips')), 'train', 2, FRAMES, size=SIZE, seed=3)


def _camera_points(arrays):
  """Every observation in its frame's camera: (n, 3) float64, the frame (n,) and the track (n,)."""
  frame = arrays['track_indices'].astype(np.int64)
  track = np.repeat(np.arange(len(arrays['track_lengths'])), arrays['track_lengths'])
  cams = arrays['camera2world'].astype(np.float64)[frame]
  world = arrays['track_coordinates'].astype(np.float64)
  return np.einsum('nji,nj->ni', cams[:, :, :3], world - cams[:, :, 3]), frame, track


def _pixels(points, size):
  """(n, 3) camera points → (n, 2) float (u, v) with the Stereo4D K (hfov 60°)."""
  return synthetic.focal_length(size, 60.0) * points[:, :2] / points[:, 2:] + size / 2


def test_schema_and_layout(written):
  for npz, mp4 in written:
    with np.load(npz, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
    assert sorted(arrays) == sorted(synthetic.NPZ_KEYS)
    name, video_id, stamps = str(arrays['name']), str(arrays['video_id']), arrays['timestamps']
    assert arrays['name'].shape == () and arrays['name'].dtype.kind == 'U' and len(video_id) == 11
    assert name == f'{video_id}_{stamps[0]}'
    root = Path(npz).parents[1]
    assert Path(npz) == root / 'train' / f'{name}.npz'
    assert Path(mp4) == root / 'lefteye-perspective' / 'train' / f'{name}-left_rectified.mp4'
    assert stamps.dtype == np.int64 and stamps.shape == (FRAMES,)
    assert set(np.diff(stamps).tolist()) <= {33366, 33367}
    cams = arrays['camera2world']
    assert cams.dtype == np.float32 and cams.shape == (FRAMES, 3, 4)
    rot = cams[:, :, :3].astype(np.float64)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-5)
    assert np.abs(cams[0] - np.eye(3, 4)).max() > 0.05              # the world is not the first camera
    lengths, indices, coords = arrays['track_lengths'], arrays['track_indices'], arrays['track_coordinates']
    assert lengths.dtype.kind == indices.dtype.kind == 'i' and coords.dtype == np.float32
    assert lengths.min() >= 2 and lengths.sum() == len(indices) == len(coords) and coords.shape[1] == 3
    assert indices.min() >= 0 and indices.max() < FRAMES and np.all(np.isfinite(coords))
    track = np.repeat(np.arange(len(lengths)), lengths)
    assert np.all(np.diff(indices)[np.diff(track) == 0] > 0)        # each track: increasing frames
    assert arrays['rectified2rig'].dtype == np.float32 and arrays['rectified2rig'].shape == (2, 3, 3)
    np.testing.assert_allclose(arrays['fov_bounds'], [-90, 90, -90, 90])
  assert written[0][0] != written[1][0]


def _sha256(path):
  return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_same_seed_same_bytes(tmp_path):
  args = dict(split='train', num_clips=1, num_frames=12, size=64)
  first = synthetic.write_clips(str(tmp_path / 'a'), seed=5, **args)[0]
  again = synthetic.write_clips(str(tmp_path / 'b'), seed=5, **args)[0]
  other = synthetic.write_clips(str(tmp_path / 'c'), seed=6, **args)[0]
  for a, b, c in zip(first, again, other):
    assert _sha256(a) == _sha256(b) and _sha256(a) != _sha256(c)


def test_observations_lie_on_the_rendered_surfaces(clip):
  points, frame, track = _camera_points(clip)
  uv = _pixels(points, SIZE)
  assert np.all(points[:, 2] > 0) and points[:, 2].max() <= synthetic.MAX_DEPTH
  assert np.all((uv > -1e-3) & (uv < SIZE + 1e-3))
  col, row = np.clip(np.floor(uv), 0, SIZE - 1).astype(np.int64).T
  rel = np.abs(clip['depth'][frame, row, col] - points[:, 2]) / points[:, 2]
  assert np.median(rel) < 0.01 and np.mean(rel > 0.03) < 0.01
  per_frame = np.bincount(frame, minlength=FRAMES)
  assert per_frame.min() > 1000                                    # dense like the release (per pixel area)
  gaps = np.diff(frame)[np.diff(track) == 0]
  assert np.any(gaps > 1)                                          # tracks disappear (occlusion, exit) and return
  spread = np.zeros(len(clip['track_lengths']))
  np.maximum.at(spread, track, np.linalg.norm(clip['track_coordinates'] - clip['track_coordinates'][
      np.repeat(np.cumsum(clip['track_lengths']) - clip['track_lengths'], clip['track_lengths'])], axis=1))
  assert np.mean(spread < 1e-5) > 0.3 and np.sum(spread > 0.1) > 100   # static room and moving objects


def _decode(mp4):
  import decord  # pylint: disable=import-outside-toplevel
  reader = decord.VideoReader(mp4, ctx=decord.cpu(0))
  return np.stack([reader[i].asnumpy() for i in range(len(reader))])


def test_track_colours_stay_put_through_h264(written):
  npz, mp4 = written[0]
  arrays = dict(np.load(npz))
  frames = _decode(mp4)
  points, frame, track = _camera_points(arrays)
  col, row = np.clip(np.floor(_pixels(points, SIZE)), 0, SIZE - 1).astype(np.int64).T
  colour = frames[frame, row, col].astype(np.float64)
  first = np.cumsum(arrays['track_lengths']) - arrays['track_lengths']
  long_tracks = np.repeat(arrays['track_lengths'] >= 8, arrays['track_lengths'])
  reference = colour[first][track]
  diff = np.median(np.abs(colour - reference)[long_tracks])
  shuffled = np.median(np.abs(np.random.default_rng(0).permutation(colour) - reference)[long_tracks])
  assert long_tracks.sum() > 10_000 and diff < 5 and shuffled > 4 * max(diff, 1)


def test_cli_writes_the_official_layout(tmp_path):
  command = [sys.executable, '-m', 'data.synthetic', f'--output={tmp_path}', '--split=test', '--num_clips=1',
             '--num_frames=12', '--size=64', '--gop=5', '--seed=1']
  subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=120)
  (npz,) = (tmp_path / 'test').glob('*.npz')
  mp4 = tmp_path / 'lefteye-perspective' / 'test' / f'{npz.stem}-left_rectified.mp4'
  import decord  # pylint: disable=import-outside-toplevel
  reader = decord.VideoReader(str(mp4), ctx=decord.cpu(0))
  assert len(reader) == len(np.load(npz)['camera2world']) == 12
  assert reader[11].asnumpy().shape == (64, 64, 3)
  assert list(reader.get_key_indices()) == [0, 5, 10]
  assert reader.get_avg_fps() == pytest.approx(30000 / 1001)


def test_a_set_is_complete_only_when_whole_and_as_asked(written):
  (npz, mp4), _ = written
  root = Path(npz).parents[1]
  args = dict(num_clips=2, num_frames=FRAMES, size=SIZE, seed=3)
  assert synthetic.is_complete(str(root), 'train', **args)
  assert not synthetic.is_complete(str(root), 'train', **{**args, 'num_clips': 3})
  assert not synthetic.is_complete(str(root), 'train', **{**args, 'seed': 4})
  assert not synthetic.is_complete(str(root), 'test', **args)
  assert not list(root.rglob('.partial'))                   # the staging folders are gone
  Path(mp4).rename(mp4 + '.moved')                           # a file of the set missing
  try:
    assert not synthetic.is_complete(str(root), 'train', **args)
  finally:
    Path(mp4 + '.moved').rename(mp4)
