"""The reconstruct job with a D4RT checkpoint on a video: the same exports as for DUSt3R, plus next-frame motion,
from overlapping clips joined by Sim(3) (the geometry itself is tested on exact queries in test_d4rt_scene.py)."""
import json

import numpy as np
import pytest

from configs import reconstruct as reconstruct_config
from dynadust3r_jax.inference.reconstruct import reconstruct
from tests.colmap_readers import pycolmap_read
from tests.conftest import FIXTURES


@pytest.fixture(scope='module')
def d4rt_checkpoint(tmp_path_factory):
  """The tiny VideoMAE fixture converted into a tiny D4RT (8-frame clips; random decoder)."""
  from dynadust3r_jax.convert.checkpoint import convert
  out = tmp_path_factory.mktemp('d4rt') / 'tiny'
  convert(str(FIXTURES / 'videomae_tiny_hf'), str(out), model='tiny')
  return str(out)


def test_video_with_a_d4rt_checkpoint(d4rt_checkpoint, tmp_path):
  from data import synthetic
  synthetic.write_clips(str(tmp_path / 'clips'), 'test', 1, 24, size=64, seed=0)
  c = reconstruct_config.get_config()
  c.checkpoint, c.inputs = d4rt_checkpoint, f'{tmp_path}/clips/lefteye-perspective/test/*.mp4'
  c.image_size, c.square_ok, c.max_frames, c.min_conf_thr = 64, True, 12, 1.0
  c.d4rt.overlap, c.d4rt.grid = 4, 8
  out = tmp_path / 'out'
  summary = reconstruct(c, str(out))
  assert summary['model'] == 'D4RT' and summary['images'] == 12 and summary['pairs'] == 0
  assert summary['clips'] == [[0, 8], [4, 12]] and summary['clip_scales'][0] == 1.0
  assert list(summary['seconds']) == ['model', 'images', 'd4rt', 'postprocess', 'exports']
  assert set(summary['exports']) >= {'cameras', 'colmap', 'glb', 'ply', 'transforms', 'tum', 'intrinsics', 'frames',
                                     'motion'}
  cameras = json.loads((out / 'cameras.json').read_text())
  assert len(cameras) == 12
  first = cameras[sorted(cameras)[0]]
  np.testing.assert_allclose(first['cam_to_world'], np.eye(4), atol=1e-5)  # the world is frame 0's camera
  assert first['width'] == first['height'] == 64
  model = pycolmap_read(out / 'colmap')
  assert len(model['images']) == 12
  frame = np.load(out / 'frames' / 'frame_0003.npz')
  assert frame['depth'].shape == (64, 64) and np.isfinite(frame['pointmap']).all()
  assert frame['motion'].shape == (64, 64, 3) and np.abs(frame['motion']).sum() > 0
  index = json.loads((out / 'motion' / 'index.json').read_text())
  assert index['motion_target'] == list(range(1, 12)) + [-1]


def test_known_cameras_are_refused_for_d4rt(d4rt_checkpoint, tmp_path):
  c = reconstruct_config.get_config()
  c.checkpoint, c.inputs, c.known_cameras = d4rt_checkpoint, str(FIXTURES / 'inference_images'), 'cams.json'
  with pytest.raises(ValueError, match='config.known_cameras=cams.json: known cameras are used by the global'):
    reconstruct(c, str(tmp_path / 'r'))
