"""The viser viewer on a synthetic output folder: scene nodes, GUI callbacks, and (slow) a headless browser."""
import json
import os
import shutil
import socket

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dynadust3r_jax import viewer

H, W, N = 8, 12, 3


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _write_out(root, motion_frame=1):
  """root/frames/frame_000i.npz as write_frames writes them (+ `motion` in one frame), summary.json; → arrays."""
  rng = np.random.default_rng(0)
  os.makedirs(os.path.join(root, 'frames'))
  frames = []
  for i in range(N):
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_euler('xyz', [0.1 * i, -0.2 * i, 0.05]).as_matrix()
    c2w[:3, 3] = [0.3 * i, -0.1, 0.2 * i]
    K = np.array([[10., 0, W / 2], [0, 11., H / 2], [0, 0, 1]])
    pm = rng.normal(size=(H, W, 3)).astype(np.float32)
    pm[..., 2] += 4
    pm[0, 0] = np.nan  # a non-finite point is never drawn
    conf = rng.uniform(1, 6, (H, W)).astype(np.float32)
    f = dict(depth=pm[..., 2].copy(), confidence=conf, mask=conf > 2, pointmap=pm,
             image=rng.integers(0, 256, (H, W, 3), dtype=np.uint8), cam_to_world=c2w, K=K,
             name=np.str_(f'img{i}.png'), orig_shape=np.array([2 * H, 2 * W]))
    if i == motion_frame:
      f['motion'] = rng.normal(scale=0.05, size=(H, W, 3)).astype(np.float32)
    np.savez(os.path.join(root, 'frames', f'frame_{i:04d}.npz'), **f)
    frames.append(f)
  with open(os.path.join(root, 'summary.json'), 'w') as fh:
    json.dump({'images': N, 'config': {'min_conf_thr': 2.0}}, fh)
  return frames


def _messages(server, kind, name):
  """The server's buffered messages (what a connecting browser receives) of class `kind` for node `name`."""
  buf = server._websock_server._broadcast_buffer
  return [m for m in buf.message_from_id.values() if type(m).__name__ == kind and getattr(m, 'name', None) == name]


def _expected(f, thr):
  keep = np.isfinite(f['pointmap']).all(-1) & (f['confidence'] > thr)
  return keep, f['pointmap'][keep], f['image'][keep]


@pytest.fixture
def out_dir(tmp_path):
  root = str(tmp_path / 'out')
  return root, _write_out(root)


@pytest.fixture
def running(out_dir):
  root, frames = out_dir
  server, scene, gui = viewer.serve(root, port=_free_port(), verbose=False)
  try:
    yield server, scene, gui, frames
  finally:
    server.stop()


def test_load_output(out_dir):
  root, frames = out_dir
  data = viewer.load_output(root)
  assert [f['name'] for f in data['frames']] == [f'frame_{i:04d}' for i in range(N)]
  assert [f['image_name'] for f in data['frames']] == [f'img{i}.png' for i in range(N)]
  assert ['motion' in f for f in data['frames']] == [False, True, False]
  np.testing.assert_array_equal(data['frames'][2]['pointmap'], frames[2]['pointmap'])
  assert data['summary']['config']['min_conf_thr'] == 2.0 and data['cameras'] is None
  # the frames/ folder itself works too; the state takes the job's threshold
  assert len(viewer.load_output(os.path.join(root, 'frames'))['frames']) == N
  assert viewer.default_state(data['frames'], data['summary']).min_conf == 2.0
  with pytest.raises(FileNotFoundError):
    viewer.load_output(os.path.join(root, 'missing'))


def test_scene_nodes(running):
  server, scene, gui, frames = running
  handles = server.scene._handle_from_node_name
  for i, f in enumerate(frames):
    keep, pts, rgb = _expected(f, 2.0)
    name = f'/frames/frame_{i:04d}/points'
    assert handles[name] is scene.points[i]
    np.testing.assert_array_equal(scene.points[i].points, pts)
    np.testing.assert_array_equal(scene.points[i].colors, rgb)
    (msg,) = _messages(server, 'PointCloudMessage', name)  # what a browser is sent
    assert msg.props.points.shape == (keep.sum(), 3) and keep.sum() < H * W - 1
    np.testing.assert_array_equal(msg.props.colors, rgb)
    # the camera: pose, field of view, aspect and its image
    cam = handles[f'/cameras/frame_{i:04d}']
    R = Rotation.from_quat(np.roll(cam.wxyz, -1)).as_matrix()
    np.testing.assert_allclose(R, f['cam_to_world'][:3, :3], atol=1e-6)
    np.testing.assert_allclose(cam.position, f['cam_to_world'][:3, 3], atol=1e-6)
    assert cam.fov == pytest.approx(2 * np.arctan(H / 2 / 11.)) and cam.aspect == pytest.approx(W / H)
    assert cam.image is not None and np.asarray(cam.image).shape == (H, W, 3)
    assert len(_messages(server, 'CameraFrustumMessage', f'/cameras/frame_{i:04d}')) == 1
  assert sum(n.startswith('/cameras/frame_') for n in handles) == N
  assert sum(n.endswith('/points') for n in handles) == N
  # motion: only frame 1 has it, segments from each drawn point to point + motion
  assert [m is not None for m in scene.motion] == [False, True, False]
  keep, pts, _ = _expected(frames[1], 2.0)
  seg = scene.motion[1].points
  np.testing.assert_allclose(seg[:, 0], pts)
  np.testing.assert_allclose(seg[:, 1], pts + frames[1]['motion'][keep], rtol=1e-6)
  assert len(_messages(server, 'LineSegmentsMessage', '/frames/frame_0001/motion')) == 1


