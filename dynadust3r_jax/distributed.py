"""Every device of every process: joining a cluster's processes, the jobs' mesh, and moving arrays between one
process's host memory and a mesh that may span several processes.

The same `main.py` command runs on every host (SLURM, Kubernetes indexed jobs, or JAX_COORDINATOR_ADDRESS set):
`maybe_initialize` joins them with jax.distributed, after which jax.devices() lists every device of the job.
Every process computes; only process 0 writes shared files (`is_writer`).
"""
import os

import jax
import numpy as np


def maybe_initialize():
  """jax.distributed.initialize() when a cluster launched us; a plain single-process run otherwise."""
  env = os.environ
  if 'JAX_COORDINATOR_ADDRESS' in env or int(env.get('SLURM_NTASKS', '1')) > 1 or 'JOB_COMPLETION_INDEX' in env:
    jax.distributed.initialize()


def is_writer() -> bool:
  """Whether this process writes the job's files (process 0 of the job)."""
  return jax.process_index() == 0


def edge_mesh(devices: int = -1) -> jax.sharding.Mesh | None:
  """A one-axis ('edges') mesh over the first `devices` devices of the job (-1: all); None for one device (the
  single-device code path, bit for bit the same as without a mesh)."""
  n = jax.device_count() if devices == -1 else devices
  if not 1 <= n <= jax.device_count():
    raise ValueError(f'config.mesh.devices={devices}: give -1 (all {jax.device_count()} devices) or 1..'
                     f'{jax.device_count()}')
  if n == 1:
    return None
  return jax.make_mesh((n,), ('edges',), axis_types=(jax.sharding.AxisType.Auto,), devices=jax.devices()[:n])


def put(x, sharding) -> jax.Array:
  """A global array of host value `x` laid out by `sharding`; every process holds the whole x and gives its own
  devices' parts (so it works across processes)."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def to_host(x) -> np.ndarray:
  """The whole value of an array, on every process (gathered where other processes hold parts of it)."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    # the program that makes x first: on CPU (gloo) a gather started while it still runs can deadlock it
    x.block_until_ready()
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)
