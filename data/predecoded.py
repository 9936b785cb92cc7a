"""Stereo4D clips pre-decoded once into ArrayRecord shards of JPEG frames, read back by random access.

Why: a triplet from Stereo4D's long-GOP mp4s (x264 default, keyframe every ~250 frames) costs ~150 ms of
seeking and decoding, while 8 H100s need ~700 frames/s per host; a JPEG decodes in ~3 ms
(spec jax_stack.md §5.2). So every clip is written once, frame by frame, with its geometry:

    python -m data.predecoded --root=ROOT --split=train --output=OUT [--num_workers=16]
    python -m data.predecoded --root=ROOT --split=train --output=OUT --verify     # check OUT against ROOT

    clips = PredecodedClips('OUT/train')      # a data.pipeline.ClipSource, in place of Mp4Clips
    ds = pipeline.make_dataset(clips, batch_size=4, seed=0)

Layout of OUT/SPLIT:
  clips-XXXXX-of-YYYYY.array_record  `group_size:1` ArrayRecord shards (`--clips_per_shard` clips each),
      one record per frame, a clip's frames consecutive and in order. A record is a msgpack map:
        clip          str    the clip's file name (ROOT/SPLIT/<clip>.npz)
        t             int    frame index
        jpeg          bytes  the RGB frame, JPEG (Pillow, `--jpeg_quality`, 4:4:4 chroma: subsampling the
                             mp4's already subsampled chroma again would double the error)
        camera2world  bytes  (3, 4) little-endian float64
        track_ids     bytes  (n,) little-endian int32: the tracks observed at t
        track_xyz     bytes  (n, 3) little-endian float32: their world positions at t
  index.json  {"format", "version", "split", "jpeg_quality", "shards": [{"file", "num_records"}],
               "clips": [{"name", "shard", "first_record", "num_frames"}], "skipped": [{"name", "error"}]}
      where first_record counts within the shard, and num_frames is the common length of npz and video.

The records hold exactly the arrays `Mp4Clip.frame` gives, so examples built from them equal the mp4
path's up to JPEG error in the images (their arrays are read-only). Output is deterministic given the
inputs: shards follow the sorted clip names, and a bad clip (BadClip when reading it) is left out and
listed under "skipped". When reading, a damaged record raises BadClip naming its shard (the pipeline
skips and counts it); `--verify` finds damage up front.
"""
import dataclasses
import io
import json
import multiprocessing
import os
import sys
import time

import grain
import msgpack
import numpy as np
from absl import app, flags
from array_record.python.array_record_module import ArrayRecordWriter
from PIL import Image
from tqdm import tqdm

from data.errors import BadClip
from data.pipeline import VIDEO_DIR, VIDEO_SUFFIX, find_clips
from data.stereo4d import Frame, Mp4Clip

FORMAT, VERSION = 'dynadust3r_jax/stereo4d-predecoded', 1
INDEX = 'index.json'
SHARD_PATTERN = 'clips-{:05d}-of-{:05d}.array_record'
_LAYOUT = (f'Expected {INDEX} and {SHARD_PATTERN.format(0, 1)}, ... written by '
           '`python -m data.predecoded --root=ROOT --split=SPLIT --output=OUT` (in OUT/SPLIT).')


# --- records -------------------------------------------------------------------------------------------


def encode_frame(clip: str, t: int, frame: Frame, jpeg_quality: int) -> bytes:
  """One record: frame t of clip (see the module docstring)."""
  buffer = io.BytesIO()
  Image.fromarray(frame.image).save(buffer, format='JPEG', quality=jpeg_quality, subsampling=0)
  return msgpack.packb({
      'clip': clip, 't': t, 'jpeg': buffer.getvalue(),
      'camera2world': np.ascontiguousarray(frame.camera2world, '<f8').tobytes(),
      'track_ids': np.ascontiguousarray(frame.track_ids, '<i4').tobytes(),
      'track_xyz': np.ascontiguousarray(frame.track_xyz, '<f4').tobytes()})


def decode_frame(record: bytes, with_image: bool = True) -> tuple[str, int, Frame]:
  """(clip, t, Frame) of a record; the image is (H, W, 3) uint8 RGB (None without with_image)."""
  r = msgpack.unpackb(record)
  image = np.asarray(Image.open(io.BytesIO(r['jpeg']))) if with_image else None  # RGB, as written
  return r['clip'], r['t'], Frame(image, np.frombuffer(r['camera2world'], '<f8').reshape(3, 4),
                                  np.frombuffer(r['track_ids'], '<i4'),
                                  np.frombuffer(r['track_xyz'], '<f4').reshape(-1, 3))


