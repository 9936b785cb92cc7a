"""D4RT through the one trainer (configs/d4rt.py: model family, data kind and loss chosen by the config): a short
run on synthetic Stereo4D-format clips learns, validates, checkpoints, draws its pictures and resumes."""
import json

import numpy as np
from PIL import Image

from configs import d4rt as d4rt_config
from dynadust3r_jax.train.trainer import train
from tests.test_train import _tensorboard_images


def _config(steps):
  c = d4rt_config.get_config('demo')
  c.data.synthetic.num_clips, c.data.synthetic.num_frames, c.data.synthetic.size = 3, 12, 32
  c.num_steps, c.log_every, c.val_every, c.checkpoint_every = steps, 2, steps // 2, steps // 2
  return c


def test_d4rt_trains_and_resumes(tmp_path):
  c = _config(24)
  c.picture_every = 24
  train(c, str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  losses = [r['loss'] for r in records]
  errors = [r['scaled_3d_error'] for r in records]
  assert len(records) == 12 and records[-1]['step'] == 24
  assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]) and np.mean(errors[-3:]) < np.mean(errors[:3])
  assert records[-1].get('loss_normal', 0.0) == 0.0        # λnormal = 0, empty mask: Stereo4D has no normals
  assert {'val_loss', 'val_scaled_3d_error', 'val_vis_accuracy'} <= set(records[-1])
  assert sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())[-1] == 24
  picture = np.asarray(Image.open(tmp_path / 'pictures' / 'step_0000024.png'))
  assert picture.shape == (650, 1800, 3) and picture.std() > 20   # six panels of two clips, not a blank canvas
  assert _tensorboard_images(tmp_path / 'tensorboard', 'pictures') == [(24, 650, 1800)]
  before = (tmp_path / 'metrics.jsonl').read_text()
  train(_config(24), str(tmp_path))                        # resumed at the end: nothing changes
  assert (tmp_path / 'metrics.jsonl').read_text() == before


def test_d4rt_starts_from_a_converted_videomae(tmp_path):
  """The VideoMAE converter's output initialises the trainer's D4RT (its encoder loaded, the rest fresh), and
  the training workdir then loads with load_model."""
  from dynadust3r_jax import load_model
  from dynadust3r_jax.convert.checkpoint import convert
  from tests.conftest import FIXTURES
  c = _config(2)
  c.optimizer.warmup_steps = 1
  convert(str(FIXTURES / 'videomae_tiny_hf'), str(tmp_path / 'init'), model='D4RT(size="tiny", img_size=32, num_frames=8)')
  init = load_model(str(tmp_path / 'init'), for_inference=False)
  c.model.update({k: getattr(init.config, k) for k in ('enc_embed_dim', 'enc_depth', 'enc_num_heads', 'enc_mlp_ratio')})
  c.init_checkpoint = str(tmp_path / 'init')
  train(c, str(tmp_path / 'run'))
  trained = load_model(str(tmp_path / 'run'))
  kernel = lambda m: np.asarray(m.module.encoder.patch_embed.proj.kernel[...])  # noqa: E731
  from dynadust3r_jax.model.d4rt import build_d4rt
  fresh = np.asarray(build_d4rt(trained.config, 7).encoder.patch_embed.proj.kernel[...])
  moved, apart = np.abs(kernel(trained) - kernel(init)).max(), np.abs(fresh - kernel(init)).max()
  assert moved < 0.05 * apart                                  # 2 steps away from VideoMAE's weights


def test_mismatched_family_and_data_are_one_error(tmp_path):
  import pytest
  from configs import stereo4d as stereo4d_config
  c = _config(2)
  c.data.kind = 'stereo4d'
  with pytest.raises(ValueError, match="config.data.kind='stereo4d' for a D4RT model"):
    train(c, str(tmp_path / 'a'))
  c = stereo4d_config.get_config('demo')
  c.data.kind = 'multiview'
  with pytest.raises(ValueError, match="config.data.kind='multiview' for a DynaDUSt3R model"):
    train(c, str(tmp_path / 'b'))
  c = _config(2)
  c.model_family = 'D4RT'
  with pytest.raises(ValueError, match=r"config.model_family='D4RT'; choose one of \('dust3r', 'd4rt'\)"):
    train(c, str(tmp_path / 'c'))
  c = _config(2)
  c.data.d4rt.num_frames = 12
  with pytest.raises(ValueError, match='config.data.d4rt.num_frames=12 but config.model.num_frames=8'):
    train(c, str(tmp_path / 'd'))
  c = _config(2)
  c.data.d4rt.size = 64
  with pytest.raises(ValueError, match='config.data.d4rt.size=64 but config.model.img_size=32'):
    train(c, str(tmp_path / 'e'))
  c = _config(2)
  with c.unlocked():
    c.d4rt_weights.viz = 0.5
  with pytest.raises(ValueError, match=r'config.d4rt_weights.viz: not a D4RT loss weight'):
    train(c, str(tmp_path / 'f'))


