"""Parity with the PyTorch reference (mini-dust3r = official DUSt3R code): convert each fixture
checkpoint with the CLI's `convert`, load it with `load_model`, compare all four outputs."""
import numpy as np
import pytest

import dynadust3r_jax
from convert_weights import convert
from tests.conftest import FIXTURES, fixture_views, relative_error

TOLERANCE = 1e-4  # max |Δ| / max |ref|, float32 on CPU (fixtures' README)

# (checkpoint, reference outputs); the shared fixtures, then this repo's own (tools/make_fixtures.py).
CASES = {
    'shared_linear': ('shared/dust3r_tiny_linear.pth', 'shared/dust3r_tiny_linear.npz'),
    'shared_dpt': ('shared/dust3r_tiny_dpt.pth', 'shared/dust3r_tiny_dpt.npz'),
    'linear_inference': ('dust3r_tiny_linear_inference.pth', 'dust3r_tiny_linear_inference.npz'),
    'dpt_inference_odd_grid': ('dust3r_tiny_dpt_inference.pth', 'dust3r_tiny_dpt_inference.npz'),
    'dpt_manyar_mixed': ('dust3r_tiny_dpt_manyar.pth', 'dust3r_tiny_dpt_manyar.npz'),
    'linear_manyar_mixed': ('dust3r_tiny_linear_manyar.pth', 'dust3r_tiny_linear_manyar.npz'),
    'dpt_head_dim_32': ('dust3r_tiny_dpt_widths.pth', 'dust3r_tiny_dpt_widths.npz'),
    'hf_folder_without_aliases': ('dust3r_tiny_dpt_hf', 'dust3r_tiny_dpt_hf.npz'),
}


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  """Convert each checkpoint once per test module."""
  cache = {}

  def get(checkpoint):
    if checkpoint not in cache:
      out = tmp_path_factory.mktemp('converted')
      cache[checkpoint] = (out, convert(str(FIXTURES / checkpoint), str(out), overwrite=True))
    return cache[checkpoint]
  return get


def _check(outputs, ref):
  res1, res2 = outputs
  errors = {'pts3d': relative_error(res1['pts3d'], ref['pts3d_1']),
            'conf1': relative_error(res1['conf'], ref['conf_1']),
            'pts3d_in_other_view': relative_error(res2['pts3d_in_other_view'], ref['pts3d_in_other_view_2']),
            'conf2': relative_error(res2['conf'], ref['conf_2'])}
  assert max(errors.values()) < TOLERANCE, errors
  # the reference outputs vary across pixels: a constant or transposed prediction cannot pass
  assert np.std(ref['pts3d_1']) > 1e-3 and np.all(np.asarray(res1['conf']) > 1)


@pytest.mark.parametrize('case', sorted(CASES))
def test_matches_pytorch_reference(converted, case):
  """The checkpoint's own constructor (ManyAR + head transposition where it says so)."""
  directory, _ = converted(CASES[case][0])
  ref = np.load(FIXTURES / CASES[case][1])
  model = dynadust3r_jax.load_model(str(directory), for_inference=False)
  _check(model(*fixture_views(ref)), ref)


@pytest.mark.parametrize('case', ['shared_dpt', 'linear_inference', 'dpt_inference_odd_grid'])
def test_inference_loading_matches(converted, case):
  """load_model's default (PatchEmbedDust3R, landscape_only=False, as dust3r's load_model) gives the
  same outputs on inputs whose true_shape is their actual shape, with or without true_shape."""
  directory, _ = converted(CASES[case][0])
  ref = np.load(FIXTURES / CASES[case][1])
  model = dynadust3r_jax.load_model(str(directory))
  assert model.config.patch_embed_cls == 'PatchEmbedDust3R' and not model.config.landscape_only
  view1, view2 = fixture_views(ref)
  _check(model(view1, view2), ref)
  _check(model({'img': view1['img']}, {'img': view2['img']}), ref)


def test_summary_line(converted):
  _, summary = converted(CASES['shared_dpt'][0])
  assert 'AsymmetricCroCo3DStereo (DUSt3R dpt head' in summary
  assert '661 keys: 653 mapped, 8 aliases, 0 ignored' in summary


def test_croco_network(converted):
  """CroCo v2 (released layout with croco_kwargs): masked pretraining forward and the unmasked one."""
  directory, summary = converted('croco_tiny.pth')
  assert 'CroCoNet (CroCo v2' in summary
  ref = np.load(FIXTURES / 'croco_tiny.npz')
  model = dynadust3r_jax.load_model(str(directory))
  img1, img2 = (np.ascontiguousarray(ref[k].transpose(0, 2, 3, 1)) for k in ('img1', 'img2'))
  assert relative_error(model(img1, img2, ref['mask1']), ref['out']) < TOLERANCE
  assert relative_error(model(img1, img2), ref['out_nomask']) < TOLERANCE

