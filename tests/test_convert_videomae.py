"""Hugging Face VideoMAE → D4RT encoder (convert_weights.py on a VideoMAE folder; issue #13 part 2).

Fixture: tests/fixtures/videomae_tiny_hf/ (a tiny random VideoMAEForPreTraining in the released layout,
q_bias/v_bias) and videomae_tiny.npz (transformers' VideoMAEModel last_hidden_state), made by
tools/make_videomae_fixtures.py.
"""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

import dynadust3r_jax
from convert_weights import convert
from dynadust3r_jax.common.torch_checkpoint import CheckpointError
from tests.conftest import FIXTURES

HF = FIXTURES / 'videomae_tiny_hf'
REF = FIXTURES / 'videomae_tiny.npz'


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  out = tmp_path_factory.mktemp('videomae') / 'd4rt'
  summary = convert(str(HF), str(out))
  return str(out), summary


def _folder(tmp_path, state_dict=None, **config_changes):
  """A copy of the fixture folder with changed tensors / config.json."""
  folder = tmp_path / 'hf'
  shutil.copytree(HF, folder)
  if state_dict is not None:
    save_file(state_dict, str(folder / 'model.safetensors'), metadata={'format': 'pt'})
  if config_changes:
    config = json.loads((folder / 'config.json').read_text())
    config.update(config_changes)
    (folder / 'config.json').write_text(json.dumps(config))
  return str(folder)


def _error(path, tmp_path, **kw):
  with pytest.raises(CheckpointError) as e:
    convert(path, str(tmp_path / 'out'), **kw)
  assert '\n' not in str(e.value)
  return str(e.value)


def _encoder_rel_err(directory):
  """max|Δ| / max|ref| of our encoder with every layer global (no AR token) vs VideoMAEModel."""
  ref = np.load(REF)
  model = dynadust3r_jax.load_model(directory).module
  model.encoder.cfg = model.cfg.replace(frame_attention=False)  # the parity switch (same parameter tree)
  feats = np.asarray(model.encode(ref['video'], np.ones(2, np.float32)))
  want = ref['last_hidden_state']
  assert feats.shape == want.shape == (2, 64, 64)
  return float(np.abs(feats - want).max() / np.abs(want).max())


def test_summary_and_config(converted):
  directory, summary = converted
  assert '85 keys: 64 mapped, 21 ignored' in summary
  assert 'encoder 4x64/4h' in summary and 'decoder 2x64/4h' in summary
  assert 'freshly initialised (seed 0): decoder, encoder.ar_embed, head, query_embed' in summary
  cfg = dynadust3r_jax.pretrained.load_config(directory)
  assert (cfg.enc_embed_dim, cfg.enc_depth, cfg.enc_num_heads, cfg.enc_mlp_dim) == (64, 4, 4, 128)
  assert (cfg.tubelet, cfg.img_size, cfg.num_frames, cfg.frame_attention) == ((2, 16, 16), 64, 8, True)


def test_parity_with_transformers(converted):
  """Every layer global, no AR token: the converted encoder is VideoMAE's (transformers last_hidden_state)."""
  assert _encoder_rel_err(converted[0]) < 1e-4


def test_parity_of_the_transformers5_layout(tmp_path):
  """Tensors saved by transformers >= 5 (query.bias / value.bias, config qv_bias) give the same encoder, and
   a VideoMAEModel file (no `videomae.` prefix, no decoder) too."""
  sd = {k.replace('.q_bias', '.query.bias').replace('.v_bias', '.value.bias').removeprefix('videomae.'): v
        for k, v in load_file(str(HF / 'model.safetensors')).items()
        if k.startswith('videomae.')}
  config = json.loads((HF / 'config.json').read_text())
  folder = _folder(tmp_path, sd, qv_bias=config['qkv_bias'], architectures=['VideoMAEModel'])
  summary = convert(folder, str(tmp_path / 'out'))
  assert '64 keys: 64 mapped, 0 ignored' in summary
  assert _encoder_rel_err(str(tmp_path / 'out')) < 1e-4


def test_classification_checkpoint(tmp_path):
  """VideoMAEForVideoClassification with mean pooling: fc_norm / classifier ignored, no final layernorm, so
  encoder.norm starts as the identity LayerNorm (scale 1, bias 0) and is reported."""
  sd = {k: v for k, v in load_file(str(HF / 'model.safetensors')).items()
        if k.startswith('videomae.') and 'videomae.layernorm' not in k}
  sd.update({'fc_norm.weight': np.ones(64, np.float32), 'fc_norm.bias': np.zeros(64, np.float32),
             'classifier.weight': np.zeros((5, 64), np.float32), 'classifier.bias': np.zeros(5, np.float32)})
  summary = convert(_folder(tmp_path, sd, use_mean_pooling=True), str(tmp_path / 'out'))
  assert '66 keys: 62 mapped, 4 ignored' in summary and 'encoder.norm fresh' in summary
  params = dynadust3r_jax.load_model(str(tmp_path / 'out')).state
  assert np.array_equal(params['encoder']['norm']['scale'][...], np.ones(64))


