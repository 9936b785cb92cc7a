"""Training-sample throughput per CPU core: the mp4 path (npz + decord) vs pre-decoded ArrayRecord shards.

  python -m benchmarks.data                          # 3 synthetic 60-frame 512² clips, mp4 GOP 30 and 250
  python -m benchmarks.data --workdir=/tmp/bench     # keep the generated clips there and reuse them

Synthetic clips (data/synthetic.py) are rendered once and their mp4 written with each of --gops as
keyframe interval: decord's random access decodes from the keyframe before a frame, so its cost grows
with the GOP. The generator's default GOP is 30; Stereo4D's mp4s have x264's default keyint 250, i.e.
about one keyframe per clip, so --gops includes 250. The mp4 of the first GOP is pre-decoded
(data/predecoded.py). Everything runs in this one process, so samples/s is per core; samples_per_cpu_s
divides by the process's CPU time instead (all its threads: decord decodes on more than one), the better
per-core figure on a shared machine. `--gops=` (empty) writes no mp4 at all: the clips are pre-decoded
from their rendered frames (`clips_without_video`) and only the pre-decoded path is timed, with neither
decord nor ffmpeg installed (the GPU suite's case).

One JSON line per measurement:
  {"bench": "data_write", ...}       pre-decoding speed and record sizes
  {"bench": "data_sample", "path": "mp4"|"predecoded", "gop", "samples_per_s", "samples_per_cpu_s",
   "cpu_ms": {"open", "frames", "augment", "targets", "other"}}   data.pipeline.DrawExample, the
        per-sample function of training; CPU ms per sample in each stage (of the calling thread): open the
        clip (npz + video, or nothing), read its three frames (decode + the tracks of each frame), augment
        the two input images, build the targets (data.stereo4d.build_example); "other" is the rest of the
        process's CPU time: sampling, and on the mp4 path decord's decoder thread (decord decodes outside
        the calling thread, so that is where the mp4 decoding shows)
  {"bench": "data_profile", "path", "gop", "top": [[function, ms per sample], ...]}   cProfile of
        DrawExample by own time: where the time goes
  {"bench": "data_ratio", "gop", "predecoded_over_mp4": {"samples_per_s", "samples_per_cpu_s"}}   same triplets
  {"bench": "data_iterator", "path", "num_workers", "batch_size", "samples_per_s", "samples_per_s_per_process"}
        the Grain pipeline (make_dataset + make_iterator, one thread per process), with --iterator_workers
        worker processes, over --iterator_batches batches after a first one (worker start-up)
"""
import contextlib
import cProfile
import os
import pstats
import sys
import tempfile
import time
from unittest import mock

import msgpack
import numpy as np
from absl import app, flags

from benchmarks.common import print_row
from data import pipeline, predecoded, synthetic
from data.stereo4d import Mp4Clip, load_clip


STAGES = ('open', 'frames', 'augment', 'targets')


def make_roots(workdir, size, num_frames, num_clips, gops):
  """{gop: root of the clips with that mp4 GOP}; missing roots are written from clips rendered once."""
  roots = {g: os.path.join(workdir, f'clips-{size}px-{num_frames}f-gop{g}') for g in gops}
  missing = {g: r for g, r in roots.items() if not os.path.isdir(r)}
  for k in range(num_clips if missing else 0):
    clip = synthetic.make_clip(synthetic.clip_seed(0, k), num_frames, size)
    name = str(clip['name'])
    for g, root in missing.items():
      npz_dir, mp4_dir = os.path.join(root + '.tmp', 'train'), os.path.join(root + '.tmp', pipeline.VIDEO_DIR, 'train')
      os.makedirs(npz_dir, exist_ok=True)
      os.makedirs(mp4_dir, exist_ok=True)
      synthetic.write_npz(os.path.join(npz_dir, f'{name}.npz'), {key: clip[key] for key in synthetic.NPZ_KEYS})
      synthetic.write_mp4(os.path.join(mp4_dir, name + pipeline.VIDEO_SUFFIX), clip['frames'], g)
  for root in missing.values():
    os.replace(root + '.tmp', root)
  return roots


class _NpyClip(Mp4Clip):
  """An Mp4Clip whose frames come from a (T, H, W, 3) .npy instead of decord (no video codec needed)."""

  def __init__(self, npz_path: str, frames_path: str):  # pylint: disable=super-init-not-called
    self.clip = load_clip(npz_path)
    self.video = np.load(frames_path, mmap_mode='r')
    self.num_frames = min(self.clip.num_frames, len(self.video))


