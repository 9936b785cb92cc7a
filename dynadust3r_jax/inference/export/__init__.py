"""Exports of a reconstructed scene (one format per file; conventions in common.py and the README).

`export_all(scene, views, outdir)` writes, under outdir:
  cameras.json                      per image name: cam_to_world, world_to_cam, K (original size), width, height
  colmap/{cameras,images,points3D}.bin  COLMAP sparse model at the original sizes (classic binary layout)
  scene.glb                         DUSt3R demo-style GLB (mesh or point cloud + camera pyramids)
  pointcloud.ply                    masked world points with colours
  transforms.json                   nerfstudio (OpenGL camera axes), ply_file_path → pointcloud.ply
  poses_tum.txt                     TUM 'timestamp tx ty tz qx qy qz qw', cam-to-world
  intrinsics.txt                    MonST3R layout: 9 numbers of K per line, processed size
  frames/frame_XXXX.npz             depth, confidence, mask, pointmap, image, cam_to_world, K, K_original
The scene is duck-typed: cam_to_world (N,4,4) OpenCV, intrinsics (N,3,3) processed pixels, depthmaps,
pts3d (world), conf, masks, imgs in [0,1] (arrays or per-image lists); views = load_images' dicts.
"""
import os

from dynadust3r_jax.inference.export.cameras import (read_known_cameras, write_cameras_json, write_intrinsics_txt,
                                                     write_transforms_json, write_tum_poses)
from dynadust3r_jax.inference.export.colmap import build_model, write_colmap
from dynadust3r_jax.inference.export.common import original_intrinsics, processed_to_original_pixels
from dynadust3r_jax.inference.export.glb import build_glb_scene, write_glb
from dynadust3r_jax.inference.export.points import write_frames, write_ply

FORMATS = ('cameras', 'colmap', 'glb', 'ply', 'transforms', 'tum', 'intrinsics', 'frames')


def export_all(scene, views, outdir, formats=FORMATS, as_pointcloud=False, cam_size=0.05,
               transparent_cams=False, max_points=50_000, seed=0, multiview_tracks=True, image_dir='images'):
  """Writes the requested formats (a subset of FORMATS) under outdir; → {format: path (or list of paths)}.

  as_pointcloud, cam_size, transparent_cams: the GLB's; max_points, seed, multiview_tracks: COLMAP's
  points3D; image_dir: the prefix of transforms.json's file_path (where the job puts the images)."""
  unknown = sorted(set(formats) - set(FORMATS))
  if unknown:
    raise ValueError(f'export_all: unknown formats {unknown}; known: {list(FORMATS)}')
  os.makedirs(outdir, exist_ok=True)
  out = {}
  if 'cameras' in formats:
    out['cameras'] = write_cameras_json(scene, views, os.path.join(outdir, 'cameras.json'))
  if 'colmap' in formats:
    out['colmap'] = write_colmap(scene, views, os.path.join(outdir, 'colmap'), max_points=max_points,
                                 seed=seed, multiview_tracks=multiview_tracks)
  if 'glb' in formats:
    out['glb'] = write_glb(scene, os.path.join(outdir, 'scene.glb'), as_pointcloud=as_pointcloud,
                           cam_size=cam_size, transparent_cams=transparent_cams, views=views)
  if 'ply' in formats:
    out['ply'] = write_ply(scene, os.path.join(outdir, 'pointcloud.ply'), views)
  if 'transforms' in formats:
    out['transforms'] = write_transforms_json(
        scene, views, os.path.join(outdir, 'transforms.json'), image_dir=image_dir,
        ply_file_path='pointcloud.ply' if 'ply' in formats else None)
  if 'tum' in formats:
    out['tum'] = write_tum_poses(scene, os.path.join(outdir, 'poses_tum.txt'))
  if 'intrinsics' in formats:
    out['intrinsics'] = write_intrinsics_txt(scene, os.path.join(outdir, 'intrinsics.txt'))
  if 'frames' in formats:
    out['frames'] = write_frames(scene, views, os.path.join(outdir, 'frames'))
  return out


__all__ = ['FORMATS', 'build_glb_scene', 'build_model', 'export_all', 'original_intrinsics',
           'processed_to_original_pixels', 'write_cameras_json', 'write_colmap', 'write_frames', 'write_glb',
           'write_intrinsics_txt', 'write_ply', 'write_transforms_json', 'write_tum_poses']
