"""Video decoding behind a small adapter (decord today; PyAV or decord2 can be swapped in), and the crop-resize
of a decoded frame that D4RT's clips use in training, reconstruction and evaluation alike.

Frames are read one index at a time (`reader[i]`): decord's `get_batch` is known to hang on some files
while holding the GIL (dmlc/decord #375, #373), which would stall a whole data-loader worker. A file that
cannot be read is a VideoError naming it: the data pipeline makes it a BadClip (skipped and counted),
load_images a ValueError.
"""
import cv2
import numpy as np


class VideoError(Exception):
  """A video that cannot be opened, or a frame that cannot be decoded; str(e) names the file."""


class DecordVideo:
  """`len(video)`, `video[i]` → (H, W, 3) uint8 RGB. Errors become VideoError naming the file."""

  def __init__(self, path: str):
    import decord  # pylint: disable=import-outside-toplevel
    self.path = path
    try:
      self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except Exception as e:  # noqa: BLE001 - decord raises its own error types for unreadable files
      raise VideoError(f'{path}: unreadable video ({type(e).__name__}: {str(e).splitlines()[0][:120]})') from None
    self._length = len(self._reader)

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, i: int) -> np.ndarray:
    if not 0 <= i < self._length:
      raise VideoError(f'{self.path}: frame {i} outside [0, {self._length})')
    try:
      return self._reader[i].asnumpy()
    except Exception as e:  # noqa: BLE001 - truncated streams fail at decode time
      raise VideoError(f'{self.path}: cannot decode frame {i} ({type(e).__name__})') from None


def open_video(path: str) -> DecordVideo:
  return DecordVideo(path)


def crop_resize(image: np.ndarray, box, size: int) -> np.ndarray:
  """(H, W, 3) uint8 → the box (x0, y0, w, h) resized to (size, size, 3) uint8 (half-pixel centres)."""
  x0, y0, w, h = box
  crop = np.ascontiguousarray(image[y0:y0 + h, x0:x0 + w])
  interp = cv2.INTER_AREA if (w >= size and h >= size) else cv2.INTER_LINEAR
  return cv2.resize(crop, (size, size), interpolation=interp)
