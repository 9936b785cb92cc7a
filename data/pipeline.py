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
import dataclasses
import os
import warnings
from typing import Protocol

import grain
import numpy as np
from absl import logging

from data import sampling
from data.augment import augment
from data.errors import BadClip
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
  """Clips under the official layout: ROOT/SPLIT/<name>.npz + ROOT/lefteye-perspective/SPLIT/<name>-left_rectified.mp4."""
  npz_dir, mp4_dir = os.path.join(root, split), os.path.join(root, VIDEO_DIR, split)
  layout = f'expected {npz_dir}/<name>.npz and {mp4_dir}/<name>{VIDEO_SUFFIX}'
  npz = {f[:-4] for f in _listdir(npz_dir) if f.endswith('.npz')}
  mp4 = {f[:-len(VIDEO_SUFFIX)] for f in _listdir(mp4_dir) if f.endswith(VIDEO_SUFFIX)}
  if npz ^ mp4:
    logging.warning('%s: %d npz without video and %d videos without npz are ignored (e.g. %s)', root,
                    len(npz - mp4), len(mp4 - npz), sorted(npz ^ mp4)[:3])
  entries, unusable = [], 0
  for name in sorted(npz & mp4):
    path = os.path.join(npz_dir, name + '.npz')
    try:
      with np.load(path) as z:
        n = len(z['camera2world'])
    except Exception:  # noqa: BLE001 - counted and reported; the sampler never sees it
      unusable += 1
      continue
    if sampling.triplet_count(n, max_frame_window) > 0:
      entries.append(ClipEntry(path, os.path.join(mp4_dir, name + VIDEO_SUFFIX), n))
    else:
      unusable += 1
  if unusable:
    logging.warning('%s: %d clips without readable cameras or with < 3 frames are ignored', root, unusable)
  if not entries:
    raise FileNotFoundError(f'{root}: no usable Stereo4D clip for split {split!r} ({layout})')
  logging.info('%s/%s: %d clips', root, split, len(entries))
  return entries


def _listdir(path):
  return os.listdir(path) if os.path.isdir(path) else []


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
    errors = []
    for _ in range(self.max_attempts):
      index = sampling.sample_clip(rng, self.cumulative)
      try:
        example = self._example(index, rng)
      except BadClip as e:
        warnings.warn(str(e))  # once per process and message
        errors.append(str(e))
        continue
      example['num_skipped'] = np.int32(len(errors))
      return example
    raise RuntimeError(f'{self.max_attempts} consecutive samples failed; the data is broken. Last errors: '
                       f'{errors[-3:]}')

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


def make_dataset(clips: ClipSource, *, batch_size: int, seed: int, shard_index: int = 0,
                 shard_count: int = 1, **draw_options) -> grain.MapDataset:
  """Batches of examples. With several hosts, each takes every shard_count-th batch (its slice)."""
  ds = grain.MapDataset.range(NUM_SAMPLES).seed(seed).random_map(DrawExample(clips, **draw_options))
  return ds.batch(batch_size, drop_remainder=True)[shard_index::shard_count]


def make_iterator(ds: grain.MapDataset, *, num_workers: int = 0, num_threads: int = 2, prefetch: int = 2):
  """A checkpointable iterator. num_threads batches are made concurrently per process; num_workers > 0
  adds that many worker processes (needs absl flags parsed, i.e. a program run under absl.app, and the
  pipeline built inside main()). The order of batches never depends on either."""
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
  if num_workers:
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers,
                                                           per_worker_buffer_size=prefetch))
  return iter(it_ds)