# --- reading -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PredecodedClip:
  """An opened clip: `num_frames` and `frame(t)`, reading record first + t of the source."""
  source: grain.sources.ArrayRecordDataSource
  shard: str
  name: str
  first: int
  num_frames: int

  def frame(self, t: int, with_image: bool = True) -> Frame:
    if not 0 <= t < self.num_frames:
      raise BadClip(f'{self.name}: frame {t} outside the clip ({self.num_frames} frames)')
    try:
      clip, t_record, frame = decode_frame(self.source[self.first + t], with_image)
    except Exception as e:  # noqa: BLE001 - a damaged shard fails here, in the reader or the decoders
      raise BadClip(f'{self.shard}: cannot read frame {t} of clip {self.name} ({type(e).__name__}: '
                    f'{str(e)[:200]})') from None
    if (clip, t_record) != (self.name, t):
      raise BadClip(f'{self.shard}: the record of {self.name} frame {t} holds {clip} frame {t_record}; '
                    'the index does not match the shard')
    return frame


class PredecodedClips:
  """Clips written by this module's writer: a data.pipeline.ClipSource (picklable, for Grain workers)."""

  def __init__(self, directory: str):
    index = read_index(directory)
    shards = index['shards']
    for s in shards:
      if not os.path.isfile(os.path.join(directory, s['file'])):
        raise FileNotFoundError(f'{directory}: shard {s["file"]} listed in {INDEX} is missing. {_LAYOUT}')
    offsets = dict(zip((s['file'] for s in shards), np.cumsum([0] + [s['num_records'] for s in shards])))
    # "path[start:end]" gives the record counts without opening every shard (readers open lazily)
    self.source = grain.sources.ArrayRecordDataSource(
        [f'{os.path.join(directory, s["file"])}[0:{s["num_records"]}]' for s in shards])
    self.directory = directory
    self.names = [c['name'] for c in index['clips']]
    self.shards = [c['shard'] for c in index['clips']]
    self.first = np.array([offsets[c['shard']] + c['first_record'] for c in index['clips']], np.int64)
    self.frames = np.array([c['num_frames'] for c in index['clips']], np.int64)

  def __len__(self):
    return len(self.names)

  def num_frames(self, i):
    return int(self.frames[i])

  def open(self, i):
    return PredecodedClip(self.source, os.path.join(self.directory, self.shards[i]), self.names[i],
                          int(self.first[i]), int(self.frames[i]))


def read_index(directory: str) -> dict:
  """The index of a pre-decoded split directory; one clear error if it is missing or garbled."""
  path = os.path.join(directory, INDEX)
  try:
    with open(path) as f:
      index = json.load(f)
    if index['format'] != FORMAT or index['version'] != VERSION:
      raise ValueError(f'format {index["format"]!r} version {index["version"]}, not {FORMAT!r} {VERSION}')
    counts = {s['file']: s['num_records'] for s in index['shards']}
    for c in index['clips']:
      if c['first_record'] + c['num_frames'] > counts[c['shard']]:
        raise ValueError(f'clip {c["name"]} runs past the end of shard {c["shard"]}')
  except FileNotFoundError:
    raise FileNotFoundError(f'{directory}: no pre-decoded clips ({path} not found). {_LAYOUT}') from None
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f'{path}: unreadable index ({type(e).__name__}: {e}). {_LAYOUT}') from None
  if not index['clips']:
    raise ValueError(f'{path}: no clips. {_LAYOUT}')
  return index


# --- writing -------------------------------------------------------------------------------------------


def _parallel(fn, tasks, num_workers):
  """fn over tasks, in completion order; in spawned worker processes when num_workers > 1."""
  if num_workers <= 1:
    yield from map(fn, tasks)
    return
  with multiprocessing.get_context('spawn').Pool(num_workers) as pool:
    yield from pool.imap_unordered(fn, tasks)


def _clip_name(entry) -> str:
  return os.path.basename(entry.npz)[:-len('.npz')]


def _write_shard(task):
  """Writes one shard; returns (file, [(name, first_record, num_frames)], [(name, error)], bytes)."""
  entries, path, jpeg_quality = task
  written, skipped, first = [], [], 0
  writer = ArrayRecordWriter(path + '.tmp', 'group_size:1')
  for entry in entries:
    name = _clip_name(entry)
    try:  # the whole clip is read before writing, so a clip failing half-way leaves no record behind
      clip = Mp4Clip(entry.npz, entry.mp4)
      records = [encode_frame(name, t, clip.frame(t), jpeg_quality) for t in range(clip.num_frames)]
    except BadClip as e:
      skipped.append((name, str(e)))
      continue
    for r in records:
      writer.write(r)
    written.append((name, first, len(records)))
    first += len(records)
  writer.close()
  os.replace(path + '.tmp', path)
  return os.path.basename(path), written, skipped, os.path.getsize(path)


