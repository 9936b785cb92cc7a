"""Exports (dynadust3r_jax.inference.export) of a synthetic scene with known cameras.

The scene: a textured ground plane z = 0 seen by 3 cameras looking down with random yaw and tilt; depth by
ray casting, so the points of one image land on the same surface in the others (multi-view COLMAP tracks).
Processed sizes 24×32, 24×32 and 32×24 (per-image lists) come from originals of other sizes with crops.
"""
import json
import types

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from dynadust3r_jax.common.geometry import OPENCV_TO_OPENGL
from dynadust3r_jax.common.tum import read_tum_poses
from dynadust3r_jax.inference import to_original_matrix
from dynadust3r_jax.inference.export import (FORMATS, build_glb_scene, export_all, original_intrinsics,
                                             processed_to_original_pixels, write_cameras_json, write_colmap,
                                             write_glb, write_ply, write_transforms_json, write_tum_poses)
from tests.colmap_readers import pycolmap_read, read_colmap_classic

# (orig_shape (H0,W0), resized_shape (H1,W1), crop_offset (top,left), processed (H,W))
VIEWS = [((50, 70), (27, 38), (1, 3), (24, 32)),
         ((96, 128), (24, 32), (0, 0), (24, 32)),
         ((41, 30), (33, 24), (0, 0), (32, 24))]


def _scene(seed=0):
  rng = np.random.default_rng(seed)
  r0 = np.array([[1., 0., 0.], [0., -1., 0.], [0., 0., -1.]])  # OpenCV camera looking down world -z
  c2w, K, depth, pts, conf, masks, imgs, views = [], [], [], [], [], [], [], []
  for i, (orig, resized, off, (h, w)) in enumerate(VIEWS):
    R = (Rotation.from_euler('z', rng.uniform(0, 360), degrees=True)
         * Rotation.from_rotvec(rng.normal(size=3) * 0.15)).as_matrix() @ r0
    C = np.array([rng.uniform(-.4, .4), rng.uniform(-.4, .4), rng.uniform(2., 3.)])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, C
    f = rng.uniform(25, 35)
    Ki = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.]])  # DUSt3R: pp = (W/2, H/2)
    v, u = np.mgrid[:h, :w].astype(np.float64)
    rays = np.stack([(u - w / 2) / f, (v - h / 2) / f, np.ones_like(u)], -1) @ R.T  # world, camera z = 1
    lam = -C[2] / rays[..., 2]  # the depth (camera z) where the ray meets z = 0
    X = C + lam[..., None] * rays
    assert np.all(lam > 0)
    c2w.append(T), K.append(Ki), depth.append(lam.astype(np.float32)), pts.append(X.astype(np.float32))
    conf.append(rng.uniform(1, 5, (h, w)).astype(np.float32))
    masks.append(rng.uniform(size=(h, w)) < 0.8)
    imgs.append((0.5 + 0.5 * np.sin(np.stack([X[..., 0] * 7, X[..., 1] * 5, X[..., 0] * 3 + X[..., 1]], -1))
                 ).astype(np.float32))
    views.append({'name': f'img_{i}.png', 'orig_shape': orig, 'resized_shape': resized, 'crop_offset': off,
                  'true_shape': np.array([[h, w]], np.int32), 'idx': i, 'instance': str(i)})
  scene = types.SimpleNamespace(cam_to_world=np.stack(c2w), intrinsics=np.stack(K), depthmaps=depth,
                                pts3d=pts, conf=conf, masks=masks, imgs=imgs)
  return scene, views


@pytest.fixture(scope='module')
def data():
  return _scene()


