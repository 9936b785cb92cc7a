"""Frame-by-frame video reading behind a small adapter (decord today; PyAV or decord2 can be swapped in).

Frames are read one index at a time (`reader[i]`): decord's `get_batch` is known to hang on some files
while holding the GIL (dmlc/decord #375, #373), which would stall a whole data-loader worker.
"""
import numpy as np

from data.errors import BadClip


class DecordVideo:
  """`len(video)`, `video[i]` → (H, W, 3) uint8 RGB. Errors become BadClip naming the file."""

  def __init__(self, path: str):
    import decord  # pylint: disable=import-outside-toplevel
    self.path = path
    try:
      self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except Exception as e:  # noqa: BLE001 - decord raises its own error types for unreadable files
      raise BadClip(f'{path}: unreadable video ({type(e).__name__}: {str(e).splitlines()[0][:120]})') from None
    self._length = len(self._reader)

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, i: int) -> np.ndarray:
    if not 0 <= i < self._length:
      raise BadClip(f'{self.path}: frame {i} outside [0, {self._length})')
    try:
      return self._reader[i].asnumpy()
    except Exception as e:  # noqa: BLE001 - truncated streams fail at decode time
      raise BadClip(f'{self.path}: cannot decode frame {i} ({type(e).__name__})') from None


def open_video(path: str) -> DecordVideo:
  return DecordVideo(path)
