"""Pallas kernels of the port (import the modules: `from pallas_kernels.rope_attention import rope_attention`).

Kernels stand alone: nothing here imports dynadust3r_jax; the model imports these.
  rope_attention.py       RoPE2D (the one copy of its math), the pure-JAX reference, the entry point
                          `rope_attention` (custom_vjp) and the generic pl.pallas_call twin kernels
  rope_attention_mgpu.py  the Mosaic GPU (Hopper) forward, dq and dk/dv kernels
"""
