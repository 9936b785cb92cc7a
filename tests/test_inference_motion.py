"""DynaDUSt3R's motion in the aligned world (inference/motion.py): the frame algebra on fabricated outputs
(global alignment's pw_poses, PairViewer's pair frame), the per-image choice of the next frame, and the
reconstruct job end to end with a tiny DynaDUSt3R on a synthetic video."""
import json

import numpy as np
import pytest

from dynadust3r_jax.inference import motion
from dynadust3r_jax.inference.global_align import global_align, pairwise_poses
from dynadust3r_jax.inference.pair_viewer import pair_viewer

H, W = 6, 8


def _output(edges, pts_cam1, conf, motions):
  """An inference output: per edge pred1 pts3d / pred2 pts3d_in_other_view (E,H,W,3), conf, the 4 motions."""
  E = len(edges)
  out = {'view1': {'idx': np.array([i for i, _ in edges])}, 'view2': {'idx': np.array([j for _, j in edges])},
         'pred1': {'pts3d': np.stack([p[0] for p in pts_cam1]), 'conf': np.stack([c[0] for c in conf])},
         'pred2': {'pts3d_in_other_view': np.stack([p[1] for p in pts_cam1]), 'conf': np.stack([c[1] for c in conf])}}
  for pred, name, _, _ in motion.MOTION_OUTPUTS:
    out[pred][f'motion_{name}'] = np.stack([m[name] for m in motions]).astype(np.float32)
    out[pred][f'conf_{name}'] = np.ones((E, H, W), np.float32)
  return out


def _world_flows(rng, n):
  """{(src, dst): (H,W,3)} a known world flow to dst's time, {(src, dst, 'mid')}: to the pair's midpoint."""
  flows = {}
  for a in range(n):
    for b in range(n):
      if a != b:
        flows[(a, b)] = rng.standard_normal((H, W, 3))
        flows[(a, b, 'mid')] = rng.standard_normal((H, W, 3))
  return flows


def _motions_in_edge_frame(edges, R, sigma, F):
  """Camera-1-frame motions of each edge from the world flows: m = R_e^T F / σ_e."""
  to_edge = lambda e, f: (f @ R[e]) / sigma[e]  # noqa: E731  (row vectors: R^T f = f @ R)
  return [{'l2r': to_edge(e, F[(i, j)]), 'l2m': to_edge(e, F[(i, j, 'mid')]),
           'r2l': to_edge(e, F[(j, i)]), 'r2m': to_edge(e, F[(j, i, 'mid')])} for e, (i, j) in enumerate(edges)]


def _check_recovered(records, F, atol):
  for r in records:
    kind = {'motion_l2r': (), 'motion_r2l': (), 'motion_l2m': ('mid',), 'motion_r2m': ('mid',)}[r['key']]
    np.testing.assert_allclose(r['flow'], F[(r['src'], r['dst']) + kind], atol=atol)


def test_world_flow_from_the_global_alignment_pw_poses():
  """3 images, 6 edges, random pw_poses (the real global_align, 0 iterations): σ_e R_e m recovers the flow."""
  rng = np.random.default_rng(0)
  edges = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)]
  pw = rng.standard_normal((len(edges), 8))
  P = np.asarray(pairwise_poses(np.asarray(pw, np.float32)), np.float64)
  sigma = np.linalg.norm(P[:, :3, 0], axis=-1)
  R = P[:, :3, :3] / sigma[:, None, None]
  assert np.ptp(sigma) > 0.1                                     # the edges' scales differ
  F = _world_flows(rng, 3)
  pts = [(rng.uniform(1, 2, (H, W, 3)), rng.uniform(1, 2, (H, W, 3))) for _ in edges]
  conf = [(np.full((H, W), 5.0), np.full((H, W), 5.0)) for _ in edges]
  out = _output(edges, pts, conf, _motions_in_edge_frame(edges, R, sigma, F))
  scene = global_align(out, niter=0, init='random', init_params={'pw_poses': pw})
  records = motion.scene_flows(out, scene)
  assert len(records) == 4 * len(edges)
  _check_recovered(records, F, atol=1e-4)
  r = records[0]                                                 # edge (0,1), l2r: image 0 at image 1's time
  assert (r['src'], r['dst'], r['fraction'], r['time'], motion.cloud_name(r)) == (0, 1, 1.0, 1.0, 'frame_0000_to_0001')
  mid = [x for x in records if x['key'] == 'motion_r2m' and x['edge'] == 2][0]   # image 2 half-way to image 0
  assert (mid['fraction'], mid['time'], motion.cloud_name(mid)) == (0.5, 1.0, 'frame_0002_to_0000_at_0.50')