def test_original_intrinsics_convention(data):
  """Pixel (c, r) of the processed image is at (c, r) under K; at the original size its centre is
  (sx·(c + 0.5 + left), sy·(r + 0.5 + top)) in COLMAP's pixel-edge convention, and K0 projects there."""
  scene, views = data
  view, K = views[0], scene.intrinsics[0]
  (h0, w0), (h1, w1), (top, left) = view['orig_shape'], view['resized_shape'], view['crop_offset']
  sx, sy = w0 / w1, h0 / h1
  K0 = original_intrinsics(K, view)
  np.testing.assert_allclose(K0, [[sx * K[0, 0], 0, sx * (K[0, 2] + 0.5 + left)],
                                  [0, sy * K[1, 1], sy * (K[1, 2] + 0.5 + top)], [0, 0, 1]], rtol=1e-12)
  np.testing.assert_allclose(K0, to_original_matrix(view) @ np.array([[1, 0, .5], [0, 1, .5], [0, 0, 1]]) @ K)
  for c, r in [(0, 0), (31, 23), (5, 17)]:
    X = scene.pts3d[0][r, c].astype(np.float64)
    w2c = np.linalg.inv(scene.cam_to_world[0])
    xc = w2c[:3, :3] @ X + w2c[:3, 3]
    proj0 = (K0 @ xc)[:2] / xc[2]
    expect = [sx * (c + 0.5 + left), sy * (r + 0.5 + top)]
    np.testing.assert_allclose(proj0, expect, atol=1e-4)
    np.testing.assert_allclose(processed_to_original_pixels([c, r], view), expect, rtol=1e-12)


