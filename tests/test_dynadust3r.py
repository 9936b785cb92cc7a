"""DynaDUSt3R: motion heads initialised from a DUSt3R checkpoint compute the point heads' function, the
unofficial checkpoint layout converts, and the motion outputs depend on the query time."""
import numpy as np
import pytest

import dynadust3r_jax
from convert_weights import convert
from dynadust3r_jax.common.torch_checkpoint import load_torch_checkpoint
from dynadust3r_jax.model.heads.motion_dpt_head import timestep_embedding
from tests import torch_format
from tests.conftest import FIXTURES, fixture_views

SHARED_DPT = FIXTURES / 'shared' / 'dust3r_tiny_dpt'


def _dyna_model_string():
  """The tiny DPT fixture's architecture as a DynaDUSt3R."""
  model = load_torch_checkpoint(str(SHARED_DPT) + '.pth')['args'].model
  return model.replace('AsymmetricCroCo3DStereo(', 'DynaDUSt3R(time_pos_emb_dim=16, ')


@pytest.fixture(scope='module')
def from_dust3r(tmp_path_factory):
  out = tmp_path_factory.mktemp('dyna')
  summary = convert(str(SHARED_DPT) + '.pth', str(out), model=_dyna_model_string(), seed=1)
  return out, summary


def test_motion_heads_start_as_the_point_heads(from_dust3r):
  directory, summary = from_dust3r
  assert 'motion_head1.dpt initialised from downstream_head1.dpt' in summary
  ref = np.load(str(SHARED_DPT) + '.npz')
  model = dynadust3r_jax.load_model(str(directory), for_inference=False)
  view1, view2 = fixture_views(ref)
  times = np.array([[0.25, 1.0, 0.0], [0.5, 1.0, 0.0]], np.float32)
  res1, res2 = model(view1, view2, times)
  # the point heads are DUSt3R's (parity with PyTorch as for the DUSt3R model)
  assert np.max(np.abs(res1['pts3d'] - ref['pts3d_1'])) / np.max(np.abs(ref['pts3d_1'])) < 1e-4
  # last time-MLP layer zero + copied DPT + the same 'exp' post-processing → the same function
  for res, key, names in ((res1, 'pts3d', ('l2m', 'l2r')), (res2, 'pts3d_in_other_view', ('r2m', 'r2l'))):
    for name in names:
      scale = np.max(np.abs(res[key]))  # same function, evaluated in another batch: float32 rounding
      np.testing.assert_allclose(res[f'motion_{name}'], res[key], rtol=0, atol=1e-5 * scale)
      np.testing.assert_allclose(res[f'conf_{name}'], res['conf'], rtol=1e-5)


def _unofficial_state_dict(dust3r_sd, shape, rng=None):
  """An unofficial-DynaDUSt3R state dict around a DUSt3R one: motion heads = copies of the point heads
  + time MLPs (random values, or only shapes with rng=None), keys prefixed `module.` (DDP)."""
  sd = dict(dust3r_sd)
  for i in (1, 2):
    for k, v in dust3r_sd.items():
      if k.startswith(f'downstream_head{i}.dpt.'):
        sd[f'motion_head{i}' + k[len(f'downstream_head{i}'):]] = v
    feature = shape(dust3r_sd[f'downstream_head{i}.dpt.scratch.refinenet1.out_conv.weight'])[0]
    for level in range(4):
      pre = f'motion_head{i}.dpt.linear_projections.{level}.'
      for name, size in (('0.weight', (feature, 24)), ('0.bias', (feature,)), ('2.weight', (feature, feature)),
                         ('2.bias', (feature,))):
        sd[pre + name] = size if rng is None else rng.normal(0, 0.3, size).astype(np.float32)
  return {'module.' + k: v for k, v in sd.items()}


