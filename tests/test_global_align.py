"""Global alignment (dynadust3r_jax/inference/{init_mst,global_align}.py) against mini-dust3r's
PointCloudOptimizer on a synthetic static scene (tests/fixtures/align_synthetic.npz, tools/make_align_fixtures.py:
5 images 24×32, symmetrized complete graph, 20 edges) and against the scene's ground truth.

Measured (CPU, float32): MST-init parameters within 7e-6 of the reference; loss at the init within 1e-7 relative,
gradient within 3.3e-4 of its largest entry; from the reference's init the first 10 losses within 2e-5
relative, the whole curve within 6% (Adam's noisy middle phase with lr 0.01 amplifies float differences; both
runs settle as the cosine schedule decays), final loss 1e-6, cameras 1e-4, focals and depths 2e-5; end to end
(own MST init): final loss 6e-6 relative, cameras 9e-4, focals and depths 5e-4; from the reference's random
start (100 cosine steps) every loss within 3e-7 relative; PairViewer within 6e-8 (poses) and 5e-7 (points).
Mixed image sizes (align_mixed.npz, 4 images of three sizes):
MST init 4.5e-6, loss/gradient as above, 100 steps from the reference's init within 1.1e-5, final cameras 6e-6.
"""
import importlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynadust3r_jax.common import geometry as geo
from dynadust3r_jax.inference.init_mst import init_mst

ga = importlib.import_module('dynadust3r_jax.inference.global_align')  # the package's `global_align` is the function
FIXTURE = Path(__file__).parent / 'fixtures' / 'align_synthetic.npz'
TRAINED = ('pw_poses', 'im_poses', 'im_depthmaps', 'im_focals')


@pytest.fixture(scope='module')
def ref():
  return dict(np.load(FIXTURE))


def _output(ref):
  return {'view1': {'idx': ref['edges'][:, 0]}, 'view2': {'idx': ref['edges'][:, 1]},
          'pred1': {'pts3d': ref['pts3d_i'], 'conf': ref['conf_i']},
          'pred2': {'pts3d_in_other_view': ref['pts3d_j'], 'conf': ref['conf_j']}}


@pytest.fixture(scope='module')
def problem(ref):
  data, info = ga.prepare(_output(ref))
  return jax.tree.map(jnp.asarray, data), info


def _ref_params(ref, prefix):
  params = {k: jnp.asarray(ref[f'{prefix}_{k}']) for k in TRAINED}
  params['im_pp'] = jnp.zeros((len(ref['gt_focals']), 2))
  return params


def _free(n_imgs):
  """Masks as global_align makes them when nothing is known (same shapes: one compiled optimiser for both)."""
  return {'pw_poses': jnp.ones((1, 1)), 'im_poses': jnp.ones((n_imgs, 1)), 'im_depthmaps': jnp.ones((1, 1)),
          'im_focals': jnp.ones((n_imgs, 1)), 'im_pp': jnp.zeros((n_imgs, 1))}


FREE = _free(5)


def _rel_rotation_error_deg(P, G):
  n = len(P)
  return max(geo.rotation_angle_deg(P[i, :3, :3].T @ P[j, :3, :3], G[i, :3, :3].T @ G[j, :3, :3])
             for i in range(n) for j in range(n) if i != j)


def test_mst_init_equals_the_reference(ref, problem):
  _, info = problem
  params = init_mst(info['edges'], info['pts_i'], info['pts_j'], info['conf_i'], info['conf_j'], list(info['im_conf']))
  for k in TRAINED:
    np.testing.assert_allclose(params[k], ref[f'mst_{k}'], rtol=1e-4, atol=1e-4 * np.abs(ref[f'mst_{k}']).max(),
                               err_msg=k)
  cams = np.asarray(geo.pose_to_matrix(jnp.asarray(params['im_poses'], jnp.float32)))
  np.testing.assert_allclose(cams, ref['mst_cam_to_world'], atol=1e-4)
  np.testing.assert_allclose(np.exp(params['im_focals'][:, 0] / 20), ref['mst_focals'], rtol=1e-4)
  np.testing.assert_allclose(np.exp(params['im_depthmaps']).reshape(ref['mst_depth'].shape), ref['mst_depth'],
                             rtol=1e-4)


