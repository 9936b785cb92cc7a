"""TUM trajectory files (the TUM RGB-D benchmark's format): one line per pose 'timestamp tx ty tz qx qy qz qw'
of camera-to-world, '#' lines comments. Read here, below the layers that need them (the Bonn reader, the
trajectory evaluation's tests); written by the exports (export.cameras.write_tum_poses).
"""
import numpy as np
from scipy.spatial.transform import Rotation


def read_tum_poses(path):
  """→ (timestamps (N,), cam_to_world (N,4,4)) from a TUM file (e.g. written by export's write_tum_poses)."""
  data = np.loadtxt(path, ndmin=2)
  if data.shape[1] != 8:
    raise ValueError(f'{data.shape[1]} columns, not 8')
  T = np.tile(np.eye(4), (len(data), 1, 1))
  T[:, :3, :3] = Rotation.from_quat(data[:, 4:8]).as_matrix()
  T[:, :3, 3] = data[:, 1:4]
  return data[:, 0], T
