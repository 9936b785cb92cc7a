"""TAPVid-3D clips (ADT, PStudio, DriveTrack) → evaluation Sequences (spec evaluation.md §4).

On disk (google-deepmind/tapnet `tapvid3d/`, `evaluation/evaluate_model.py`): a folder of clips, one
`<name>.npz` per video (e.g. `tapvid3d_dataset/adt/`), with the keys
  images_jpeg_bytes (T,) JPEG byte strings (np.savez of a list; RGB, decoded with PIL)
  fx_fy_cx_cy       (4,) pinhole intrinsics at the image size
  tracks_XYZ        (T, N, 3) track n in the camera of frame t (OpenCV axes, metres), occluded frames too
  visibility        (T, N) bool
  queries_xyt       (N, 3) query pixel (x, y) and query frame t
  extrinsics_w2c    (T, 4, 4) world→camera, optional: DriveTrack and the downloaded (GCS) ADT files have it;
                    PStudio (static camera) and the ADT files that tapnet's `generate_adt.py` writes lack it.
The subset follows from the file name (`tapvid3d_splits.py`): `tapvid3d_*` DriveTrack, `Lite*`/`Apartment*`
ADT, anything else PStudio. There is no depth map. A prediction is an npz of the same file name with
`tracks_XYZ` (T, N, 3) and `visibility` (T, N) (`write_prediction`).
"""
import io
import os
from pathlib import Path

import numpy as np

from data.sequence import LayoutError, Sequence, read_rgb

REQUIRED_KEYS = ('images_jpeg_bytes', 'fx_fy_cx_cy', 'tracks_XYZ', 'visibility', 'queries_xyt')
EXTRINSICS_KEY = 'extrinsics_w2c'
LAYOUT = 'a folder of TAPVid-3D clips <name>.npz (e.g. tapvid3d_dataset/adt)'


def dataset_of(name: str) -> str:
  """'drivetrack', 'adt' or 'pstudio' from a clip's file name (tapnet's split rule)."""
  if name.startswith('tapvid3d_'):
    return 'drivetrack'
  if name.startswith(('Lite', 'Apartment')):
    return 'adt'
  return 'pstudio'


def sequence_names(root: str, subset: list[str] | None = None) -> list[str]:
  """Sorted clip names (file stems) under root: all `*.npz`, or those of `subset` (stems or file names,
  as tapnet's split lists give them); a listed clip that is missing is a LayoutError."""
  if not os.path.isdir(root):
    raise LayoutError(f'{root}: not a folder; expected {LAYOUT}')
  if subset is None:
    names = sorted(p.stem for p in Path(root).glob('*.npz'))
    if not names:
      raise LayoutError(f'{root}: no *.npz; expected {LAYOUT}')
    return names
  names = sorted({s.removesuffix('.npz') for s in subset})
  for name in names:
    if not os.path.isfile(os.path.join(root, f'{name}.npz')):
      raise LayoutError(f'{os.path.join(root, name)}.npz: missing; expected {LAYOUT}')
  return names


def load_sequence(root: str, name: str, subset: list[str] | None = None) -> Sequence:
  """Clip `<root>/<name>.npz` (`subset` only selects names). world_to_camera is None where the file has no
  `extrinsics_w2c` (see `requires_extrinsics_message`); no timestamps, no depth."""
  del subset
  path = os.path.join(root, f'{name}.npz')
  if not os.path.isfile(path):
    raise LayoutError(f'{path}: missing; expected {LAYOUT}')
  try:
    with np.load(path, allow_pickle=True) as z:
      missing = [k for k in REQUIRED_KEYS if k not in z.files]
      if missing:
        raise LayoutError(f'{path}: missing keys {missing}; a TAPVid-3D clip has {list(REQUIRED_KEYS)} '
                          f'(+ optional {EXTRINSICS_KEY})')
      arrays = {k: z[k] for k in (*REQUIRED_KEYS, EXTRINSICS_KEY) if k in z.files}
  except LayoutError:
    raise
  except Exception as e:  # noqa: BLE001 - any unreadable file is a layout error naming it
    raise LayoutError(f'{path}: unreadable npz ({type(e).__name__}: {e}); expected a TAPVid-3D clip') from None
  jpegs = arrays['images_jpeg_bytes']
  tracks = arrays['tracks_XYZ'].astype(np.float64)
  visibility = arrays['visibility'].astype(bool)
  queries = arrays['queries_xyt'].astype(np.float64)
  intrinsics = arrays['fx_fy_cx_cy'].astype(np.float64)
  T = len(jpegs)
  shapes_ok = (intrinsics.size == 4 and tracks.ndim == 3 and tracks.shape[::2] == (T, 3)
               and visibility.shape == tracks.shape[:2] and queries.shape == (tracks.shape[1], 3))
  w2c = arrays.get(EXTRINSICS_KEY)
  if w2c is not None:
    w2c = w2c.astype(np.float64)
    shapes_ok &= w2c.shape == (T, 4, 4)
  if not shapes_ok:
    raise LayoutError(f'{path}: inconsistent shapes (fx_fy_cx_cy {intrinsics.shape}, images {T}, tracks_XYZ '
                      f'{tracks.shape}, visibility {visibility.shape}, queries_xyt {queries.shape}, {EXTRINSICS_KEY} '
                      f'{None if w2c is None else w2c.shape}); expected (4,), T, (T,N,3), (T,N), (N,3), (T,4,4)')
  fx, fy, cx, cy = intrinsics.reshape(4)
  K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])

  def load_image(t: int) -> np.ndarray:
    return read_rgb(io.BytesIO(jpegs[t]), f'{path} images_jpeg_bytes[{t}]')

  return Sequence(dataset=dataset_of(name), name=name, frames=[f'{t:05d}' for t in range(T)],
                  load_image=load_image, intrinsics=np.repeat(K[None], T, axis=0), world_to_camera=w2c,
                  tracks_xyz=tracks, visibility=visibility, queries_xyt=queries)


def requires_extrinsics_message(path: str) -> str:
  """What to tell the user when clip `path` has no `extrinsics_w2c` but the evaluation needs the cameras
  (ADT motion in the view-1 frame, spec §4.5)."""
  return (f'{path}: no {EXTRINSICS_KEY}; tapnet generate_adt.py drops it from the ADT files it writes. Keep '
          f'the downloaded GCS npz (its tmp/*.npz) or copy their {EXTRINSICS_KEY} key into this file (tapnet '
          f'PR #137). PStudio cameras are static: the identity is a valid world_to_camera there.')


def write_prediction(path: str, tracks_xyz: np.ndarray, visibility: np.ndarray) -> None:
  """The official prediction npz at `path` (named as the GT clip): tracks_XYZ (T, N, 3), visibility (T, N)."""
  tracks_xyz, visibility = np.asarray(tracks_xyz, np.float64), np.asarray(visibility, bool)
  if tracks_xyz.ndim != 3 or tracks_xyz.shape[2] != 3 or visibility.shape != tracks_xyz.shape[:2]:
    raise ValueError(f'tracks_xyz {tracks_xyz.shape} must be (T, N, 3) and visibility {visibility.shape} (T, N)')
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'wb') as f:  # a file object: np.savez would append '.npz' to a path without it
    np.savez(f, tracks_XYZ=tracks_xyz, visibility=visibility)