@contextlib.contextmanager
def clips_without_video(workdir, size, num_frames, num_clips):
  """Renders clips into WORKDIR (npz + frames .npy); yields that root, inside which predecoded.write reads
  them without an mp4 (for machines without decord / ffmpeg, e.g. the GPU suite's)."""
  root = os.path.join(workdir, f'clips-{size}px-{num_frames}f-npy')
  entries = []
  for k in range(num_clips):
    clip = synthetic.make_clip(synthetic.clip_seed(0, k), num_frames, size)
    npz = os.path.join(root, 'train', f'{clip["name"]}.npz')
    os.makedirs(os.path.dirname(npz), exist_ok=True)
    synthetic.write_npz(npz, {key: clip[key] for key in synthetic.NPZ_KEYS})
    np.save(npz[:-len('.npz')] + '.frames.npy', clip['frames'])
    entries.append(pipeline.ClipEntry(npz, npz[:-len('.npz')] + '.frames.npy', num_frames))
  with mock.patch.object(predecoded, 'find_clips', lambda *_: entries), \
       mock.patch.object(predecoded, 'Mp4Clip', _NpyClip):
    yield root


class TimedClips:
  """A ClipSource that adds the CPU time (this thread's) of `open` and `frame` to stage totals (seconds)."""

  def __init__(self, clips, totals):
    self.clips, self.totals = clips, totals

  def __len__(self):
    return len(self.clips)

  def num_frames(self, i):
    return self.clips.num_frames(i)

  def open(self, i):
    return _TimedClip(_timed(self.clips.open, 'open', self.totals)(i), self.totals)


class _TimedClip:

  def __init__(self, clip, totals):
    self.num_frames = clip.num_frames
    self.frame = _timed(clip.frame, 'frames', totals)


def _timed(fn, stage, totals):
  def wrapper(*args, **kwargs):
    start = time.thread_time()
    try:
      return fn(*args, **kwargs)
    finally:
      totals[stage] += time.thread_time() - start
  return wrapper


def time_samples(clips, samples):
  """DrawExample (augmentation on) with `samples` fixed generators: samples/s, per CPU s, CPU ms per stage."""
  totals = dict.fromkeys(STAGES, 0.0)
  draw = pipeline.DrawExample(TimedClips(clips, totals))
  with mock.patch.object(pipeline, 'augment', _timed(pipeline.augment, 'augment', totals)), \
       mock.patch.object(pipeline, 'build_example', _timed(pipeline.build_example, 'targets', totals)):
    for k in range(3):  # warm-up: imports, first readers
      draw.random_map(None, np.random.default_rng([1, k]))
    totals.update(dict.fromkeys(STAGES, 0.0))
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(samples):
      draw.random_map(None, np.random.default_rng([0, k]))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
  totals['other'] = cpu - sum(totals.values())  # sampling, and decord's decoder thread
  return {'samples_per_s': round(samples / wall, 2), 'samples_per_cpu_s': round(samples / cpu, 2),
          'cpu_ms': {s: round(1e3 * v / samples, 2) for s, v in totals.items()}}


def profile_samples_of(clips, samples, top=12):
  """[(function, ms per sample)] of the largest own times of DrawExample over samples draws."""
  draw = pipeline.DrawExample(clips)
  profiler = cProfile.Profile()
  profiler.enable()
  for k in range(samples):
    draw.random_map(None, np.random.default_rng([0, k]))
  profiler.disable()
  stats = pstats.Stats(profiler).stats  # {(file, line, function): (calls, ncalls, own s, cumulative s, callers)}
  rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
  return [[fn if f == '~' else f'{os.path.join(*f.split(os.sep)[-2:])}:{fn}', round(1e3 * v[2] / samples, 2)]
          for (f, _, fn), v in rows]


def time_iterator(clips, num_workers, batch_size, batches=4):
  """Samples/s of make_iterator over `batches` batches after a warm-up batch."""
  it = pipeline.make_iterator(pipeline.make_dataset(clips, batch_size=batch_size, seed=0),
                              num_workers=num_workers, num_threads=1)
  next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch_size / (time.perf_counter() - start)