def test_loss_and_gradient_at_the_init_equal_the_reference(ref, problem, edge_chunk=7):
  data, _ = problem
  loss, grad = jax.value_and_grad(ga.alignment_loss)(_ref_params(ref, 'mst'), data, edge_chunk=edge_chunk)
  assert float(loss) == pytest.approx(float(ref['mst_loss']), rel=1e-6)
  for k in TRAINED:
    g_ref = ref[f'mst_grad_{k}']
    np.testing.assert_allclose(np.asarray(grad[k]), g_ref, atol=1e-3 * np.abs(g_ref).max(), err_msg=k)


def test_chunked_loss_and_gradient_equal_the_unchunked(ref, problem):
  data, _ = problem
  params = _ref_params(ref, 'rand')
  full_loss, full_grad = jax.value_and_grad(ga.alignment_loss)(params, data, edge_chunk=20)
  assert [ga.edge_chunks(20, c) for c in (1, 6, 7, 16, 20, 99)] == [(1, 20), (5, 4), (7, 3), (10, 2), (20, 1),
                                                                    (20, 1)]
  for chunk in (1, 6, 7):  # 7: three chunks of 7, the last shifted back to overlap the second by one edge (masked)
    loss, grad = jax.value_and_grad(ga.alignment_loss)(params, data, edge_chunk=chunk)
    assert float(loss) == pytest.approx(float(full_loss), rel=1e-6)
    for k in TRAINED:
      np.testing.assert_allclose(np.asarray(grad[k]), np.asarray(full_grad[k]), rtol=1e-5,
                                 atol=1e-6 * np.abs(np.asarray(full_grad[k])).max(), err_msg=f'{chunk} {k}')


def test_chunked_gradient_memory_does_not_grow_with_edges():
  E, N, A = 40, 8, 4096
  rng = np.random.default_rng(0)
  data = {'ei': jnp.asarray(rng.integers(0, N, E), jnp.int32), 'ej': jnp.asarray(rng.integers(0, N, E), jnp.int32),
          'pred_i': jnp.ones((E, 3, A)), 'pred_j': jnp.ones((E, 3, A)), 'w_i': jnp.ones((E, A)),
          'w_j': jnp.ones((E, A)), 'grid': jnp.ones((N, A, 2)), 'base_pp': jnp.ones((N, 2)), 'area_i': 1.0,
          'area_j': 1.0}
  params = {'pw_poses': jnp.ones((E, 8)), 'im_poses': jnp.ones((N, 7)), 'im_depthmaps': jnp.ones((N, A)),
            'im_focals': jnp.ones((N, 1)), 'im_pp': jnp.zeros((N, 2))}

  def temp_floats_per_pixel(chunk):
    f = jax.jit(jax.grad(lambda p, d: ga.alignment_loss(p, d, edge_chunk=chunk)))
    analysis = f.lower(params, data).compile().memory_analysis()
    if analysis is None:
      pytest.skip('no memory analysis on this backend')
    return analysis.temp_size_in_bytes / 4 / A
  # the docstring's ≈ (13·N + 27·edge_chunk)·A; materialising (E,A,·) tensors would add ≥ 8·E = 320 per pixel
  assert temp_floats_per_pixel(2) < 20 * N + 40 * 2
  masks = {k: jnp.ones((1, 1)) for k in params}  # the whole optimiser: ≈ (15·N + 26·edge_chunk)·A
  analysis = ga.optimize.lower(params, data, masks, jnp.ones(3), edge_chunk=2).compile().memory_analysis()
  assert analysis.temp_size_in_bytes / 4 / A < 24 * N + 40 * 2
  # memory_bytes (what the reconstruct job checks its budget with) covers inputs + temporaries + outputs
  used = analysis.argument_size_in_bytes + analysis.temp_size_in_bytes + analysis.output_size_in_bytes
  assert 0.8 * ga.memory_bytes(N, E, A, edge_chunk=2) < used <= ga.memory_bytes(N, E, A, edge_chunk=2)