def test_gui_updates_the_scene(running):
  server, scene, gui, frames = running
  # the confidence threshold
  gui['min_conf'].value = 4.5
  for i, f in enumerate(frames):
    _, pts, rgb = _expected(f, 4.5)
    np.testing.assert_array_equal(scene.points[i].points, pts)
    (msg,) = _messages(server, 'PointCloudMessage', f'/frames/frame_{i:04d}/points')
    assert msg.props.points.shape == pts.shape
  assert len(scene.motion[1].points) == len(_expected(frames[1], 4.5)[1])
  # colours by confidence: viridis of the confidence between its minimum and 99th percentile
  gui['color_by'].value = 'confidence'
  import matplotlib
  lo, hi = viewer.confidence_range(frames)
  keep, _, _ = _expected(frames[0], 4.5)
  t = np.clip((frames[0]['confidence'][keep] - lo) / (hi - lo), 0, 1)
  np.testing.assert_array_equal(scene.points[0].colors,
                                np.round(matplotlib.colormaps['viridis'](t)[:, :3] * 255).astype(np.uint8))
  gui['color_by'].value = 'image'
  np.testing.assert_array_equal(scene.points[0].colors, _expected(frames[0], 4.5)[2])
  # point size
  gui['point_size'].value = gui['point_size'].max
  assert all(p.point_size == pytest.approx(gui['point_size'].max) for p in scene.points)
  # the timeline: all frames, then the current one only
  assert all(p.visible for p in scene.points)
  gui['show'].value = 'current'
  gui['frame'].value = 2
  assert [p.visible for p in scene.points] == [False, False, True]
  assert not scene.motion[1].visible
  assert gui['image_name'].value == 'img2.png'
  assert tuple(scene.cameras[2].color) == viewer.CURRENT_CAMERA_COLOR
  assert tuple(scene.cameras[0].color) == viewer.CAMERA_COLOR
  (vis,) = _messages(server, 'SetSceneNodeVisibilityMessage', '/frames/frame_0000/points')
  assert vis.visible is False
  gui['frame'].value = 1
  assert [p.visible for p in scene.points] == [False, True, False] and scene.motion[1].visible
  gui['motion'].value = False
  assert not scene.motion[1].visible
  gui['show'].value = 'all'
  assert all(p.visible for p in scene.points)
  # play steps the frame; a frustum click selects its frame
  gui['play'].value = True
  assert gui['show'].value == 'current'
  viewer.step_play(gui, N)
  assert scene.state.frame == 2
  viewer.step_play(gui, N)
  assert scene.state.frame == 0
  scene.on_select(1)
  assert gui['frame'].value == 1 and scene.state.frame == 1
  gui['cameras'].value = False
  assert not any(c.visible for c in scene.cameras)


def test_main_parses_and_loads(out_dir, monkeypatch, capsys):
  root, _ = out_dir
  port = _free_port()
  started = {}

  def fake_serve(out, host, port, subsample):
    server, scene, gui = real_serve(out, host, port, subsample=subsample, verbose=False)
    started['server'], started['scene'] = server, scene
    gui['fps'].value = 30

    def stop_loop(*_):
      raise KeyboardInterrupt

    monkeypatch.setattr(viewer, 'step_play', stop_loop)
    return server, scene, gui

  real_serve = viewer.serve
  monkeypatch.setattr(viewer, 'serve', fake_serve)
  viewer.main([root, '--port', str(port), '--subsample', '2'])
  assert f'http://localhost:{started["server"].get_port()}' in capsys.readouterr().out
  assert started['scene'].state.subsample == 2
  keep, _, _ = _expected(started['scene'].frames[0], 2.0)
  assert len(started['scene'].points[0].points) == keep[::2, ::2].sum()


def _chromium():
  for name in ('chromium', 'chromium-browser', 'google-chrome'):
    path = shutil.which(name)
    if path:
      return path
  return None


@pytest.mark.slow
def test_page_renders_in_headless_chromium(running):
  """The page loads in a real headless browser, connects, and receives the scene (Debian chromium +
  playwright's python package, no downloaded browser build)."""
  playwright = pytest.importorskip('playwright.sync_api')
  exe = _chromium()
  if exe is None:
    pytest.skip('no chromium on PATH (apt-get install -y chromium)')
  server, scene, gui, frames = running
  url = f'http://127.0.0.1:{server.get_port()}'
  errors = []
  with playwright.sync_playwright() as p:
    browser = p.chromium.launch(executable_path=exe, headless=True,
                                args=['--no-sandbox', '--use-gl=swiftshader', '--enable-unsafe-swiftshader'])
    page = browser.new_page()
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector('canvas', timeout=60_000)
    for _ in range(120):  # the websocket client registers with the server
      if server.get_clients():
        break
      page.wait_for_timeout(500)
    assert len(server.get_clients()) == 1
    page.get_by_text('Min confidence').first.wait_for(timeout=30_000)  # the GUI panel arrived
    page.wait_for_timeout(2000)
    shot = page.screenshot(path=os.environ.get("VIEWER_SCREENSHOT"))
    browser.close()
  assert not errors, errors
  import io
  from PIL import Image
  pixels = np.asarray(Image.open(io.BytesIO(shot)).convert('RGB'), np.float32)
  assert pixels.std() > 10  # the canvas drew something (not a blank page)


def test_a_wrong_folder_is_one_line(tmp_path):
  with pytest.raises(SystemExit, match=f'viewer: no frames/frame_\\*.npz under {tmp_path}'):
    viewer.main([str(tmp_path)])