def test_unknown_key_is_named(tmp_path):
  sd = load_file(str(HF / 'model.safetensors'))
  sd['videomae.encoder.layer.0.attention.attention.k_bias'] = np.zeros(64, np.float32)
  sd['videomae.pooler.dense.weight'] = np.zeros((64, 64), np.float32)
  message = _error(_folder(tmp_path, sd), tmp_path)
  assert 'videomae.encoder.layer.0.attention.attention.k_bias' in message
  assert 'videomae.pooler.dense.weight' in message and '2 key(s)' in message


def test_shape_mismatch_names_key_and_shapes(tmp_path):
  sd = load_file(str(HF / 'model.safetensors'))
  key = 'videomae.encoder.layer.2.intermediate.dense.weight'
  sd[key] = np.zeros((96, 64), np.float32)
  message = _error(_folder(tmp_path, sd), tmp_path)
  assert key in message and '(96, 64)' in message and '(128, 64)' in message
  # config.json that disagrees with every tensor: the first one is named with both shapes
  message = _error(_folder(tmp_path / 'b', None, hidden_size=32, num_attention_heads=2), tmp_path, model='tiny')
  assert 'has shape' in message and 'expects' in message


def test_missing_layer_and_bias(tmp_path):
  sd = load_file(str(HF / 'model.safetensors'))
  del sd['videomae.encoder.layer.3.attention.attention.key.weight']
  assert 'layer 3' in _error(_folder(tmp_path, sd), tmp_path)
  sd = {k: v for k, v in load_file(str(HF / 'model.safetensors')).items() if not k.endswith(('q_bias', 'v_bias'))}
  assert 'qkv_bias' in _error(_folder(tmp_path / 'b', sd), tmp_path)
  summary = convert(_folder(tmp_path / 'c', sd, qkv_bias=False), str(tmp_path / 'c_out'))
  assert 'qkv biases of 4 layer(s) zero' in summary


def test_model_option(tmp_path):
  summary = convert(str(HF), str(tmp_path / 'a'), model="D4RT(size='B', dec_depth=1, num_frames=12)")
  assert 'decoder 1x768/12h; 12 frames' in summary
  assert 'enc_depth=6' in _error(str(HF), tmp_path, model='D4RT(enc_depth=6)')
  assert "size 'XL'" in _error(str(HF), tmp_path, model='XL')
  assert 'bogus' in _error(str(HF), tmp_path, model='D4RT(bogus=1)')
  assert _error(str(HF), tmp_path, model='D4RT(tubelet=2)').startswith('--model: tubelet=2 (want 3 integers)')
  assert _error(str(HF), tmp_path, model="D4RT(size=['L'])").startswith("--model: size=['L']; give a size name")
  assert _error(str(HF), tmp_path, model="D4RT(dec_depth='2')").startswith("--model: dec_depth='2' (want an integer)")
  message = _error(str(HF), tmp_path, model='D4RT(num_frames=5)')         # D4RTConfig's error, the --model value's
  assert message.startswith('--model: ') and 'num_frames=5' in message and 'config.json' not in message


def test_converted_directory_runs_the_full_d4rt(converted):
  """load_model → D4RT (frame-wise/global encoder + AR token + fresh decoder) on a tiny video with queries."""
  directory, _ = converted
  model = dynadust3r_jax.load_model(directory)
  assert type(model.module).__name__ == 'D4RT'
  rng = np.random.default_rng(0)
  video = rng.uniform(-1, 1, (1, 4, 64, 64, 3)).astype(np.float32)
  uv = rng.uniform(0, 1, (1, 5, 2)).astype(np.float32)
  qt = rng.integers(0, 4, (1, 5, 3)).astype(np.int32)
  out = model(video, np.array([1.5], np.float32), uv, qt)
  assert out['xyz'].shape == (1, 5, 3) and out['conf'].shape == (1, 5)
  assert all(np.isfinite(np.asarray(v)).all() for v in out.values())
  # the encoder weights are VideoMAE's, exactly
  ref = load_file(str(HF / 'model.safetensors'))
  got = nnx.state(model.module, nnx.Param)
  w = ref['videomae.encoder.layer.1.intermediate.dense.weight']
  np.testing.assert_array_equal(np.asarray(got['encoder']['global_blocks']['mlp']['fc1']['kernel'][...][0]), w.T)


def test_cli(tmp_path):
  """convert_weights.py on the folder, with a size name for the decoder."""
  out = tmp_path / 'cli'
  run = subprocess.run([sys.executable, 'convert_weights.py', f'--input={HF}', f'--output={out}', '--model=tiny',
                        '--seed=3'], capture_output=True, text=True, check=False,
                       cwd=str(FIXTURES.parent.parent))
  assert run.returncode == 0, run.stderr[-2000:]
  assert 'D4RT' in run.stdout and 'seed 3' in run.stdout and (out / 'config.json').is_file()