def test_unofficial_checkpoint_full_size_architecture(manifest):
  """The released unofficial layout at full size (shapes only): architecture read off the shapes,
  every key mapped, parameter count = DUSt3R 512 DPT + 2 × (DPT head + 4 time MLPs)."""
  from dynadust3r_jax.convert import params as conversion
  from dynadust3r_jax.convert.sources import dynadust3r_kwargs, make_config
  from dynadust3r_jax.model import abstract_model
  from dynadust3r_jax.pretrained import param_count
  keys = manifest['DUSt3R_ViTLarge_BaseDecoder_512_dpt']['keys']
  shapes = {k.removeprefix('module.'): tuple(v) for k, v in _unofficial_state_dict(keys, tuple).items()}
  kwargs = dynadust3r_kwargs({k: np.empty(s, np.uint8) if 'linear_projections.0.0' in k or k in (
      'patch_embed.proj.weight', 'decoder_embed.weight') else None for k, s in shapes.items()} | {
      k: None for k in shapes if k.startswith(('enc_blocks', 'dec_blocks'))})
  assert (kwargs['enc_num_heads'], kwargs['dec_num_heads'], kwargs['enc_depth'], kwargs['dec_depth'],
          kwargs['time_pos_emb_dim']) == (16, 12, 24, 12, 24)
  model = abstract_model(make_config('DynaDUSt3R', kwargs, {}, 'manifest'))
  plan = conversion.plan(shapes, model, source_name='dynadust3r')
  assert not plan.missing and not plan.ignored and len(plan.aliases) == 16
  time_mlps = 4 * (256 * 24 + 256 + 256 * 256 + 256)
  assert param_count(model) == 571_171_208 + 2 * (20_201_668 + time_mlps)


def test_unofficial_checkpoint_converts_and_motion_depends_on_time(tmp_path):
  """{'state_dict', 'config', ...} with trained (non-zero) time MLPs; --model names the tiny
  architecture (its 16-wide heads cannot be read off shapes). Weights land where they belong and
  the motion output depends on the query time."""
  dust3r = load_torch_checkpoint(str(SHARED_DPT) + '.pth')['model']
  sd = _unofficial_state_dict(dust3r, lambda a: a.shape, np.random.default_rng(0))
  path = tmp_path / 'dynadust3r.pth'
  torch_format.save(path, {'iteration': 7, 'state_dict': sd, 'config': {'model': {'name': 'dynadust3r'}}})
  summary = convert(str(path), str(tmp_path / 'out'), model=_dyna_model_string().replace('=16', '=24'))
  assert 'initialised from' not in summary and 'freshly' not in summary
  model = dynadust3r_jax.load_model(str(tmp_path / 'out'), for_inference=False)
  mlp = model.module.motion_head2.dpt.linear_projections[3]
  np.testing.assert_array_equal(mlp[0].kernel[...], sd['module.motion_head2.dpt.linear_projections.3.0.weight'].T)
  np.testing.assert_array_equal(mlp[2].bias[...], sd['module.motion_head2.dpt.linear_projections.3.2.bias'])
  ref = np.load(str(SHARED_DPT) + '.npz')
  view1, view2 = fixture_views(ref)
  a = model(view1, view2, np.array([[0.2, 1, 0]] * 2, np.float32))[0]['motion_l2m']
  b = model(view1, view2, np.array([[0.7, 1, 0]] * 2, np.float32))[0]['motion_l2m']
  assert np.max(np.abs(a - b)) > 1e-3 * np.max(np.abs(a))


def test_timestep_embedding():
  emb = np.asarray(timestep_embedding(np.array([0.0, 0.5], np.float32), 8))
  freqs = np.exp(-np.log(10000.0) * np.arange(4) / 4)
  np.testing.assert_allclose(emb[1], np.concatenate([np.cos(0.5 * freqs), np.sin(0.5 * freqs)]), rtol=1e-6)
  np.testing.assert_allclose(emb[0], [1, 1, 1, 1, 0, 0, 0, 0])