def test_world_flow_of_the_pair_viewer():
  """Two pinhole cameras; edge (1,0)'s predictions at another scale s: PairViewer's frame and σ = 1/s."""
  rng = np.random.default_rng(1)
  f = 10.0
  v, u = np.mgrid[:H, :W].astype(np.float64)
  ray = np.stack([(u - W / 2) / f, (v - H / 2) / f, np.ones_like(u)], -1)
  c2w1 = np.eye(4)
  c2w1[:3, :3] = [[np.cos(.2), 0, np.sin(.2)], [0, 1, 0], [-np.sin(.2), 0, np.cos(.2)]]  # 0.2 rad about y
  c2w1[:3, 3] = [0.3, 0.05, 0.0]
  X0 = ray * rng.uniform(2, 3, (H, W, 1))                           # world = camera 0
  X1 = (ray * rng.uniform(2, 3, (H, W, 1))) @ c2w1[:3, :3].T + c2w1[:3, 3]
  w2c1 = np.linalg.inv(c2w1)
  in1 = lambda X: X @ w2c1[:3, :3].T + w2c1[:3, 3]  # noqa: E731
  s = 2.5
  edges = [(0, 1), (1, 0)]
  pts = [(X0, X1), (s * in1(X1), s * in1(X0))]
  conf = [(np.full((H, W), 9.0), np.full((H, W), 9.0)), (np.full((H, W), 4.0), np.full((H, W), 4.0))]
  R = np.stack([np.eye(3), c2w1[:3, :3]])
  sigma = np.array([1.0, 1.0 / s])
  F = _world_flows(rng, 2)
  out = _output(edges, pts, conf, _motions_in_edge_frame(edges, R, sigma, F))
  scene = pair_viewer(out, min_conf_thr=1.5)
  np.testing.assert_allclose(scene.cam_to_world[0], np.eye(4), atol=1e-6)   # the higher-confidence pair's frame
  R_est, sigma_est = motion.edge_transforms(out, scene)
  np.testing.assert_allclose(sigma_est, sigma, rtol=1e-3)
  _check_recovered(motion.scene_flows(out, scene), F, atol=2e-3)


def _record(edge, src, dst, key, fraction=1.0, value=0.0):
  return {'edge': edge, 'src': src, 'dst': dst, 'key': key, 'fraction': fraction, 'flow': np.full((H, W, 3), value)}


def test_per_image_motion_takes_the_nearest_later_frame():
  records = [_record(0, 0, 2, 'motion_l2r', value=2), _record(0, 2, 0, 'motion_r2l'),            # edge (0,2)
             _record(1, 3, 1, 'motion_l2r'), _record(1, 1, 3, 'motion_r2l', value=13),            # edge (3,1)
             _record(2, 1, 3, 'motion_l2r', value=31),                                            # edge (1,3)
             _record(2, 1, 2, 'motion_l2m', fraction=0.5, value=99)]                              # not fraction 1
  flows, target = motion.per_image_motion(records, 4, [(H, W)] * 4)
  assert target.tolist() == [2, 3, -1, -1]
  assert flows[0][0, 0, 0] == 2 and flows[1][0, 0, 0] == 31    # edge (1,3)'s l2r before edge (3,1)'s r2l
  assert not flows[2].any() and not flows[3].any()


def test_reconstruct_video_with_dynadust3r(dyna_checkpoint, tmp_path):
  from configs import reconstruct as reconstruct_config
  from data import synthetic
  from dynadust3r_jax.inference.reconstruct import reconstruct
  synthetic.write_clips(str(tmp_path / 'clips'), 'test', 1, 7, size=64, seed=0)
  c = reconstruct_config.get_config()
  c.checkpoint, c.inputs = dyna_checkpoint, f'{tmp_path}/clips/lefteye-perspective/test/*.mp4'
  c.image_size, c.square_ok, c.frame_stride, c.scene_graph, c.align.niter = 64, True, 2, 'swin-1-noncyclic', 10
  c.min_conf_thr, c.exports = 1.0, ('frames', 'motion')
  out = tmp_path / 'out'
  summary = reconstruct(c, str(out))
  assert summary['model'] == 'DynaDUSt3R' and summary['images'] == 4 and summary['pairs'] == 6  # frames 0,2,4,6
  index = json.loads((out / 'motion' / 'index.json').read_text())
  assert index['motion_target'] == [1, 2, 3, -1]
  names = sorted(p.stem for p in (out / 'motion').glob('*.ply'))
  assert len(names) == 12 == len(index['clouds'])                # 3 neighbours × 2 directions × (full, mid)
  assert 'frame_0000_to_0001' in names and 'frame_0001_to_0000_at_0.50' in names
  assert sorted(p.name for p in (out / 'motion').glob('flow_frame_*.png')) == [f'flow_frame_{n:04d}.png'
                                                                               for n in range(3)]
  assert len(list((out / 'motion').glob('*.npz'))) == 12
  for entry in index['clouds']:                                  # a PLY vertex per masked pixel of the source
    header = (out / 'motion' / f'{entry["name"]}.ply').read_bytes().split(b'end_header')[0].decode()
    assert f'element vertex {entry["points"]}' in header
    assert entry['points'] == np.load(out / 'motion' / f'{entry["name"]}.npz')['mask'].sum() > 0
  for n in range(4):
    frame = np.load(out / 'frames' / f'frame_{n:04d}.npz')
    assert frame['motion_target'] == index['motion_target'][n]
    if n == 3:
      assert not frame['motion'].any()                           # the last frame: no later frame, zeros
      continue
    cloud = np.load(out / 'motion' / f'frame_{n:04d}_to_{n + 1:04d}.npz')
    np.testing.assert_allclose(cloud['points'], frame['pointmap'] + frame['motion'], rtol=1e-6, atol=1e-6)
    assert np.linalg.norm(frame['motion'], axis=-1).min() > 0
    # at init the motion heads are the point heads, whatever the query time: the flow to the midpoint is the
    # flow to the next frame (the same edge, the same σ_e R_e)
    mid = np.load(out / 'motion' / f'frame_{n:04d}_to_{n + 1:04d}_at_0.50.npz')
    scale = np.abs(cloud['flow']).max()
    np.testing.assert_allclose(mid['flow'], cloud['flow'], atol=1e-4 * scale)
