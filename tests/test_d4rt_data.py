"""D4RT training examples from Stereo4D-format clips (data/d4rt.py; spec d4rt.md §12.8 sanity checks)."""
import warnings

import cv2
import numpy as np
import pytest

from data import d4rt, pipeline, predecoded, synthetic
from data.stereo4d import intrinsics as pixel_intrinsics
from data.stereo4d import load_clip, world_to_camera
from dynadust3r_jax.common.geometry import umeyama
from tests.broken_clips import BrokenCopy

SIZE, FRAMES = 64, 24                                 # the synthetic clips
SMALL = dict(num_frames=8, size=32, num_queries=256)  # the examples
F_UNCROPPED = 0.5 / np.tan(np.deg2rad(30))            # 0.8660: Stereo4D's 60° hfov


@pytest.fixture(scope='module')
def root(tmp_path_factory):
  out = tmp_path_factory.mktemp('stereo4d_d4rt')
  synthetic.write_clips(str(out), 'train', num_clips=3, num_frames=FRAMES, size=SIZE, seed=0)
  return out


@pytest.fixture(scope='module')
def clips(root):
  return pipeline.Mp4Clips(pipeline.find_clips(str(root), 'train'))


def _batch(clips, index=0, batch_size=4, seed=0, **options):
  return d4rt.make_dataset(clips, batch_size=batch_size, seed=seed, **{**SMALL, **options})[index]


def test_keys_shapes_and_consistent_masks(clips):
  b = _batch(clips, debug=True)
  T, S, Q = SMALL['num_frames'], SMALL['size'], SMALL['num_queries']
  want = {'video': ((4, T, S, S, 3), np.float32), 'aspect_ratio': ((4,), np.float32),
          'query_uv': ((4, Q, 2), np.float32), 'query_t': ((4, Q, 3), np.int32),
          'target_xyz': ((4, Q, 3), np.float32), 'target_uv': ((4, Q, 2), np.float32),
          'target_vis': ((4, Q), np.float32), 'target_disp': ((4, Q, 3), np.float32),
          'target_normal': ((4, Q, 3), np.float32), 'mask_3d': ((4, Q), bool), 'mask_uv': ((4, Q), bool),
          'mask_vis': ((4, Q), bool), 'mask_normal': ((4, Q), bool), 'intrinsics': ((4, 3, 3), np.float32),
          'world_to_camera': ((4, T, 4, 4), np.float32), 'frame_ids': ((4, T), np.int32),
          'num_skipped': ((4,), np.int32), 'query_hard': ((4, Q), bool)}
  assert set(b) == set(want)
  for k, (shape, dtype) in want.items():
    assert b[k].shape == shape and b[k].dtype == dtype, k
  for k in b:
    assert np.isfinite(b[k]).all(), k                        # no NaN anywhere
  assert b['video'].min() >= -1 and b['video'].max() <= 1 and b['video'].std() > 0.05
  assert ((b['query_uv'] >= 0) & (b['query_uv'] < 1)).all()
  assert ((b['query_t'] >= 0) & (b['query_t'] < T)).all()
  m3, muv = b['mask_3d'], b['mask_uv']
  assert 0.3 < m3.mean() < 1 and not (muv & ~m3).any() and not (b['target_vis'].astype(bool) & ~m3).any()
  assert (b['target_xyz'][m3][:, 2] != 0).all() and (b['target_xyz'][~m3] == 0).all()
  assert (b['target_disp'][~m3] == 0).all() and (b['target_uv'][~muv] == 0).all()
  assert b['mask_vis'].all() and not b['mask_normal'].any() and (b['target_normal'] == 0).all()
  assert (b['num_skipped'] == 0).all()
  # normalised K of a crop: fx = f/W_crop, fy = f/H_crop, so fy/fx = W/H = the aspect ratio
  K = b['intrinsics']
  np.testing.assert_allclose(K[:, 1, 1] / K[:, 0, 0], b['aspect_ratio'], rtol=1e-5)
  np.testing.assert_allclose(K[:, 2], np.tile([0, 0, 1], (4, 1)))
  # the sampled frames: a stride s ≥ 1 and their cameras
  steps = np.diff(b['frame_ids'], axis=1)
  assert (steps >= 1).all() and (steps == steps[:, :1]).all() and (b['frame_ids'] < FRAMES).all()