def test_optimiser_from_the_reference_init_follows_the_reference(ref, problem):
  data, info = problem
  lrs = jnp.asarray(ga.lr_schedule(300, 0.01), jnp.float32)
  params, losses = ga.optimize(_ref_params(ref, 'mst'), data, FREE, lrs, edge_chunk=16)
  losses = np.asarray(losses)
  rel = np.abs(losses / ref['losses'] - 1)
  assert rel[:10].max() < 1e-4
  assert rel.max() < 0.1
  assert rel[-1] < 1e-4
  scene = ga.make_scene(params, data, info, 3.0)
  np.testing.assert_allclose(scene.cam_to_world, ref['final_cam_to_world'], atol=5e-4)
  np.testing.assert_allclose(scene.focals, ref['final_focals'], rtol=1e-4)
  np.testing.assert_allclose(scene.depthmaps, ref['final_depth'], rtol=1e-4)
  np.testing.assert_allclose(scene.pts3d, ref['final_pts3d'], atol=1e-3)


def test_linear_schedule_follows_the_reference(ref, problem):
  data, _ = problem
  lrs = jnp.asarray(ga.lr_schedule(100, 0.01, schedule='linear'), jnp.float32)
  _, losses = ga.optimize(_ref_params(ref, 'mst'), data, FREE, lrs, edge_chunk=8)
  rel = np.abs(np.asarray(losses) / ref['linear_losses'] - 1)
  assert rel[:10].max() < 1e-4
  assert rel.max() < 0.1


def test_lr_schedules():
  np.testing.assert_allclose(ga.lr_schedule(4, 0.01, 1e-6, 'cosine'),
                             1e-6 + (0.01 - 1e-6) * (1 + np.cos(np.pi * np.arange(4) / 4)) / 2)
  np.testing.assert_allclose(ga.lr_schedule(4, 0.01, 1e-6, 'linear'), 0.01 + (1e-6 - 0.01) * np.arange(4) / 4)
  with pytest.raises(ValueError, match='cosine'):
    ga.lr_schedule(4, 0.01, schedule='step')


@pytest.fixture(scope='module')
def scene(ref):
  return ga.global_align(_output(ref), niter=300, lr=0.01, schedule='cosine', init='mst')


def test_global_align_end_to_end_equals_the_reference(ref, scene):
  assert scene.losses.shape == (300,)
  assert abs(scene.losses[-1] / ref['losses'][-1] - 1) < 1e-4
  assert np.abs(scene.losses / ref['losses'] - 1).max() < 0.1
  np.testing.assert_allclose(scene.cam_to_world, ref['final_cam_to_world'], atol=3e-3)
  np.testing.assert_allclose(scene.focals, ref['final_focals'], rtol=2e-3)
  np.testing.assert_allclose(scene.depthmaps, ref['final_depth'], rtol=2e-3)


def test_scene_images_come_from_the_views(ref):
  out = _output(ref)
  E, H, W = ref['conf_i'].shape
  img = np.linspace(-1, 1, 5 * H * W * 3, dtype=np.float32).reshape(5, H, W, 3)
  out['view1']['img'] = img[ref['edges'][:, 0]]
  out['view2']['img'] = img[ref['edges'][:, 1]]
  scene = ga.global_align(out, niter=0)
  np.testing.assert_allclose(scene.imgs, (img + 1) / 2)


