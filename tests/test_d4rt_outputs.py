"""D4RT's outputs from queries (dynadust3r_jax/inference/d4rt.py, spec §8): on the tiny random network, the
chunked decoding with cached K/V equals one unchunked call of the network and the recomputed-K/V baseline, and
each output is the right slice of the network's per-query outputs; on a stub decode function that returns the
ground truth of a synthetic pinhole scene, extrinsics and intrinsics recover the cameras and the focal."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynadust3r_jax.inference import d4rt
from dynadust3r_jax.model.d4rt import build_d4rt, d4rt_config

CFG = d4rt_config('tiny', num_frames=4)
T, S = 4, CFG.img_size
AR = 1.3


@functools.lru_cache(maxsize=None)
def _setup():
  model = build_d4rt(CFG, 0)
  video = np.asarray(jax.random.uniform(jax.random.key(1), (T, S, S, 3), minval=-1, maxval=1))
  return model, video


def _reference(model, video, uv, qt):
  """One unchunked, unjitted call of the network."""
  out = model(jnp.asarray(video)[None], jnp.full((1,), AR), jnp.asarray(uv)[None], jnp.asarray(qt)[None])
  return {k: np.asarray(v[0]) for k, v in out.items()}


def test_query_grid():
  g = d4rt.query_grid(2, 4)
  np.testing.assert_allclose(g[:5], [[.125, .25], [.375, .25], [.625, .25], [.875, .25], [.125, .75]])
  assert g.shape == (8, 2) and g.dtype == np.float32


def test_chunked_equals_unchunked():
  model, video = _setup()
  rng = np.random.default_rng(0)
  uv = rng.uniform(size=(37, 2)).astype(np.float32)
  qt = rng.integers(0, T, size=(37, 3)).astype(np.int32)
  want = _reference(model, video, uv, qt)
  for chunk, cache_kv in ((5, True), (37, True), (64, True), (8, False)):
    got = d4rt.Decoder(model, video, AR, chunk=chunk, cache_kv=cache_kv)(uv, qt)
    assert set(got) == set(want)
    for k in want:
      assert got[k].shape == want[k].shape, k
      np.testing.assert_allclose(np.asarray(got[k]), want[k], atol=1e-5, rtol=1e-5, err_msg=f'{k} chunk {chunk}')


def test_outputs_are_the_queries_outputs():
  """Each output function equals the matching queries' outputs (checked on a few entries; the queries decoded
  by a Decoder, the network's own outputs by the test above)."""
  model, video = _setup()
  dec = d4rt.Decoder(model, video, AR, chunk=5)    # the chunk sizes of the test above: no new compiles

  def _reference(model, video, uv, qt):
    return {k: np.asarray(v) for k, v in dec(uv, qt).items()}
  h, w = 6, 5
  depth = d4rt.depth_maps(dec, video, h=h, w=w)
  np.testing.assert_allclose(depth, d4rt.depth_maps(model, video, AR, h, w, chunk=37), atol=1e-5, rtol=1e-5)
  pts, conf = d4rt.point_cloud(dec, video, h=h, w=w, reference_frame=2)
  uv_grid = d4rt.query_grid(h, w)
  q = [(1, 3, 4), (3, 0, 0), (0, 5, 2)]    # (t, i, j)
  uv = np.stack([uv_grid[i * w + j] for _, i, j in q])
  ref = _reference(model, video, np.concatenate([uv, uv]),
                   np.array([[t, t, t] for t, _, _ in q] + [[t, t, 2] for t, _, _ in q], np.int32))
  np.testing.assert_allclose([depth[t, i, j] for t, i, j in q], ref['xyz'][:3, 2], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose([pts[t, i, j] for t, i, j in q], ref['xyz'][3:], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose([conf[t, i, j] for t, i, j in q], ref['conf'][3:], atol=1e-5, rtol=1e-4)
  assert depth.shape == (T, h, w) and pts.shape == (T, h, w, 3)

  track_uv = np.array([[.3, .6], [.9, .1], [.5, .5]], np.float32)
  src = np.array([0, 2, 3])
  xyz, vis = d4rt.tracks(dec, video, query_uv=track_uv, t_src=src)
  assert xyz.shape == (T, 3, 3) and vis.shape == (T, 3) and vis.dtype == bool
  qt = np.array([[s, t, t] for t in range(T) for s in src], np.int32)
  ref = _reference(model, video, np.tile(track_uv, (T, 1)), qt)
  np.testing.assert_allclose(xyz.reshape(-1, 3), ref['xyz'], atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(vis.ravel(), ref['vis_logit'] > 0)


# --- a stub decode function: the ground truth of a static pinhole scene ------------------------------------


def _rotation(rng):
  q = rng.normal(size=4)
  a, b, c, d = q / np.linalg.norm(q)
  return np.array([[a*a + b*b - c*c - d*d, 2*(b*c - a*d), 2*(b*d + a*c)],
                   [2*(b*c + a*d), a*a - b*b + c*c - d*d, 2*(c*d - a*b)],
                   [2*(b*d - a*c), 2*(c*d + a*b), a*a - b*b - c*c + d*d]])


class PinholeScene:
  """decode(query_uv, query_t): the point seen at (u, v) in frame t_src (depth 2 + sin(3u) cos(2v) along the
  ray of focal (fx, fy), principal point (0.5, 0.5)), static, in camera t_cam: xyz = R_j X + t_j, with the
  known world-to-camera (R_j, t_j); confidences positive and varied."""

  def __init__(self, num_frames=5, focal=(1.1, 0.8), seed=0):
    rng = np.random.default_rng(seed)
    self.num_frames, self.focal = num_frames, np.array(focal)
    self.rot = np.stack([_rotation(rng) if j else np.eye(3) for j in range(num_frames)])
    self.trans = rng.normal(size=(num_frames, 3)) * 0.5

  def camera_to_world(self, j):
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = self.rot[j].T, -self.rot[j].T @ self.trans[j]
    return pose

  def __call__(self, query_uv, query_t):
    uv, qt = np.asarray(query_uv, np.float64), np.asarray(query_t)
    depth = 2 + np.sin(3 * uv[:, 0]) * np.cos(2 * uv[:, 1])
    cam_src = np.concatenate([(uv - 0.5) / self.focal, np.ones((len(uv), 1))], -1) * depth[:, None]
    src, cam = qt[:, 0], qt[:, 2]
    world = np.einsum('qji,qj->qi', self.rot[src], cam_src - self.trans[src])   # R^T (x - t)
    xyz = np.einsum('qij,qj->qi', self.rot[cam], world) + self.trans[cam]
    conf = 1.5 + np.cos(7 * uv[:, 0] + 5 * uv[:, 1] + qt[:, 2])
    return {'xyz': xyz.astype(np.float32), 'conf': conf.astype(np.float32),
            'vis_logit': np.ones(len(uv), np.float32)}


@pytest.mark.parametrize('reference', [0, 3])
def test_extrinsics_recovers_the_cameras(reference):
  scene = PinholeScene()
  poses = d4rt.extrinsics(scene, None, grid=8, reference=reference)
  world_to_ref = np.linalg.inv(scene.camera_to_world(reference))
  want = np.stack([world_to_ref @ scene.camera_to_world(j) for j in range(scene.num_frames)])
  assert poses.shape == (scene.num_frames, 4, 4)
  np.testing.assert_allclose(poses, want, atol=1e-4)
  np.testing.assert_allclose(poses[reference], np.eye(4), atol=1e-5)


def test_intrinsics_recovers_the_focal():
  scene = PinholeScene()
  f = d4rt.intrinsics(scene, np.zeros((scene.num_frames, 1, 1, 3)), grid=16)
  assert f.shape == (scene.num_frames, 2)
  np.testing.assert_allclose(f, np.broadcast_to(scene.focal, f.shape), atol=1e-4)


def test_tracks_and_depth_of_the_stub():
  """The stub through tracks / depth_maps: a static point's camera-space track is R_t X + t_t."""
  scene = PinholeScene()
  uv = np.array([[.2, .7], [.6, .4]], np.float32)
  xyz, vis = d4rt.tracks(scene, None, query_uv=uv, t_src=1)
  world = (scene.camera_to_world(1) @ np.concatenate([scene(uv, [[1, 1, 1]] * 2)['xyz'], np.ones((2, 1))], -1).T).T
  for t in range(scene.num_frames):
    np.testing.assert_allclose(xyz[t], world[:, :3] @ scene.rot[t].T + scene.trans[t], atol=1e-4)
  assert vis.all()
  depth = d4rt.depth_maps(scene, np.zeros((scene.num_frames, 3, 2, 3)))
  np.testing.assert_allclose(depth[0], (2 + np.sin(3 * d4rt.query_grid(3, 2)[:, 0]) *
                                        np.cos(2 * d4rt.query_grid(3, 2)[:, 1])).reshape(3, 2), atol=1e-6)


class _StillCamera:
  """decode: every frame seen by one camera, so pixel (u, v) stays at (u, v); visible in all frames, or only in
  its source frame (only_source)."""
  num_frames = 4

  def __init__(self, only_source=False):
    self.only_source = only_source

  def __call__(self, query_uv, query_t):
    uv, qt = np.asarray(query_uv, np.float32), np.asarray(query_t)
    vis = np.where(self.only_source & (qt[:, 0] != qt[:, 1]), -1.0, 1.0)
    return {'xyz': np.concatenate([uv, np.ones((len(uv), 1))], -1), 'uv': uv, 'vis_logit': vis}


@pytest.mark.parametrize('only_source, tracks_needed', [(False, 6 * 5), (True, 4 * 6 * 5)])
def test_dense_tracks_visit_every_cell_once(only_source, tracks_needed):
  """Alg. 1: with one draw per round, a pixel visible in all 4 frames is tracked once (4x fewer queries than
  T²hw), one visible only in its own frame once per frame (the naive count)."""
  out = d4rt.dense_tracks(_StillCamera(only_source), None, h=6, w=5, batch=1)
  assert len(out['source_t']) == tracks_needed and out['num_queries'] == tracks_needed * 4
  cells = {(t, round(u * 5 - .5), round(v * 6 - .5)) for (u, v), t in zip(out['source_uv'], out['source_t'])}
  assert len(cells) == tracks_needed                              # no cell drawn twice
  np.testing.assert_allclose(out['uv'], np.broadcast_to(out['source_uv'], out['uv'].shape))
  assert out['visible'].all() != only_source
  batched = d4rt.dense_tracks(_StillCamera(only_source), None, h=6, w=5, batch=7)
  assert len(batched['source_t']) >= tracks_needed                # a round may draw two cells of one track
