"""Read PyTorch `.pth` checkpoints without torch and without running any code from the file.

A checkpoint written by torch.save (torch >= 1.6) is a zip holding, under one folder `<archive>/`:
  data.pkl    a pickle of the saved object; each tensor is a call to `torch._utils._rebuild_tensor_v2`
              (or `_v3` for dtypes such as uint16 and float8) on a storage named by the persistent id
              ('storage', <storage type global>, <key>, <device>, <numel>);
  data/<key>  the raw bytes of that storage;
  byteorder   'little' or 'big' (absent in old files: little); also version, .format_version, ...
What torch 2.13 puts in data.pkl: `torch._utils._rebuild_tensor_v2 / _v3 / _rebuild_parameter /
_rebuild_parameter_with_state`, storage types (`torch.FloatStorage`, ..., `torch.storage.UntypedStorage`
with a `torch.<dtype>` global for v3), `collections.OrderedDict` (hooks, state dicts, which then get a
`_metadata` attribute by BUILD), `argparse.Namespace` (NEWOBJ + BUILD of its __dict__), and for plain
Python values `__builtin__.set / frozenset / complex`, `_codecs.encode` (bytes) and `torch.Size`.

Unpickling runs whatever the pickle names, so `torch.load(weights_only=False)`, which the released DUSt3R
checkpoints need for their argparse.Namespace, trusts the file completely. Here those globals resolve to
our own data-only stand-ins (immutable types or fresh wrappers, so a pickle cannot alter them for later
loads either); every other global becomes an inert `Placeholder` class, which records what the pickle
passes to it. Tensors come back as numpy arrays (bfloat16 and float8 as ml_dtypes types).
"""
import argparse
import collections
import io
import os
import pickle
import pickletools
import sys
import zipfile
from typing import NamedTuple

import ml_dtypes
import numpy as np
from tqdm import tqdm

_HINT = 'expected a checkpoint in the zip format written by torch.save (torch >= 1.6)'
# torch < 1.6 files are a sequence of pickles, the first one of this magic number.
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]
_PROGRESS_MIN_BYTES = 64 << 20


class CheckpointError(Exception):
  """A user-facing error; str(e) is one short line naming the file and what to do."""


class Placeholder:
  """Inert stand-in for any pickled global outside the allow-list (e.g. an OmegaConf config, a custom
  class). Never imported, never called. Attributes: `qualname` ('module.Name'), `args` (constructor
  args, if any), `state` (whatever __setstate__/BUILD received, if any), and `kwargs`, `listitems`,
  `dictitems` (what the pickle passed as keywords or appended / set as items, for container classes)."""
  qualname = ''

  def __new__(cls, *args, **kwargs):
    self = super().__new__(cls)
    self.args, self.kwargs, self.state = args, kwargs, None
    self.listitems, self.dictitems = [], {}
    return self

  def __setstate__(self, state):
    self.state = state

  def append(self, item):
    self.listitems.append(item)

  def extend(self, items):
    self.listitems.extend(items)

  def __setitem__(self, key, value):
    self.dictitems[key] = value

  def __repr__(self):
    return f'<Placeholder {self.qualname}>'


class _StorageType(NamedTuple):
  """What a `torch.<X>Storage` global resolves to: the element dtype of its storages."""
  name: str
  dtype: np.dtype


class _TorchDtype(NamedTuple):
  """What a `torch.<dtype>` global (e.g. `torch.uint16`) resolves to."""
  name: str
  dtype: np.dtype


class _Storage(NamedTuple):
  """A storage read from the zip: its bytes, element dtype and byte order."""
  data: bytes
  dtype: np.dtype
  big_endian: bool


_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'BFloat16Storage': ml_dtypes.bfloat16, 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
    'ComplexFloatStorage': np.complex64, 'ComplexDoubleStorage': np.complex128,
}
_TORCH_DTYPES = {
    'float64': np.float64, 'float32': np.float32, 'float16': np.float16, 'bfloat16': ml_dtypes.bfloat16,
    'int64': np.int64, 'int32': np.int32, 'int16': np.int16, 'int8': np.int8,
    'uint64': np.uint64, 'uint32': np.uint32, 'uint16': np.uint16, 'uint8': np.uint8, 'bool': np.bool_,
    'complex128': np.complex128, 'complex64': np.complex64,
    'float8_e4m3fn': ml_dtypes.float8_e4m3fn, 'float8_e5m2': ml_dtypes.float8_e5m2,
    'float8_e4m3fnuz': ml_dtypes.float8_e4m3fnuz, 'float8_e5m2fnuz': ml_dtypes.float8_e5m2fnuz,
    'float8_e8m0fnu': ml_dtypes.float8_e8m0fnu,
}

