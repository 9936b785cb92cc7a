"""Pallas kernels of the port (import the modules: `from pallas_kernels.rope_attention import rope_attention`).

Kernels stand alone: nothing here imports dynadust3r_jax; the model imports these. Imports run one way:
rope_attention → rope_attention_mgpu → rope_tiling, and rope_attention → rope_tiling.
  rope_attention.py       the entry point `rope_attention` (padding, custom_vjp, backend dispatch), the
                          pure-JAX reference (RoPE2D in XLA) and the generic pl.pallas_call twin kernels
  rope_attention_mgpu.py  the Mosaic GPU (Hopper) forward, dq and dk/dv kernels
  rope_tiling.py          what both kernel sets share: RoPE2D tables and tile rotation (the one copy of
                          its math), BlockSizes and their defaults, the online-softmax algebra of a tile
"""