def test_scene_fields(ref, scene):
  N, H, W = ref['gt_depth'].shape
  assert scene.cam_to_world.shape == (N, 4, 4) and scene.focals.shape == (N,)
  assert scene.principal_points.shape == (N, 2) and scene.intrinsics.shape == (N, 3, 3)
  assert scene.depthmaps.shape == (N, H, W) and scene.pts3d.shape == (N, H, W, 3) and scene.conf.shape == (N, H, W)
  np.testing.assert_allclose(scene.principal_points, np.tile([W / 2, H / 2], (N, 1)))
  np.testing.assert_allclose(scene.intrinsics[:, 0, 0], scene.focals)
  np.testing.assert_allclose(scene.intrinsics[:, 1, 1], scene.focals)
  np.testing.assert_allclose(scene.intrinsics[:, :2, 2], scene.principal_points)
  # pts3d = unprojected depth moved by the pose
  v, u = np.mgrid[:H, :W]
  cam = np.stack([(u - W / 2) / scene.focals[:, None, None], (v - H / 2) / scene.focals[:, None, None],
                  np.ones((N, H, W))], -1) * scene.depthmaps[..., None]
  world = np.einsum('nij,nhwj->nhwi', scene.cam_to_world[:, :3, :3], cam) + scene.cam_to_world[:, None, None, :3, 3]
  np.testing.assert_allclose(scene.pts3d, world, atol=1e-4)
  # conf = max over the edges of the image's raw confidences; masks = conf > 3
  conf0 = np.max([ref['conf_i'][e] for e, (i, _) in enumerate(ref['edges']) if i == 0]
                 + [ref['conf_j'][e] for e, (_, j) in enumerate(ref['edges']) if j == 0], axis=0)
  np.testing.assert_array_equal(scene.conf[0], conf0)
  np.testing.assert_array_equal(scene.get_masks(), scene.conf > 3)


def test_accuracy_on_the_known_cameras(ref, scene):
  G = ref['gt_cam_to_world'].astype(np.float64)
  assert _rel_rotation_error_deg(scene.cam_to_world.astype(np.float64), G) < 0.3  # measured 0.13°
  np.testing.assert_allclose(scene.focals, ref['gt_focals'], rtol=0.02)  # measured 0.55 %


def test_presets_are_kept_and_the_other_cameras_recovered(ref):
  G = ref['gt_cam_to_world'].astype(np.float64)
  f0 = float(ref['gt_focals'][0])
  scene = ga.global_align(_output(ref), niter=300, known_focals={0: f0}, known_poses={0: G[0], 1: G[1]})
  np.testing.assert_allclose(scene.cam_to_world[:2], G[:2], atol=1e-6)
  assert scene.focals[0] == pytest.approx(f0, rel=1e-6)
  # the two known poses fix the world frame and the scale: the other cameras land on the GT ones
  for n in range(2, 5):
    assert geo.rotation_angle_deg(scene.cam_to_world[n, :3, :3], G[n, :3, :3]) < 0.5  # measured ≤ 0.17°
  baseline = np.linalg.norm(G[0, :3, 3] - G[1, :3, 3])
  assert np.linalg.norm(scene.cam_to_world[:, :3, 3] - G[:, :3, 3], axis=-1).max() < 0.05 * baseline  # 2.2 %
  np.testing.assert_allclose(scene.focals, ref['gt_focals'], rtol=0.02)
  assert np.median(np.abs(scene.depthmaps / ref['gt_depth'] - 1)) < 0.05  # metric depth, measured 2 %


def test_preset_principal_points_and_intrinsics(ref):
  N, H, W = ref['gt_depth'].shape
  K = np.array([[ref['gt_focals'][2], 0, 15.0], [0, ref['gt_focals'][2], 12.5], [0, 0, 1]])
  scene = ga.global_align(_output(ref), niter=300, optimize_pp=True, known_intrinsics={2: K},
                          known_pp={3: (16.5, 11.0)})
  np.testing.assert_allclose(scene.intrinsics[2], K, rtol=1e-6)
  np.testing.assert_allclose(scene.principal_points[3], [16.5, 11.0], rtol=1e-6)
  assert not np.allclose(scene.principal_points[[0, 1, 4]], [W / 2, H / 2])  # the free ones moved


