"""DUSt3R's training recipe through the one trainer: configs/dust3r.py's stages, the stage-to-stage init that
loads what matches, the three-stage demo end to end (resumed), and its user errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from configs import dust3r as dust3r_config
from dynadust3r_jax import load_model
from dynadust3r_jax.model import ModelConfig, build_model
from dynadust3r_jax.train.stages import train_stages
from dynadust3r_jax.train.trainer import _load_matching

ROOT = Path(__file__).parents[1]


def test_stage_hyper_parameters_follow_the_readme():
  """Spec dust3r.md §5.2 with epochs as steps: pairs per epoch / pairs per step; batches count both orders."""
  c224, c512, dpt = (dust3r_config.get_config(s) for s in ('224_linear', '512_linear', '512_dpt'))
  assert (c224.num_steps, c224.optimizer.warmup_steps, c224.batch_size) == (100 * 6250, 10 * 6250, 256)
  assert (c512.num_steps, c512.optimizer.warmup_steps, c512.batch_size, c512.grad_accum_steps) == (
      100 * 1250, 20 * 1250, 128, 2)
  assert (dpt.num_steps, dpt.optimizer.warmup_steps) == (90 * 1250, 15 * 1250)
  assert c224.model.img_size == (224, 224) and c224.model.patch_embed_cls == 'PatchEmbedDust3R'
  assert dpt.model.head_type == 'dpt' and dpt.model.patch_embed_cls == 'ManyAR_PatchEmbed'
  assert c512.data.resolutions[0] == (512, 384) and len(c512.data.resolutions) == 5
  for c in (c224, c512, dpt):
    assert (c.optimizer.learning_rate, c.optimizer.min_learning_rate, c.optimizer.schedule) == (
        1e-4, 1e-6, 'warmup_cosine')
  assert dust3r_config.get_config('').model.head_type == 'dpt'
  with pytest.raises(ValueError, match='unknown variant'):
    dust3r_config.get_config('1024_dpt')


def _flat(module):
  return {path: np.asarray(v[...]) for path, v in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def test_a_new_head_starts_fresh_and_the_rest_is_loaded():
  stage = dust3r_config.get_config('demo').stages
  linear = build_model(ModelConfig.from_dict(dict(stage['512_linear'].model)), 1)
  dpt = build_model(ModelConfig.from_dict(dict(stage['512_dpt'].model)), 2)
  before = _flat(dpt)
  _load_matching(dpt, linear, 'the 512 linear stage')
  after, source = _flat(dpt), _flat(linear)
  shared = [p for p in after if p in source and source[p].shape == after[p].shape]
  assert len(shared) > 50 and all(np.array_equal(after[p], source[p]) for p in shared)
  head = [p for p in after if p[0].startswith('downstream_head') and p not in source]
  assert head and all(np.array_equal(after[p], before[p]) for p in head)     # the DPT heads: as initialised
  croco = build_model(ModelConfig(arch='CroCoNet', pos_embed='RoPE100', enc_embed_dim=32, enc_depth=1, enc_num_heads=2,
                                  dec_embed_dim=16, dec_depth=1, dec_num_heads=2, img_size=(32, 32)), 0)
  with pytest.raises(ValueError, match='no parameter matches config.model'):
    _load_matching(croco, dpt, 'x')


def _demo(steps):
  """The demo, shorter: `steps` per stage, one resolution per stage, no pictures (fewer compiles on 2 cores;
  the aspect-ratio batching and the pictures have their own tests)."""
  c = dust3r_config.get_config('demo')
  for stage in c.stages.values():
    stage.num_steps, stage.log_every, stage.val_every, stage.checkpoint_every, stage.picture_every = (
        steps, 2, steps // 2, steps // 2, 10 * steps)
    stage.data.resolutions = stage.data.resolutions[:1]
  return c


def _losses(path):
  return [r['loss'] for r in map(json.loads, path.read_text().splitlines()) if 'loss' in r]


def test_the_three_stages_run_in_a_row_and_resume(tmp_path):
  train_stages(_demo(8), str(tmp_path))
  for name in ('224_linear', '512_linear', '512_dpt'):
    losses = _losses(tmp_path / name / 'metrics.jsonl')
    assert len(losses) == 4 and np.mean(losses[-2:]) < np.mean(losses[:2]), (name, losses)
    records = [json.loads(line) for line in (tmp_path / name / 'metrics.jsonl').read_text().splitlines()]
    assert 'val_co3d_test_test_loss' in records[-1] and records[-1]['val_loss'] == records[-1]['val_co3d_test_test_loss']
  init = load_model(str(tmp_path / 'init'), for_inference=False)             # the CroCo fixture, converted
  assert init.config.head_type == 'linear' and init.config.dec_depth == 10
  dpt = load_model(str(tmp_path / '512_dpt'))
  assert dpt.config.head_type == 'dpt'
  metrics = {p: p.read_text() for p in tmp_path.glob('*/metrics.jsonl')}
  assert len(metrics) == 3
  train_stages(_demo(8), str(tmp_path))                                       # resumed: every stage is done
  assert {p: p.read_text() for p in tmp_path.glob('*/metrics.jsonl')} == metrics


def _main(tmp_path, *flags):
  return subprocess.run([sys.executable, 'main.py', f'--workdir={tmp_path}/w', *flags], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('flags, message', [
    (('--config=configs/dust3r.py:224_linear',), 'config.data.train[0].root is empty'),
    (('--config=configs/dust3r.py:512_linear', '--config.init_checkpoint=/nonexistent/stage1',
      '--config.data.train[0].root={root}', '--config.data.test[0].root={root}'),
     '/nonexistent/stage1: not a converted model directory'),
    (('--config=configs/dust3r.py:224_linear', '--config.data.train[0].root={stereo4d}'),
     'selected_seqs_train.json: no such file'),
    (('--config=configs/dust3r.py:demo', '--config.init_checkpoint=/nonexistent/croco.pth'),
     'main.py: /nonexistent/croco.pth: no such file or directory'),
])
def test_user_errors_are_one_line(tmp_path, flags, message):
  from data import synthetic
  root, stereo4d = tmp_path / 'static', tmp_path / 's4d'
  synthetic.write_static_scenes(str(root), 'train', 1, 3, size=32)
  synthetic.write_static_scenes(str(root), 'test', 1, 3, size=32)
  (stereo4d / 'test').mkdir(parents=True)
  out = _main(tmp_path, *(f.format(root=root, stereo4d=stereo4d) for f in flags))
  last = out.stderr.strip().splitlines()[-1]
  assert out.returncode != 0 and 'Traceback' not in out.stderr and message in last, out.stderr[-2000:]


def test_pair_poses_of_gt_pointmaps_are_exact(tmp_path):
  """The validation's relative poses (evaluation/pair_pose.py) from a both-orders batch: GT pointmaps in place of
  the predictions give 0° errors (100 %), a rotated prediction of view b in camera b reads its rotation."""
  import jax.numpy as jnp
  from scipy.spatial.transform import Rotation
  from data import multiview, multiview_pipeline, pipeline, synthetic
  from dynadust3r_jax.evaluation.pair_pose import pair_pose_errors, pair_pose_metrics
  root = str(tmp_path / 'static')
  synthetic.write_static_scenes(root, 'train', 2, 4, size=32)
  mixture = multiview.Mixture([dict(kind='co3d', root=root, split='train', pairs='all')], seed=0)
  ds = multiview_pipeline.make_dataset(mixture, batch_size=8, global_batch_size=8, seed=0, resolutions=[(32, 32)],
                                       color_jitter=False)
  batch = {k: jnp.asarray(v) for k, v in next(pipeline.make_iterator(ds)).items()}
  ones = jnp.ones(batch['valid1'].shape)
  res1, res2 = {'pts3d': batch['pts3d1'], 'conf': ones}, {'pts3d_in_other_view': batch['pts3d2'], 'conf': ones}
  rot_err, trans_err = pair_pose_errors(res1, res2, batch)
  assert float(jnp.max(rot_err)) < 0.05 and float(jnp.max(trans_err)) < 0.5
  assert pair_pose_metrics(res1, res2, batch) == {'RRA@15': 100.0, 'RTA@15': 100.0, 'mAA@30': 100.0}
  turn = jnp.asarray(Rotation.from_euler('y', 20, degrees=True).as_matrix(), jnp.float32)
  rotated = {'pts3d': res1['pts3d'].at[1::2].set(res1['pts3d'][1::2] @ turn.T), 'conf': ones}
  rot_err, _ = pair_pose_errors(rotated, res2, batch)
  np.testing.assert_allclose(rot_err, 20.0, atol=0.05)
