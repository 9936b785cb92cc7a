"""D4RT's video reconstruction (inference/d4rt_scene.py) on ground-truth queries: a moving plane seen by a moving
camera, answered in each clip's own random scale, comes back as one consistent scene (poses, K, depth, points,
motion) after the clips' similarity alignment."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dynadust3r_jax.inference import d4rt_scene

H, W, F = 12, 16, 0.8          # processed view size, normalised focal
VELOCITY = np.array([0.0, 0.0, 0.02])  # the plane's motion per frame (world)


def _cameras(n):
  c2w = np.tile(np.eye(4), (n, 1, 1))
  for t in range(n):
    c2w[t, :3, :3] = Rotation.from_euler('yx', [0.02 * t, -0.01 * t]).as_matrix()
    c2w[t, :3, 3] = [0.05 * t, 0.01 * t, 0.03 * np.sin(t)]
  return c2w


def _oracle(n, seed=0):
  """open_clip(frame ids) → decode of exact geometry: the plane z = 4 + 0.02 t, each clip in its own scale."""
  c2w, rng = _cameras(n), np.random.default_rng(seed)
  w2c = np.linalg.inv(c2w)

  def open_clip(ids):
    scale = rng.uniform(0.5, 2.0)
    open_clip.scales.append(scale)

    def decode(uv, qt):
      src, tgt, cam = (ids[qt[:, k]] for k in range(3))
      ray = np.stack([(uv[:, 0] - 0.5) / F, (uv[:, 1] - 0.5) / F, np.ones(len(uv))], -1)
      ray = np.einsum('qij,qj->qi', c2w[src, :3, :3], ray)
      centre = c2w[src, :3, 3]
      lam = (4 + 0.02 * src - centre[:, 2]) / ray[:, 2]
      X = centre + lam[:, None] * ray + (tgt - src)[:, None] * VELOCITY
      xyz = np.einsum('qij,qj->qi', w2c[cam, :3, :3], X) + w2c[cam, :3, 3]
      conf = 1.5 + uv[:, 0]                       # varies, so the top-85% selection is exercised
      return {'xyz': scale * xyz, 'conf': conf, 'vis_logit': np.ones(len(uv))}
    decode.num_frames = len(ids)
    return decode
  open_clip.scales, open_clip.num_frames = [], 8
  return open_clip, c2w


def _views(n):
  rng = np.random.default_rng(1)
  return [{'img': rng.uniform(-1, 1, (1, H, W, 3)).astype(np.float32), 'true_shape': np.array([[H, W]])}
          for _ in range(n)]


@pytest.mark.parametrize('n', [20, 5])   # four clips of 8 (the last shifted back), and one padded clip
def test_clips_aligned_into_one_scene(n):
  open_clip, c2w = _oracle(n)
  scene = d4rt_scene.reconstruct_views(open_clip, _views(n), overlap=3, grid=8)
  assert scene.clips == ([(0, 8), (5, 13), (10, 18), (12, 20)] if n == 20 else [(0, 5)])
  s0 = open_clip.scales[0]                                 # the scene keeps clip 0's scale
  np.testing.assert_allclose(scene.clip_scales, s0 / np.array(open_clip.scales), rtol=1e-6)
  rel = np.linalg.inv(c2w[0]) @ c2w                        # GT poses in camera 0's frame
  np.testing.assert_allclose(scene.cam_to_world[:, :3, :3], rel[:, :3, :3], atol=1e-5)
  np.testing.assert_allclose(scene.cam_to_world[:, :3, 3], s0 * rel[:, :3, 3], atol=1e-5 * s0)
  np.testing.assert_allclose(scene.intrinsics[:, 0], np.tile([F * W, 0, W / 2 - 0.5], (n, 1)), atol=1e-4)
  np.testing.assert_allclose(scene.intrinsics[:, 1], np.tile([0, F * H, H / 2 - 0.5], (n, 1)), atol=1e-4)
  # depth and points: unprojecting the depth with K and the pose gives the points (one scale for all clips)
  v, u = np.mgrid[:H, :W]
  K = scene.intrinsics[0]
  rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, float)], -1)
  for t in range(n):
    cam = rays * scene.depthmaps[t][..., None]
    world = cam @ scene.cam_to_world[t, :3, :3].T + scene.cam_to_world[t, :3, 3]
    np.testing.assert_allclose(world, scene.pts3d[t], atol=2e-4 * s0)
  np.testing.assert_allclose(scene.pts3d[..., 2].min(), s0 * 3.0, rtol=0.5)  # the plane in front, at scale s0
  # motion: the plane's velocity in camera 0's frame, at s0, for every frame but the last
  expected = s0 * c2w[0, :3, :3].T @ VELOCITY
  np.testing.assert_allclose(np.stack(scene.motion[:-1]), np.broadcast_to(expected, (n - 1, H, W, 3)), atol=1e-5)
  assert list(scene.motion_target) == list(range(1, n)) + [-1]
  records = d4rt_scene.motion_records(scene)
  assert [(r['src'], r['dst']) for r in records] == [(t, t + 1) for t in range(n - 1)]


def test_clip_starts_and_errors():
  assert d4rt_scene.clip_starts(48, 48, 12) == [0]
  assert d4rt_scene.clip_starts(100, 48, 12) == [0, 36, 52]
  with pytest.raises(ValueError, match='overlap=8 must be in'):
    d4rt_scene.clip_starts(100, 8, 8)
  views = _views(2)
  views[1] = {'img': np.zeros((1, 8, 8, 3), np.float32), 'true_shape': np.array([[8, 8]])}
  with pytest.raises(ValueError, match='one processed size'):
    d4rt_scene.reconstruct_views(_oracle(2)[0], views)