def test_bad_inputs_name_the_problem(ref):
  out = _output(ref)
  with pytest.raises(ValueError, match='known_focals'):
    ga.global_align(out, niter=1, known_focals=[30.0, 31.0])
  with pytest.raises(ValueError, match=r'known_poses\[1\]: expected a finite array of shape \(4, 4\)'):
    ga.global_align(out, niter=1, known_poses={1: np.eye(3)})
  with pytest.raises(ValueError, match='positive'):
    ga.global_align(out, niter=1, known_focals={1: -3.0})
  with pytest.raises(ValueError, match='out of range'):
    ga.global_align(out, niter=1, known_poses={7: np.eye(4)})
  with pytest.raises(ValueError, match="'mst', 'known_poses' or 'random'"):
    ga.global_align(out, niter=1, init='dust3r')
  with pytest.raises(ValueError, match=r'missing for images \[1, 2, 3, 4\]'):
    ga.global_align(out, niter=1, init='known_poses', known_poses={0: np.eye(4)}, known_focals=[30.0] * 5)
  bad = _output(ref)
  bad['view1'] = {'idx': ref['edges'][:, 0] + 10}
  bad['view2'] = {'idx': ref['edges'][:, 1] + 10}
  with pytest.raises(ValueError, match='0..N-1'):
    ga.global_align(bad, niter=1)
  two_sizes = _output(ref)
  two_sizes['pred1'] = {'pts3d': list(ref['pts3d_i']), 'conf': list(ref['conf_i'])}
  two_sizes['pred1']['pts3d'][0] = ref['pts3d_i'][0][:, :30]
  two_sizes['pred1']['conf'][0] = ref['conf_i'][0][:, :30]
  with pytest.raises(ValueError, match='two sizes'):
    ga.global_align(two_sizes, niter=1)


def test_ransac_pnp_recovers_a_camera_from_its_world_points(ref):
  from dynadust3r_jax.inference.init_mst import fast_pnp
  n, (H, W) = 2, ref['gt_depth'].shape[1:]
  f, G = float(ref['gt_focals'][n]), ref['gt_cam_to_world'][n].astype(np.float64)
  v, u = np.mgrid[:H, :W]
  world = geo.apply_transform(G, np.stack([(u - W / 2) / f, (v - H / 2) / f, np.ones((H, W))], -1)
                              * ref['gt_depth'][n][..., None])
  focal, pose = fast_pnp(world, f, np.ones((H, W), bool))
  assert focal == f
  np.testing.assert_allclose(pose, G, atol=1e-5)
  assert fast_pnp(world, f, np.zeros((H, W), bool)) is None  # fewer than 4 points


def test_pair_viewer_equals_the_reference(ref):
  from dynadust3r_jax.inference.pair_viewer import pair_viewer
  p = ref['pair_edges']
  out = {'view1': {'idx': ref['edges'][p, 0]}, 'view2': {'idx': ref['edges'][p, 1]},
         'pred1': {'pts3d': ref['pts3d_i'][p], 'conf': ref['conf_i'][p]},
         'pred2': {'pts3d_in_other_view': ref['pts3d_j'][p], 'conf': ref['conf_j'][p]}}
  scene = pair_viewer(out)
  np.testing.assert_allclose(scene.cam_to_world, ref['pair_cam_to_world'], atol=1e-5)
  np.testing.assert_allclose(scene.focals, ref['pair_focals'], rtol=1e-5)
  np.testing.assert_allclose(scene.depthmaps, ref['pair_depth'], rtol=1e-5)
  np.testing.assert_allclose(scene.pts3d, ref['pair_pts3d'], atol=1e-4)
  with pytest.raises(ValueError, match='exactly the two edges'):
    pair_viewer(_output(ref))