def run(workdir, *, size=512, num_frames=60, num_clips=3, gops=(30, 250), samples=40, profile_samples=15,
        iterator_workers=(0,), batch_size=8, iterator_batches=4, emit=print_row):
  """All the measurements of the module docstring. gops=(): no mp4 at all (no decord or ffmpeg needed):
  the clips are pre-decoded from their rendered frames and only the pre-decoded path is timed."""
  common = {'size': size, 'clip_frames': num_frames, 'num_clips': num_clips}
  out = os.path.join(workdir, f'predecoded-{size}px-{num_frames}f')
  if gops:
    roots = make_roots(workdir, size, num_frames, num_clips, gops)
    source = contextlib.nullcontext(roots[gops[0]])
  else:
    source = clips_without_video(workdir, size, num_frames, num_clips)
  with source as root, contextlib.redirect_stdout(sys.stderr):  # its summary line; stdout is JSON lines only
    start = time.perf_counter()
    index = predecoded.write(root, 'train', out, overwrite=True)
    seconds = time.perf_counter() - start
  split = os.path.join(out, 'train')
  clips = predecoded.PredecodedClips(split)
  record = clips.source[0]
  frames = sum(c['num_frames'] for c in index['clips'])
  shard_bytes = sum(os.path.getsize(os.path.join(split, s['file'])) for s in index['shards'])
  emit({'bench': 'data_write', **common, 'gop': gops[0] if gops else None, 'processes': 1,
        'frames_per_s': round(frames / seconds, 1), 'bytes_per_frame': shard_bytes // frames,
        'record_bytes': len(record), 'jpeg_bytes': len(msgpack.unpackb(record)['jpeg'])})

  result = time_samples(clips, samples)
  emit({'bench': 'data_sample', 'path': 'predecoded', **common, **result})
  if profile_samples:
    emit({'bench': 'data_profile', 'path': 'predecoded', **common, 'top': profile_samples_of(clips, profile_samples)})
  for g in gops:
    mp4 = pipeline.Mp4Clips(pipeline.find_clips(roots[g], 'train'))
    mp4_result = time_samples(mp4, samples)
    emit({'bench': 'data_sample', 'path': 'mp4', 'gop': g, **common, **mp4_result})
    if profile_samples:
      emit({'bench': 'data_profile', 'path': 'mp4', 'gop': g, **common, 'top': profile_samples_of(mp4, profile_samples)})
    emit({'bench': 'data_ratio', 'gop': g, **common, 'predecoded_over_mp4': {
        k: round(result[k] / mp4_result[k], 2) for k in ('samples_per_s', 'samples_per_cpu_s')}})
  sources = [('predecoded', None, clips)]
  if gops:
    sources.append(('mp4', gops[0], pipeline.Mp4Clips(pipeline.find_clips(roots[gops[0]], 'train'))))
  for w in iterator_workers:
    for path, gop, source in sources:
      rate = time_iterator(source, w, batch_size, iterator_batches)
      emit({'bench': 'data_iterator', 'path': path, 'gop': gop, **common, 'num_workers': w, 'batch_size': batch_size,
            'samples_per_s': round(rate, 2), 'samples_per_s_per_process': round(rate / max(1, w), 2)})


def main(argv):
  del argv
  f = flags.FLAGS
  kwargs = dict(size=f.size, num_frames=f.num_frames, num_clips=f.num_clips, gops=[int(g) for g in f.gops],
                samples=f.samples, profile_samples=f.profile_samples,
                iterator_workers=[int(w) for w in f.iterator_workers], batch_size=f.batch_size,
                iterator_batches=f.iterator_batches)
  if f.workdir:
    run(f.workdir, **kwargs)
  else:
    with tempfile.TemporaryDirectory() as workdir:
      run(workdir, **kwargs)


if __name__ == '__main__':
  flags.DEFINE_integer('size', 512, 'Frame width = height.')
  flags.DEFINE_integer('num_frames', 60, 'Frames per clip.')
  flags.DEFINE_integer('num_clips', 3, 'Synthetic clips.')
  flags.DEFINE_list('gops', ['30', '250'], 'Keyframe intervals of the mp4s (empty: no mp4, pre-decoded path only).')
  flags.DEFINE_integer('samples', 40, 'Timed samples per measurement (after 3 warm-up samples).')
  flags.DEFINE_integer('profile_samples', 15, 'Samples profiled per measurement (0: no profile).')
  flags.DEFINE_list('iterator_workers', ['0'], 'Grain worker processes to time make_iterator with (empty: skip).')
  flags.DEFINE_integer('batch_size', 8, 'Batch size of the make_iterator measurement.')
  flags.DEFINE_integer('iterator_batches', 4, 'Timed batches of the make_iterator measurement (after one).')
  flags.DEFINE_string('workdir', None, 'Where clips and shards go (reused when present); default: a temp dir.')
  app.run(main)
