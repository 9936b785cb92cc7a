import math

import pytest

from dynadust3r_jax.convert.constructor import parse_constructor


def test_parses_official_dust3r_string(manifest):
  name, kw = parse_constructor(manifest['DUSt3R_ViTLarge_BaseDecoder_512_dpt']['args.model'])
  assert name == 'AsymmetricCroCo3DStereo'
  assert kw['depth_mode'] == ('exp', -math.inf, math.inf)
  assert kw['conf_mode'] == ('exp', 1, math.inf)
  assert kw['img_size'] == (512, 512) and kw['patch_embed_cls'] == 'ManyAR_PatchEmbed'
  assert kw['enc_depth'] == 24 and kw['head_type'] == 'dpt'


def test_literals():
  name, kw = parse_constructor("m.CroCoNet(a=[1, -2.5], b={'x': None}, c=True, d=+3)")
  assert name == 'CroCoNet' and kw == {'a': [1, -2.5], 'b': {'x': None}, 'c': True, 'd': 3}


@pytest.mark.parametrize('text', [
    "CroCoNet(a=__import__('os').system('echo hi'))",   # a call inside
    'CroCoNet(a=open)',                                   # a name that is not a literal
    'CroCoNet(1, 2)',                                     # positional
    'CroCoNet(**kw)',
    'import os',
    'CroCoNet(',
    '[1, 2]',
])
def test_rejects_anything_but_keyword_literals(text):
  with pytest.raises(ValueError):
    parse_constructor(text)