def test_optimiser_from_the_reference_random_start(ref, problem):
  data, _ = problem
  lrs = jnp.asarray(ga.lr_schedule(100, 0.01), jnp.float32)
  _, losses = ga.optimize(_ref_params(ref, 'rand'), data, FREE, lrs, edge_chunk=8)
  rel = np.abs(np.asarray(losses) / ref['rand_losses'] - 1)
  assert rel.max() < 1e-5  # measured 3e-7 over the 100 steps (the loss falls from 12.7 to 5.0)


def mixed_problem():
  """align_mixed.npz: 4 images of sizes 24×32, 32×24, 24×32, 20×36; per-edge arrays raveled and concatenated.
  Returns (the arrays, the image shapes, the inference output global_align takes)."""
  m = dict(np.load(FIXTURE.parent / 'align_mixed.npz'))
  shapes = [tuple(int(v) for v in s) for s in m['shapes']]

  def split(flat, images, channels=None):
    out, start = [], 0
    for n in images:
      h, w = shapes[n]
      out.append(flat[start:start + h * w].reshape((h, w) + ((channels,) if channels else ())))
      start += h * w
    return out
  ei, ej = m['edges'][:, 0], m['edges'][:, 1]
  output = {'view1': {'idx': ei}, 'view2': {'idx': ej},
            'pred1': {'pts3d': split(m['pts3d_i'], ei, 3), 'conf': split(m['conf_i'], ei)},
            'pred2': {'pts3d_in_other_view': split(m['pts3d_j'], ej, 3), 'conf': split(m['conf_j'], ej)}}
  return m, shapes, output


@pytest.fixture(scope='module')
def mixed():
  return mixed_problem()


def test_mixed_image_sizes_equal_the_reference(mixed):
  m, shapes, output = mixed
  data, info = ga.prepare(output)
  assert info['shapes'] == shapes and data['pred_i'].shape == (12, 3, 768)
  params = init_mst(info['edges'], info['pts_i'], info['pts_j'], info['conf_i'], info['conf_j'], info['im_conf'])
  for k in TRAINED:  # measured ≤ 4.5e-6
    np.testing.assert_allclose(params[k], m[f'mst_{k}'], atol=1e-4 * np.abs(m[f'mst_{k}']).max(), err_msg=k)
  data = jax.tree.map(jnp.asarray, data)
  start = {k: jnp.asarray(m[f'mst_{k}']) for k in TRAINED}
  start['im_pp'] = jnp.zeros((4, 2))
  loss, grad = jax.value_and_grad(ga.alignment_loss)(start, data, edge_chunk=5)
  assert float(loss) == pytest.approx(float(m['mst_loss']), rel=1e-6)
  for k in TRAINED:  # measured ≤ 1e-4 of the largest entry
    np.testing.assert_allclose(np.asarray(grad[k]), m[f'mst_grad_{k}'], atol=1e-3 * np.abs(m[f'mst_grad_{k}']).max())
  lrs = jnp.asarray(ga.lr_schedule(100, 0.01), jnp.float32)
  final, losses = ga.optimize(start, data, _free(4), lrs, edge_chunk=16)
  assert np.abs(np.asarray(losses) / m['losses'] - 1).max() < 1e-4  # measured 1.1e-5
  scene = ga.make_scene(final, data, info, 3.0)
  assert [d.shape for d in scene.depthmaps] == shapes and [p.shape for p in scene.pts3d] == [s + (3,) for s in shapes]
  np.testing.assert_allclose(scene.cam_to_world, m['final_cam_to_world'], atol=1e-4)  # measured 6e-6
  np.testing.assert_allclose(scene.focals, m['final_focals'], rtol=1e-4)
  np.testing.assert_allclose(np.concatenate([d.ravel() for d in scene.depthmaps]), m['final_depth'], rtol=1e-4)
  np.testing.assert_allclose(scene.principal_points, [(w / 2, h / 2) for h, w in shapes])


