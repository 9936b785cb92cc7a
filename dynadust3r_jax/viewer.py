"""Browser viewer (viser) of a reconstruct job's output folder.

  python -m dynadust3r_jax.viewer OUT [--host 127.0.0.1] [--port 8080] [--subsample 1]

OUT is the job's workdir (its frames/frame_XXXX.npz, written by export/points.py write_frames; summary.json
for the job's min_conf_thr) or the frames/ folder itself. Open the printed URL. On a remote machine keep the
default host 127.0.0.1 and forward the port: `ssh -L 8080:127.0.0.1:8080 user@remote`, then open
http://localhost:8080 locally (or pass --host 0.0.0.0 to listen on every interface).

Shown: one point cloud per frame (world points with raw confidence > the threshold, coloured by the image
or by the confidence), a camera frustum per frame with its image (click one to select its frame), and, where a
frame's npz has a `motion` (H,W,3) array (world displacement per pixel), line segments from each point to
point + motion. The GUI: colour by, confidence threshold, point size, frame (timeline), show all frames or
the current one, play, cameras and motion on/off.

Scene node names: /frames/frame_XXXX/points, /frames/frame_XXXX/motion, /cameras/frame_XXXX.
"""
import argparse
import dataclasses
import glob
import json
import os
import sys
import time

import numpy as np

CMAP = 'viridis'
MOTION_COLOR = (255, 80, 0)
CAMERA_COLOR = (40, 40, 40)
CURRENT_CAMERA_COLOR = (230, 30, 30)


@dataclasses.dataclass
class ViewState:
  """What the scene shows; the GUI edits it, build_scene / refresh_* draw it."""
  color_by: str = 'image'  # 'image' | 'confidence'
  min_conf: float = 3.0  # raw confidence: points with conf > min_conf are shown (the job's min_conf_thr)
  point_size: float = 0.01  # world units
  frame: int = 0  # the timeline's frame
  show: str = 'all'  # 'all' frames | 'current' frame only
  cameras: bool = True
  motion: bool = True
  frustum_scale: float = 0.1  # world units
  motion_stride: int = 1  # draw every k-th drawn pixel's motion (rows and columns)
  subsample: int = 1  # draw every k-th pixel (rows and columns): lighter pages for long videos


def load_output(out):
  """OUT (the job's workdir, or its frames/ folder) → {'frames': [dict per npz], 'summary', 'cameras'}.

  Each frame dict: name (file stem), image_name, pointmap (H,W,3) f32, image (H,W,3) uint8, confidence (H,W)
  f32, mask (H,W) bool, depth (H,W), cam_to_world (4,4), K (3,3), and motion (H,W,3) when the npz has it.
  summary / cameras: the parsed summary.json / cameras.json, None when missing."""
  frames_dir = os.path.join(out, 'frames') if os.path.isdir(os.path.join(out, 'frames')) else out
  paths = sorted(glob.glob(os.path.join(frames_dir, 'frame_*.npz')))
  if not paths:
    raise FileNotFoundError(f'no frames/frame_*.npz under {out} (export "frames" of the reconstruct job)')
  frames = []
  for path in paths:
    with np.load(path) as z:
      f = {k: z[k] for k in z.files}
    h, w = f['confidence'].shape
    stem = os.path.splitext(os.path.basename(path))[0]
    f['image_name'] = str(f['name']) if 'name' in f else stem
    f['name'] = stem
    f['pointmap'] = f['pointmap'].astype(np.float32)
    f['mask'] = f['mask'].astype(bool) if 'mask' in f else np.ones((h, w), bool)
    if 'motion' in f and f['motion'].shape != (h, w, 3):
      raise ValueError(f'{path}: motion {f["motion"].shape}, expected {(h, w, 3)}')
    frames.append(f)
  root = os.path.dirname(frames_dir) if frames_dir != out else out
  return {'frames': frames, 'summary': _read_json(os.path.join(root, 'summary.json')),
          'cameras': _read_json(os.path.join(root, 'cameras.json'))}


