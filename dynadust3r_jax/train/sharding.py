"""Device mesh and shardings: data parallelism, plus FSDP of parameters and optimiser state.

Mesh axes ('data', 'fsdp') from the config. The batch is split over all devices; with fsdp > 1 each
large array is split along its largest axis divisible by the fsdp size (big_vision's `fsdp` strategy),
small ones are replicated. Axes are Auto: XLA propagates the rest (all-gathers, reduce-scatters).
The jitted steps run under the mesh (`under_mesh`): the 'pallas' attention reads it to run its kernel
per device.
"""
import functools

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

MIN_FSDP_SIZE = 2 ** 18  # arrays smaller than this (elements) stay replicated
BATCH_AXES = ('data', 'fsdp')


def make_mesh(data: int = -1, fsdp: int = 1, devices=None) -> jax.sharding.Mesh:
  """A (data, fsdp) mesh over `devices` (default: all); data=-1 takes the devices fsdp leaves."""
  n = len(devices) if devices is not None else jax.device_count()
  if data == -1:
    data = n // fsdp
  if data * fsdp != n:
    raise ValueError(f'config.mesh: data={data} x fsdp={fsdp} != {n} devices')
  return jax.make_mesh((data, fsdp), ('data', 'fsdp'), axis_types=(jax.sharding.AxisType.Auto,) * 2,
                       devices=devices)


def _spec(shape, fsdp: int, min_size: int) -> P:
  if fsdp == 1 or int(np.prod(shape)) < min_size:
    return P()
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % fsdp == 0:
      return P(*[('fsdp' if a == axis else None) for a in range(len(shape))])
  return P()


def state_shardings(abstract_state, mesh, min_size: int = MIN_FSDP_SIZE):
  """NamedShardings for a pytree of arrays / ShapeDtypeStructs (parameters, optimiser state)."""
  fsdp = mesh.shape['fsdp']
  return jax.tree.map(lambda x: NamedSharding(mesh, _spec(np.shape(x), fsdp, min_size)), abstract_state)


def batch_sharding(mesh, batch_axis: int = 1) -> NamedSharding:
  """Arrays (accum, batch, ...): the batch axis over every device."""
  return NamedSharding(mesh, P(*([None] * batch_axis), BATCH_AXES))


def under_mesh(fn, mesh):
  """fn called with `mesh` as the ambient mesh (`jax.set_mesh`), so that code traced inside can read it
  (`jax.sharding.get_abstract_mesh()`): the 'pallas' attention shard_maps its kernel over the batch
  with it. The network itself takes no mesh."""
  @functools.wraps(fn)
  def call(*args, **kwargs):
    with jax.set_mesh(mesh):
      return fn(*args, **kwargs)
  return call
