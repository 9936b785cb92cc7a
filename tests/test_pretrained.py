"""Converted model directories: written whole or not at all, and a broken one is named precisely."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from convert_weights import convert
from dynadust3r_jax import load_model
from dynadust3r_jax.pretrained import staged_directory
from tests.conftest import FIXTURES


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  out = tmp_path_factory.mktemp('converted') / 'tiny_dpt'
  convert(str(FIXTURES / 'shared' / 'dust3r_tiny_dpt.pth'), str(out))
  return out


def _broken_copy(converted, tmp_path):
  broken = tmp_path / 'broken'
  shutil.copytree(converted, broken)
  return broken


def test_converted_directory_holds_its_log_and_loads(converted):
  assert sorted(p.name for p in converted.iterdir()) == ['config.json', 'convert.log', 'params']
  log = (converted / 'convert.log').read_text()
  assert 'converted ' in log and 'orbax' in log                 # the summary and the third-party INFO lines
  assert not converted.with_name('tiny_dpt.partial').exists()
  model = load_model(str(converted))
  img = np.zeros((1, 32, 32, 3), np.float32)
  assert np.all(np.isfinite(model({'img': img}, {'img': img})[0]['pts3d']))


def test_truncated_config(converted, tmp_path):
  broken = _broken_copy(converted, tmp_path)
  text = (broken / 'config.json').read_text()
  (broken / 'config.json').write_text(text[:len(text) // 2])
  with pytest.raises(ValueError, match=rf'{broken}/config.json: unreadable \(JSONDecodeError.*convert it again'):
    load_model(str(broken))


def test_config_with_a_missing_field(converted, tmp_path):
  broken = _broken_copy(converted, tmp_path)
  fields = json.loads((broken / 'config.json').read_text())
  del fields['pos_embed'], fields['head_type']
  (broken / 'config.json').write_text(json.dumps(fields))
  with pytest.raises(ValueError, match=rf"{broken}/config.json: missing field\(s\) \['pos_embed', 'head_type'\]"):
    load_model(str(broken))


def test_no_params_folder(converted, tmp_path):
  broken = _broken_copy(converted, tmp_path)
  shutil.rmtree(broken / 'params')
  with pytest.raises(FileNotFoundError, match=rf'{broken}: no params/ folder'):
    load_model(str(broken))


def test_staged_directory_appears_whole_or_not_at_all(tmp_path):
  target = tmp_path / 'model'
  with pytest.raises(RuntimeError):
    with staged_directory(str(target)) as staging:
      (tmp_path / 'model.partial' / 'half').write_text('written')
      assert staging == str(tmp_path / 'model.partial')
      raise RuntimeError('killed half-way')
  assert not target.exists() and not (tmp_path / 'model.partial').exists()
  (tmp_path / 'model.partial').mkdir()                        # a SIGKILLed attempt's leftovers
  (tmp_path / 'model.partial' / 'stale').write_text('old')
  with staged_directory(str(target)) as staging:
    (Path(staging) / 'new').write_text('new')
  assert sorted(p.name for p in target.iterdir()) == ['new']
  with pytest.raises(FileExistsError, match='not empty'):
    with staged_directory(str(target), overwrite=False):
      pass
  assert sorted(p.name for p in target.iterdir()) == ['new']
