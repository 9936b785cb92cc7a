"""The posed-images layout (data/posed_scenes.py) on folders written by hand as its docstring describes:
every field read back, the reconstruct job's cameras.json accepted, and one LayoutError per mistake."""
import json

import cv2
import numpy as np
import PIL.Image
import pytest

from data import posed_scenes
from data.sequence import LayoutError

H, W = 12, 16


def _camera(i):
  K = np.array([[20.0 + i, 0, 8.0], [0, 21.0, 6.0], [0, 0, 1]])    # pixel-edge convention (COLMAP)
  R = cv2.Rodrigues(np.array([0.1 * i, -0.2, 0.05]))[0]
  c2w = np.eye(4)
  c2w[:3, :3], c2w[:3, 3] = R, [i, 2.0 - i, 0.5]
  return K, c2w


def _image(i):
  y, x = np.mgrid[:H, :W]
  return np.stack([x * 10, y * 15, np.full_like(x, 30 * i)], -1).astype(np.uint8)


def _write_scene(scene_dir, names, masks=(), extra=None):
  (scene_dir / 'images').mkdir(parents=True)
  (scene_dir / 'depth').mkdir()
  cameras = {}
  for i, name in enumerate(names):
    file_name = name if name.lower().endswith(('.jpg', '.png')) else name + '.png'
    PIL.Image.fromarray(_image(i)).save(scene_dir / 'images' / file_name)
    stem = file_name.rsplit('.', 1)[0]
    depth = np.full((H, W), 1.5 + i, np.float32)
    depth[0, :3] = [0, np.nan, -1]
    np.save(scene_dir / 'depth' / f'{stem}.npy', depth)
    K, c2w = _camera(i)
    cameras[name] = {'index': i, 'K': K.tolist(), 'cam_to_world': c2w.tolist(), 'width': W, 'height': H,
                     'world_to_cam': np.linalg.inv(c2w).tolist(), **(extra or {})}
  for stem in masks:
    (scene_dir / 'masks').mkdir(exist_ok=True)
    mask = np.zeros((H, W), np.uint8)
    mask[4:, 5:] = 255
    mask[0, 0] = 20                                                 # 20/255 < 0.1: background
    cv2.imwrite(str(scene_dir / 'masks' / f'{stem}.png'), mask)
  (scene_dir / 'cameras.json').write_text(json.dumps(cameras))
  return cameras


@pytest.fixture
def root(tmp_path):
  root = tmp_path / 'data'
  _write_scene(root / 'kitchen', ['b.png', 'a.png', 'c.png'], masks=['a'])
  _write_scene(root / 'garden', ['video_000001', 'video_000000'])          # keys without extension
  (root / '.cache').mkdir()                                                 # hidden: not a scene
  return root


def test_every_field(root):
  assert posed_scenes.sequence_names(str(root)) == ['garden', 'kitchen']
  scene = root / 'kitchen'
  assert posed_scenes.frame_names(str(scene)) == ['a.png', 'b.png', 'c.png']
  frame = posed_scenes.read_frame(str(scene), 'a.png')
  assert set(frame) == {'image', 'depth', 'mask', 'K', 'c2w'}
  np.testing.assert_array_equal(frame['image'], _image(1))              # a.png was written second
  assert frame['image'].dtype == np.uint8 and frame['image'].shape == (H, W, 3)
  assert frame['depth'].dtype == np.float32
  np.testing.assert_array_equal(frame['depth'][0, :4], [0, 0, 0, 2.5])  # 0, NaN, negative → 0
  assert np.all(frame['depth'][1:] == 2.5)
  expected = np.zeros((H, W), bool)
  expected[4:, 5:] = True
  np.testing.assert_array_equal(frame['mask'], expected)
  K, c2w = _camera(1)
  np.testing.assert_allclose(frame['K'], K - [[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]])   # pixel-index convention
  np.testing.assert_allclose(frame['c2w'], c2w)
  assert posed_scenes.read_frame(str(scene), 'b.png')['mask'] is None   # no mask file
  video = posed_scenes.read_frame(str(root / 'garden'), 'video_000000')
  np.testing.assert_array_equal(video['image'], _image(1))


def test_load_sequence(root):
  seq = posed_scenes.load_sequence(str(root), 'kitchen')
  assert seq.dataset == 'posed_scenes' and seq.name == 'kitchen' and seq.frames == ['a.png', 'b.png', 'c.png']
  for t, i in enumerate([1, 0, 2]):
    K, c2w = _camera(i)
    np.testing.assert_allclose(seq.intrinsics[t], K - [[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]])
    np.testing.assert_allclose(seq.world_to_camera[t], np.linalg.inv(c2w), atol=1e-12)
    np.testing.assert_array_equal(seq.load_image(t), _image(i))
    assert seq.load_depth(t)[5, 5] == pytest.approx(1.5 + i)