def write(root: str, split: str, output: str, *, num_workers: int = 1, jpeg_quality: int = 95,
          clips_per_shard: int = 64, overwrite: bool = False) -> dict:
  """Pre-decodes every clip of ROOT/SPLIT into OUTPUT/SPLIT; returns the index (also written there)."""
  entries = find_clips(root, split)
  directory = os.path.join(output, split)
  if os.path.exists(os.path.join(directory, INDEX)) and not overwrite:
    raise FileExistsError(f'{directory} already holds pre-decoded clips; pass --overwrite to replace them')
  os.makedirs(directory, exist_ok=True)
  for f in os.listdir(directory):  # an earlier run's shards (maybe of another count) and index
    if f.startswith((INDEX, 'clips-')):
      os.remove(os.path.join(directory, f))
  groups = [entries[i:i + clips_per_shard] for i in range(0, len(entries), clips_per_shard)]
  tasks = [(g, os.path.join(directory, SHARD_PATTERN.format(k, len(groups))), jpeg_quality)
           for k, g in enumerate(groups)]
  results, start = {}, time.perf_counter()
  with tqdm(total=len(entries), unit='clip', desc=f'pre-decoding {root}/{split}') as bar:
    for file, written, skipped, size in _parallel(_write_shard, tasks, num_workers):
      results[file] = written, skipped, size
      bar.update(len(written) + len(skipped))
  index = {'format': FORMAT, 'version': VERSION, 'split': split, 'jpeg_quality': jpeg_quality,
           'shards': [], 'clips': [], 'skipped': []}
  for file in sorted(results):
    written, skipped, _ = results[file]
    index['shards'].append({'file': file, 'num_records': sum(n for _, _, n in written)})
    index['clips'] += [{'name': name, 'shard': file, 'first_record': first, 'num_frames': n}
                       for name, first, n in written]
    index['skipped'] += [{'name': name, 'error': error} for name, error in skipped]
  with open(os.path.join(directory, INDEX + '.tmp'), 'w') as f:
    json.dump(index, f, indent=1)
  os.replace(os.path.join(directory, INDEX + '.tmp'), os.path.join(directory, INDEX))
  seconds = time.perf_counter() - start
  frames = sum(s['num_records'] for s in index['shards'])
  mib = sum(size for _, _, size in results.values()) / 2 ** 20
  print(f'{directory}: {len(index["clips"])} clips, {frames} frames, {mib:.1f} MiB in {len(tasks)} shards, '
        f'{seconds:.1f} s ({frames / seconds:.0f} frames/s); skipped {len(index["skipped"])} bad clips '
        f'(all listed in {INDEX})' + ''.join(f'\n  skipped {s["name"]}: {s["error"]}' for s in index['skipped'][:20]))
  return index


# --- verifying -----------------------------------------------------------------------------------------


def _verify_shard(task):
  """Checks one shard against ROOT; returns (records read, images compared, worst mean error, problems)."""
  directory, shard, clips, root, split, frames_per_clip, max_mean_error = task
  path = os.path.join(directory, shard['file'])
  problems, records, images, worst = [], 0, 0, 0.0
  try:
    source = grain.sources.ArrayRecordDataSource(path)  # a plain path: counts the records in the file
  except Exception as e:  # noqa: BLE001 - reported, like every other problem
    return 0, 0, 0.0, [f'{path}: unreadable shard ({type(e).__name__}: {str(e)[:200]})']
  if len(source) != shard['num_records']:
    problems.append(f'{path}: {len(source)} records, the index says {shard["num_records"]}')
  for c in clips:
    name, n = c['name'], c['num_frames']
    try:
      original = Mp4Clip(os.path.join(root, split, f'{name}.npz'),
                         os.path.join(root, VIDEO_DIR, split, f'{name}{VIDEO_SUFFIX}'))
    except BadClip as e:
      problems.append(f'{name}: the original clip is unreadable now ({e})')
      continue
    if original.num_frames != n:
      problems.append(f'{name}: {n} frames pre-decoded, {original.num_frames} in the original')
      continue
    sampled = set(np.linspace(0, n - 1, min(n, frames_per_clip)).round().astype(int).tolist())
    opened = PredecodedClip(source, path, name, c['first_record'], n)
    for t in range(n):
      records += 1
      try:
        got = opened.frame(t)
      except BadClip as e:
        problems.append(str(e))
        continue
      want = original.clip.frame(t, image=None)
      for key in ('camera2world', 'track_ids', 'track_xyz'):
        if not np.array_equal(getattr(got, key), getattr(want, key)):
          problems.append(f'{name} frame {t}: {key} differs from the npz')
      if t not in sampled:
        continue
      image = original.frame(t).image
      if got.image.shape != image.shape:
        problems.append(f'{name} frame {t}: image of shape {got.image.shape}, {image.shape} in the video')
        continue
      error = float(np.abs(got.image.astype(np.float32) - image).mean())
      images, worst = images + 1, max(worst, error)
      if error > max_mean_error:
        problems.append(f'{name} frame {t}: mean |JPEG - video| = {error:.2f} grey levels (> {max_mean_error})')
  return records, images, worst, problems


