"""A copy of a Stereo4D-format root to which broken clips are added (the pipelines' bad-input tests)."""
import shutil

import numpy as np

from data import pipeline


class BrokenCopy:
  """`root` copied to `out`; `add(name, mp4_bytes=None, **changes)` writes clip `name` of the train split: the
  first clip's npz with `changes` (None drops a key) and its video (or `mp4_bytes`)."""

  def __init__(self, root, out):
    shutil.copytree(root, out)
    self.out = out
    self.npz_dir, self.mp4_dir = out / 'train', out / pipeline.VIDEO_DIR / 'train'
    self.good_npz = sorted(self.npz_dir.glob('*.npz'))[0]
    self.good_mp4 = self.mp4_dir / (self.good_npz.stem + pipeline.VIDEO_SUFFIX)
    self.arrays = dict(np.load(self.good_npz))

  def add(self, name, mp4_bytes=None, **changes):
    arrays = {k: v for k, v in {**self.arrays, **changes}.items() if v is not None}
    np.savez(self.npz_dir / f'{name}.npz', **arrays)
    (self.mp4_dir / f'{name}{pipeline.VIDEO_SUFFIX}').write_bytes(
        mp4_bytes if mp4_bytes is not None else self.good_mp4.read_bytes())

  def nan_cameras(self):
    """camera2world with one NaN."""
    cams = self.arrays['camera2world'].copy()
    cams[3, 0, 0] = np.nan
    return cams
