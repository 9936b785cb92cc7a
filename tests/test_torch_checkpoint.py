"""The torch-free .pth reader (dynadust3r_jax/common/torch_checkpoint.py).

Golden data in tests/data/torch_reader/ was written with torch by tools/make_torch_reader_data.py; the
hostile and malformed checkpoints are assembled here from raw pickle opcodes, so torch is never needed.
"""
import argparse
import collections
import copyreg
import json
import struct
import sys
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from dynadust3r_jax.common import torch_checkpoint
from dynadust3r_jax.common.torch_checkpoint import CheckpointError, Placeholder, load_torch_checkpoint

DATA = Path(__file__).parent / 'data' / 'torch_reader'
SHARED = Path(__file__).parent / 'fixtures' / 'shared'  # copies of ../shared/fixtures
SENTINEL = []  # code run from a hostile pickle would append to this


def _at(obj, path):
  for key in path.split('/'):
    obj = obj[key]
  return obj


# ---- golden data (torch 2.13)

@pytest.fixture(scope='module')
def golden():
  return load_torch_checkpoint(DATA / 'tensors.pth'), np.load(DATA / 'tensors.npz')


def test_tensors_equal_torch_bit_for_bit(golden):
  got, ref = golden
  dtypes = json.loads(str(ref['dtypes']))
  assert set(dtypes) >= {'bfloat16', 'float8_e4m3fn', 'uint16', 'transposed', 'sliced', 'state_dict/0.weight'}
  for path, dtype in dtypes.items():
    value, want = _at(got, path), ref[path]
    assert isinstance(value, np.ndarray) and value.dtype.name == dtype, path
    assert value.shape == want.shape and value.tobytes() == want.tobytes(), path
    assert value.flags.c_contiguous and value.flags.owndata, path


def test_views_aliases_and_containers(golden):
  got, _ = golden
  assert got['transposed'].shape == (4, 3) and got['sliced'].shape == (2, 2) and got['scalar'].shape == ()
  np.testing.assert_array_equal(got['alias_a'], got['alias_b'])
  assert not np.shares_memory(got['alias_a'], got['alias_b'])
  assert got['bfloat16'].dtype == ml_dtypes.bfloat16
  assert type(got['state_dict']) is collections.OrderedDict
  assert list(got['state_dict']) == ['0.weight', '0.bias', '2.weight', '2.bias']
  assert type(got['args']) is argparse.Namespace and vars(got['args']) == {'model': 'Foo(a=1)'}
  nested = dict(got['nested'])
  dtype = nested.pop('dtype')
  assert (dtype.name, dtype.dtype) == ('torch.float16', np.float16)
  assert nested == {'list': [1, 2.5, 'three', None, True], 'tuple': (4, 'five', (6.0, -7)),
                    'dict': {'a': -1, 'b': [b'\x00bytes\xff']}, 'big': 2**70, 'set': {1, 2}, 'size': (2, 3)}


@pytest.mark.parametrize('name', ['dust3r_tiny_linear', 'dust3r_tiny_dpt'])
def test_shared_dust3r_fixtures(name):
  path = SHARED / f'{name}.pth'
  ckpt = load_torch_checkpoint(path)
  assert list(ckpt) == ['model', 'args']
  assert ckpt['args'].model.startswith('AsymmetricCroCo3DStereo(')
  assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in ckpt['model'].values())
  assert ckpt['model']['patch_embed.proj.weight'].shape == (64, 3, 16, 16)


