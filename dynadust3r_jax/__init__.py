"""dynadust3r_jax: DUSt3R / DynaDUSt3R in JAX + Flax NNX."""
from dynadust3r_jax.model import ModelConfig, abstract_model, build_model
from dynadust3r_jax.pretrained import load_model, save_pretrained

__all__ = ['ModelConfig', 'abstract_model', 'build_model', 'load_model', 'save_pretrained']