def test_reconstruct_cameras_json_is_accepted(tmp_path):
  """The reconstruct job's writer's own fields (K_processed, ...) are ignored; its K and cam_to_world used."""
  _write_scene(tmp_path / 's', ['x.jpg', 'y.jpg'],
               extra={'K_processed': np.eye(3).tolist(), 'processed_width': 8, 'processed_height': 6})
  frame = posed_scenes.read_frame(str(tmp_path / 's'), 'y.jpg')
  np.testing.assert_allclose(frame['c2w'], _camera(1)[1])
  assert np.abs(frame['image'].astype(int) - _image(1)).mean() < 8   # JPEG


def _error(fn, *args):
  with pytest.raises(LayoutError) as info:
    fn(*args)
  return str(info.value)


def test_errors_name_the_path_and_the_layout(root, tmp_path):
  scene = root / 'kitchen'
  assert 'no such folder' in _error(posed_scenes.sequence_names, str(tmp_path / 'missing'))
  empty = tmp_path / 'empty_root'
  empty.mkdir()
  assert 'no scene folders' in _error(posed_scenes.sequence_names, str(empty))
  (root / 'loose').mkdir()
  message = _error(posed_scenes.sequence_names, str(root))
  assert str(root / 'loose' / 'cameras.json') in message and 'cameras.json {NAME' in message
  (root / 'loose').rmdir()
  assert 'no such scene folder' in _error(posed_scenes.load_sequence, str(root), 'attic')

  (scene / 'images' / 'c.png').unlink()
  message = _error(posed_scenes.load_sequence, str(root), 'kitchen')
  assert str(scene / 'images' / 'c.png') in message and "frame 'c.png'" in message
  (scene / 'depth' / 'b.npy').unlink()
  assert str(scene / 'depth' / 'b.npy') in _error(posed_scenes.read_frame, str(scene), 'b.png')
  assert "no frame 'd.png'" in _error(posed_scenes.read_frame, str(scene), 'd.png')

  np.save(scene / 'depth' / 'a.npy', np.ones((H, W + 1), np.float32))
  message = _error(posed_scenes.read_frame, str(scene), 'a.png')
  assert str(scene / 'depth' / 'a.npy') in message and f'(H, W) = {(H, W)}' in message
  np.save(scene / 'depth' / 'a.npy', np.ones((H, W, 1), np.float32))
  assert 'expected (H, W) float' in _error(posed_scenes.read_frame, str(scene), 'a.png')
  (scene / 'depth' / 'a.npy').write_text('not an array')
  assert 'not a .npy array' in _error(posed_scenes.read_frame, str(scene), 'a.png')

  garden = root / 'garden'
  (garden / 'images' / 'video_000000.png').write_bytes(b'garbage')
  assert 'not a readable image' in _error(posed_scenes.read_frame, str(garden), 'video_000000')


@pytest.mark.parametrize('cameras, problem', [
    ('[1, 2]', 'not a non-empty'),
    ('{}', 'not a non-empty'),
    ('{"a.png": {"K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}', 'lacks "K" or "cam_to_world"'),
    ('{"a.png": {"K": [[1, 0], [0, 1]], "cam_to_world": %s}}' % np.eye(4).tolist(), 'expected (3, 3), (4, 4)'),
    ('{"a.png": {"K": "K", "cam_to_world": "c"}}', 'not numeric arrays'),
    ('{"a.png": {"K": [[1, 0, 0], [0, NaN, 0], [0, 0, 1]], "cam_to_world": %s}}' % np.eye(4).tolist(), 'non-finite'),
    ('{"a.png": {"K": %s, "cam_to_world": %s}}' % (np.eye(3).tolist(), (2 * np.eye(4)).tolist()), 'not rigid'),
    ('{"a.png": {"K": %s, "cam_to_world": %s}, "a.jpg": {"K": %s, "cam_to_world": %s}}'
     % ((np.eye(3).tolist(), np.eye(4).tolist()) * 2), 'share depth/a.npy'),
    ('{not json', 'not JSON'),
])
def test_bad_cameras_json(tmp_path, cameras, problem):
  scene = tmp_path / 's'
  scene.mkdir()
  (scene / 'cameras.json').write_text(cameras)
  message = _error(posed_scenes.frame_names, str(scene))
  assert problem in message and str(scene / 'cameras.json') in message and 'data/posed_scenes.py' in message


def test_size_mismatch_with_cameras_json(tmp_path):
  _write_scene(tmp_path / 's', ['a.png'], extra={'width': W + 2})
  message = _error(posed_scenes.read_frame, str(tmp_path / 's'), 'a.png')
  assert f'{W + 2} × {H}' in message and f'is {W} × {H}' in message
