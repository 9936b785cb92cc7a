"""Pre-decoded ArrayRecord clips (data/predecoded.py): written from synthetic clips, verified, read back
exactly (geometry) or within JPEG error (images), and interchangeable with the mp4 path in the pipeline."""
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from data import pipeline, predecoded, synthetic
from data.errors import BadClip
from data.stereo4d import Mp4Clip, build_example

SIZE, FRAMES = 96, 14
MAX_GREY_LEVELS = 3.0  # mean |JPEG q95 4:4:4 - video frame| per image


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  """Three synthetic clips and a clip whose mp4 is garbage."""
  out = tmp_path_factory.mktemp('stereo4d')
  (npz, _), *_ = synthetic.write_clips(str(out), 'train', num_clips=3, num_frames=FRAMES, size=SIZE, seed=0)
  shutil.copy(npz, out / 'train' / 'garbage_mp4.npz')
  (out / pipeline.VIDEO_DIR / 'train' / f'garbage_mp4{pipeline.VIDEO_SUFFIX}').write_bytes(b'not a video')
  return str(out)


@pytest.fixture(scope='module')
def written(root, tmp_path_factory):
  """OUT/train written by the command line, two clips per shard; returns OUT."""
  out = str(tmp_path_factory.mktemp('predecoded'))
  _run_cli(f'--root={root}', f'--output={out}', '--clips_per_shard=2')
  return out


def _run_cli(*args, returncode=0):
  result = subprocess.run([sys.executable, '-m', 'data.predecoded', *args], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=False)
  assert result.returncode == returncode, result.stdout + result.stderr
  return result.stdout


def _mp4_clips(root):
  entries = [e for e in pipeline.find_clips(root, 'train') if 'garbage' not in e.npz]
  return pipeline.Mp4Clips(entries)


def test_writer_skips_and_counts_a_bad_clip_and_is_deterministic(root, written, tmp_path):
  index = predecoded.read_index(os.path.join(written, 'train'))
  assert [s['name'] for s in index['skipped']] == ['garbage_mp4']
  assert 'unreadable video' in index['skipped'][0]['error']
  assert len(index['clips']) == 3 and all(c['num_frames'] == FRAMES for c in index['clips'])
  assert [s['file'] for s in index['shards']] == ['clips-00000-of-00002.array_record',
                                                   'clips-00001-of-00002.array_record']
  predecoded.write(root, 'train', str(tmp_path), num_workers=2, clips_per_shard=2)  # parallel = serial
  for f in os.listdir(os.path.join(written, 'train')):
    with open(os.path.join(written, 'train', f), 'rb') as a, open(tmp_path / 'train' / f, 'rb') as b:
      assert a.read() == b.read(), f
  with pytest.raises(FileExistsError, match='--overwrite'):
    predecoded.write(root, 'train', str(tmp_path))


def test_verify_passes_then_catches_a_changed_clip(root, written, tmp_path):
  stdout = _run_cli(f'--root={root}', f'--output={written}', '--verify', f'--verify_frames={FRAMES}')
  assert 'OK: 3 clips, 42 records read' in stdout and f'{3 * FRAMES} images compared' in stdout
  changed = tmp_path / 'root'
  shutil.copytree(root, changed)
  npz = sorted((changed / 'train').glob('*.npz'))[0]
  arrays = dict(np.load(npz))
  arrays['track_coordinates'][0] += 0.01
  np.savez(npz, **arrays)
  problems = predecoded.verify(str(changed), 'train', written)
  assert problems == [f'{npz.stem} frame {arrays["track_indices"][0]}: track_xyz differs from the npz']
  _run_cli(f'--root={changed}', f'--output={written}', '--verify', returncode=1)


