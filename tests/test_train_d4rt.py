"""D4RT through the one trainer (configs/d4rt.py: model family, data kind and loss chosen by the config): a short
run on synthetic Stereo4D-format clips learns, validates, checkpoints and resumes."""
import json

import numpy as np

from configs import d4rt as d4rt_config
from dynadust3r_jax.train.trainer import train


def _config(steps):
  c = d4rt_config.get_config('demo')
  c.data.synthetic.num_clips, c.data.synthetic.num_frames, c.data.synthetic.size = 3, 12, 32
  c.num_steps, c.log_every, c.val_every, c.checkpoint_every = steps, 2, steps // 2, steps // 2
  return c


def test_d4rt_trains_and_resumes(tmp_path):
  train(_config(24), str(tmp_path))
  records = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  losses = [r['loss'] for r in records]
  errors = [r['scaled_3d_error'] for r in records]
  assert len(records) == 12 and records[-1]['step'] == 24
  assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]) and np.mean(errors[-3:]) < np.mean(errors[:3])
  assert records[-1].get('loss_normal', 0.0) == 0.0        # λnormal = 0, empty mask: Stereo4D has no normals
  assert {'val_loss', 'val_scaled_3d_error', 'val_vis_accuracy'} <= set(records[-1])
  assert sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())[-1] == 24
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


def test_a_d4rt_checkpoint_given_to_the_reconstruct_and_evaluate_jobs_is_one_error(tmp_path):
  import pytest
  from configs import evaluate as evaluate_config
  from configs import reconstruct as reconstruct_config
  from dynadust3r_jax.convert.checkpoint import convert
  from dynadust3r_jax.evaluation.evaluate import evaluate
  from dynadust3r_jax.inference.reconstruct import reconstruct
  from tests.conftest import FIXTURES
  convert(str(FIXTURES / 'videomae_tiny_hf'), str(tmp_path / 'd4rt'), model='tiny')
  rc = reconstruct_config.get_config()
  rc.checkpoint, rc.inputs = str(tmp_path / 'd4rt'), str(FIXTURES / 'inference_images')
  with pytest.raises(ValueError, match='a D4RT model; this job takes DUSt3R-family checkpoints'):
    reconstruct(rc, str(tmp_path / 'r'))
  ec = evaluate_config.get_config('stereo4d')
  ec.checkpoint, ec.data.root = str(tmp_path / 'd4rt'), str(tmp_path)
  with pytest.raises(ValueError, match='a D4RT model'):
    evaluate(ec, str(tmp_path / 'e'))
