"""The model families (families/base.py: the interface), one module each, found by architecture name.

    family = families.of(cfg)                         # a model config's family (cfg.arch)
    family = families.for_arch(fields['arch'])        # config.json's
    family, cfg = families.for_training(config)       # a training config's (config.model_family + config.model)
    family = families.for_source(source.arch)         # a PyTorch checkpoint's (the converter)

A new family: a module with a `Family` subclass, registered with `register(MyFamily())` (below for the
project's own; a user's module may call it itself).
"""
from dynadust3r_jax.families import croco, d4rt, dust3r, dynadust3r
from dynadust3r_jax.families.base import Family

_REGISTRY: dict[str, Family] = {}
DEFAULT_CONFIG_FAMILY = dust3r.FAMILY.config_family  # a training config without config.model_family


def register(family: Family) -> Family:
  """Make `family` known by its arch (a second registration of the same arch replaces the first)."""
  _REGISTRY[family.arch] = family
  return family


def unregister(arch: str):
  """Forget the family of `arch` (e.g. a test's own family, once the test is done)."""
  _REGISTRY.pop(arch, None)


def for_arch(arch: str) -> Family:
  if arch not in _REGISTRY:
    raise ValueError(f'arch={arch!r} is no model family\'s; known: {tuple(_REGISTRY)}')
  return _REGISTRY[arch]


def of(cfg) -> Family:
  """The family of a model config (ModelConfig, D4RTConfig, ...: its `arch`)."""
  return for_arch(cfg.arch)


def for_source(arch: str) -> Family:
  """The family that converts PyTorch checkpoints of `arch` (convert/sources.Source.arch)."""
  for family in _REGISTRY.values():
    if arch in family.source_archs:
      return family
  raise ValueError(f'no model family converts {arch!r} checkpoints; known: {source_archs()}')


def source_archs() -> tuple:
  """Every checkpoint architecture the converter reads, in registration order."""
  return tuple(a for family in _REGISTRY.values() for a in family.source_archs)


def config_classes() -> dict:
  """{config.model_family value: config class}, in registration order."""
  classes = {}
  for family in _REGISTRY.values():
    classes.setdefault(family.config_family, family.config_class)
  return classes


def for_training(config):
  """(family, model config) of a training config: config.model_family picks the config class that reads
  config.model, whose arch picks the family; the family checks the rest of the config against it."""
  name = config.get('model_family', DEFAULT_CONFIG_FAMILY)
  classes = config_classes()
  if name not in classes:
    raise ValueError(f'config.model_family={name!r}; choose one of {tuple(classes)}')
  cfg = classes[name].from_dict(dict(config.model))
  family = of(cfg)
  family.check_training_config(config, cfg)
  return family, cfg


for _module in (croco, dust3r, dynadust3r, d4rt):
  register(_module.FAMILY)