def test_frames_read_back_as_written(root, written):
  clips = predecoded.PredecodedClips(os.path.join(written, 'train'))
  mp4 = _mp4_clips(root)
  assert len(clips) == len(mp4) == 3
  for i in range(len(clips)):
    assert clips.num_frames(i) == mp4.num_frames(i) == FRAMES
    got, want = clips.open(i), mp4.open(i)
    for t in range(0, FRAMES, 3):
      a, b = got.frame(t), want.frame(t)
      np.testing.assert_array_equal(a.camera2world, b.camera2world)
      np.testing.assert_array_equal(a.track_ids, b.track_ids)
      np.testing.assert_array_equal(a.track_xyz, b.track_xyz)
      assert a.image.shape == b.image.shape == (SIZE, SIZE, 3) and a.image.dtype == np.uint8
      assert np.abs(a.image.astype(np.float32) - b.image).mean() < MAX_GREY_LEVELS
  with pytest.raises(BadClip, match='outside the clip'):
    clips.open(0).frame(FRAMES)


def test_examples_equal_the_mp4_path(root, written):
  """Same triplet from both sources: identical geometry targets, images within JPEG error."""
  clips = predecoded.PredecodedClips(os.path.join(written, 'train'))
  entry = pipeline.find_clips(root, 'train')[1]
  ids = (2, 7, 12)
  got = build_example(tuple(clips.open(1).frame(t) for t in ids), ids)
  mp4 = Mp4Clip(entry.npz, entry.mp4)
  want = build_example(tuple(mp4.frame(t) for t in ids), ids)
  assert got.keys() == want.keys()
  for k in got:
    if k in ('img1', 'img2'):
      assert np.abs(got[k] - want[k]).mean() * 127.5 < MAX_GREY_LEVELS, k
    else:
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  assert got['valid_l2r'].sum() > 50


def test_dataset_batches_match_the_mp4_path(root, written):
  clips = predecoded.PredecodedClips(os.path.join(written, 'train'))
  clips = pickle.loads(pickle.dumps(clips))  # what Grain does for its worker processes
  batch = next(pipeline.make_iterator(pipeline.make_dataset(clips, batch_size=2, seed=5)))
  assert batch['img1'].shape == (2, SIZE, SIZE, 3) and batch['num_skipped'].tolist() == [0, 0]
  plain = pipeline.make_dataset(clips, batch_size=2, seed=5, augment_images=False)[0]
  mp4 = pipeline.make_dataset(_mp4_clips(root), batch_size=2, seed=5, augment_images=False)[0]
  np.testing.assert_array_equal(plain['frame_ids'], batch['frame_ids'])  # the same draws
  for k in mp4:
    if k in ('img1', 'img2'):
      assert np.abs(plain[k] - mp4[k]).mean() * 127.5 < MAX_GREY_LEVELS, k
    else:
      np.testing.assert_array_equal(plain[k], mp4[k], err_msg=k)


# --- damaged output ------------------------------------------------------------------------------------


def test_missing_or_garbled_index_is_one_clear_error(written, tmp_path):
  with pytest.raises(FileNotFoundError, match=r'no pre-decoded clips.*index\.json.*python -m data\.predecoded'):
    predecoded.PredecodedClips(str(tmp_path))
  (tmp_path / 'index.json').write_text('{"format": ')
  with pytest.raises(ValueError, match=r'unreadable index.*Expected index\.json and clips-00000-of-00001'):
    predecoded.PredecodedClips(str(tmp_path))
  shutil.copy(os.path.join(written, 'train', 'index.json'), tmp_path / 'index.json')
  with pytest.raises(FileNotFoundError, match=r'clips-00000-of-00002\.array_record listed in index\.json is missing'):
    predecoded.PredecodedClips(str(tmp_path))


def test_corrupted_shard_is_a_bad_clip_naming_it(written, tmp_path):
  directory = tmp_path / 'train'
  shutil.copytree(os.path.join(written, 'train'), directory)
  shard = directory / 'clips-00001-of-00002.array_record'
  shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # truncated
  clips = predecoded.PredecodedClips(str(directory))
  with pytest.raises(BadClip, match=f'{shard}: cannot read frame 0 of clip'):
    clips.open(2).frame(0)
  clips.open(0).frame(0)  # the other shard still reads
