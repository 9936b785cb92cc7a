"""D4RT (Zhang et al. 2025, "Efficiently Reconstructing Dynamic Scenes One D4RT at a Time") in Flax NNX.

config.py           D4RTConfig, the named sizes ('g', 'H', 'L', 'B', 'tiny')
blocks.py           plain pre-LN ViT block, cross-attention block (no RoPE)
encoder.py          tubelet tokeniser, sinusoidal table, AR token, frame-wise / global layers
query_embedding.py  Fourier features, time tables, bilinear 9x9 patch sampler
decoder.py          cross-attention decoder with per-clip K/V caching
head.py             13-channel output head and its activations
model.py            D4RT, build / abstract model, parameter counts
"""
from dynadust3r_jax.model.d4rt.config import SIZES, D4RTConfig, d4rt_config
from dynadust3r_jax.model.d4rt.model import D4RT, abstract_d4rt, build_d4rt, output_shapes, param_counts

__all__ = ['SIZES', 'D4RTConfig', 'd4rt_config', 'D4RT', 'abstract_d4rt', 'build_d4rt', 'output_shapes',
           'param_counts']
