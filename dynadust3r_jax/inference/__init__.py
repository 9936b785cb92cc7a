"""Reconstruction (DESIGN.md pinned interface 5), named as DUSt3R's: load_images → make_pairs → inference →
global_align (or pair_viewer for two images) → postprocess → export. One concept per file; the job that
chains them is reconstruct.py."""
from dynadust3r_jax.inference.global_align import global_align
from dynadust3r_jax.inference.images import load_images, to_original_matrix
from dynadust3r_jax.inference.inference import inference
from dynadust3r_jax.inference.pair_viewer import pair_viewer
from dynadust3r_jax.inference.pairs import duplicate_if_single, make_pairs
from dynadust3r_jax.inference.postprocess import clean_pointcloud, confidence_masks, segment_sky
from dynadust3r_jax.inference.scene import Scene

__all__ = ['Scene', 'clean_pointcloud', 'confidence_masks', 'duplicate_if_single', 'global_align', 'inference',
           'load_images', 'make_pairs', 'pair_viewer', 'segment_sky', 'to_original_matrix']
