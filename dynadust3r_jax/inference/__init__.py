"""Reconstruction (DESIGN.md pinned interface 5), named as DUSt3R's: load_images → make_pairs → inference →
global_align → exports. One concept per file."""
from dynadust3r_jax.inference.images import load_images, to_original_matrix
from dynadust3r_jax.inference.inference import inference
from dynadust3r_jax.inference.pairs import duplicate_if_single, make_pairs

# Global alignment (global_align*.py) is exported here when it lands:
# from dynadust3r_jax.inference.global_align import global_align

__all__ = ['duplicate_if_single', 'inference', 'load_images', 'make_pairs', 'to_original_matrix']
