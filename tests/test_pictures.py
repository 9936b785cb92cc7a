"""Training pictures: titled panels, a large PNG equal to the returned pixels, grey where there is no GT."""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from dynadust3r_jax.train.pictures import make_figure, save_pictures

B, H, W = 3, 16, 24


def _inputs(seed=0, motion=True):
  """A batch with the pipeline's keys and view-1 outputs whose depth is half the GT's (so s = 2)."""
  rng = np.random.default_rng(seed)
  pts3d1 = rng.uniform(-1, 1, (B, H, W, 3)).astype(np.float32)
  pts3d1[..., 2] = rng.uniform(1, 10, (B, H, W))
  batch = {'img1': rng.uniform(-1, 1, (B, H, W, 3)).astype(np.float32),
           'img2': rng.uniform(-1, 1, (B, H, W, 3)).astype(np.float32),
           'pts3d1': pts3d1, 'valid1': np.ones((B, H, W), bool),
           'target_l2r': pts3d1 + rng.normal(0, 0.3, (B, H, W, 3)).astype(np.float32),
           'valid_l2r': rng.uniform(size=(B, H, W)) < 0.7}
  res1 = {'pts3d': pts3d1 / 2, 'conf': 1 + np.exp(rng.normal(0, 1, (B, H, W))).astype(np.float32)}
  if motion:
    res1['motion_l2r'] = rng.normal(0, 0.1, (B, H, W, 3)).astype(np.float32)
  return batch, res1


def _panel_titles(fig):
  return [ax.get_title() for ax in fig.axes if ax.get_title()]


def _pixels(fig, ax):
  """The rendered RGB pixels inside `ax` (a few pixels in from its frame)."""
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  image = np.asarray(canvas.buffer_rgba())[..., :3]
  box = ax.get_window_extent()
  top = image.shape[0] - int(box.y1)
  return image[top + 3:top + int(box.height) - 3, int(box.x0) + 3:int(box.x1) - 3]


def test_png_is_large_and_equals_the_returned_pixels(tmp_path):
  batch, res1 = _inputs()
  image = save_pictures(str(tmp_path / 'pictures' / 'step_0000010.png'), batch, res1, step=10, val_loss=0.5)
  png = np.asarray(Image.open(tmp_path / 'pictures' / 'step_0000010.png'))
  assert image.dtype == np.uint8 and image.shape[2] == 3 and image.shape[1] >= 800
  np.testing.assert_array_equal(png, image)
  assert image.std() > 20  # panels, not a blank canvas


def test_titles_header_and_colour_bars():
  batch, res1 = _inputs()
  fig = make_figure(batch, res1, step=1200, val_loss=0.8123)
  assert fig.get_suptitle() == 'step 1200    val loss 0.8123'
  titles = _panel_titles(fig)
  assert len(titles) == 2 * 7  # two rows of the first B examples
  assert titles[2] == 'predicted depth, view 1\n× s = 2 (median-aligned)'
  assert titles[3].startswith('GT depth') and 'log' in titles[4] and titles[6].startswith('GT motion')
  bar_labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel() and not ax.get_ylabel().startswith('example')]
  assert bar_labels == 2 * ['depth (m)', 'depth (m)', 'confidence', 'motion (m)', 'motion (m)']


def test_dust3r_has_no_motion_panels():
  batch, res1 = _inputs(motion=False)
  titles = _panel_titles(make_figure(batch, res1, step=1))
  assert len(titles) == 2 * 5 and not any('motion' in t for t in titles)


def test_invalid_gt_pixels_are_grey():
  batch, res1 = _inputs()
  batch['valid1'][:, :, :W // 2] = False
  fig = make_figure(batch, res1, step=1)
  gt_ax = next(ax for ax in fig.axes if ax.get_title().startswith('GT depth'))
  pixels = _pixels(fig, gt_ax).astype(int)
  left, right = pixels[:, :pixels.shape[1] // 2 - 3], pixels[:, pixels.shape[1] // 2 + 3:]
  assert np.abs(left - 128).max() <= 1
  assert (np.abs(right - 128).max(-1) <= 1).mean() < 0.05


def test_all_invalid_batch_renders(tmp_path):
  batch, res1 = _inputs()
  batch['valid1'][:] = False
  batch['valid_l2r'][:] = False
  image = save_pictures(str(tmp_path / 'p.png'), batch, res1, step=3)
  assert image.shape[1] >= 800
  fig = make_figure(batch, res1, step=3)
  for ax in fig.axes:
    if ax.get_title().startswith('GT'):
      assert np.abs(_pixels(fig, ax).astype(int) - 128).max() <= 1
