"""Batched pair inference: grouped by shape, batched, padded, and equal pair by pair to the model's own call."""
import numpy as np
import pytest

from convert_weights import convert
from dynadust3r_jax import load_model
from dynadust3r_jax.inference import inference, load_images, make_pairs
from tests.conftest import FIXTURES, relative_error

IMAGES = FIXTURES / 'inference_images'


@pytest.fixture(scope='module')
def model(tmp_path_factory):
  out = tmp_path_factory.mktemp('model') / 'tiny_dpt'
  convert(str(FIXTURES / 'shared' / 'dust3r_tiny_dpt.pth'), str(out))
  return load_model(str(out))


def _alone(model, view1, view2):
  """The model on one pair (batch 1)."""
  return model({k: view1[k] for k in ('img', 'true_shape')}, {k: view2[k] for k in ('img', 'true_shape')})


def test_batches_equal_single_pairs_in_dust3r_layout(model):
  imgs = load_images(str(IMAGES), size=224)[:4]                 # 4 squares of 224
  pairs = make_pairs(imgs, 'complete')                          # 12 pairs: batches of 5, 5 and 2 (padded)
  out = inference(pairs, model, batch_size=5, progress=False)
  assert out['view1']['idx'].tolist() == [a['idx'] for a, _ in pairs]
  assert out['view2']['instance'] == [b['instance'] for _, b in pairs]
  assert out['view1']['img'].shape == (12, 224, 224, 3) and out['view2']['true_shape'].shape == (12, 2)
  assert sorted(out['pred1']) == ['conf', 'pts3d'] and sorted(out['pred2']) == ['conf', 'pts3d_in_other_view']
  assert out['pred1']['pts3d'].shape == (12, 224, 224, 3) and out['pred2']['conf'].shape == (12, 224, 224)
  for e in (0, 4, 5, 11):                                        # first/last of a batch, the padded one
    res1, res2 = _alone(model, *pairs[e])
    assert relative_error(out['pred1']['pts3d'][e], res1['pts3d'][0]) < 1e-5
    assert relative_error(out['pred2']['pts3d_in_other_view'][e], res2['pts3d_in_other_view'][0]) < 1e-5
    assert relative_error(out['pred2']['conf'][e], res2['conf'][0]) < 1e-5
  # symmetric pairs are different predictions: the batch really holds each pair where it belongs
  assert relative_error(out['pred1']['pts3d'][0], out['pred1']['pts3d'][6]) > 1e-3


def test_mixed_shapes_come_back_as_lists_in_pair_order(model):
  imgs = load_images([str(IMAGES / n) for n in ('a_landscape.png', 'b_portrait.jpg', 'c_square.png')], size=512)
  pairs = make_pairs(imgs, 'complete')                          # 6 pairs of 3 different shapes
  out = inference(pairs, model, batch_size=2, progress=False)
  assert isinstance(out['pred1']['pts3d'], list) and len(out['pred1']['pts3d']) == 6
  for e, (v1, v2) in enumerate(pairs):
    assert out['pred1']['pts3d'][e].shape == v1['img'].shape[1:]
    assert out['pred2']['pts3d_in_other_view'][e].shape == v2['img'].shape[1:]
    res1, res2 = _alone(model, v1, v2)
    assert relative_error(out['pred1']['conf'][e], res1['conf'][0]) < 1e-5
    assert relative_error(out['pred2']['pts3d_in_other_view'][e], res2['pts3d_in_other_view'][0]) < 1e-5


def test_bad_arguments():
  with pytest.raises(ValueError, match='no pairs'):
    inference([], model=None)
  with pytest.raises(ValueError, match='batch_size=0'):
    inference([({}, {})], model=None, batch_size=0)
