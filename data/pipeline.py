"""The Grain input pipeline of DynaDUSt3R training on Stereo4D (or any clips in its format).

    clips = Mp4Clips(find_clips(root, 'train'))        # pairs npz + mp4, reports unpaired files once
    ds = make_dataset(clips, batch_size=4, seed=0)    # grain.MapDataset of batches (dicts of arrays)
    it = make_iterator(ds, num_workers=8)              # checkpointable: it.get_state() / it.set_state()

Element i of the dataset is drawn from its own random generator (Grain `random_map`, seeded by the
config seed and i): a clip ∝ its number of valid triplets, then a triplet uniformly (data/sampling.py),
decoding, targets (data/stereo4d.py) and photometric augmentation (data/augment.py). So a batch depends
only on (seed, its index): the same seed gives the same batches, and a restored iterator state resumes
exactly. A sample that fails (unreadable npz/mp4, NaN cameras, no tracks) is replaced by a new draw
from the same generator and counted in the example's `num_skipped`, which the trainer logs.
"""
import contextlib
import dataclasses
import hashlib
import json
import os
import uuid
from typing import Protocol

import grain
import numpy as np
from absl import logging

from data import sampling
from data.augment import augment
from data.errors import redraw
from data.stereo4d import Frame, Mp4Clip, build_example

VIDEO_DIR = 'lefteye-perspective'
VIDEO_SUFFIX = '-left_rectified.mp4'
NUM_SAMPLES = 2 ** 40  # elements are drawn, not enumerated: the dataset is "infinite"


@dataclasses.dataclass(frozen=True)
class ClipEntry:
  npz: str
  mp4: str
  num_frames: int  # from the npz cameras; the video may turn out shorter (then the common length is used)


def find_clips(root: str, split: str, max_frame_window: int = 60) -> list[ClipEntry]:
  """Clips under the official layout: ROOT/SPLIT/<name>.npz + ROOT/lefteye-perspective/SPLIT/<name>-left_rectified.mp4.

  A clip's num_frames (len of its npz's camera2world) comes from the clip index (see below), so only
  new or changed npz are opened: seconds instead of minutes for Stereo4D's 110k clips. Training
  from pre-decoded shards needs none of this: their index.json (data/predecoded.py) holds num_frames."""
  npz_dir, mp4_dir = os.path.join(root, split), os.path.join(root, VIDEO_DIR, split)
  layout = f'expected {npz_dir}/<name>.npz and {mp4_dir}/<name>{VIDEO_SUFFIX}'
  npz = {e.name[:-4]: e for e in _scandir(npz_dir) if e.name.endswith('.npz')}
  mp4 = {e.name[:-len(VIDEO_SUFFIX)] for e in _scandir(mp4_dir) if e.name.endswith(VIDEO_SUFFIX)}
  if npz.keys() ^ mp4:
    logging.warning('%s: %d npz without video and %d videos without npz are ignored (e.g. %s)', root,
                    len(npz.keys() - mp4), len(mp4 - npz.keys()), sorted(npz.keys() ^ mp4)[:3])
  names = sorted(npz.keys() & mp4)
  frames = _clip_frames(npz_dir, {name: npz[name] for name in names})
  usable = {n: sampling.triplet_count(n, max_frame_window) > 0 for n in set(frames.values()) - {None}}
  entries, unusable = [], 0
  for name in names:
    n = frames[name]
    if n is not None and usable[n]:
      entries.append(ClipEntry(npz[name].path, os.path.join(mp4_dir, name + VIDEO_SUFFIX), n))
    else:
      unusable += 1
  if unusable:
    logging.warning('%s: %d clips without readable cameras or with < 3 frames are ignored', root, unusable)
  if not entries:
    raise FileNotFoundError(f'{root}: no usable Stereo4D clip for split {split!r} ({layout})')
  logging.info('%s/%s: %d clips', root, split, len(entries))
  return entries


def _scandir(path):
  if not os.path.isdir(path):
    return []
  with os.scandir(path) as it:
    return list(it)