def verify(root: str, split: str, output: str, *, num_workers: int = 1, frames_per_clip: int = 3,
           max_mean_error: float = 3.0) -> list[str]:
  """Re-reads every record of OUTPUT/SPLIT and compares it with ROOT; prints a summary, returns problems."""
  directory = os.path.join(output, split)
  index = read_index(directory)
  problems = []
  expected = {_clip_name(e) for e in find_clips(root, split)}
  listed = {c['name'] for c in index['clips']} | {s['name'] for s in index['skipped']}
  problems += [f'{name}: in {root}/{split} but not pre-decoded' for name in sorted(expected - listed)]
  problems += [f'{name}: pre-decoded but not in {root}/{split}' for name in sorted(listed - expected)]
  by_shard = {s['file']: [] for s in index['shards']}
  for c in index['clips']:
    by_shard[c['shard']].append(c)
  tasks = [(directory, s, by_shard[s['file']], root, split, frames_per_clip, max_mean_error)
           for s in index['shards']]
  records, images, worst = 0, 0, 0.0
  for r, i, w, p in tqdm(_parallel(_verify_shard, tasks, num_workers), total=len(tasks), unit='shard',
                         desc=f'verifying {directory}'):
    records, images, worst, problems = records + r, images + i, max(worst, w), problems + p
  print(f'{directory}: {"OK" if not problems else f"{len(problems)} PROBLEMS"}: {len(index["clips"])} clips, '
        f'{records} records read, geometry compared with the npz; {images} images compared with the video, '
        f'worst mean error {worst:.2f} grey levels (tolerance {max_mean_error})'
        + ''.join(f'\n  {p}' for p in problems[:50]))
  return problems


# --- command line (flags are defined only when run: importing this module defines none) ----------------


def _define_flags():
  flags.DEFINE_string('root', None, 'Stereo4D root: ROOT/SPLIT/<name>.npz + '
                      'ROOT/lefteye-perspective/SPLIT/<name>-left_rectified.mp4.', required=True)
  flags.DEFINE_string('split', 'train', 'Split to pre-decode.')
  flags.DEFINE_string('output', None, 'Output root: shards and index go to OUTPUT/SPLIT.', required=True)
  flags.DEFINE_integer('num_workers', 1, 'Worker processes (one shard at a time each).')
  flags.DEFINE_integer('jpeg_quality', 95, 'JPEG quality of the frames (Pillow).')
  flags.DEFINE_integer('clips_per_shard', 64, 'Clips per ArrayRecord shard.')
  flags.DEFINE_bool('overwrite', False, 'Replace an existing pre-decoded split.')
  flags.DEFINE_bool('verify', False, 'Check OUTPUT/SPLIT against ROOT instead of writing; exit 1 on a mismatch.')
  flags.DEFINE_integer('verify_frames', 3, 'With --verify: frames per clip compared with the video.')
  flags.DEFINE_float('max_mean_error', 3.0, 'With --verify: largest mean |JPEG - video| per frame, grey levels.')


def main(argv):
  del argv
  f = flags.FLAGS
  if f.verify:
    sys.exit(1 if verify(f.root, f.split, f.output, num_workers=f.num_workers, frames_per_clip=f.verify_frames,
                         max_mean_error=f.max_mean_error) else 0)
  write(f.root, f.split, f.output, num_workers=f.num_workers, jpeg_quality=f.jpeg_quality,
        clips_per_shard=f.clips_per_shard, overwrite=f.overwrite)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
