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


def _sequential_clean(conf, K, c2w, depth, pts, tol=0.001, bad_conf=0.0):
  """DUSt3R's loop written out in numpy (images i, then cameras j, in order), for images of any sizes."""
  conf = [np.array(c, np.float32) for c in conf]
  for i in range(len(conf)):
    for j in range(len(conf)):
      if i == j:
        continue
      w2c = np.linalg.inv(c2w[j])
      cam = pts[i] @ w2c[:3, :3].T + w2c[:3, 3]
      uvw = cam @ K[j].T
      u, v = np.round(uvw[..., 0] / uvw[..., 2]), np.round(uvw[..., 1] / uvw[..., 2])
      h, w = depth[j].shape
      inside = (cam[..., 2] > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
      uu, vv = np.clip(u, 0, w - 1).astype(int), np.clip(v, 0, h - 1).astype(int)
      front = inside & (cam[..., 2] < (1 - tol) * depth[j][vv, uu]) & (conf[i] < conf[j][vv, uu])
      conf[i][front] = np.minimum(conf[i][front], bad_conf)
  return conf


def test_clean_pointcloud_of_images_of_different_sizes(ref):
  """Image 1 cropped at the bottom right (its K unchanged): per-image lists in and out, as the loop gives."""
  args = [list(ref[k]) for k in ('conf', 'intrinsics', 'cam_to_world', 'depthmaps', 'pts3d')]
  np.testing.assert_array_equal(_sequential_clean(*args), ref['cleaned'])        # the loop = DUSt3R
  h, w = ref['conf'].shape[1:]
  for k in (0, 3, 4):                                       # conf, depthmaps, pts3d of image 1
    args[k][1] = args[k][1][:h - 8, :w - 16]
  got = clean_pointcloud(*args)
  want = _sequential_clean(*args)
  assert [g.shape for g in got] == [c.shape for c in args[0]]
  for g, e in zip(got, want):
    np.testing.assert_array_equal(g, e)
  assert not np.array_equal(got[0], ref['cleaned'][0])      # image 0 sees less of image 1: fewer clipped


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