def test_cameras_json(data, tmp_path):
  scene, views = data
  cams = json.loads(open(write_cameras_json(scene, views, tmp_path / 'cameras.json')).read())
  assert list(cams) == ['img_0.png', 'img_1.png', 'img_2.png']
  for i, (name, view) in enumerate(zip(cams, views)):
    c = cams[name]
    assert c['index'] == i
    assert (c['width'], c['height']) == (view['orig_shape'][1], view['orig_shape'][0])
    assert (c['processed_height'], c['processed_width']) == VIEWS[i][3]
    np.testing.assert_allclose(c['cam_to_world'], scene.cam_to_world[i], rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.array(c['world_to_cam']) @ np.array(c['cam_to_world']), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(c['K'], original_intrinsics(scene.intrinsics[i], view), rtol=1e-15)
    np.testing.assert_allclose(c['K_processed'], scene.intrinsics[i])
  # the principal point sits near the centre of the original image (half a processed pixel off, as DUSt3R's)
  c = cams['img_1.png']  # no crop, scale 4: cx0 = 4·(16 + 0.5) = 66 for W0 = 128
  assert c['K'][0][2] == pytest.approx(66.) and c['K'][1][2] == pytest.approx(4 * 12.5)


def test_colmap_model(data, tmp_path):
  """pycolmap reads the model back: PINHOLE cameras at the original sizes, names, centres = cameras.json's,
  every observation within 0.5 px (in fact ~1e-4) of its point's projection with the original-size K;
  multi-view tracks; images' points2D and points' tracks agree; the classic layout; a deterministic
  subsample."""
  scene, views = data
  cams = json.loads(open(write_cameras_json(scene, views, tmp_path / 'cameras.json')).read())
  n_masked = sum(int(m.sum()) for m in scene.masks)
  write_colmap(scene, views, tmp_path / 'colmap', max_points=500)
  rec = pycolmap_read(tmp_path / 'colmap')
  assert len(rec['cameras']) == len(rec['images']) == 3 and len(rec['points3D']) == 500 < n_masked
  by_name = {im['name']: im for im in rec['images'].values()}
  assert sorted(by_name) == sorted(cams)
  for name, c in cams.items():
    im = by_name[name]
    cam = rec['cameras'][im['camera_id']]
    assert cam['model'] == 'PINHOLE' and (cam['width'], cam['height']) == (c['width'], c['height'])
    np.testing.assert_allclose(cam['K'], c['K'], rtol=1e-12)
    np.testing.assert_allclose(im['center'], np.array(c['cam_to_world'])[:3, 3], atol=1e-12)
    np.testing.assert_allclose(im['cam_from_world'], np.array(c['world_to_cam'])[:3], atol=1e-12)
  errors, lengths = [], []
  for pid, p in rec['points3D'].items():
    lengths.append(len(p['track']))
    for image_id, idx in p['track']:
      im = rec['images'][image_id]
      cam = rec['cameras'][im['camera_id']]
      xc = np.array(im['cam_from_world']) @ np.r_[p['xyz'], 1.]
      proj = (np.array(cam['K']) @ xc)[:2] / xc[2]
      x, y, point3d_id = im['points2D'][idx]
      assert point3d_id == pid
      errors.append(np.abs(proj - [x, y]).max())
      assert 0 <= x <= cam['width'] and 0 <= y <= cam['height']
    assert 0 <= p['error'] < 1e-3
  assert max(errors) < 1e-3, max(errors)  # float32 points; the brief's bound is 0.5 px
  assert 0 <= rec['mean_error'] < 1e-3
  lengths = np.array(lengths)
  assert lengths.min() >= 1 and (lengths >= 2).mean() > 0.3  # the plane is seen by several cameras
  assert sum(len(im['points2D']) for im in rec['images'].values()) == lengths.sum()
  # colours: the image colour of the point's own pixel (a point of the plane: colour from its position)
  p = rec['points3D'][1]
  i0 = rec['images'][p['track'][0][0]]['name']
  k = int(i0[4])
  dist = np.linalg.norm(scene.pts3d[k] - np.array(p['xyz'], np.float32), axis=-1)
  r, c = np.unravel_index(np.argmin(dist), dist.shape)
  assert p['color'] == list(np.round(scene.imgs[k][r, c] * 255).astype(int))
  # classic layout, readable without pycolmap
  ccams, cimgs = read_colmap_classic(tmp_path / 'colmap')
  for iid, (q, t, cid, name, xys, ids) in cimgs.items():
    T = np.array(cams[name]['world_to_cam'])
    np.testing.assert_allclose(Rotation.from_quat(q[[1, 2, 3, 0]]).as_matrix(), T[:3, :3], atol=1e-9)
    np.testing.assert_allclose(t, T[:3, 3], atol=1e-12)
    np.testing.assert_allclose(ccams[cid][3], np.array(cams[name]['K'])[[0, 1, 0, 1], [0, 1, 2, 2]])
    assert ccams[cid][1:3] == (cams[name]['width'], cams[name]['height']) and len(xys) == len(ids) > 0
  # deterministic
  write_colmap(scene, views, tmp_path / 'colmap2', max_points=500)
  for f in ('cameras.bin', 'images.bin', 'points3D.bin'):
    assert (tmp_path / 'colmap' / f).read_bytes() == (tmp_path / 'colmap2' / f).read_bytes()


def test_colmap_single_view_tracks(data, tmp_path):
  """multiview_tracks=False: each point is observed once, at its own pixel centre; all masked points kept
  when max_points is None."""
  scene, views = data
  write_colmap(scene, views, tmp_path / 'c', max_points=None, multiview_tracks=False)
  _, imgs = read_colmap_classic(tmp_path / 'c')
  n = sum(int(m.sum()) for m in scene.masks)
  ids = np.concatenate([im[5] for im in imgs.values()])
  np.testing.assert_array_equal(np.sort(ids), np.arange(1, n + 1))  # every point once
  im = {im[3]: im for im in imgs.values()}['img_0.png']
  r, c = np.nonzero(scene.masks[0])
  np.testing.assert_allclose(im[4], processed_to_original_pixels(np.stack([c, r], -1), views[0]))
  (h0, w0), (h1, w1), (top, left) = views[0]['orig_shape'], views[0]['resized_shape'], views[0]['crop_offset']
  np.testing.assert_allclose(im[4][0], [(c[0] + .5 + left) * w0 / w1, (r[0] + .5 + top) * h0 / h1])


def _camera_nodes(glb):
  names = [n for n in glb.graph.nodes_geometry if n.startswith('camera_')]
  return sorted(n for n in names if not n.endswith('_image')), sorted(n for n in names if n.endswith('_image'))


def test_glb(data, tmp_path):
  """scene.glb reloads with one pyramid and one image quad per camera; the mesh keeps the faces whose three
  vertices are masked-in (4 per fully valid quad); the point cloud is the masked points moved by
  inv(c2w[0] @ OPENGL @ rotY(180°)), which puts camera 0's centre at the origin, its axes as diag(-1,-1,1)."""
  scene, views = data
  path = write_glb(scene, tmp_path / 'scene.glb', views=views)
  glb = trimesh.load(path)
  cams, quads = _camera_nodes(glb)
  assert cams == ['camera_0000', 'camera_0001', 'camera_0002'] and len(quads) == 3
  expect_faces = 0
  for m in scene.masks:
    expect_faces += 2 * int((m[:-1, :-1] & m[:-1, 1:] & m[1:, :-1]).sum())  # (tl, tr, bl) and reversed
    expect_faces += 2 * int((m[:-1, 1:] & m[1:, :-1] & m[1:, 1:]).sum())  # (tr, bl, br) and reversed
  mesh_node = [n for n in glb.graph.nodes_geometry if n.startswith('mesh')]
  assert len(mesh_node) == 1
  assert len(glb.geometry[glb.graph[mesh_node[0]][1]].faces) == expect_faces

  rot = np.diag([-1., 1., -1., 1.])
  T = np.linalg.inv(scene.cam_to_world[0] @ OPENCV_TO_OPENGL @ rot)
  pc = build_glb_scene(scene, as_pointcloud=True, transparent_cams=True, views=views)
  write_glb(scene, tmp_path / 'pc.glb', as_pointcloud=True, transparent_cams=True, views=views)
  glb = trimesh.load(tmp_path / 'pc.glb')
  cams, quads = _camera_nodes(glb)
  assert len(cams) == 3 and quads == []
  mat, geom = glb.graph['points']
  xyz = trimesh.transform_points(np.asarray(glb.geometry[geom].vertices), mat)
  expect = np.concatenate([p[m] for p, m in zip(scene.pts3d, scene.masks)])
  expect = expect @ T[:3, :3].T + T[:3, 3]
  np.testing.assert_allclose(xyz, expect, atol=1e-5)
  rgb = np.concatenate([np.round(c[m] * 255) for c, m in zip(scene.imgs, scene.masks)])
  np.testing.assert_array_equal(np.asarray(glb.geometry[geom].colors)[:, :3], rgb)
  # camera 0's pyramid: the apex (optical centre) at the origin, the base at z = +f·cam_size/H
  # (camera 0 looks along +z after the rotY(180°) of the OpenGL frame)
  mat, geom = pc.graph['camera_0000']
  v = trimesh.transform_points(pc.geometry[geom].vertices, mat)
  np.testing.assert_allclose(v[0], 0, atol=1e-9)
  f, h = scene.intrinsics[0][0, 0], 24
  np.testing.assert_allclose(v[1:5, 2], f * 0.05 / h, rtol=1e-9)


def test_transforms_json(data, tmp_path):
  scene, views = data
  tj = json.loads(open(write_transforms_json(scene, views, tmp_path / 'transforms.json')).read())
  assert tj['camera_model'] == 'PINHOLE' and len(tj['frames']) == 3
  for i, fr in enumerate(tj['frames']):
    assert fr['file_path'] == f'images/img_{i}.png'
    c2w_cv = np.array(fr['transform_matrix']) @ np.diag([1., -1., -1., 1.])  # OpenGL → OpenCV axes
    np.testing.assert_allclose(c2w_cv, scene.cam_to_world[i], atol=1e-15)
    K0 = original_intrinsics(scene.intrinsics[i], views[i])
    assert [fr['fl_x'], fr['fl_y'], fr['cx'], fr['cy']] == pytest.approx([K0[0, 0], K0[1, 1], K0[0, 2], K0[1, 2]])
    assert (fr['w'], fr['h']) == (views[i]['orig_shape'][1], views[i]['orig_shape'][0])
  # nerfstudio's camera looks down its -z: the centre ray hits the plane below (z = 0)
  T = np.array(tj['frames'][0]['transform_matrix'])
  assert (T[:3, :3] @ [0, 0, -1.])[2] < 0


def test_tum_roundtrip(data, tmp_path):
  scene, _ = data
  path = write_tum_poses(scene, tmp_path / 'poses_tum.txt')
  lines = open(path).read().splitlines()
  assert len(lines) == 3 and all(len(x.split()) == 8 for x in lines)
  ts, T = read_tum_poses(path)
  np.testing.assert_array_equal(ts, [0., 1., 2.])
  np.testing.assert_allclose(T, scene.cam_to_world, atol=1e-8)
  q = np.array(lines[1].split()[4:], float)  # qx qy qz qw (scalar last)
  np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), scene.cam_to_world[1][:3, :3], atol=1e-8)


