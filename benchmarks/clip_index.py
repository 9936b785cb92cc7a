"""data.pipeline.find_clips' start-up with and without its clip index.

  python -m benchmarks.clip_index                       # 2000 synthetic clips in a temp dir
  python -m benchmarks.clip_index --num_clips=110000    # Stereo4D's count

The clips are minimal: an npz holding only camera2world (all find_clips reads) and an empty mp4 beside
it. "cold" deletes the index first (find_clips opens every npz and writes the index), "warm" finds it
(it lists the folders, stats each npz and reads the index); each is the best of --repeats. Both run on
files in the page cache: on a network file system the cold start, one open per clip, costs far more.

One JSON line:
  {"bench": "clip_index", "num_clips", "num_frames", "cold_s", "warm_s", "cold_over_warm", "index_bytes",
   "cold_clips_per_s", "warm_clips_per_s"}
"""
import os
import tempfile
import time

import numpy as np
from absl import app, flags

from benchmarks.common import print_row
from data import pipeline


def make_clips(root: str, num_clips: int, num_frames: int) -> None:
  """ROOT/train/clip<k>.npz (camera2world only) and ROOT/lefteye-perspective/train/clip<k>-left_rectified.mp4
  (empty)."""
  npz_dir, mp4_dir = os.path.join(root, 'train'), os.path.join(root, pipeline.VIDEO_DIR, 'train')
  os.makedirs(npz_dir, exist_ok=True)
  os.makedirs(mp4_dir, exist_ok=True)
  cameras = np.tile(np.eye(4)[:3], (num_frames, 1, 1))
  for k in range(num_clips):
    np.savez(os.path.join(npz_dir, f'clip{k:06d}.npz'), camera2world=cameras)
    open(os.path.join(mp4_dir, f'clip{k:06d}{pipeline.VIDEO_SUFFIX}'), 'w').close()


def _seconds(root, index, cold):
  if cold and os.path.exists(index):
    os.remove(index)
  start = time.perf_counter()
  pipeline.find_clips(root, 'train')
  return time.perf_counter() - start


def run(workdir: str, *, num_clips: int = 2000, num_frames: int = 60, repeats: int = 3, emit=print_row) -> None:
  root = os.path.join(workdir, f'clips-{num_clips}-{num_frames}f')
  make_clips(root, num_clips, num_frames)
  index = pipeline.clip_index_path(os.path.join(root, 'train'))
  cold = min(_seconds(root, index, True) for _ in range(repeats))
  warm = min(_seconds(root, index, False) for _ in range(repeats))
  emit({'bench': 'clip_index', 'num_clips': num_clips, 'num_frames': num_frames, 'cold_s': round(cold, 4),
        'warm_s': round(warm, 4), 'cold_over_warm': round(cold / warm, 1), 'index_bytes': os.path.getsize(index),
        'cold_clips_per_s': round(num_clips / cold), 'warm_clips_per_s': round(num_clips / warm)})


def main(argv):
  del argv
  f = flags.FLAGS
  with tempfile.TemporaryDirectory() as workdir:
    run(workdir, num_clips=f.num_clips, num_frames=f.num_frames, repeats=f.repeats)


if __name__ == '__main__':
  flags.DEFINE_integer('num_clips', 2000, 'Synthetic clips.')
  flags.DEFINE_integer('num_frames', 60, 'Frames (cameras) per clip.')
  flags.DEFINE_integer('repeats', 3, 'Timed calls of each kind; the fastest is reported.')
  app.run(main)