# Globals that resolve to an immutable object, shared by all loads.
_CONSTANTS = {
    'torch.storage.UntypedStorage': _StorageType('torch.storage.UntypedStorage', np.dtype(np.uint8)),
    **{f'torch.{n}': _StorageType(f'torch.{n}', np.dtype(t)) for n, t in _STORAGE_DTYPES.items()},
    **{f'torch.{n}': _TorchDtype(f'torch.{n}', np.dtype(t)) for n, t in _TORCH_DTYPES.items()},
    'torch.Size': tuple,
    'collections.OrderedDict': collections.OrderedDict,
    **{f'{module}.{t.__name__}': t
       for t in (set, frozenset, complex) for module in ('builtins', '__builtin__')},  # protocol 3+ / 2
}


def _tensor(storage, offset, size, stride, dtype=None):
  """A C-contiguous copy of the strided view (offset, size, stride in elements of dtype, by default the
  storage's) of storage."""
  if not isinstance(storage, _Storage):
    raise ValueError(f'expected a storage, got {type(storage).__name__}')
  if dtype is None:
    dtype = storage.dtype
  size, stride = tuple(size), tuple(stride)
  if len(size) != len(stride) or not all(isinstance(n, int) and n >= 0 for n in (offset, *size, *stride)):
    raise ValueError(f'bad tensor layout: offset {offset!r:.40}, size {size!r:.80}, stride {stride!r:.80}')
  if 0 in size:
    return np.zeros(size, dtype)
  elements = np.frombuffer(storage.data, dtype, count=len(storage.data) // dtype.itemsize)
  end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
  if end > elements.size:
    raise ValueError(f'tensor (offset {offset}, size {size}, stride {stride}) overruns its storage '
                     f'of {elements.size} elements')
  view = np.lib.stride_tricks.as_strided(elements[offset:], size, [s * dtype.itemsize for s in stride])
  array = np.array(view, order='C')  # a copy: the result does not keep the storage bytes alive
  if storage.big_endian:
    array.byteswap(inplace=True)
  return array


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
  """torch._utils._rebuild_tensor_v2: a tensor viewing a typed storage."""
  return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                       metadata=None):
  """torch._utils._rebuild_tensor_v3: a tensor of `dtype` viewing an untyped (byte) storage."""
  if not isinstance(dtype, _TorchDtype):
    raise ValueError(f'unsupported tensor dtype {dtype!r:.80}')
  return _tensor(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks):
  """torch._utils._rebuild_parameter: an nn.Parameter is just its data here."""
  return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
  """torch._utils._rebuild_parameter_with_state: the data; the Parameter's extra attributes are dropped."""
  return data


def _encode(text, encoding):
  """_codecs.encode as pickle protocol 2 uses it to store bytes: (str, 'latin1') → bytes."""
  if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
    raise ValueError(f'unsupported _codecs.encode({type(text).__name__}, {encoding!r:.40})')
  return text.encode('latin-1')


# Globals that resolve to one of our functions (handed out as a fresh wrapper per reference).
_FUNCTIONS = {
    'torch._utils._rebuild_tensor_v2': _rebuild_tensor_v2,
    'torch._utils._rebuild_tensor_v3': _rebuild_tensor_v3,
    'torch._utils._rebuild_parameter': _rebuild_parameter,
    'torch._utils._rebuild_parameter_with_state': _rebuild_parameter_with_state,
    '_codecs.encode': _encode,
}


def _fresh(function):
  """A new callable forwarding to `function`: BUILD on it can only alter this copy."""
  return lambda *args: function(*args)


def _namespace_class():
  """A new class standing for argparse.Namespace whose instances are real argparse.Namespace objects
  (torch pickles them as NEWOBJ, then BUILD sets their __dict__)."""
  return type('Namespace', (), {'__new__': lambda cls: argparse.Namespace()})


class _Unpickler(pickle.Unpickler):
  """Resolves globals through the allow-list and storages through the zip, each storage read once."""

  def __init__(self, data_pkl, path, zf, prefix, big_endian, bar):
    super().__init__(io.BytesIO(data_pkl))
    self._path, self._zip, self._prefix, self._big_endian, self._bar = path, zf, prefix, big_endian, bar
    self._storage_bytes = {}

  def find_class(self, module, name):
    qualname = f'{module}.{name}'
    if qualname in _CONSTANTS:
      return _CONSTANTS[qualname]
    if qualname in _FUNCTIONS:
      return _fresh(_FUNCTIONS[qualname])
    if qualname == 'argparse.Namespace':
      return _namespace_class()
    return type('Placeholder', (Placeholder,), {'qualname': qualname})

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage'
            and isinstance(pid[1], _StorageType) and isinstance(pid[2], str) and isinstance(pid[4], int)):
      raise ValueError(f'unexpected persistent id {pid!r:.80}')
    storage_type, key, numel = pid[1], pid[2], pid[4]
    if key not in self._storage_bytes:
      name = f'{self._prefix}/data/{key}'
      try:
        data = self._zip.read(name)
      except KeyError:
        raise CheckpointError(f'{self._path}: storage {name} is missing (truncated or corrupt file); '
                              f're-download or re-save it; {_HINT}') from None
      self._bar.update(len(data))
      self._storage_bytes[key] = data
    data = self._storage_bytes[key]
    if len(data) != numel * storage_type.dtype.itemsize:
      raise ValueError(f'storage {key} has {len(data)} bytes, expected {numel} x {storage_type.name}')
    return _Storage(data, storage_type.dtype, self._big_endian)


