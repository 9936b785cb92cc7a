"""Evaluation: metrics (one module per family) and the evaluate job (`main.py` with configs/evaluate.py).

  depth_motion: DynaDUSt3R's per-pair structure (AbsRel, δ<1.25) and motion (EPE3D, δ) metrics.
  tapvid3d:     the official TAPVid-3D metrics (compute_tapvid3d_metrics).
  depth:        MonST3R's video-depth metrics (depth_evaluation: median/scale/lstsq/LAD/LAD2 alignment).
  pose:         PoseDiffusion's relative pose metrics for CO3D (RRA/RTA@5/15/30, mAA@30).
  trajectory:   MonST3R's ATE / RPE-trans / RPE-rot via evo, and TUM trajectory files.

The job: evaluate.py (sequences, resume, skipped ones) runs one protocol per benchmark: pair_protocol.py
(Stereo4D, ADT, Dynamic Replica), video_protocol.py (Bonn, Sintel), co3d_protocol.py (CO3D); results.py
writes results.json / results.md, with the papers' numbers of papers.py.

The depth/motion names are re-exported here, so `from dynadust3r_jax.evaluation import ...` keeps working.
"""
from dynadust3r_jax.evaluation.depth_motion import depth_metrics, dynadust3r_metrics, median_scale, motion_metrics

__all__ = ['depth_metrics', 'dynadust3r_metrics', 'median_scale', 'motion_metrics']