# --- the clip index ----------------------------------------------------------------------------------------
# One JSON file per ROOT/SPLIT: {"format", "version", "clips": {name: [npz size, npz mtime (ns), num_frames]}},
# num_frames null for an npz that np.load or its camera2world failed on (unusable until the file changes).
# It is ROOT/SPLIT/.clip_index.json when that folder is writable, else
# $XDG_CACHE_HOME/dynadust3r_jax/clip_index-<sha256 of ROOT/SPLIT's absolute path, 16 hex>.json
# ($XDG_CACHE_HOME defaults to ~/.cache). An entry is reused while its file's (size, mtime) are unchanged:
# a rewrite that changes the frame count changes camera2world's bytes, hence the size. A missing, corrupt
# or other-version index is rebuilt (the latter two with a warning); a failed write (a warning) only means
# the next start-up opens those npz again. An npz that raises OSError (permissions, I/O) is not indexed:
# it is tried again at the next start-up. Written atomically (a temporary file renamed over it), so hosts
# starting together on a shared file system each leave a whole index.

CLIP_INDEX = '.clip_index.json'
_INDEX_FORMAT, _INDEX_VERSION = 'dynadust3r_jax/clip-index', 1


def _clip_frames(npz_dir: str, files: dict[str, os.DirEntry]) -> dict[str, int | None]:
  """{name: num_frames, or None if unreadable} of the npz DirEntries `files`; updates the clip index."""
  path = clip_index_path(npz_dir)
  cached = _read_index(path)
  index, frames = {}, {}
  for name, entry in files.items():
    try:
      stat = entry.stat()
      record = cached.get(name)
      if record is None or record[:2] != [stat.st_size, stat.st_mtime_ns]:
        record = [stat.st_size, stat.st_mtime_ns, _npz_frames(entry.path)]
    except OSError:  # gone since the listing, or unreadable for now: not indexed, tried again next time
      frames[name] = None
      continue
    index[name] = record
    frames[name] = record[2]
  if index != cached:
    _write_index(path, index)
  return frames


def clip_index_path(npz_dir: str) -> str:
  """Where the clip index of ROOT/SPLIT is: inside it when writable, else in the user's cache folder."""
  if os.access(npz_dir, os.W_OK):
    return os.path.join(npz_dir, CLIP_INDEX)
  cache = os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'dynadust3r_jax')
  key = hashlib.sha256(os.path.abspath(npz_dir).encode()).hexdigest()[:16]
  return os.path.join(cache, f'clip_index-{key}.json')


def _npz_frames(path: str) -> int | None:
  """len(camera2world) of an npz; None when its content is broken (OSError propagates)."""
  try:
    with np.load(path) as z:
      return len(z['camera2world'])
  except OSError:
    raise
  except Exception:  # noqa: BLE001 - counted and reported; the sampler never sees it
    return None


def _read_index(path: str) -> dict:
  """The index's clips; {} when there is none yet, or (with a warning) when it cannot be used."""
  try:
    with open(path) as f:
      index = json.load(f)
    clips = index['clips']
    if (index['format'], index['version']) != (_INDEX_FORMAT, _INDEX_VERSION) or not isinstance(clips, dict) or \
        not all(type(r) is list and len(r) == 3 and (r[2] is None or type(r[2]) is int) for r in clips.values()):
      raise ValueError(f'not a {_INDEX_FORMAT} version {_INDEX_VERSION} index')
    return clips
  except FileNotFoundError:
    return {}
  except (OSError, ValueError, TypeError, KeyError) as e:
    logging.warning('%s: clip index ignored and rebuilt (%s: %s)', path, type(e).__name__, e)
    return {}


def _write_index(path: str, clips: dict) -> None:
  """Atomically: a uniquely named temporary file next to it, renamed over it."""
  tmp = f'{path}.{uuid.uuid4().hex}.tmp'
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(tmp, 'x') as f:
      json.dump({'format': _INDEX_FORMAT, 'version': _INDEX_VERSION, 'clips': clips}, f, separators=(',', ':'))
    os.replace(tmp, path)
  except OSError as e:
    logging.warning('%s: clip index not written (%s); the next start-up opens these npz again', path, e)
    with contextlib.suppress(OSError):
      os.remove(tmp)


