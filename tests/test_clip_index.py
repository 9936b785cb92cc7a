"""find_clips' clip index: written once, reused while files are unchanged, updated for new, changed and
deleted clips, kept in the user cache when ROOT/SPLIT is read-only, rebuilt when corrupt."""
import json
import logging
import os

import numpy as np
import pytest

from data import pipeline


def _clip(root, name, num_frames):
  """An npz holding only camera2world (all find_clips reads) and an empty mp4 beside it."""
  npz_dir, mp4_dir = root / 'train', root / pipeline.VIDEO_DIR / 'train'
  npz_dir.mkdir(parents=True, exist_ok=True)
  mp4_dir.mkdir(parents=True, exist_ok=True)
  np.savez(npz_dir / f'{name}.npz', camera2world=np.tile(np.eye(4)[:3], (num_frames, 1, 1)))
  (mp4_dir / f'{name}{pipeline.VIDEO_SUFFIX}').write_bytes(b'')
  return npz_dir / f'{name}.npz'


@pytest.fixture
def root(tmp_path):
  for k in range(3):
    _clip(tmp_path, f'clip{k}', 10 + k)
  return tmp_path


@pytest.fixture
def loads(monkeypatch):
  """The paths np.load opened."""
  opened, load = [], np.load

  def counting(path, *args, **kwargs):
    opened.append(os.path.basename(path))
    return load(path, *args, **kwargs)

  monkeypatch.setattr(np, 'load', counting)
  return opened


def _frames(root):
  return {os.path.basename(e.npz): e.num_frames for e in pipeline.find_clips(str(root), 'train')}


def _index(path):
  return json.loads(path.read_text())['clips']


def test_index_is_written_and_then_no_npz_is_opened(root, loads):
  want = {'clip0.npz': 10, 'clip1.npz': 11, 'clip2.npz': 12}
  assert _frames(root) == want and sorted(loads) == sorted(want)
  path = root / 'train' / pipeline.CLIP_INDEX
  assert {name: record[2] for name, record in _index(path).items()} == {'clip0': 10, 'clip1': 11, 'clip2': 12}
  written = path.stat().st_mtime_ns
  loads.clear()
  assert _frames(root) == want and loads == []
  assert path.stat().st_mtime_ns == written                  # nothing changed: not rewritten
  assert not [f for f in os.listdir(root / 'train') if f.endswith('.tmp')]


def test_changed_new_and_deleted_files(root, loads):
  _frames(root)
  loads.clear()
  npz = root / 'train' / 'clip1.npz'
  stat = npz.stat()
  os.utime(npz, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))   # touched: read again, same count
  assert _frames(root)['clip1.npz'] == 11 and loads == ['clip1.npz']
  loads.clear()
  _clip(root, 'clip1', 20)                                   # other content, another frame count
  _clip(root, 'clip3', 5)
  (root / 'train' / 'clip0.npz').unlink()
  assert _frames(root) == {'clip1.npz': 20, 'clip2.npz': 12, 'clip3.npz': 5}
  assert sorted(loads) == ['clip1.npz', 'clip3.npz']
  assert sorted(_index(root / 'train' / pipeline.CLIP_INDEX)) == ['clip1', 'clip2', 'clip3']


def test_unreadable_clip_stays_unusable_without_being_reopened(root, loads, caplog):
  (root / 'train' / 'broken.npz').write_bytes(b'not an npz')
  _clip(root, 'short', 2)                                    # < 3 frames: readable but unusable
  (root / pipeline.VIDEO_DIR / 'train' / f'broken{pipeline.VIDEO_SUFFIX}').write_bytes(b'')
  for _ in range(2):
    caplog.clear()
    assert sorted(_frames(root)) == ['clip0.npz', 'clip1.npz', 'clip2.npz']
    assert '2 clips without readable cameras or with < 3 frames are ignored' in caplog.text
  assert loads.count('broken.npz') == 1 and loads.count('short.npz') == 1
  index = _index(root / 'train' / pipeline.CLIP_INDEX)
  assert index['broken'][2] is None and index['short'][2] == 2


def test_read_only_root_uses_the_cache_dir(root, loads, monkeypatch, tmp_path_factory):
  cache = tmp_path_factory.mktemp('cache')
  monkeypatch.setenv('XDG_CACHE_HOME', str(cache))
  npz_dir = str(root / 'train')
  access = os.access
  monkeypatch.setattr(os, 'access', lambda path, mode: path != npz_dir and access(path, mode))
  _frames(root)
  assert not (root / 'train' / pipeline.CLIP_INDEX).exists()
  (path,) = (cache / 'dynadust3r_jax').iterdir()
  assert path == cache / 'dynadust3r_jax' / os.path.basename(pipeline.clip_index_path(npz_dir))
  assert sorted(_index(path)) == ['clip0', 'clip1', 'clip2']
  loads.clear()
  _frames(root)
  assert loads == []


def test_unwritable_index_is_one_warning(root, monkeypatch, tmp_path_factory, caplog):
  blocker = tmp_path_factory.mktemp('cache') / 'a_file'
  blocker.write_text('')                                     # the cache dir cannot be made below a file
  monkeypatch.setenv('XDG_CACHE_HOME', str(blocker))
  monkeypatch.setattr(os, 'access', lambda *_: False)
  assert len(_frames(root)) == 3
  assert caplog.text.count('clip index not written') == 1


@pytest.mark.parametrize('text', ['{"format": "dynadust3r_jax/clip-index", "ver', '[1, 2]',
                                  '{"format": "dynadust3r_jax/clip-index", "version": 1, "clips": {"clip0": 3}}'])
def test_corrupt_index_is_ignored_and_rebuilt(root, loads, caplog, text):
  path = root / 'train' / pipeline.CLIP_INDEX
  path.write_text(text)
  with caplog.at_level(logging.WARNING):
    assert _frames(root) == {'clip0.npz': 10, 'clip1.npz': 11, 'clip2.npz': 12}
  assert sum('clip index ignored and rebuilt' in r.getMessage() for r in caplog.records) == 1
  assert len(loads) == 3 and sorted(_index(path)) == ['clip0', 'clip1', 'clip2']
  loads.clear()
  caplog.clear()
  _frames(root)
  assert loads == [] and 'clip index' not in caplog.text
