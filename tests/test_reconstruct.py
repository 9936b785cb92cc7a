"""The reconstruct job end to end (a converted test checkpoint on a folder of images, on two images, on a
video), and the user errors it ends in one message."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from configs import reconstruct as reconstruct_config
from convert_weights import convert
from dynadust3r_jax.inference.reconstruct import reconstruct
from tests.colmap_readers import pycolmap_read
from tests.conftest import FIXTURES

ROOT = Path(__file__).parents[1]
IMAGES = FIXTURES / 'inference_images'
STAGES = ['model', 'images', 'pairs', 'inference', 'alignment', 'postprocess', 'exports']


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
  out = tmp_path_factory.mktemp('ckpt') / 'tiny_dpt'
  convert(str(FIXTURES / 'shared' / 'dust3r_tiny_dpt.pth'), str(out))
  return str(out)


def _config(checkpoint, inputs, **overrides):
  c = reconstruct_config.get_config()
  c.checkpoint, c.inputs, c.image_size, c.align.niter = checkpoint, str(inputs), 224, 20
  for k, v in overrides.items():
    node = c
    *parents, leaf = k.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = v
  return c


def test_folder_of_images(checkpoint, tmp_path):
  summary = reconstruct(_config(checkpoint, IMAGES, scene_graph='swin-2'), str(tmp_path))
  assert summary['images'] == 5 and summary['pairs'] == 20 and summary['image_shapes'] == [[224, 224]]
  assert list(summary['seconds']) == STAGES and summary['peak_host_rss_bytes'] > 0
  assert summary['losses'][1] < summary['losses'][0]                # the alignment lowered its loss
  assert json.loads((tmp_path / 'summary.json').read_text())['pairs'] == 20
  cameras = json.loads((tmp_path / 'cameras.json').read_text())
  assert sorted(cameras) == sorted(p.name for p in IMAGES.iterdir())
  assert (cameras['a_landscape.png']['width'], cameras['a_landscape.png']['height']) == (600, 360)  # original size
  model = pycolmap_read(tmp_path / 'colmap')
  assert len(model['images']) == 5 and len(model['points3D']) > 0
  for image in model['images'].values():                          # COLMAP's centres = cameras.json's
    centre = np.asarray(cameras[image['name']]['cam_to_world'])[:3, 3]
    np.testing.assert_allclose(image['center'], centre, atol=1e-4)
  assert (tmp_path / 'scene.glb').stat().st_size > 0 and len(list((tmp_path / 'frames').iterdir())) == 5
  transforms = json.loads((tmp_path / 'transforms.json').read_text())
  for frame in transforms['frames']:                              # the images it names, at the size it says
    with PIL.Image.open(tmp_path / frame['file_path']) as image:
      assert image.size == (frame['w'], frame['h'])


def test_two_images_use_pair_viewer_and_one_image_is_duplicated(checkpoint, tmp_path):
  two = reconstruct(_config(checkpoint, f'{IMAGES}/[ab]_*', exports=('cameras',)), str(tmp_path / 'two'))
  assert two['images'] == 2 and two['pairs'] == 2 and two['losses'] == []       # no optimisation
  one = reconstruct(_config(checkpoint, IMAGES / 'c_square.png', exports=('cameras', 'transforms')),
                    str(tmp_path / 'one'))
  assert one['images'] == 2 and one['pairs'] == 2
  for frame in json.loads((tmp_path / 'one' / 'transforms.json').read_text())['frames']:  # the copy too
    with PIL.Image.open(tmp_path / 'one' / frame['file_path']) as image:
      assert image.size == (frame['w'], frame['h']) == (200, 200)
  poses = [np.asarray(c['cam_to_world']) for c in json.loads((tmp_path / 'one' / 'cameras.json').read_text()).values()]
  np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-6)       # the reference camera of the pair


def test_video_glob(checkpoint, tmp_path):
  from data import synthetic
  synthetic.write_clips(str(tmp_path / 'clips'), 'test', 1, 12, size=64, seed=0)
  summary = reconstruct(_config(checkpoint, f'{tmp_path}/clips/lefteye-perspective/test/*.mp4', frame_stride=3,
                                scene_graph='swin-1', exports=('cameras', 'tum')), str(tmp_path / 'out'))
  assert summary['inputs'].endswith('-left_rectified.mp4') and summary['images'] == 4   # frames 0, 3, 6, 9
  assert len((tmp_path / 'out' / 'poses_tum.txt').read_text().splitlines()) == 4
  assert sorted(json.loads((tmp_path / 'out' / 'cameras.json').read_text()))[0].endswith('_000000.png')


@pytest.mark.parametrize('overrides,message', [  # 'complete' over the 5 images unless said
    (dict(inputs='EMPTY'), 'no images'),
    (dict(scene_graph='star'), "unknown scene_graph='star'"),
    (dict(**{'align.memory_budget_gb': 1e-4}), "config.scene_graph='complete': 20 pairs of 5 images need"),
    (dict(known_cameras='/nonexistent.json'), '/nonexistent.json: cannot read the known cameras'),
])
def test_user_errors(checkpoint, tmp_path, overrides, message):
  (tmp_path / 'EMPTY').mkdir()
  inputs = tmp_path / overrides.pop('inputs') if 'inputs' in overrides else IMAGES
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    reconstruct(_config(checkpoint, inputs, **overrides), str(tmp_path / 'out'))


def test_croco_checkpoint_is_one_line(tmp_path):
  convert(str(FIXTURES / 'croco_tiny.pth'), str(tmp_path / 'croco'))
  out = subprocess.run([sys.executable, 'main.py', '--config=configs/reconstruct.py', f'--workdir={tmp_path}/w',
                        f'--config.checkpoint={tmp_path}/croco', f'--config.inputs={IMAGES}'], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode != 0 and 'Traceback' not in out.stderr
  assert out.stderr.strip().splitlines()[-1] == (f'main.py: config.checkpoint={tmp_path}/croco: a CroCo v2 '
                                                 '(pretraining) network has no 3D head; give a DUSt3R or '
                                                 'DynaDUSt3R checkpoint')


def test_known_cameras_are_kept(checkpoint, tmp_path):
  """Known intrinsics (original size) and poses from a cameras.json-format file stay as given."""
  inputs = f'{IMAGES}/[abc]_*'
  reconstruct(_config(checkpoint, inputs, exports=('cameras',)), str(tmp_path / 'first'))
  first = json.loads((tmp_path / 'first' / 'cameras.json').read_text())
  known = {name: {'K': (np.asarray(c['K']) * [[1.1], [1.1], [1]]).tolist()} for name, c in first.items()}
  known['a_landscape.png']['cam_to_world'] = first['a_landscape.png']['cam_to_world']
  known['b_portrait.jpg']['cam_to_world'] = first['b_portrait.jpg']['cam_to_world']
  (tmp_path / 'known.json').write_text(json.dumps(known))
  reconstruct(_config(checkpoint, inputs, exports=('cameras',), known_cameras=str(tmp_path / 'known.json')),
              str(tmp_path / 'second'))
  second = json.loads((tmp_path / 'second' / 'cameras.json').read_text())
  for name, entry in known.items():
    np.testing.assert_allclose(second[name]['K'], entry['K'], rtol=1e-4)     # focal 10% longer, as given
    if 'cam_to_world' in entry:
      np.testing.assert_allclose(second[name]['cam_to_world'], entry['cam_to_world'], atol=1e-4)
  with pytest.raises(ValueError, match="unknown names \\['nope.png'\\]"):
    (tmp_path / 'bad.json').write_text(json.dumps({'nope.png': {}}))
    reconstruct(_config(checkpoint, inputs, known_cameras=str(tmp_path / 'bad.json')), str(tmp_path / 'third'))