def test_mixed_image_sizes_end_to_end(mixed):
  m, shapes, output = mixed
  scene = ga.global_align(output, niter=100)
  assert abs(scene.losses[-1] / m['losses'][-1] - 1) < 0.02  # measured 0.5 % (the first Adam steps amplify 4e-6)
  assert [c.shape for c in scene.conf] == shapes and len(scene.get_masks()) == 4
  assert _rel_rotation_error_deg(scene.cam_to_world.astype(np.float64), m['gt_cam_to_world'].astype(np.float64)) < 1.0


@pytest.mark.parametrize('init', ['mst', 'known_poses'])
def test_all_poses_and_focals_known_equal_the_reference(ref, init):
  """Reference: PointCloudOptimizer.preset_pose + preset_focal with the GT for every image. With init='mst' the
  reference's spanning tree ignores the known focals (Weiszfeld estimates feed its PnP); ours uses them, so the
  starts differ (pairwise poses by 3.5e-3) but both runs end at the same optimum."""
  G = ref['gt_cam_to_world']
  k = f'known_{init}'
  kw = dict(init=init, known_poses=list(G), known_focals=list(ref['gt_focals']))
  start = ga.global_align(_output(ref), niter=0, **kw)
  pw0 = np.asarray(ga.pairwise_poses(jnp.asarray(start.params['pw_poses']), norm_pw_scale=False))
  if init == 'known_poses':  # measured 1.5e-4 (RANSAC-PnP on float-rounded inputs) and 8e-7
    np.testing.assert_allclose(pw0, ref[f'{k}_pw'], atol=1e-3)
    np.testing.assert_allclose(start.params['im_depthmaps'], ref[f'{k}_im_depthmaps'], atol=1e-5)
  scene = ga.global_align(_output(ref), niter=300, **kw)
  rel = np.abs(scene.losses / ref[f'{k}_losses'] - 1)
  if init == 'known_poses':
    assert rel[:10].max() < 1e-4  # measured 1.5e-5
  assert rel[-1] < 1e-5  # measured 0
  np.testing.assert_allclose(scene.cam_to_world, G, atol=1e-6)
  np.testing.assert_allclose(scene.focals, ref['gt_focals'], rtol=1e-6)
  pw = np.asarray(ga.pairwise_poses(jnp.asarray(scene.params['pw_poses']), norm_pw_scale=False))
  np.testing.assert_allclose(pw, ref[f'{k}_final_pw'], atol=1e-4)  # measured 1.1e-5
  np.testing.assert_allclose(scene.depthmaps, ref[f'{k}_final_depth'], rtol=1e-4)  # measured 1.6e-5


def test_one_known_pose_fixes_the_frame(ref):
  G = ref['gt_cam_to_world'].astype(np.float64)
  scene = ga.global_align(_output(ref), niter=300, known_poses={2: G[2]})
  np.testing.assert_allclose(scene.cam_to_world[2], G[2], atol=1e-6)
  for n in (0, 1, 3, 4):  # the known camera fixes the rotation of the world (not its scale)
    assert geo.rotation_angle_deg(scene.cam_to_world[n, :3, :3], G[n, :3, :3]) < 0.5  # measured ≤ 0.2°