def test_same_time_queries_give_back_their_uv_and_a_tracked_point(clips):
  """t_src = t_tgt = t_cam: uv* = query (u, v) to 1e-4, and P* is an observation of the raw npz."""
  b = _batch(clips, batch_size=4)
  npz = [load_clip(e.npz) for e in clips.entries]
  checked = 0
  for i in range(4):
    t = b['query_t'][i]
    same = (t[:, 0] == t[:, 1]) & (t[:, 1] == t[:, 2])
    assert same.sum() >= 3
    np.testing.assert_allclose(b['target_uv'][i][same], b['query_uv'][i][same], atol=1e-4)
    assert b['mask_3d'][i][same].all() and (b['target_vis'][i][same] == 1).all()
    clip = next(c for c in npz if np.allclose(
        world_to_camera(c.camera2world[b['frame_ids'][i, 0]]), b['world_to_camera'][i, 0], atol=1e-5))
    for q in np.flatnonzero(same):
      f = b['frame_ids'][i, t[q, 0]]
      E = np.linalg.inv(b['world_to_camera'][i, t[q, 0]].astype(np.float64))
      world = E[:3, :3] @ b['target_xyz'][i, q] + E[:3, 3]
      observed = clip.frame(f, None).track_xyz
      assert np.linalg.norm(observed - world, axis=-1).min() < 1e-4
      checked += 1
  assert checked >= 12


def _geometry(clips, index, frame_ids, box=None):
  clip = clips.open(index)
  frames = [clip.frame(int(t)) for t in frame_ids]
  return d4rt.clip_geometry(frames, box or (0, 0, SIZE, SIZE), SIZE, SIZE)


def test_umeyama_on_targets_recovers_relative_pose(clips):
  """Queries on a grid in frame i, read in camera i and in camera j: E_j·E_i⁻¹ to 1e-4."""
  frame_ids = np.arange(2, 2 + 3 * 8, 3)
  geometry = _geometry(clips, 1, frame_ids)
  cand = d4rt.candidates(geometry, d4rt.Options(**SMALL))
  cams = load_clip(clips.entries[1].npz).camera2world
  for i, j in ((0, 7), (3, 1), (5, 5)):
    at_i = np.flatnonzero(cand.frame == i)
    grid = (np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2) + 0.5) / 8
    nearest = at_i[np.argmin(np.linalg.norm(cand.uv[at_i][None] - grid[:, None], axis=-1), axis=1)]
    track = cand.track[np.unique(nearest)]
    assert len(track) > 40
    ti = np.tile([i, i, i], (len(track), 1))
    tj = np.tile([i, i, j], (len(track), 1))
    p_i = d4rt.query_targets(geometry, track, ti)['target_xyz'].astype(np.float64)
    p_j = d4rt.query_targets(geometry, track, tj)['target_xyz'].astype(np.float64)
    s, R, t = umeyama(p_i, p_j, np.ones(len(p_i)))
    np.testing.assert_allclose(s, 1, atol=1e-4)
    want = world_to_camera(cams[frame_ids[j]]) @ np.linalg.inv(world_to_camera(cams[frame_ids[i]]))
    np.testing.assert_allclose(R, want[:3, :3], atol=1e-4)
    np.testing.assert_allclose(t, want[:3, 3], atol=1e-4)