def test_dpt_checksums_match_torch(golden):
  path = SHARED / 'dust3r_tiny_dpt.pth'
  model = load_torch_checkpoint(path)['model']
  _, ref = golden
  keys = [k[len('dpt/'):-len('/sum')] for k in ref.files if k.startswith('dpt/') and k.endswith('/sum')]
  assert len(keys) == 4
  for key in keys:
    flat = model[key].reshape(-1)
    np.testing.assert_allclose(flat.sum(dtype=np.float64), ref[f'dpt/{key}/sum'], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(flat[ref[f'dpt/{key}/index']], ref[f'dpt/{key}/values'])


def test_progress_bar(capsys):
  load_torch_checkpoint(DATA / 'tensors.pth', progress=True)
  assert 'tensors.pth' in capsys.readouterr().err
  load_torch_checkpoint(DATA / 'tensors.pth')  # small file: no bar
  assert capsys.readouterr().err == ''


def test_loads_with_torch_unimportable(monkeypatch):
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` now raises ImportError
  assert load_torch_checkpoint(DATA / 'tensors.pth')['float32'].shape == (2, 3)


# ---- hand-made checkpoints, from pickle opcodes (protocol 2, as torch.save writes)

def _str(text):
  data = text.encode()
  return b'X' + struct.pack('<I', len(data)) + data


def _int(value):
  return b'J' + struct.pack('<i', value)


def _global(qualname):
  module, name = qualname.rsplit('.', 1)
  return b'c' + f'{module}\n{name}\n'.encode()


def _tuple(*items):
  return b'(' + b''.join(items) + b't'


def _call(qualname, *args):
  return _global(qualname) + _tuple(*args) + b'R'


def _dict(entries):
  return b'}(' + b''.join(_str(k) + v for k, v in entries.items()) + b'u'


def _tensor(key, numel, offset, size, stride, storage='FloatStorage', dtype=None):
  """A tensor as torch pickles it: _rebuild_tensor_v2 on a typed storage, or, given a dtype,
  _rebuild_tensor_v3 on an untyped one (numel then counts bytes)."""
  storage = 'storage.UntypedStorage' if dtype else storage
  pid = _tuple(_str('storage'), _global(f'torch.{storage}'), _str(key), _str('cpu'), _int(numel)) + b'Q'
  args = [pid, _int(offset), _tuple(*map(_int, size)), _tuple(*map(_int, stride)), b'\x89',
          _call('collections.OrderedDict')]
  if dtype:
    return _call('torch._utils._rebuild_tensor_v3', *args, _global(f'torch.{dtype}'))
  return _call('torch._utils._rebuild_tensor_v2', *args)


def _write(path, body, storages=(), byteorder='little'):
  """A torch-style zip checkpoint whose data.pkl is the protocol-2 pickle of `body`."""
  with zipfile.ZipFile(path, 'w') as zf:
    zf.writestr('archive/data.pkl', b'\x80\x02' + body + b'.')
    zf.writestr('archive/byteorder', byteorder)
    for key, data in dict(storages).items():
      zf.writestr(f'archive/data/{key}', data)
    zf.writestr('archive/version', '3\n')
  return path


WEIGHT = np.arange(6, dtype=np.float32) - 2.5


def test_hostile_pickle_runs_nothing(tmp_path):
  flag = tmp_path / 'pwned'
  touch = f'touch {flag}'
  code = f'import sys; sys.modules[{__name__!r}].SENTINEL.append(1); open({str(flag)!r}, "w").close()'
  namespace_init = argparse.Namespace.__init__
  body = _dict({
      'os.system': _call('os.system', _str(touch)),
      'posix.system': _call('posix.system', _str(touch)),
      'subprocess.call': _call('subprocess.call', b'(' + _str('touch') + _str(str(flag)) + b'l'),
      'builtins.eval': _call('builtins.eval', _str(f'__import__("os").system({touch!r})')),
      'builtins.exec': _call('builtins.exec', _str(code)),
      'getattr': _call('builtins.getattr', _call('builtins.__import__', _str('os')), _str('system')),
      'build': _global('evil.Thing') + b')\x81' + _dict({'cmd': _str(touch)}) + b'b',
      'omegaconf': _global('omegaconf.dictconfig.DictConfig') + b')\x81' + _dict({
          '_metadata': _global('omegaconf.base.ContainerMetadata') + b')\x81' + _dict({
              'ref_type': _global('typing.Any'), 'optional': b'\x88'}) + b'b',
          '_parent': b'N',
          '_content': _dict({'lr': b'G' + struct.pack('>d', 0.5)})}) + b'b',
      # BUILD with slot state on admitted globals: must not alter argparse.Namespace or the reader
      'tamper_namespace': _global('argparse.Namespace')
      + _tuple(b'N', _dict({'__init__': _global('os.system')})) + b'b',
      'tamper_rebuild': _global('torch._utils._rebuild_tensor_v2')
      + _tuple(b'N', _dict({'__defaults__': _tuple(_global('os.system'))})) + b'b',
      'weight': _tensor('0', 6, 0, (2, 3), (3, 1)),
      'weight_t': _tensor('0', 6, 0, (3, 2), (1, 3)),
  })
  got = load_torch_checkpoint(_write(tmp_path / 'hostile.pth', body, {'0': WEIGHT.tobytes()}))

  assert not flag.exists() and SENTINEL == []
  for name in ('os.system', 'posix.system', 'builtins.eval', 'builtins.exec'):
    assert isinstance(got[name], Placeholder) and got[name].qualname == name
  assert got['os.system'].args == (touch,) and got['subprocess.call'].args == (['touch', str(flag)],)
  import_os, attr = got['getattr'].args
  assert (got['getattr'].qualname, attr) == ('builtins.getattr', 'system')
  assert (import_os.qualname, import_os.args) == ('builtins.__import__', ('os',))
  assert (got['build'].qualname, got['build'].args, got['build'].state) == ('evil.Thing', (), {'cmd': touch})
  config = got['omegaconf']
  assert isinstance(config, Placeholder) and config.qualname == 'omegaconf.dictconfig.DictConfig'
  assert config.state['_content'] == {'lr': 0.5} and config.state['_parent'] is None
  assert config.state['_metadata'].qualname == 'omegaconf.base.ContainerMetadata'
  assert config.state['_metadata'].state['optional'] is True
  np.testing.assert_array_equal(got['weight'], WEIGHT.reshape(2, 3))
  np.testing.assert_array_equal(got['weight_t'], WEIGHT.reshape(2, 3).T)

  assert argparse.Namespace.__init__ is namespace_init and vars(argparse.Namespace(a=1)) == {'a': 1}
  assert torch_checkpoint._rebuild_tensor_v2.__defaults__ == (None,)
  again = load_torch_checkpoint(tmp_path / 'hostile.pth')
  np.testing.assert_array_equal(again['weight'], WEIGHT.reshape(2, 3))


def test_calling_a_placeholder_fails_cleanly(tmp_path):
  flag = tmp_path / 'pwned'
  system = _call('builtins.getattr', _call('builtins.__import__', _str('os')), _str('system'))
  path = _write(tmp_path / 'call.pth', system + _tuple(_str(f'touch {flag}')) + b'R')
  with pytest.raises(CheckpointError, match='corrupt or unsupported'):
    load_torch_checkpoint(path)
  assert not flag.exists()


def test_ext_opcode_is_refused(tmp_path):
  flag, code = tmp_path / 'pwned', 0x7ADE
  ext2 = b'\x83' + struct.pack('<H', code)  # EXT2: the global registered under `code`
  path = _write(tmp_path / 'ext.pth', ext2 + _tuple(_str(f'touch {flag}')) + b'R')
  copyreg.add_extension('os', 'system', code)
  try:
    with pytest.raises(CheckpointError, match='extension code'):
      load_torch_checkpoint(path)
  finally:
    copyreg.remove_extension('os', 'system', code)
  assert not flag.exists()


@pytest.mark.parametrize('body', [
    _str('not a storage') + b'Q',
    _tuple(_str('storage'), _global('os.system'), _str('0'), _str('cpu'), _int(6)) + b'Q',
    _tensor('0', 6, 0, (6,), (1,), storage='QUInt8Storage'),
    _tensor('0', 24, 0, (6,), (1,), dtype='complex32'),
], ids=['string', 'os.system', 'quantized', 'v3-unknown-dtype'])
def test_unexpected_persistent_ids_and_dtypes(tmp_path, body):
  path = _write(tmp_path / 'pid.pth', body, {'0': WEIGHT.tobytes()})
  with pytest.raises(CheckpointError, match='corrupt or unsupported'):
    load_torch_checkpoint(path)


def test_big_endian_storages(tmp_path):
  bf16 = np.array([1.5, -2.0, 3.0e4], ml_dtypes.bfloat16)
  int64 = np.array([-2**40, 3], np.int64)
  uint16 = np.array([1, 65534], np.uint16)
  storages = {'0': WEIGHT.astype('>f4').tobytes(), '1': bf16.view(np.uint16).astype('>u2').tobytes(),
              '2': int64.astype('>i8').tobytes(), '3': uint16.astype('>u2').tobytes()}
  body = _dict({'f32': _tensor('0', 6, 1, (2, 2), (1, 3)),
                'bf16': _tensor('1', 3, 0, (3,), (1,), 'BFloat16Storage'),
                'i64': _tensor('2', 2, 0, (2,), (1,), 'LongStorage'),
                'u16': _tensor('3', 4, 0, (2,), (1,), dtype='uint16')})
  got = load_torch_checkpoint(_write(tmp_path / 'big.pth', body, storages, byteorder='big'))
  np.testing.assert_array_equal(got['f32'], WEIGHT.reshape(2, 3)[:, 1:].T)
  assert got['bf16'].dtype == ml_dtypes.bfloat16 and got['bf16'].tobytes() == bf16.tobytes()
  assert got['i64'].dtype == np.int64 and got['i64'].tolist() == int64.tolist()
  assert got['u16'].dtype == np.uint16 and got['u16'].tolist() == uint16.tolist()


# ---- user errors: one line, naming the file and the expected format

def _text(tmp):
  (tmp / 'notes.txt').write_text('not a checkpoint\n')
  return tmp / 'notes.txt'


def _npz(tmp):
  np.savez(tmp / 'arrays.npz', a=np.zeros(2))
  return tmp / 'arrays.npz'


def _cut_zip(tmp):
  (tmp / 'cut.pth').write_bytes((DATA / 'tensors.pth').read_bytes()[:3000])
  return tmp / 'cut.pth'


def _missing_storage(tmp):
  return _write(tmp / 'nostorage.pth', _dict({'w': _tensor('0', 6, 0, (6,), (1,))}))


def _cut_pickle(tmp):
  with zipfile.ZipFile(tmp / 'cutpkl.pth', 'w') as zf:
    zf.writestr('archive/data.pkl', (b'\x80\x02' + _dict({'w': _tensor('0', 6, 0, (6,), (1,))}))[:40])
    zf.writestr('archive/data/0', WEIGHT.tobytes())
  return tmp / 'cutpkl.pth'


def _garbage_pickle(tmp):
  return _write(tmp / 'garbage.pth', b'\xff\xfe')


def _overrun(tmp):
  return _write(tmp / 'overrun.pth', _tensor('0', 6, 4, (2, 3), (3, 1)), {'0': WEIGHT.tobytes()})


@pytest.mark.parametrize('make, what', [
    (lambda tmp: tmp / 'missing.pth', 'no such file'),
    (lambda tmp: tmp, 'is a directory'),
    (_text, 'not a zip file'),
    (_npz, 'not a torch checkpoint'),
    (lambda tmp: DATA / 'legacy.pth', 're-save it with a recent torch'),
    (_cut_zip, 'not a zip file'),
    (_missing_storage, 'archive/data/0 is missing'),
    (_cut_pickle, 'corrupt or truncated data.pkl'),
    (_garbage_pickle, 'corrupt or truncated data.pkl'),
    (_overrun, 'overruns its storage'),
], ids=['missing', 'directory', 'text', 'npz', 'legacy', 'cut-zip', 'missing-storage', 'cut-pickle',
        'garbage-pickle', 'overrun'])
def test_user_errors(tmp_path, make, what):
  path = make(tmp_path)
  with pytest.raises(CheckpointError) as error:
    load_torch_checkpoint(path)
  message = str(error.value)
  assert str(path) in message and what in message and 'zip format written by torch.save' in message
  assert '\n' not in message