@pytest.mark.parametrize('dist,conf', [('l1', 'log'), ('l2', 'log'), ('l1', 'sqrt'), ('l2', 'm1'), ('l1', 'id')])
def test_loss_equals_a_direct_numpy_evaluation(ref, dist, conf):
  """The reference's forward written out in numpy (float64) for every dist / conf option."""
  data, info = ga.prepare(_output(ref), conf=conf)
  params = {k: np.asarray(v, np.float64) for k, v in _ref_params(ref, 'mst').items()}
  trf = {'log': np.log, 'sqrt': np.sqrt, 'm1': lambda c: c - 1, 'id': lambda c: c}[conf]
  N, H, W = ref['gt_depth'].shape
  v, u = np.mgrid[:H, :W]
  world = []
  for n in range(N):
    P = np.asarray(geo.pose_to_matrix(jnp.asarray(params['im_poses'][n], jnp.float32)), np.float64)
    f = np.exp(params['im_focals'][n, 0] / 20)
    z = np.exp(params['im_depthmaps'][n]).reshape(H, W)
    world.append(geo.apply_transform(P, np.stack([(u - W / 2) / f * z, (v - H / 2) / f * z, z], -1)))
  log_s = params['pw_poses'][:, -1]
  scale = 0.5 * np.exp(log_s - log_s.mean())
  li = lj = 0.0
  for e, (i, j) in enumerate(ref['edges']):
    P = np.asarray(geo.pose_to_matrix(jnp.asarray(params['pw_poses'][e], jnp.float32)), np.float64)
    P[:3] *= scale[e]
    for X, pred, c, acc in ((world[i], ref['pts3d_i'][e], ref['conf_i'][e], 'i'),
                            (world[j], ref['pts3d_j'][e], ref['conf_j'][e], 'j')):
      d2 = np.sum((X - geo.apply_transform(P, pred.astype(np.float64))) ** 2, axis=-1)
      term = np.sum(trf(c.astype(np.float64)) * (np.sqrt(d2) if dist == 'l1' else d2))
      li, lj = (li + term, lj) if acc == 'i' else (li, lj + term)
  expected = li / (len(ref['edges']) * H * W) + lj / (len(ref['edges']) * H * W)
  loss = ga.alignment_loss({k: jnp.asarray(v, jnp.float32) for k, v in params.items()},
                           jax.tree.map(jnp.asarray, data), edge_chunk=6, dist=dist)
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  if (dist, conf) == ('l1', 'log'):
    assert expected == pytest.approx(float(ref['mst_loss']), rel=1e-5)


def test_unknown_dist_or_conf_is_an_error(ref):
  with pytest.raises(ValueError, match="dist must be 'l1' or 'l2'"):
    ga.global_align(_output(ref), niter=1, dist='huber')
  with pytest.raises(ValueError, match='conf must be one of'):
    ga.global_align(_output(ref), niter=1, conf='exp')


def test_pair_viewer_with_two_image_sizes_equals_the_reference(mixed):
  from dynadust3r_jax.inference.pair_viewer import pair_viewer
  m, shapes, output = mixed
  p = m['pair_edges']
  out = {k: {kk: [vv[e] for e in p] for kk, vv in output[k].items()} for k in ('view1', 'view2', 'pred1', 'pred2')}
  scene = pair_viewer(out)
  assert [d.shape for d in scene.depthmaps] == shapes[:2]
  np.testing.assert_allclose(scene.cam_to_world, m['pair_cam_to_world'], atol=1e-5)
  np.testing.assert_allclose(scene.focals, m['pair_focals'], rtol=1e-5)
  np.testing.assert_allclose(np.concatenate([d.ravel() for d in scene.depthmaps]), m['pair_depth'], rtol=1e-5)
  np.testing.assert_allclose(np.concatenate([x.reshape(-1, 3) for x in scene.pts3d]), m['pair_pts3d'], atol=1e-4)


def test_the_optimisation_is_one_compiled_loop(ref, problem):
  """One program for all the steps (lax.fori_loop) with the edge chunks in a lax.scan: its size does not depend
  on the number of steps or of chunks (nothing unrolled, no Python per step)."""
  data, _ = problem

  def hlo(niter, chunk):
    lrs = jnp.asarray(ga.lr_schedule(niter, 0.01), jnp.float32)
    return ga.optimize.lower(_ref_params(ref, 'mst'), data, FREE, lrs, edge_chunk=chunk).as_text()
  text = hlo(300, 4)
  assert text.count('stablehlo.while') >= 2
  assert len(hlo(3, 4).splitlines()) == len(text.splitlines()) == len(hlo(300, 2).splitlines())
