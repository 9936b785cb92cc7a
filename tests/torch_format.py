"""Write small checkpoints in torch.save's zip format without torch (for converter and reader tests).

Arrays become tensors the way torch pickles them: `torch._utils._rebuild_tensor_v2` over a persistent
`('storage', torch.<X>Storage, key, 'cpu', numel)` id, raw bytes in `archive/data/<key>`. bool and uint8
arrays keep their dtype (torch.BoolStorage / torch.ByteStorage); any other array becomes float32
(torch.FloatStorage).
"""
import collections
import contextlib
import io
import pickle
import sys
import types
import zipfile

import numpy as np

_STORAGES = {np.dtype(np.bool_): 'BoolStorage', np.dtype(np.uint8): 'ByteStorage'}  # else FloatStorage


class _Storage:
  def __init__(self, key, storage_type, numel):
    self.key, self.storage_type, self.numel = key, storage_type, numel


def _fake(qualname):
  """A function/class object that pickles by reference as `qualname` (a torch global)."""
  module, name = qualname.rsplit('.', 1)
  obj = type(name, (), {'__module__': module, '__qualname__': name})
  return module, name, obj


@contextlib.contextmanager
def _torch_names():
  """Temporarily register fake `torch` / `torch._utils` modules so pickle can name their globals."""
  made = {}
  for qualname in ('torch.FloatStorage', 'torch.BoolStorage', 'torch.ByteStorage',
                   'torch._utils._rebuild_tensor_v2'):
    module, name, obj = _fake(qualname)
    made.setdefault(module, types.ModuleType(module))
    setattr(made[module], name, obj)
  saved = {m: sys.modules.get(m) for m in made}
  sys.modules.update(made)
  try:
    yield made['torch'], made['torch._utils']._rebuild_tensor_v2
  finally:
    for m, old in saved.items():
      if old is None:
        sys.modules.pop(m)
      else:
        sys.modules[m] = old


def save(path, obj):
  """torch.save(obj, path) for obj made of dicts, lists, strings, numbers, argparse.Namespace and
  numpy arrays (bool, uint8, or anything else as float32)."""
  storages = {}
  with _torch_names() as (torch, rebuild):

    class Pickler(pickle.Pickler):
      def persistent_id(self, o):
        if isinstance(o, _Storage):
          return ('storage', getattr(torch, o.storage_type), o.key, 'cpu', o.numel)
        return None

      def reducer_override(self, o):
        if isinstance(o, np.ndarray):
          storage_type = _STORAGES.get(o.dtype, 'FloatStorage')
          a = np.ascontiguousarray(o, dtype=o.dtype if storage_type != 'FloatStorage' else np.float32)
          key = str(len(storages))
          storages[key] = a
          strides = tuple(s // a.itemsize for s in a.strides)
          return rebuild, (_Storage(key, storage_type, a.size), 0, a.shape, strides, False,
                           collections.OrderedDict())
        return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data.pkl', buffer.getvalue())
    z.writestr('archive/byteorder', 'little')
    for key, a in storages.items():
      z.writestr(f'archive/data/{key}', a.tobytes())
    z.writestr('archive/version', '3\n')
