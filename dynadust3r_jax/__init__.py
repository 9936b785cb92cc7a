"""dynadust3r_jax: DUSt3R / DynaDUSt3R / D4RT in JAX + Flax NNX.

`dynadust3r_jax.load_model`, `save_pretrained`, `ModelConfig`, `build_model`, `abstract_model` are loaded on
first use (PEP 562), so that importing a low module (`dynadust3r_jax.common.geometry`, which `data/` does) does
not import the families, the jobs and through them `data/` itself back.
"""
import importlib

_EXPORTS = {'ModelConfig': 'dynadust3r_jax.model', 'abstract_model': 'dynadust3r_jax.model',
            'build_model': 'dynadust3r_jax.model', 'load_model': 'dynadust3r_jax.pretrained',
            'save_pretrained': 'dynadust3r_jax.pretrained'}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
  if name not in _EXPORTS:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
  return sorted(list(globals()) + __all__)
