"""Write small checkpoints in torch.save's zip format without torch (for converter tests).

Arrays become float tensors the way torch pickles them: `torch._utils._rebuild_tensor_v2` over a
persistent `('storage', torch.FloatStorage, key, 'cpu', numel)` id, raw bytes in `archive/data/<key>`.
"""
import collections
import contextlib
import io
import pickle
import sys
import types
import zipfile

import numpy as np


class _Storage:
  def __init__(self, key, numel):
    self.key, self.numel = key, numel


def _fake(qualname):
  """A function/class object that pickles by reference as `qualname` (a torch global)."""
  module, name = qualname.rsplit('.', 1)
  obj = type(name, (), {'__module__': module, '__qualname__': name})
  return module, name, obj


@contextlib.contextmanager
def _torch_names():
  """Temporarily register fake `torch` / `torch._utils` modules so pickle can name their globals."""
  made = {}
  for qualname in ('torch.FloatStorage', 'torch._utils._rebuild_tensor_v2'):
    module, name, obj = _fake(qualname)
    made.setdefault(module, types.ModuleType(module))
    setattr(made[module], name, obj)
  saved = {m: sys.modules.get(m) for m in made}
  sys.modules.update(made)
  try:
    yield made['torch'].FloatStorage, made['torch._utils']._rebuild_tensor_v2
  finally:
    for m, old in saved.items():
      if old is None:
        sys.modules.pop(m)
      else:
        sys.modules[m] = old


def save(path, obj):
  """torch.save(obj, path) for obj made of dicts, lists, strings, numbers, argparse.Namespace and
  float32 numpy arrays."""
  storages = {}
  with _torch_names() as (float_storage, rebuild):

    class Pickler(pickle.Pickler):
      def persistent_id(self, o):
        if isinstance(o, _Storage):
          return ('storage', float_storage, o.key, 'cpu', o.numel)
        return None

      def reducer_override(self, o):
        if isinstance(o, np.ndarray):
          a = np.ascontiguousarray(o, dtype=np.float32)
          key = str(len(storages))
          storages[key] = a
          strides = tuple(s // 4 for s in a.strides)
          return rebuild, (_Storage(key, a.size), 0, a.shape, strides, False, collections.OrderedDict())
        return NotImplemented

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data.pkl', buffer.getvalue())
    z.writestr('archive/byteorder', 'little')
    for key, a in storages.items():
      z.writestr(f'archive/data/{key}', a.tobytes())
    z.writestr('archive/version', '3\n')