def test_the_config_lists_every_loss_weight():
  """config.d4rt_weights holds every term (so --config.d4rt_weights.vis=... is a known key): the paper's
  weights, λnormal 0 (Stereo4D has no normals)."""
  from dynadust3r_jax.d4rt_losses import D4RT_WEIGHTS
  for variant in ('', 'tiny', 'demo'):
    assert dict(d4rt_config.get_config(variant).d4rt_weights) == {**D4RT_WEIGHTS, 'normal': 0.0}


def _picture_batch():
  """One 4-frame 16^2 clip, five queries. Sources: A = (0.25, 0.25) at t 0 (two GT track points: its target
  at t 0 and one at t 2), B = (0.5, 0.5) at t 0 (one), D = (0.1, 0.9) at t 0 (an invisible target: none),
  C = (0.75, 0.25) at t 1 (t_cam != t_tgt: none)."""
  uv = np.array([[.25, .25], [.25, .25], [.5, .5], [.75, .25], [.1, .9]], np.float32)
  query_t = np.array([[0, 2, 2], [0, 0, 0], [0, 0, 0], [1, 3, 1], [0, 0, 0]], np.int32)
  target_uv = np.array([[.6, .7], [.25, .25], [.5, .5], [.3, .3], [.1, .9]], np.float32)
  target_xyz = np.zeros((5, 3), np.float32)
  target_xyz[:, 2] = [5, 2, 4, 7, 9]
  vis = np.array([1, 1, 1, 1, 0], np.float32)
  rng = np.random.default_rng(0)
  return {k: v[None] for k, v in {
      'video': rng.uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32), 'query_uv': uv, 'query_t': query_t,
      'target_uv': target_uv, 'target_xyz': target_xyz, 'target_vis': vis, 'mask_3d': np.ones(5, bool),
      'mask_uv': np.ones(5, bool), 'mask_vis': np.ones(5, bool),
      'intrinsics': np.array([[.866, 0, .5], [0, .866, .5], [0, 0, 1]], np.float32)}.items()}


def test_d4rt_picture_scale_and_tracks():
  """The depth title's s = median(GT z of the frame-0 targets) / median(predicted z at their pixels); the tracked
  sources (frame 0 first, most GT points first); the GT path ends at the batch's target (u, v); the predicted
  path is the projection of the predicted camera points."""
  from dynadust3r_jax.train import d4rt_pictures
  batch = _picture_batch()
  sources = d4rt_pictures.track_sources(batch, 0, num_tracks=3)
  np.testing.assert_array_equal(sources, [0, 2, 4])             # A (first query of it), B, D; C is not in frame 0
  depth = np.full((1, 16, 16), 100.0)
  depth[0, 4, 4], depth[0, 8, 8] = 1.0, 3.0                     # at A's and B's frame-0 targets (GT z 2 and 4)
  path_uv = np.array([[.25, .25], [.3, .4], [.5, .6], [.7, .8]])  # A's predicted (u, v) at t = 0..3, z = 2
  xyz = np.zeros((1, 4, 3, 3))
  xyz[0, :, :, 2] = 2.0
  xyz[0, :, 0, :2] = (path_uv - 0.5) / 0.866 * 2.0
  outputs = {'depth': depth, 'conf': np.full((1, 16, 16), 2.0), 'track_xyz': xyz, 'sources': sources[None]}
  fig = d4rt_pictures.make_figure(batch, outputs, step=7, val_loss=0.25)
  titles = {' '.join(ax.get_title().split()[:2]).rstrip(',:'): ax for ax in fig.axes if ax.get_title()}
  assert fig.get_suptitle() == 'step 7    val loss 0.2500'
  assert '× s = 1.5 (median-aligned)' in titles['predicted depth'].get_title()   # median(2, 4) / median(1, 3)
  assert titles['GT depth'].get_title().startswith('GT depth, frame 0: 2 query targets')  # D is invisible
  gt_path = titles['GT tracks'].lines[0].get_xydata()
  np.testing.assert_allclose(gt_path, [[3.5, 3.5], [3.5, 3.5], [9.1, 10.7]], atol=1e-5)  # (u, v) x 16 - 0.5
  np.testing.assert_allclose(titles['predicted tracks'].lines[0].get_xydata(), path_uv * 16 - 0.5, atol=1e-5)
