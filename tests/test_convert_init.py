"""`convert_weights.py --model=...`: a CroCo checkpoint initialises DUSt3R as DUSt3R's training does."""
import numpy as np
from flax import nnx

import dynadust3r_jax
from convert_weights import convert
from dynadust3r_jax.common.torch_checkpoint import load_torch_checkpoint
from tests.conftest import FIXTURES

# the tiny CroCo's backbone with a linear DUSt3R head
DUST3R_FROM_CROCO = ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(64, 64), head_type='linear', "
                     "enc_embed_dim=64, enc_depth=2, enc_num_heads=4, dec_embed_dim=48, dec_depth=2, "
                     "dec_num_heads=4)")


def _params(directory):
  model = dynadust3r_jax.load_model(str(directory), for_inference=False).module
  return {'.'.join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def test_croco_to_dust3r(tmp_path):
  croco = load_torch_checkpoint(str(FIXTURES / 'croco_tiny.pth'))['model']
  model = DUST3R_FROM_CROCO
  summary = convert(str(FIXTURES / 'croco_tiny.pth'), str(tmp_path / 'a'), model=model, seed=3)
  assert 'dec_blocks2 initialised from dec_blocks' in summary and 'freshly initialised (seed 3)' in summary
  assert '2 ignored' in summary  # prediction_head.{weight,bias}
  params = _params(tmp_path / 'a')
  np.testing.assert_array_equal(params['dec_blocks2.attn.qkv.kernel'], params['dec_blocks.attn.qkv.kernel'])
  np.testing.assert_array_equal(params['dec_blocks.attn.qkv.kernel'][1], croco['dec_blocks.1.attn.qkv.weight'].T)
  np.testing.assert_array_equal(params['enc_norm.scale'], croco['enc_norm.weight'])
  head = params['downstream_head1.proj.kernel']
  assert np.std(head) > 0  # freshly initialised, PyTorch-default scale 1/sqrt(fan_in)
  assert np.abs(head).max() <= 1 / np.sqrt(48) + 1e-6
  # same seed → same fresh heads; another seed → other heads
  convert(str(FIXTURES / 'croco_tiny.pth'), str(tmp_path / 'b'), model=model, seed=3)
  convert(str(FIXTURES / 'croco_tiny.pth'), str(tmp_path / 'c'), model=model, seed=4)
  np.testing.assert_array_equal(_params(tmp_path / 'b')['downstream_head1.proj.kernel'], head)
  assert not np.array_equal(_params(tmp_path / 'c')['downstream_head1.proj.kernel'], head)