def test_ply(data, tmp_path):
  scene, views = data
  pc = trimesh.load(write_ply(scene, tmp_path / 'pointcloud.ply', views))
  expect = np.concatenate([p[m] for p, m in zip(scene.pts3d, scene.masks)])
  assert len(pc.vertices) == len(expect) == sum(int(m.sum()) for m in scene.masks)
  np.testing.assert_array_equal(np.asarray(pc.vertices, np.float32), expect)
  rgb = np.concatenate([np.round(c[m] * 255) for c, m in zip(scene.imgs, scene.masks)])
  np.testing.assert_array_equal(np.asarray(pc.colors)[:, :3], rgb)


def test_export_all(data, tmp_path):
  scene, views = data
  out = export_all(scene, views, tmp_path / 'out', max_points=200)
  assert set(out) == set(FORMATS)
  names = {p.relative_to(tmp_path / 'out').as_posix() for p in (tmp_path / 'out').rglob('*') if p.is_file()}
  assert {'cameras.json', 'colmap/cameras.bin', 'colmap/images.bin', 'colmap/points3D.bin', 'scene.glb',
          'pointcloud.ply', 'transforms.json', 'poses_tum.txt', 'intrinsics.txt', 'frames/frame_0000.npz',
          'frames/frame_0001.npz', 'frames/frame_0002.npz'} <= names
  K = np.loadtxt(tmp_path / 'out' / 'intrinsics.txt')
  np.testing.assert_allclose(K.reshape(3, 3, 3), scene.intrinsics)
  fr = np.load(tmp_path / 'out' / 'frames' / 'frame_0002.npz')
  assert fr['depth'].shape == (32, 24) and fr['pointmap'].shape == (32, 24, 3) and fr['mask'].dtype == bool
  np.testing.assert_array_equal(fr['pointmap'], scene.pts3d[2])
  np.testing.assert_array_equal(fr['depth'], scene.depthmaps[2])
  np.testing.assert_array_equal(fr['confidence'], scene.conf[2])
  np.testing.assert_array_equal(fr['mask'], scene.masks[2])
  np.testing.assert_allclose(fr['K_original'], original_intrinsics(scene.intrinsics[2], views[2]))
  assert str(fr['name']) == 'img_2.png'
  tj = json.loads((tmp_path / 'out' / 'transforms.json').read_text())
  assert tj['ply_file_path'] == 'pointcloud.ply'
  assert 'motion' not in fr
  # DynaDUSt3R: a scene with motion (N,H,W,3) → 'motion' in each frame npz (the viewer draws it)
  motion = [np.full(p.shape, 0.1 * i, np.float32) for i, p in enumerate(scene.pts3d)]
  dyn = types.SimpleNamespace(**vars(scene), motion=motion)
  paths = export_all(dyn, views, tmp_path / 'dyn', formats=('frames',))['frames']
  np.testing.assert_array_equal(np.load(paths[2])['motion'], motion[2])
  with pytest.raises(ValueError, match='unknown formats'):
    export_all(scene, views, tmp_path / 'x', formats=('glb', 'obj'))


def test_errors(data, tmp_path):
  scene, views = data
  dup = [dict(v) for v in views]
  dup[1]['name'] = 'img_0.png'
  with pytest.raises(ValueError, match='unique'):
    write_cameras_json(scene, dup, tmp_path / 'c.json')
  with pytest.raises(ValueError, match='views for a scene'):
    write_colmap(scene, views[:2], tmp_path / 'colmap')
  bad = types.SimpleNamespace(**{**vars(scene), 'intrinsics': scene.intrinsics[:2]})
  with pytest.raises(ValueError, match='intrinsics'):
    write_cameras_json(bad, views, tmp_path / 'c.json')