def test_displacement_is_scene_flow_in_camera_t_cam(clips):
  """disp*(s, t, c) = P*(s, t, c) − E_c·X(s), and its rotation is E_c's (world → camera)."""
  geometry = _geometry(clips, 0, np.arange(8) * 2)
  cand = d4rt.candidates(geometry, d4rt.Options(**SMALL))
  rng = np.random.default_rng(0)
  pick = rng.integers(0, len(cand.track), 300)
  track, s = cand.track[pick], cand.frame[pick]
  t, c = rng.integers(0, 8, 300), rng.integers(0, 8, 300)
  moved = d4rt.query_targets(geometry, track, np.stack([s, t, c], -1))
  still = d4rt.query_targets(geometry, track, np.stack([s, s, c], -1))
  ok = moved['mask_3d']
  assert ok.sum() > 100 and still['mask_3d'].all()
  np.testing.assert_allclose(moved['target_disp'][ok], moved['target_xyz'][ok] - still['target_xyz'][ok],
                             atol=1e-4)
  assert np.abs(moved['target_disp'][ok]).max() > 0.05       # the objects move
  np.testing.assert_array_equal(still['target_disp'], 0)


def test_visibility_is_presence_inside_the_crop_of_frame_t_tgt(clips):
  box = (16, 8, 32, 40)                                  # x0, y0, W_crop, H_crop in native pixels
  frame_ids = np.arange(8) * 2
  geometry = _geometry(clips, 2, frame_ids, box)
  np.testing.assert_allclose(geometry.intrinsics[[0, 1, 0, 1], [0, 1, 2, 2]],
                             [F_UNCROPPED * 64 / 32, F_UNCROPPED * 64 / 40, (32 - 16) / 32, (32 - 8) / 40])
  cand = d4rt.candidates(geometry, d4rt.Options(**SMALL))
  rng = np.random.default_rng(0)
  pick = rng.integers(0, len(cand.track), 500)
  track, t_tgt = cand.track[pick], rng.integers(0, 8, 500)
  out = d4rt.query_targets(geometry, track, np.stack([cand.frame[pick], t_tgt, rng.integers(0, 8, 500)], -1))
  cams = load_clip(clips.entries[2].npz).camera2world
  E = np.stack([world_to_camera(cams[f]) for f in frame_ids])[t_tgt]
  cam = np.einsum('nij,nj->ni', E[:, :3, :3], geometry.tracks[track, t_tgt]) + E[:, :3, 3]
  with np.errstate(invalid='ignore'):
    pixel = cam[:, :2] / cam[:, 2:] * pixel_intrinsics(SIZE, SIZE)[0, 0] + SIZE / 2
    want = (cam[:, 2] > 0) & (pixel[:, 0] >= 16) & (pixel[:, 0] < 48) & (pixel[:, 1] >= 8) & (pixel[:, 1] < 48)
  np.testing.assert_array_equal(out['mask_3d'], geometry.present[track, t_tgt])
  np.testing.assert_array_equal(out['target_vis'], want & out['mask_3d'])
  assert 10 <= (out['mask_3d'] & ~want).sum() < 0.5 * out['mask_3d'].sum()   # tracked, but cropped away


def _focal_from_targets(b, centre):
  """Median over valid targets of z·(u − c)/x and z·(v − c)/y, away from the principal point."""
  xyz, uv = b['target_xyz'].astype(np.float64), b['target_uv'].astype(np.float64)
  out = []
  with np.errstate(divide='ignore', invalid='ignore'):
    for axis in (0, 1):
      ok = b['mask_uv'] & (np.abs(xyz[..., axis] / xyz[..., 2]) > 0.05)
      f = xyz[..., 2] * (uv[..., axis] - centre[..., axis]) / xyz[..., axis]
      out.append(np.median(f[ok]))
  return np.array(out)


def test_focal_from_targets_uncropped_and_cropped(clips):
  b = _batch(clips, crop=False, photometric=False)
  np.testing.assert_allclose(_focal_from_targets(b, np.full((4, 1, 2), 0.5)), F_UNCROPPED, atol=1e-4)
  np.testing.assert_allclose(b['intrinsics'][:, [0, 1], [0, 1]], F_UNCROPPED, atol=1e-6)
  np.testing.assert_allclose(b['intrinsics'][:, [0, 1], 2], 0.5, atol=1e-6)
  np.testing.assert_array_equal(b['aspect_ratio'], 1)
  for index in range(3):   # with crops: the crop's own focal (f/W_crop) and centre
    b = _batch(clips, index=index, batch_size=1, photometric=False)
    K = b['intrinsics'][0].astype(np.float64)
    np.testing.assert_allclose(_focal_from_targets(b, K[[0, 1], 2][None, None]), K[[0, 1], [0, 1]], rtol=1e-4)
    # area 0.3..1 of the frame, aspect 3/4..4/3: W_crop ∈ [0.47, 1]·W
    assert F_UNCROPPED - 1e-6 <= K[0, 0] <= F_UNCROPPED / np.sqrt(0.3 * 3 / 4) + 1e-6
  assert abs(K[0, 0] - F_UNCROPPED) > 1e-3 or abs(K[1, 1] - F_UNCROPPED) > 1e-3


