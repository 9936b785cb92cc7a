"""scene.glb with trimesh, the look of DUSt3R's gradio demo (spec/dust3r.md §3.5):

* geometry: a coloured point cloud of the masked points (as_pointcloud), or one mesh of all images with
  two triangles per pixel quad plus their reversed copies (no back-face culling), kept only where all
  three vertices are masked-in, coloured by the top-left / bottom-right pixel of the quad;
* one camera per image: a 4-sided pyramid drawn as thin slivers along its edges, apex at the optical centre,
  its base the image rectangle at depth f·cam_size/H (processed f, W, H: DUSt3R's frustum), colour
  CAM_COLORS[i % 11], plus the image as a textured quad on the base unless transparent_cams;
* the whole scene moved by inv(cam_to_world[0] @ OPENGL @ rotY(180°)), so the first camera looks down the
  viewer's default axis (glTF is y-up).
Nodes are named 'points' or 'mesh', 'camera_XXXX' and 'camera_XXXX_image'.
"""
import os

import numpy as np
import PIL.Image

from dynadust3r_jax.common.geometry import OPENCV_TO_OPENGL
from dynadust3r_jax.inference.export.common import read_scene, to_uint8
from dynadust3r_jax.inference.export.points import masked_points

CAM_COLORS = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (255, 204, 0), (0, 204, 204),
              (128, 255, 255), (255, 128, 255), (255, 255, 128), (0, 0, 0), (128, 128, 128)]


def _rot_y_180():
  return np.diag([-1., 1., -1., 1.])


def _rot_z(deg):
  a = np.deg2rad(deg)
  T = np.eye(4)
  T[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
  return T


def _apply(T, pts):
  return pts @ T[:3, :3].T + T[:3, 3]


def pixel_mesh(rgb, pts3d, valid):
  """(H,W,3) colours uint8, (H,W,3) points, (H,W) bool → (vertices (H·W,3), faces (F,3), face colours (F,3)):
  per quad the triangles (tl, tr, bl) and (tr, bl, br), each also reversed; faces with all vertices valid."""
  h, w = valid.shape
  idx = np.arange(h * w).reshape(h, w)
  tl, tr, bl, br = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
  faces = np.concatenate([np.stack([tl, tr, bl], -1), np.stack([bl, tr, tl], -1),
                          np.stack([tr, bl, br], -1), np.stack([br, bl, tr], -1)])
  c_tl, c_br = rgb[:-1, :-1].reshape(-1, 3), rgb[1:, 1:].reshape(-1, 3)
  colors = np.concatenate([c_tl, c_tl, c_br, c_br])
  keep = valid.ravel()[faces].all(-1)
  return pts3d.reshape(-1, 3), faces[keep], colors[keep]


def camera_meshes(cam_to_world, focal, width, height, color, image=None, cam_size=0.05):
  """→ [trimesh.Trimesh] in world coordinates: the camera's pyramid (and its image quad when image (H,W,3)
  uint8 is given). Pyramid base corners in OpenCV camera coordinates: (±W/2, ±H/2, f)·cam_size/H."""
  import trimesh  # pylint: disable=import-outside-toplevel
  s = cam_size / height
  apex = np.zeros(3)
  corners = s * np.array([[-width / 2, -height / 2, focal], [width / 2, -height / 2, focal],  # tl, tr
                          [width / 2, height / 2, focal], [-width / 2, height / 2, focal]])  # br, bl
  base = np.r_[apex[None], corners]  # 0 apex, 1..4 corners
  # Slivers: each side face (corner k, corner k+1, apex) gives a thin triangle per edge to a copy of the
  # pyramid shrunk by 5% towards the base centre, and another to a copy turned 2° about the optical axis.
  centre = np.array([0., 0., s * focal])
  shrunk = centre + 0.95 * (base - centre)
  turned = _apply(_rot_z(2.), base)
  vertices = np.r_[base, shrunk, turned]
  faces = []
  for k in range(4):
    a, b, c = 1 + k, 1 + (k + 1) % 4, 0
    for off in (5, 10):  # the shrunk copy, the turned copy
      faces += [(a, b, b + off), (a, a + off, c), (c + off, b, c)]
  faces += [(z, y, x) for x, y, z in faces]
  out = []
  pyramid = trimesh.Trimesh(vertices=_apply(cam_to_world, vertices), faces=np.array(faces), process=False)
  pyramid.visual.face_colors = np.broadcast_to(np.array([*color, 255], np.uint8), (len(faces), 4)).copy()
  out.append(pyramid)
  if image is not None:
    quad = _apply(cam_to_world, corners[[3, 2, 1, 0]])  # bl, br, tr, tl
    uv = np.array([[0., 0.], [1., 0.], [1., 1.], [0., 1.]])  # glTF/trimesh: v = 0 at the image bottom
    quad_faces = np.array([[0, 1, 2], [0, 2, 3], [2, 1, 0], [3, 2, 0]])
    img = trimesh.Trimesh(vertices=quad, faces=quad_faces, process=False)
    img.visual = trimesh.visual.TextureVisuals(uv=uv, image=PIL.Image.fromarray(image))
    out.append(img)
  return out


def build_glb_scene(scene, as_pointcloud=False, cam_size=0.05, transparent_cams=False, cam_color=None,
                    views=None):
  """→ trimesh.Scene (see the module docstring). cam_color: one RGB for all cameras, or a list of N;
  views: load_images' dicts, for the colours when the scene has no imgs."""
  import trimesh  # pylint: disable=import-outside-toplevel
  s = read_scene(scene, views)
  out = trimesh.Scene()
  if as_pointcloud:
    xyz, rgb = masked_points(s)
    out.add_geometry(trimesh.PointCloud(xyz, colors=rgb), node_name='points', geom_name='points')
  else:
    verts, faces, colors, offset = [], [], [], 0
    for p, c, m in zip(s['pts3d'], s['rgb'], s['mask']):
      v, f, fc = pixel_mesh(to_uint8(c), p, m)
      verts.append(v), faces.append(f + offset), colors.append(fc)
      offset += len(v)
    mesh = trimesh.Trimesh(vertices=np.concatenate(verts), faces=np.concatenate(faces),
                           face_colors=np.concatenate(colors), process=False)
    out.add_geometry(mesh, node_name='mesh', geom_name='mesh')
  for i in range(s['n']):
    if isinstance(cam_color, list):
      color = cam_color[i]
    else:
      color = cam_color or CAM_COLORS[i % len(CAM_COLORS)]
    h, w = s['depth'][i].shape
    image = None if transparent_cams else to_uint8(s['rgb'][i])
    meshes = camera_meshes(s['cam_to_world'][i], s['K'][i][0, 0], w, h, color, image, cam_size)
    for k, m in enumerate(meshes):
      name = f'camera_{i:04d}' + ('_image' if k else '')
      out.add_geometry(m, node_name=name, geom_name=name)
  out.apply_transform(np.linalg.inv(s['cam_to_world'][0] @ OPENCV_TO_OPENGL @ _rot_y_180()))
  return out


def write_glb(scene, path, as_pointcloud=False, cam_size=0.05, transparent_cams=False, cam_color=None,
              views=None):
  """Writes the GLB of build_glb_scene to path and returns path."""
  glb = build_glb_scene(scene, as_pointcloud, cam_size, transparent_cams, cam_color, views)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  glb.export(file_obj=path, file_type='glb')
  return path
