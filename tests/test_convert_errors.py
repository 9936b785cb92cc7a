"""Every converter error a user can cause: one line naming the file/key (and both shapes), exit != 0."""
import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dynadust3r_jax
from convert_weights import convert
from dynadust3r_jax.common.torch_checkpoint import CheckpointError, load_torch_checkpoint
from tests import torch_format
from tests.conftest import FIXTURES

SHARED_LINEAR = FIXTURES / 'shared' / 'dust3r_tiny_linear.pth'


@pytest.fixture(scope='module')
def tiny():
  """The tiny linear DUSt3R checkpoint, read back as numpy: (state_dict, constructor string)."""
  ckpt = load_torch_checkpoint(str(SHARED_LINEAR))
  return dict(ckpt['model']), ckpt['args'].model


def _write(tmp_path, state_dict, model=None, name='ckpt.pth', **extra):
  path = tmp_path / name
  obj = {'model': state_dict, **extra}
  if model is not None:
    obj['args'] = argparse.Namespace(model=model)
  torch_format.save(path, obj)
  return str(path)


def _error(path, tmp_path, **kw):
  with pytest.raises(CheckpointError) as e:
    convert(path, str(tmp_path / 'out'), **kw)
  message = str(e.value)
  assert '\n' not in message
  return message


def test_round_trip_of_the_test_writer(tiny, tmp_path):
  """The test writer makes files the converter accepts (so the cases below fail for their reason)."""
  sd, model = tiny
  assert 'AsymmetricCroCo3DStereo' in convert(_write(tmp_path, sd, model), str(tmp_path / 'ok'))


def test_missing_file(tmp_path):
  path = str(tmp_path / 'nope.pth')
  assert path in _error(path, tmp_path) and 'no such file' in _error(path, tmp_path)


def test_not_a_checkpoint(tmp_path):
  text = tmp_path / 'notes.txt'
  text.write_text('hello')
  assert str(text) in _error(str(text), tmp_path)
  npz = tmp_path / 'arrays.npz'
  np.savez(npz, a=np.zeros(3))
  assert str(npz) in _error(str(npz), tmp_path)


def test_other_architecture(tiny, tmp_path):
  sd, _ = tiny
  path = _write(tmp_path, sd, "AsymmetricMASt3R(pos_embed='RoPE100', head_type='catmlp+dpt')")
  assert 'another architecture (AsymmetricMASt3R)' in _error(path, tmp_path)


def test_no_architecture(tiny, tmp_path):
  sd, _ = tiny
  assert "args'].model" in _error(_write(tmp_path, sd), tmp_path)
  assert 'not a CroCo/DUSt3R/DynaDUSt3R checkpoint' in _error(_write(tmp_path, None, name='x.pth'), tmp_path)


def test_unknown_key(tiny, tmp_path):
  sd, model = tiny
  path = _write(tmp_path, {**sd, 'extra_head.weight': np.zeros((2, 2), np.float32)}, model)
  message = _error(path, tmp_path)
  assert path in message and 'extra_head.weight' in message


def test_missing_key(tiny, tmp_path):
  sd, model = tiny
  sd = {k: v for k, v in sd.items() if k != 'enc_norm.bias'}
  assert 'not in the checkpoint: enc_norm.bias' in _error(_write(tmp_path, sd, model), tmp_path)


def test_missing_layer(tiny, tmp_path):
  sd, model = tiny
  sd = {k: v for k, v in sd.items() if not k.startswith('enc_blocks.2.')}
  assert 'enc_blocks has layers [0, 1], the model has 3' in _error(_write(tmp_path, sd, model), tmp_path)


def test_shape_mismatch(tiny, tmp_path):
  sd, model = tiny
  key = 'enc_blocks.1.mlp.fc1.weight'
  want = sd[key].shape
  sd = {**sd, key: np.zeros((want[0] + 1, want[1]), np.float32)}
  message = _error(_write(tmp_path, sd, model), tmp_path)
  assert f'{key} has shape ({want[0] + 1}, {want[1]}), the model expects {want}' in message


def test_bad_constructor_value(tiny, tmp_path):
  sd, model = tiny
  assert "pos_embed='cosine'" in _error(_write(tmp_path, sd, model.replace('RoPE100', 'cosine')), tmp_path)


def test_output_not_empty(tiny, tmp_path):
  sd, model = tiny
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out' / 'something').write_text('x')
  assert '--overwrite' in _error(_write(tmp_path, sd, model), tmp_path)


def test_cli_exits_with_one_line_and_no_traceback(tmp_path):
  result = subprocess.run(cwd=Path(__file__).parents[1], args=[sys.executable, 'convert_weights.py', f'--input={tmp_path}/missing.pth',
                                f'--output={tmp_path}/out'], capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == f'convert_weights: {tmp_path}/missing.pth: no such file or directory'


def test_hf_folder_errors(tmp_path):
  folder = tmp_path / 'hf'
  folder.mkdir()
  assert 'needs config.json and model.safetensors' in _error(str(folder), tmp_path)
  (folder / 'config.json').write_text('{not json')
  (folder / 'model.safetensors').write_bytes(b'garbage')
  assert 'model.safetensors: unreadable' in _error(str(folder), tmp_path)


def test_hf_folder_with_pytorch_model_bin(tiny, tmp_path):
  """A Hugging Face folder holding pytorch_model.bin (a bare state dict) instead of safetensors."""
  sd, _ = tiny
  folder = tmp_path / 'hf'
  folder.mkdir()
  torch_format.save(folder / 'pytorch_model.bin', sd)
  (folder / 'config.json').write_text(
      '{"pos_embed": "RoPE100", "img_size": [64, 96], "head_type": "linear", "depth_mode": ["exp", -Infinity, '
      'Infinity], "conf_mode": ["exp", 1, Infinity], "enc_embed_dim": 64, "enc_depth": 3, "enc_num_heads": 4, '
      '"dec_embed_dim": 48, "dec_depth": 2, "dec_num_heads": 4}')
  assert '145 keys: 145 mapped' in convert(str(folder), str(tmp_path / 'out'))


def test_load_model_of_a_non_converted_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match='not a converted model directory'):
    dynadust3r_jax.load_model(str(tmp_path))
