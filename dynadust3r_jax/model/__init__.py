"""The CroCo / DUSt3R / DynaDUSt3R networks in Flax NNX, module tree = PyTorch's."""
import numpy as np
from flax import nnx

from dynadust3r_jax.model.config import ModelConfig
from dynadust3r_jax.model.cpu_bfloat16 import warn_if_bfloat16_on_cpu
from dynadust3r_jax.model.croco import CroCoNet
from dynadust3r_jax.model.dust3r import AsymmetricCroCo3DStereo
from dynadust3r_jax.model.dyna_dust3r import DynaDUSt3R

ARCH_CLASSES = {'CroCoNet': CroCoNet, 'AsymmetricCroCo3DStereo': AsymmetricCroCo3DStereo, 'DynaDUSt3R': DynaDUSt3R}


def build_model(cfg: ModelConfig, seed: int = 0):
  """The network for cfg with freshly initialised parameters."""
  warn_if_bfloat16_on_cpu(cfg.dtype)
  return ARCH_CLASSES[cfg.arch](cfg, rngs=nnx.Rngs(seed))


def abstract_model(cfg: ModelConfig):
  """The network's structure with ShapeDtypeStruct parameters (no memory, no compute)."""
  return nnx.eval_shape(lambda: build_model(cfg))


def param_count(module) -> int:
  """Number of parameter values of an NNX module (of any model family; abstract modules too)."""
  return int(sum(np.prod(v.shape) for _, v in nnx.to_flat_state(nnx.state(module, nnx.Param))))