def test_crop_images_agree_with_the_intrinsics(root):
  """Each output pixel centre, mapped back through K^n, lands on the same colour in the native frame."""
  clips = pipeline.Mp4Clips(pipeline.find_clips(str(root), 'train')[:1])
  opened = clips.open(0)
  K_pix = pixel_intrinsics(SIZE, SIZE)
  checked = 0
  for index in range(6):
    b = _batch(clips, index=index, batch_size=1, photometric=False)
    K, S = b['intrinsics'][0].astype(np.float64), SMALL['size']
    if b['aspect_ratio'][0] == 1 and abs(K[0, 0] - F_UNCROPPED) < 1e-6:
      continue
    centres = (np.arange(S) + 0.5) / S
    for t in (0, 5):
      native = opened.frame(int(b['frame_ids'][0, t])).image.astype(np.float32)
      video = (b['video'][0, t] + 1) * 127.5
      errors = []
      for shift in (0.0, 2.0):   # pixels of the native frame: a wrong crop offset
        x = K_pix[0, 0] * (centres - K[0, 2]) / K[0, 0] + K_pix[0, 2] - 0.5 + shift   # pixel-index coords
        y = K_pix[1, 1] * (centres - K[1, 2]) / K[1, 1] + K_pix[1, 2] - 0.5
        mx, my = np.meshgrid(x.astype(np.float32), y.astype(np.float32))
        resampled = cv2.remap(native, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        errors.append(np.abs(resampled - video).mean())
      assert errors[0] < 0.6 * errors[1], errors
      checked += 1
  assert checked >= 4


def test_hard_pool_is_the_boundary_and_gives_30_percent(clips):
  b = _batch(clips, batch_size=4, debug=True)
  np.testing.assert_allclose(b['query_hard'].mean(1), round(0.3 * 256) / 256)
  # a far plane (z = 4) with a near square (z = 1): the hard cells are the square's outline
  g = 64
  col, row = np.meshgrid(np.arange(g), np.arange(g))
  uv = (np.stack([col, row], -1).reshape(-1, 2) + 0.5) / g
  inside = (np.abs(col - 31.5) < 10).reshape(-1) & (np.abs(row - 31.5) < 10).reshape(-1)
  z = np.where(inside, 1.0, 4.0)
  hard = d4rt.hard_pool(np.zeros(len(z), int), uv, z, np.zeros(len(z)), 1, g, 0.8)
  distance = np.maximum(np.abs(col - 31.5), np.abs(row - 31.5)).reshape(-1)   # 9.5 inside the edge
  assert hard[np.abs(distance - 10) < 1].all() and not hard[np.abs(distance - 10) > 2].any()
  # and on a clip, the hard pool is a minority of the candidates
  cand = d4rt.candidates(_geometry(clips, 0, np.arange(8) * 3), d4rt.Options(**SMALL))
  assert 0.05 < cand.hard.mean() < 0.5


def test_query_times(clips):
  b = _batch(clips, batch_size=4)
  t = b['query_t']
  same_cam = (t[..., 1] == t[..., 2]).mean()
  assert abs(same_cam - (0.4 + 0.6 / 8)) < 0.05          # p = 0.4 plus chance
  assert abs((t[..., 1] == t[..., 0]).mean() - 1 / 8) < 0.05
  # resampling t_tgt toward present frames, keeping some absent ones
  present = np.random.default_rng(1).random((500, 8)) < 0.5
  track = np.arange(500).repeat(20)
  qt = d4rt.sample_times(np.random.default_rng(2), present, track, np.zeros_like(track),
                         d4rt.Options(**SMALL))
  absent = ~present[track, qt[:, 1]]
  expected = ((1 - present.mean(1)) ** 3).mean()          # 3 draws: absent iff all 3 miss
  assert abs(absent.mean() - expected) < 0.02 and 0.1 < expected < 0.25
  assert abs((qt[:, 1] == qt[:, 2]).mean() - 0.475) < 0.02


def test_same_seed_and_index_same_example_and_exact_resume(clips):
  ds = d4rt.make_dataset(clips, batch_size=2, seed=5, **SMALL)
  _assert_equal(ds[3], d4rt.make_dataset(clips, batch_size=2, seed=5, **SMALL)[3])
  assert not np.array_equal(ds[3]['query_uv'], ds[4]['query_uv'])
  assert not np.array_equal(ds[3]['video'], d4rt.make_dataset(clips, batch_size=2, seed=6, **SMALL)[3]['video'])
  it = d4rt.make_iterator(ds)
  first = next(it)
  state = it.get_state()
  rest = [next(it) for _ in range(2)]
  _assert_equal(first, ds[0])
  resumed = pipeline.make_iterator(d4rt.make_dataset(clips, batch_size=2, seed=5, **SMALL))
  resumed.set_state(state)
  for want in rest:
    _assert_equal(want, next(resumed))
  # hosts: disjoint slices of the same sequence
  host1 = d4rt.make_dataset(clips, batch_size=2, seed=5, shard_index=1, shard_count=2, **SMALL)
  _assert_equal(host1[1], ds[3])


def _assert_equal(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_broken_clips_are_skipped_and_counted(root, tmp_path):
  broken = BrokenCopy(root, tmp_path / 'broken')
  broken.add('nan_cameras', camera2world=broken.nan_cameras())
  broken.add('garbage_mp4', mp4_bytes=b'not a video')
  broken.add('too_short', camera2world=broken.arrays['camera2world'][:5])
  clips = pipeline.Mp4Clips(pipeline.find_clips(str(broken.out), 'train'))
  assert len(clips) == 6
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    batches = [d4rt.make_dataset(clips, batch_size=4, seed=0, **SMALL)[i] for i in range(3)]
  assert sum(int(b['num_skipped'].sum()) for b in batches) > 0
  for b in batches:
    assert all(np.isfinite(b[k]).all() for k in b)
  messages = ' '.join(str(w.message) for w in caught)
  assert 'garbage_mp4' in messages and 'nan_cameras' in messages and 'too_short' not in messages
  with pytest.raises(ValueError, match='no clip has >= 30 frames'):
    d4rt.DrawD4RTExample(clips, num_frames=30)
  with pytest.raises(TypeError):
    d4rt.DrawD4RTExample(clips, no_such_option=1)


@pytest.mark.parametrize('option, value, need', [
    ('hard_fraction', 1.5, r'in \[0, 1\]'), ('p_blur', -0.1, r'in \[0, 1\]'), ('grid', 0, '>= 1'),
    ('num_queries', 0, '>= 1'), ('crop_scale', (0.8, 0.3), 'lo <= hi'), ('blur_sigma', (0.0, 2.0), '0 < lo')])
def test_bad_options_are_named(option, value, need):
  with pytest.raises(ValueError, match=rf'D4RT data option {option}=.*config\.data\.d4rt\.{option}.*{need}'):
    d4rt.Options(**{option: value})


def test_predecoded_clips_give_the_same_geometry(root, tmp_path):
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    predecoded.write(str(root), 'train', str(tmp_path))
  mp4 = pipeline.Mp4Clips(pipeline.find_clips(str(root), 'train'))
  shards = predecoded.PredecodedClips(str(tmp_path / 'train'))
  a, b = _batch(mp4, batch_size=2, photometric=False), _batch(shards, batch_size=2, photometric=False)
  assert a.keys() == b.keys()
  for k in a:
    if k != 'video':
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  assert np.abs(a['video'] - b['video']).mean() * 127.5 < 3      # JPEG vs H.264 frames
