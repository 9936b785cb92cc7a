"""Reconstruction (DESIGN.md pinned interface 5), named as DUSt3R's: load_images → make_pairs → inference →
global_align → exports. One concept per file."""
from dynadust3r_jax.inference.images import load_images, to_original_matrix
from dynadust3r_jax.inference.pairs import duplicate_if_single, make_pairs

# Batched inference and global alignment (inference.py, global_align*.py) are exported here when they land:
# from dynadust3r_jax.inference.global_align import global_align

__all__ = ['duplicate_if_single', 'load_images', 'make_pairs', 'to_original_matrix']
