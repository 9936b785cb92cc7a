"""The reconstruction of a set of images, as every path makes it (DUSt3R's global alignment and PairViewer, D4RT's
clips) and the exports, the post-processing and the evaluation protocols read it; DUSt3R's accessor names too."""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Scene:
  """An aligned scene (arrays numpy, float32; per-image lists if the images differ in size)."""
  cam_to_world: np.ndarray      # (N,4,4)
  focals: np.ndarray            # (N,)
  principal_points: np.ndarray  # (N,2)
  intrinsics: np.ndarray        # (N,3,3)
  depthmaps: np.ndarray         # (N,H,W)
  pts3d: np.ndarray             # (N,H,W,3) world
  conf: np.ndarray              # (N,H,W) raw confidence: max over the edges of the image's predictions
  min_conf_thr: float = 3.0
  imgs: np.ndarray | None = None  # (N,H,W,3) RGB in [0,1] when the output had images
  losses: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (niter,) loss before each step
  params: dict | None = None    # final raw parameters
  motion: list | None = None    # [(H,W,3)] world displacement of each pixel (models that predict motion)
  motion_target: np.ndarray | None = None  # (N,) the image each motion goes to (−1: none)

  @property
  def masks(self):
    """(N,H,W) conf > min_conf_thr."""
    return [c > self.min_conf_thr for c in self.conf] if isinstance(self.conf, list) else self.conf > self.min_conf_thr

  # DUSt3R's accessor names, so scripts port line by line.
  def get_im_poses(self):
    return self.cam_to_world

  def get_focals(self):
    return self.focals

  def get_principal_points(self):
    return self.principal_points

  def get_intrinsics(self):
    return self.intrinsics

  def get_depthmaps(self):
    return self.depthmaps

  def get_pts3d(self):
    return self.pts3d

  def get_masks(self):
    return self.masks
