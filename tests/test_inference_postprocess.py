"""Post-processing = DUSt3R's (mini-dust3r fixture, tools/make_postprocess_fixtures.py): clean_pointcloud and
segment_sky; the confidence threshold on the raw confidence."""
import numpy as np
import pytest

from dynadust3r_jax.inference.postprocess import clean_pointcloud, confidence_masks, segment_sky
from tests.conftest import FIXTURES


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(FIXTURES / 'postprocess_reference.npz'))


def test_clean_pointcloud_equals_dust3r(ref):
  got = clean_pointcloud(ref['conf'], ref['intrinsics'], ref['cam_to_world'], ref['depthmaps'], ref['pts3d'])
  changed = ref['cleaned'] != ref['conf']
  assert 0.2 < changed.mean() < 0.8                     # the scene exercises it: ~40% of the points clipped
  # the same points clipped to 0 (a point whose projection rounds at .5 could differ: none does here)
  np.testing.assert_array_equal(got, ref['cleaned'])


def test_clean_pointcloud_tolerance_and_bad_conf(ref):
  args = ref['conf'], ref['intrinsics'], ref['cam_to_world'], ref['depthmaps'], ref['pts3d']
  loose = clean_pointcloud(*args, tol=0.5)               # only points far in front count: fewer clipped
  assert (loose != ref['conf']).sum() < (ref['cleaned'] != ref['conf']).sum()
  floor = clean_pointcloud(*args, bad_conf=1.5)          # clipped to 1.5, never raised
  changed = floor != ref['conf']
  np.testing.assert_array_equal(floor[changed], 1.5)
  assert np.all(floor <= ref['conf'])
  with pytest.raises(ValueError, match='tol=1'):
    clean_pointcloud(*args, tol=1)


def test_segment_sky_equals_dust3r(ref):
  for k in range(2):
    mask = segment_sky(ref[f'sky_img{k}'])
    assert mask.dtype == bool and mask.sum() > 100
    np.testing.assert_array_equal(mask, ref[f'sky_mask{k}'])
    np.testing.assert_array_equal(segment_sky(np.uint8(255 * ref[f'sky_img{k}'])), ref[f'sky_mask{k}'])
  assert not segment_sky(np.zeros((16, 16, 3), np.float32)).any()   # no bright pixels, no sky


def test_confidence_masks_use_the_raw_confidence():
  conf = np.array([[[1.0, 2.9, 3.0, 3.1, 20.0]]])
  np.testing.assert_array_equal(confidence_masks(conf), [[[False, False, False, True, True]]])
  np.testing.assert_array_equal(confidence_masks(conf, 1.0), [[[False, True, True, True, True]]])