def _open_zip(path):
  """The checkpoint's zip, or a CheckpointError saying why the file is not one."""
  if not os.path.exists(path):
    raise CheckpointError(f'{path}: no such file; {_HINT}')
  if os.path.isdir(path):
    raise CheckpointError(f'{path}: is a directory, not a checkpoint file; {_HINT}')
  try:
    return zipfile.ZipFile(path)
  except zipfile.BadZipFile:
    with open(path, 'rb') as f:
      legacy = f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC
    if legacy:
      raise CheckpointError(f'{path}: legacy torch.save format (torch < 1.6); re-save it with a recent torch '
                            f'(torch.save(torch.load(f), f)); {_HINT}') from None
    raise CheckpointError(f'{path}: not a zip file; {_HINT}') from None
  except OSError as e:
    raise CheckpointError(f'{path}: cannot read ({e.strerror}); {_HINT}') from None


def _archive_prefix(path, zf):
  """The folder holding data.pkl (torch names it after the file it first saved to)."""
  prefixes = [name[:-len('/data.pkl')] for name in zf.namelist()
              if name.endswith('/data.pkl') and name.count('/') == 1]
  if len(prefixes) != 1:
    raise CheckpointError(f'{path}: a zip but not a torch checkpoint (no single <archive>/data.pkl); '
                          f'{_HINT}')
  return prefixes[0]


def _is_big_endian(path, zf, prefix):
  """Whether the storages are big-endian (the byteorder member; absent: little)."""
  try:
    byteorder = zf.read(f'{prefix}/byteorder').decode('ascii', 'replace').strip()
  except KeyError:
    return False
  if byteorder not in ('little', 'big'):
    raise CheckpointError(f'{path}: unknown byteorder {byteorder[:20]!r}; {_HINT}')
  return byteorder == 'big'


def _check_opcodes(path, data_pkl):
  """Parse data.pkl without running it: reject a truncated or corrupt pickle, and EXT opcodes (which
  resolve through copyreg's process-wide extension registry and cache, bypassing find_class)."""
  try:
    for opcode, _, _ in pickletools.genops(data_pkl):
      if opcode.name.startswith('EXT'):
        raise CheckpointError(f'{path}: data.pkl uses a pickle extension code ({opcode.name}), which '
                              f'torch.save never writes; refusing to load it; {_HINT}')
  except ValueError as e:
    raise CheckpointError(f'{path}: corrupt or truncated data.pkl ({_one_line(e)}); {_HINT}') from e


def _one_line(error):
  text = ' '.join(str(error).split())
  return f'{type(error).__name__}: {text[:160]}'


def load_torch_checkpoint(path: str, progress: bool | None = None) -> object:
  """Read a torch.save() zip checkpoint without torch; tensors come back as numpy arrays.

  progress: show a progress bar over the storage bytes; None: only for > 64 MiB when stderr is a tty.
  """
  path = os.fspath(path)
  with _open_zip(path) as zf:
    try:
      prefix = _archive_prefix(path, zf)
      big_endian = _is_big_endian(path, zf, prefix)
      data_pkl = zf.read(f'{prefix}/data.pkl')
      _check_opcodes(path, data_pkl)
      total = sum(info.file_size for info in zf.infolist() if info.filename.startswith(f'{prefix}/data/'))
      if progress is None:
        progress = total > _PROGRESS_MIN_BYTES and sys.stderr.isatty()
      with tqdm(total=total, unit='B', unit_scale=True, desc=os.path.basename(path),
                disable=not progress) as bar:
        return _Unpickler(data_pkl, path, zf, prefix, big_endian, bar).load()
    except CheckpointError:
      raise
    except Exception as e:  # anything a corrupt or hostile pickle can raise from our stand-ins
      raise CheckpointError(f'{path}: corrupt or unsupported checkpoint ({_one_line(e)}); {_HINT}') from e