class OpenClip(Protocol):
  num_frames: int                      # frames usable for sampling

  def frame(self, t: int, with_image: bool = True) -> Frame: ...


class ClipSource(Protocol):
  """Where clips come from: npz + mp4 files (`Mp4Clips`) or pre-decoded records (data/predecoded.py)."""

  def __len__(self) -> int: ...

  def num_frames(self, i: int) -> int: ...   # known without opening the clip (for sampling weights)

  def open(self, i: int) -> OpenClip: ...    # raises BadClip


class Mp4Clips:
  """Clips as the official release stores them (npz + left-eye mp4), decoded with decord."""

  def __init__(self, entries: list[ClipEntry]):
    self.entries = entries

  def __len__(self):
    return len(self.entries)

  def num_frames(self, i):
    return self.entries[i].num_frames

  def open(self, i):
    return Mp4Clip(self.entries[i].npz, self.entries[i].mp4)


class DrawExample(grain.transforms.RandomMap):
  """Sample index → one training example (dict of arrays), drawn from the element's generator."""

  def __init__(self, clips: ClipSource, *, max_frame_window=60, hfov=60.0, pixel_rounding='floor',
               augment_images=True, max_attempts=32):
    self.clips = clips
    self.cumulative = np.cumsum([sampling.triplet_count(clips.num_frames(i), max_frame_window)
                                 for i in range(len(clips))])
    self.max_frame_window = max_frame_window
    self.hfov, self.pixel_rounding = hfov, pixel_rounding
    self.augment_images = augment_images
    self.max_attempts = max_attempts

  def random_map(self, element, rng: np.random.Generator):
    del element  # the draw depends only on the generator (seed, index)
    example, skipped = redraw(lambda _: self._example(sampling.sample_clip(rng, self.cumulative), rng),
                              self.max_attempts)
    example['num_skipped'] = np.int32(skipped)
    return example

  def _example(self, index, rng):
    clip = self.clips.open(index)
    ids = sampling.sample_triplet(rng, clip.num_frames, self.max_frame_window)
    # the middle frame contributes geometry only: its image is never decoded
    frames = (clip.frame(ids[0]), clip.frame(ids[1], with_image=False), clip.frame(ids[2]))
    if self.augment_images:  # the input views only (l and r); the targets are geometric
      frames = (dataclasses.replace(frames[0], image=augment(frames[0].image, rng)), frames[1],
                dataclasses.replace(frames[2], image=augment(frames[2].image, rng)))
    example = build_example(frames, ids, hfov=self.hfov, pixel_rounding=self.pixel_rounding)
    example['frame_ids'] = np.asarray(ids, np.int32)
    return example


def batched(draw: grain.transforms.RandomMap, *, batch_size: int, seed: int, shard_index: int = 0,
            shard_count: int = 1) -> grain.MapDataset:
  """The pipelines' Grain chain: element i = draw of sample i (its generator seeded by (seed, i)), batched;
  host shard_index of shard_count takes every shard_count-th batch."""
  ds = grain.MapDataset.range(NUM_SAMPLES).seed(seed).random_map(draw)
  return ds.batch(batch_size, drop_remainder=True)[shard_index::shard_count]


def make_dataset(clips: ClipSource, *, batch_size: int, seed: int, shard_index: int = 0,
                 shard_count: int = 1, **draw_options) -> grain.MapDataset:
  """Batches of examples. With several hosts, each takes every shard_count-th batch (its slice)."""
  return batched(DrawExample(clips, **draw_options), batch_size=batch_size, seed=seed, shard_index=shard_index,
                 shard_count=shard_count)


def make_iterator(ds: grain.MapDataset, *, num_workers: int = 0, num_threads: int = 2, prefetch: int = 2):
  """A checkpointable iterator. num_threads batches are made concurrently per process; num_workers > 0
  adds that many worker processes (needs absl flags parsed, i.e. a program run under absl.app, and the
  pipeline built inside main()). The order of batches never depends on either."""
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
  if num_workers:
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers,
                                                           per_worker_buffer_size=prefetch))
  return iter(it_ds)
