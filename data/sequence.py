"""One evaluation sequence: what every benchmark reader in data/ yields (spec evaluation.md §1).

Each reader module (`data.tapvid3d`, `data.dynamic_replica`, `data.bonn`, `data.sintel`, `data.co3d`)
exposes the same two functions, so that the evaluation job treats every dataset alike:

  sequence_names(root, **options) -> list[str]      the sequences under root, sorted
  load_sequence(root, name, **options) -> Sequence  one of them

A wrong root or a missing file raises `LayoutError` with one message that names the path and the layout
the reader expected. Conventions, whatever the dataset stores: OpenCV camera axes (x right, y down, z
forward); K in pixels at the image's own size, with pixel (c, r)'s centre at (c, r) (u = fx·X/Z + cx);
world_to_camera = [R | t] (4×4) maps world points into the camera; depth is the camera z, 0 where the
dataset marks it invalid (never NaN). Images and depth maps are decoded on demand (a Dynamic Replica
sequence is 300 frames of 1280×720).
"""
import dataclasses
from typing import Callable

import numpy as np
import PIL.Image


class LayoutError(FileNotFoundError):
  """A dataset root or file that is missing or not in the layout the reader expects; str(e) names the
  path and the layout expected."""


def read_rgb(source, name: str | None = None) -> np.ndarray:
  """(H, W, 3) uint8 RGB of an image (a path or a file object), decoded by PIL: grey, palette and alpha
  images converted to RGB. A missing or unreadable image is the LayoutError naming it (`name`, else the path)."""
  try:
    with PIL.Image.open(source) as image:
      return np.asarray(image.convert('RGB'))
  except (OSError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
    raise LayoutError(f'{name or source}: not a readable image ({type(e).__name__}: {e})') from None


@dataclasses.dataclass
class Sequence:
  """A video (or an image set) with whatever ground truth its dataset has; None where it has none."""
  dataset: str                                     # 'adt', 'dynamic_replica', 'bonn', 'sintel', 'co3d'
  name: str                                        # unique within the dataset: the key of its results
  frames: list[str]                                # T frame names in temporal order (e.g. file stems)
  load_image: Callable[[int], np.ndarray]          # t -> (H, W, 3) uint8 RGB
  load_depth: Callable[[int], np.ndarray] | None = None  # t -> (H, W) float32 GT depth, 0 = invalid
  intrinsics: np.ndarray | None = None             # (T, 3, 3) float64 K at the image size
  world_to_camera: np.ndarray | None = None        # (T, 4, 4) float64
  tracks_xyz: np.ndarray | None = None             # (T, N, 3) float64, track n in the camera of frame t
  visibility: np.ndarray | None = None             # (T, N) bool, track n visible in frame t
  queries_xyt: np.ndarray | None = None            # (N, 3) float64 (x, y, t) query pixel and frame
  timestamps: np.ndarray | None = None             # (T,) float64 (TUM trajectories' time stamps)
  category: str | None = None                      # CO3D object category (pose metrics pool by it)

  @property
  def num_frames(self) -> int:
    return len(self.frames)
