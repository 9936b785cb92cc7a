"""COLMAP model readers for the tests: pycolmap (in a subprocess) and a minimal classic-layout reader."""
import json
import struct
import subprocess
import sys

import numpy as np


def read_colmap_classic(d):
  """Minimal reader of COLMAP's classic binary layout (the one gsplat/nerfstudio parsers read):
  → ({camera_id: (model_id, w, h, params)}, {image_id: (qvec wxyz, tvec, camera_id, name, xys, ids)})."""
  cams, imgs = {}, {}
  with open(d / 'cameras.bin', 'rb') as f:
    for _ in range(struct.unpack('<Q', f.read(8))[0]):
      cid, model, w, h = struct.unpack('<iiQQ', f.read(24))
      assert model == 1  # PINHOLE: fx fy cx cy
      cams[cid] = (model, w, h, np.array(struct.unpack('<4d', f.read(32))))
  with open(d / 'images.bin', 'rb') as f:
    for _ in range(struct.unpack('<Q', f.read(8))[0]):
      iid, *qt, cid = struct.unpack('<i7di', f.read(64))
      name = b''
      while (ch := f.read(1)) != b'\x00':
        name += ch
      n = struct.unpack('<Q', f.read(8))[0]
      rec = np.frombuffer(f.read(24 * n), dtype=[('x', '<f8'), ('y', '<f8'), ('id', '<i8')])
      imgs[iid] = (np.array(qt[:4]), np.array(qt[4:]), cid, name.decode(), np.stack([rec['x'], rec['y']], -1),
                   rec['id'])
  return cams, imgs


# pycolmap runs in a subprocess: its wheels export zlib symbols that break zlib users loaded after it
# (PIL's PNG encoder, cv2) in the same process (see export/colmap.py).
_PYCOLMAP_DUMP = """
import json, sys
import pycolmap
rec = pycolmap.Reconstruction(sys.argv[1])
out = {'mean_error': rec.compute_mean_reprojection_error(), 'cameras': {}, 'images': {}, 'points3D': {}}
for cid, c in rec.cameras.items():
  out['cameras'][cid] = {'model': c.model_name, 'width': c.width, 'height': c.height,
                         'K': c.calibration_matrix().tolist()}
for iid, im in rec.images.items():
  pts2d = [[*p.xy.tolist(), p.point3D_id if p.has_point3D() else -1] for p in im.points2D]
  out['images'][iid] = {'name': im.name, 'camera_id': im.camera_id, 'center': im.projection_center().tolist(),
                        'cam_from_world': im.cam_from_world().matrix().tolist(), 'points2D': pts2d}
for pid, p in rec.points3D.items():
  out['points3D'][pid] = {'xyz': p.xyz.tolist(), 'color': p.color.tolist(), 'error': p.error,
                          'track': [[e.image_id, e.point2D_idx] for e in p.track.elements]}
json.dump(out, sys.stdout)
"""


def pycolmap_read(d):
  """The COLMAP model in d as read by pycolmap (in a subprocess) → dict with int keys."""
  res = subprocess.run([sys.executable, '-c', _PYCOLMAP_DUMP, str(d)], capture_output=True, text=True,
                       timeout=120, check=False)
  assert res.returncode == 0, res.stderr[-2000:]
  out = json.loads(res.stdout)
  for k in ('cameras', 'images', 'points3D'):
    out[k] = {int(i): v for i, v in out[k].items()}
  return out
