"""Full-size official architectures, on shapes only: every key of the four released checkpoints maps
onto the Flax model's abstract parameters, and the parameter counts are the spec's (dust3r.md §1.11)."""
import pytest

from dynadust3r_jax.convert import params as conversion
from dynadust3r_jax.convert.constructor import parse_constructor
from dynadust3r_jax.convert.sources import dpt_widths, make_config
from dynadust3r_jax.model import abstract_model
from dynadust3r_jax.pretrained import param_count

SPEC_PARAMS = {
    'CroCo_V2_ViTLarge_BaseDecoder': 417_918_720,
    'DUSt3R_ViTLarge_BaseDecoder_224_linear': 532_342_784,
    'DUSt3R_ViTLarge_BaseDecoder_512_linear': 532_342_784,
    'DUSt3R_ViTLarge_BaseDecoder_512_dpt': 571_171_208,
}
SPEC_KEYS = {'CroCo_V2_ViTLarge_BaseDecoder': 587, 'DUSt3R_ViTLarge_BaseDecoder_224_linear': 877,
             'DUSt3R_ViTLarge_BaseDecoder_512_linear': 877, 'DUSt3R_ViTLarge_BaseDecoder_512_dpt': 1009}


class _Shape:
  """Stands for a tensor of the manifest: only .shape is read when planning."""
  def __init__(self, shape):
    self.shape = tuple(shape)


def _model_and_shapes(entry):
  shapes = {k: tuple(v) for k, v in entry['keys'].items()}
  arch, kwargs = parse_constructor(entry['args.model'])
  cfg = make_config(arch, kwargs, {k: _Shape(s) for k, s in shapes.items()}, 'manifest')
  return cfg, abstract_model(cfg), shapes


@pytest.mark.parametrize('name', sorted(SPEC_PARAMS))
def test_official_checkpoint_maps_completely(manifest, name):
  cfg, model, shapes = _model_and_shapes(manifest[name])
  assert len(shapes) == SPEC_KEYS[name]
  plan = conversion.plan(shapes, model, source_name=name)
  mapped = {k for a in plan.assignments for k in a.sources}
  assert mapped | set(plan.aliases) == set(shapes)   # every key mapped or a documented alias
  assert not plan.ignored and not plan.missing
  assert param_count(model) == SPEC_PARAMS[name]
  if cfg.head_type == 'dpt' and cfg.arch != 'CroCoNet':
    assert len(plan.aliases) == 8                      # scratch.layer{1..4}_rn of both heads
    assert dpt_widths({k: _Shape(s) for k, s in shapes.items()}) == dict(
        dpt_feature_dim=256, dpt_last_dim=128, dpt_layer_dims=(96, 192, 384, 768))


def test_croco_initialises_dust3r_like_dust3r_training(manifest):
  """CroCo v2 → DUSt3R 224 linear: dec_blocks copied into dec_blocks2, prediction_head dropped, the
  heads left to their fresh initialisation (`load_state_dict(strict=False)`)."""
  shapes = {k: tuple(v) for k, v in manifest['CroCo_V2_ViTLarge_BaseDecoder']['keys'].items()}
  _, dust3r, _ = _model_and_shapes(manifest['DUSt3R_ViTLarge_BaseDecoder_224_linear'])
  plan = conversion.plan(shapes, dust3r, source_name='croco', allow_missing=('downstream_head',),
                         allow_unused=('prediction_head',))
  by_target = {a.target: a for a in plan.assignments}
  qkv2 = by_target[('dec_blocks2', 'attn', 'qkv', 'kernel')]
  assert qkv2.sources == tuple(f'dec_blocks.{i}.attn.qkv.weight' for i in range(12)) and qkv2.stacked
  assert sorted(plan.ignored) == ['prediction_head.bias', 'prediction_head.weight']
  assert {t[0] for t in plan.missing} == {'downstream_head1', 'downstream_head2'}
  # without the allowance the same conversion is an error naming the missing parameters
  with pytest.raises(conversion.CheckpointError, match='downstream_head1.proj'):
    conversion.plan(shapes, dust3r, source_name='croco')


@pytest.mark.parametrize('height,width', [(384, 512), (336, 512), (512, 336), (224, 224)])
def test_full_size_forward_shapes(manifest, height, width):
  """The full-size 512 DPT network traced (no memory) at the official resolutions, incl. the odd
  21-token grid of 512x336 and a portrait input (inference path)."""
  import jax
  from flax import nnx
  cfg, model, _ = _model_and_shapes(manifest['DUSt3R_ViTLarge_BaseDecoder_512_dpt'])
  assert cfg.patch_embed_cls == 'ManyAR_PatchEmbed'
  graphdef, state = nnx.split(abstract_model(cfg.for_inference()))
  view = {'img': jax.ShapeDtypeStruct((2, height, width, 3), 'float32')}
  res1, res2 = jax.eval_shape(lambda s, a, b: nnx.merge(graphdef, s)(a, b), state, view, view)
  assert res1['pts3d'].shape == res2['pts3d_in_other_view'].shape == (2, height, width, 3)
  assert res1['conf'].shape == (2, height, width) and res1['conf'].dtype == 'float32'