def _read_json(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def default_state(frames, summary=None):
  """A ViewState sized to the scene: min_conf = the job's min_conf_thr (else 3), frustums 10% and points about a
  pixel of the median depth."""
  thr = 3.0
  if summary and isinstance(summary.get('config'), dict) and 'min_conf_thr' in summary['config']:
    thr = float(summary['config']['min_conf_thr'])
  depth = np.concatenate([_frame_depth(f).ravel() for f in frames])
  depth = depth[np.isfinite(depth) & (depth > 0)]
  med = float(np.median(depth)) if depth.size else 1.0
  fx = float(np.median([f['K'][0, 0] for f in frames]))
  return ViewState(min_conf=thr, point_size=med / max(fx, 1e-6), frustum_scale=0.1 * med)


def _frame_depth(f):
  if 'depth' in f:
    return np.asarray(f['depth'], np.float64)
  # z in the camera frame of the world points
  T = np.linalg.inv(f['cam_to_world'])
  return f['pointmap'].astype(np.float64) @ T[:3, :3].T[:, 2] + T[2, 3]


def visible_mask(frame, min_conf, subsample=1):
  """(H,W) bool: finite points with raw confidence > min_conf (the job's mask rule), on every subsample-th
  row and column."""
  keep = np.isfinite(frame['pointmap']).all(-1) & (frame['confidence'] > min_conf)
  if subsample > 1:
    grid = np.zeros_like(keep)
    grid[::subsample, ::subsample] = True
    keep &= grid
  return keep


def confidence_range(frames):
  """(lo, hi) for the confidence colours: the minimum and the 99th percentile of the finite confidences."""
  c = np.concatenate([f['confidence'].ravel() for f in frames])
  c = c[np.isfinite(c)]
  if not c.size:
    return 0.0, 1.0
  lo, hi = float(c.min()), float(np.percentile(c, 99))
  return lo, max(hi, lo + 1e-6)


def point_colors(frame, mask, color_by, conf_range):
  """(P,3) uint8 colours of the masked pixels: the image's, or the confidence through CMAP."""
  if color_by == 'image':
    return np.ascontiguousarray(frame['image'][mask], np.uint8)
  if color_by == 'confidence':
    import matplotlib
    lo, hi = conf_range
    t = np.clip((frame['confidence'][mask] - lo) / (hi - lo), 0.0, 1.0)
    return np.round(matplotlib.colormaps[CMAP](t)[:, :3] * 255).astype(np.uint8)
  raise ValueError(f'color_by {color_by!r}: expected "image" or "confidence"')


def motion_segments(frame, mask, stride=1):
  """(S,2,3) float32 segments point → point + motion of the masked pixels on every stride-th row and column."""
  keep = np.zeros_like(mask)
  keep[::stride, ::stride] = True
  keep &= mask & np.isfinite(frame['motion']).all(-1)
  start = frame['pointmap'][keep]
  return np.stack([start, start + frame['motion'][keep]], axis=1).astype(np.float32)


def frame_visible(state, i):
  return state.show == 'all' or i == state.frame


def _pose(c2w):
  """(4,4) cam-to-world → (wxyz, position) for viser (which uses OpenCV camera axes, as the export)."""
  import viser.transforms as vtf
  c2w = np.asarray(c2w, np.float64)
  return vtf.SO3.from_matrix(c2w[:3, :3]).wxyz, c2w[:3, 3]


class Scene:
  """The viser handles of one output folder: points[i], motion[i] (None without motion), cameras[i]."""

  def __init__(self, server, frames, state):
    self.server, self.frames, self.state = server, frames, state
    self.conf_range = confidence_range(frames)
    self.points = [None] * len(frames)
    self.motion = [None] * len(frames)
    self.cameras = [None] * len(frames)
    self.on_select = None  # called with a frame index when a frustum is clicked

  def draw_frame(self, i):
    """(Re)adds frame i's point cloud (and motion): its points pass the threshold, so the data changes."""
    f, s = self.frames[i], self.state
    mask = visible_mask(f, s.min_conf, s.subsample)
    self.points[i] = self.server.scene.add_point_cloud(
        f'/frames/{f["name"]}/points', points=np.ascontiguousarray(f['pointmap'][mask]),
        colors=point_colors(f, mask, s.color_by, self.conf_range), point_size=s.point_size, precision='float32',
        point_shape='rounded', visible=frame_visible(s, i))
    if 'motion' in f:
      self.motion[i] = self.server.scene.add_line_segments(
          f'/frames/{f["name"]}/motion', points=motion_segments(f, mask, s.motion_stride), colors=MOTION_COLOR,
          thickness=s.point_size / 2, visible=s.motion and frame_visible(s, i))

  def draw_camera(self, i):
    f, s = self.frames[i], self.state
    h, w = f['confidence'].shape
    wxyz, position = _pose(f['cam_to_world'])
    handle = self.server.scene.add_camera_frustum(
        f'/cameras/{f["name"]}', fov=float(2 * np.arctan2(h / 2, f['K'][1, 1])), aspect=w / h,
        scale=s.frustum_scale, thickness=s.frustum_scale / 50, image=f['image'], format='jpeg',
        color=CURRENT_CAMERA_COLOR if i == s.frame else CAMERA_COLOR, wxyz=wxyz, position=position,
        visible=s.cameras)

    @handle.on_click
    def _(_event, i=i):
      if self.on_select is not None:
        self.on_select(i)

    self.cameras[i] = handle

  def redraw_points(self):
    """After a change of the threshold or of the colouring."""
    with self.server.atomic():
      for i in range(len(self.frames)):
        self.draw_frame(i)

  def refresh_visibility(self):
    """After a change of the frame, of show all/current, or of the cameras / motion switches."""
    s = self.state
    with self.server.atomic():
      for i in range(len(self.frames)):
        self.points[i].visible = frame_visible(s, i)
        if self.motion[i] is not None:
          self.motion[i].visible = s.motion and frame_visible(s, i)
        self.cameras[i].visible = s.cameras
        self.cameras[i].color = CURRENT_CAMERA_COLOR if i == s.frame else CAMERA_COLOR

  def refresh_point_size(self):
    with self.server.atomic():
      for i in range(len(self.frames)):
        self.points[i].point_size = self.state.point_size
        if self.motion[i] is not None:
          self.motion[i].thickness = self.state.point_size / 2


def build_scene(server, frames, state):
  """Adds every frame's point cloud, motion and camera to server's scene; → Scene (the handles)."""
  scene = Scene(server, frames, state)
  c2w = np.stack([f['cam_to_world'] for f in frames])
  up = -c2w[:, :3, 1].mean(0)  # OpenCV cameras: y down
  server.scene.set_up_direction(up)
  # the initial view: behind and above the first camera, looking at the points' median
  pts = np.concatenate([f['pointmap'].reshape(-1, 3) for f in frames])
  pts = pts[np.isfinite(pts).all(-1)]
  centre = np.median(pts, 0) if len(pts) else c2w[0, :3, 3] + c2w[0, :3, 2]
  dist = float(np.linalg.norm(centre - c2w[0, :3, 3])) or 1.0
  server.initial_camera.position = c2w[0, :3, 3] - 0.5 * dist * c2w[0, :3, 2] - 0.2 * dist * c2w[0, :3, 1]
  server.initial_camera.look_at = centre
  server.initial_camera.up = up
  with server.atomic():
    for i in range(len(frames)):
      scene.draw_frame(i)
      scene.draw_camera(i)
  return scene


def add_gui(server, scene):
  """The GUI controls, each editing scene.state and refreshing the scene; → {name: gui handle}."""
  s, frames, n = scene.state, scene.frames, len(scene.frames)
  gui = {}
  lo, hi = scene.conf_range
  conf_max = max(hi, s.min_conf, lo + 1e-3)
  gui['color_by'] = server.gui.add_dropdown('Colour by', ('image', 'confidence'), initial_value=s.color_by)
  gui['min_conf'] = server.gui.add_slider('Min confidence', min=0.0, max=float(conf_max), step=conf_max / 200,
                                          initial_value=float(s.min_conf), hint='raw confidence (min_conf_thr)')
  gui['point_size'] = server.gui.add_slider('Point size', min=s.point_size / 10, max=s.point_size * 10,
                                            step=s.point_size / 10, initial_value=s.point_size)
  gui['frame'] = server.gui.add_slider('Frame', min=0, max=max(n - 1, 1), step=1, initial_value=s.frame,
                                       disabled=n == 1)
  gui['show'] = server.gui.add_dropdown('Show', ('all', 'current'), initial_value=s.show,
                                        hint='all frames, or the timeline frame only')
  gui['play'] = server.gui.add_checkbox('Play', False, hint='advance the frame (shows the current frame only)')
  gui['fps'] = server.gui.add_slider('FPS', min=1, max=30, step=1, initial_value=5)
  gui['cameras'] = server.gui.add_checkbox('Cameras', s.cameras)
  if any(m is not None for m in scene.motion):
    gui['motion'] = server.gui.add_checkbox('Motion', s.motion)
  gui['image_name'] = server.gui.add_text('Image', initial_value=frames[s.frame]['image_name'], disabled=True)

  @gui['color_by'].on_update
  def _(_):
    s.color_by = gui['color_by'].value
    scene.redraw_points()

  @gui['min_conf'].on_update
  def _(_):
    s.min_conf = float(gui['min_conf'].value)
    scene.redraw_points()

  @gui['point_size'].on_update
  def _(_):
    s.point_size = float(gui['point_size'].value)
    scene.refresh_point_size()

  @gui['frame'].on_update
  def _(_):
    s.frame = min(int(gui['frame'].value), n - 1)
    gui['image_name'].value = frames[s.frame]['image_name']
    scene.refresh_visibility()

  @gui['show'].on_update
  def _(_):
    s.show = gui['show'].value
    scene.refresh_visibility()

  @gui['play'].on_update
  def _(_):
    if gui['play'].value:
      gui['show'].value = 'current'

  @gui['cameras'].on_update
  def _(_):
    s.cameras = gui['cameras'].value
    scene.refresh_visibility()

  if 'motion' in gui:
    @gui['motion'].on_update
    def _(_):
      s.motion = gui['motion'].value
      scene.refresh_visibility()

  def select(i):
    gui['frame'].value = i

  scene.on_select = select
  return gui


def step_play(gui, n):
  """One tick of Play: the next frame (wrapping) when Play is on."""
  if gui['play'].value and n > 1:
    gui['frame'].value = (int(gui['frame'].value) + 1) % n


def serve(out, host='127.0.0.1', port=8080, subsample=1, verbose=True):
  """Loads OUT and starts the viewer; → (server, scene, gui). The server runs in background threads."""
  import viser
  data = load_output(out)
  state = default_state(data['frames'], data['summary'])
  state.subsample = subsample
  server = viser.ViserServer(host=host, port=port, label=f'dynadust3r: {os.path.basename(os.path.abspath(out))}',
                             verbose=verbose)
  scene = build_scene(server, data['frames'], state)
  gui = add_gui(server, scene)
  return server, scene, gui


def main(argv=None):
  p = argparse.ArgumentParser(prog='python -m dynadust3r_jax.viewer', description=__doc__.split('\n')[0])
  p.add_argument('out', help="the reconstruct job's output folder (with frames/frame_XXXX.npz)")
  p.add_argument('--host', default='127.0.0.1', help='127.0.0.1 (default; use ssh -L) or 0.0.0.0 (all interfaces)')
  p.add_argument('--port', type=int, default=8080)
  p.add_argument('--subsample', type=int, default=1, help='draw every k-th pixel (rows and columns) of each frame')
  args = p.parse_args(argv)
  try:
    server, scene, gui = serve(args.out, args.host, args.port, subsample=args.subsample)
  except (FileNotFoundError, ValueError) as e:  # a wrong folder, a broken frames file: one line
    sys.exit(f'viewer: {e}')
  port = server.get_port()  # viser takes the next free port when this one is taken
  print(f'viewer: http://{"localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host}:{port} '
        f'({len(scene.frames)} frames from {args.out}); over SSH: ssh -L {port}:127.0.0.1:{port} user@host',
        flush=True)
  try:
    while True:
      time.sleep(1.0 / max(float(gui['fps'].value), 1.0))
      step_play(gui, len(scene.frames))
  except KeyboardInterrupt:
    server.stop()


if __name__ == '__main__':
  main()
