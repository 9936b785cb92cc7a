"""The evaluation job: pair ground truth from tracks, the pair metrics' open choices, pair sampling, the
crop window of the video protocol, and the job end to end (resume, skipped clips, user errors)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from configs import evaluate as evaluate_config
from data import stereo4d, synthetic
from data.pair_targets import pair_targets
from dynadust3r_jax.evaluation.depth_motion import pair_metrics
from dynadust3r_jax.evaluation.evaluate import evaluate
from dynadust3r_jax.evaluation.pair_protocol import GT_KEYS, evaluate_pairs, sample_pairs, sequence_rng
from dynadust3r_jax.evaluation.video_protocol import crop_window
from tests import eval_formats

ROOT = Path(__file__).parents[1]
SIZE = 64


@pytest.fixture(scope='module')
def clip():
  return eval_formats.Clip(seed=3, num_frames=8, size=SIZE)


def test_pair_targets_equal_the_training_targets(clip):
  """Two constructions of the same GT: the training example of triplet (l, r, r) from world tracks, and
  pair_targets from camera-frame tracks with the Stereo4D K in OpenCV's pixel-index convention."""
  c = clip.stereo4d                                              # clip.K: Stereo4D's K, pixel centres at integers
  for l, r in ((0, 3), (2, 7), (5, 4)):
    frames = (c.frame(l, clip.images[l]), c.frame(r, None), c.frame(r, clip.images[r]))
    want = stereo4d.build_example(frames, (l, r, r))
    got = pair_targets(clip.camera, clip.visible, clip.w2c, (clip.K, clip.K), (SIZE, SIZE), l, r)
    for key in GT_KEYS:
      assert got[key].dtype == want[key].dtype, key
      np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)
    assert want['valid1'].sum() > 50 and want['valid_r2l'].sum() > 20


def _perfect(gt, scale=1.0, structure_error=0.0):
  """Predictions equal to the GT / scale (+ a structure error on the points, the motion left exact)."""
  res1 = {'pts3d': (gt['pts3d1'] + structure_error) / scale,
          'motion_l2r': (gt['target_l2r'] - gt['pts3d1']) / scale}
  res2 = {'pts3d_in_other_view': (gt['pts3d2'] + structure_error) / scale,
          'motion_r2l': (gt['target_r2l'] - gt['pts3d2']) / scale}
  return res1, res2


@pytest.fixture(scope='module')
def gt_batch(clip):
  pairs = [pair_targets(clip.camera, clip.visible, clip.w2c, (clip.K, clip.K), (SIZE, SIZE), l, r)
           for l, r in ((0, 3), (1, 6))]
  return {k: np.stack([p[k] for p in pairs]) for k in GT_KEYS}


@pytest.mark.parametrize('rule', ['depth_median', 'norm_median', 'per_view'])
def test_a_scaled_prediction_scores_perfectly_under_each_scale_rule(gt_batch, rule):
  m = pair_metrics(*_perfect(gt_batch, scale=2.5), gt_batch, scale_rule=rule)
  np.testing.assert_allclose(m['scale'], 2.5, rtol=1e-5)
  np.testing.assert_allclose(m['abs_rel'], 0, atol=1e-6)
  np.testing.assert_allclose(m['epe3d'], 0, atol=1e-5)
  for k in ('delta_1.25', 'delta_0.05', 'delta_0.10', 'view2_delta_1.25', 'r2l_delta_0.05'):
    np.testing.assert_array_equal(m[k], 1.0)


def test_end_position_error_adds_the_structure_error(gt_batch):
  shift = np.array([0.03, 0.0, 0.0], np.float32)           # x only: z (hence the median scale) unchanged
  res = _perfect(gt_batch, structure_error=shift)
  disp = pair_metrics(*res, gt_batch, motion_error='displacement')
  end = pair_metrics(*res, gt_batch, motion_error='end_position')
  np.testing.assert_allclose(disp['epe3d'], 0, atol=1e-6)
  np.testing.assert_allclose(end['epe3d'], 0.03, rtol=1e-4)  # |s·(P̂+M̂) − (P+Δ)| = the 3 cm shift
  np.testing.assert_array_equal(end['delta_0.05'], 1.0)
  np.testing.assert_array_equal(end['delta_0.10'], 1.0)
  np.testing.assert_allclose(end['abs_rel'], disp['abs_rel'])


class _PairOracle:
  """A DynaDUSt3R stand-in answering each example (found by its two images) with its GT pointmaps and, at the
  protocol's query times (view 1 moved to t2, view 2 to t1), its GT motion."""

  def __init__(self, examples):
    self.examples = {(ex['img1'].tobytes(), ex['img2'].tobytes()): ex for ex in examples}

  def __call__(self, view1, view2, query_times):
    np.testing.assert_array_equal(query_times[:, 1:], [[1, 0]] * len(query_times))
    found = [self.examples[a.tobytes(), b.tobytes()] for a, b in zip(view1['img'], view2['img'])]
    res1 = {'pts3d': [ex['pts3d1'] for ex in found], 'motion_l2r': [ex['target_l2r'] - ex['pts3d1'] for ex in found]}
    res2 = {'pts3d_in_other_view': [ex['pts3d2'] for ex in found],
            'motion_r2l': [ex['target_r2l'] - ex['pts3d2'] for ex in found]}
    return tuple({k: np.nan_to_num(np.stack(v)) for k, v in res.items()} for res in (res1, res2))


def test_gt_answers_through_the_dust3r_path_score_perfectly(clip):
  """evaluate_pairs (batched inference, padding, query times, scoring) on a model answering with the GT."""
  pairs = [(0, 3), (1, 6), (5, 2)]
  images = clip.images.astype(np.float32) / 127.5 - 1
  examples = [{'img1': images[l], 'img2': images[r],
               **pair_targets(clip.camera, clip.visible, clip.w2c, (clip.K, clip.K), (SIZE, SIZE), l, r)}
              for l, r in pairs]
  m = evaluate_pairs(examples, _PairOracle(examples), batch_size=2, scale_rule='depth_median',
                     motion_error='displacement', with_motion=True)
  np.testing.assert_allclose(m['scale'], 1.0, rtol=1e-6)
  for k in ('abs_rel', 'view2_abs_rel', 'epe3d', 'l2r_epe3d', 'r2l_epe3d'):
    np.testing.assert_allclose(m[k], 0, atol=1e-6, err_msg=k)
  np.testing.assert_array_equal(m['delta_0.05'], 1.0)


def test_pair_metrics_reject_unknown_choices(gt_batch):
  with pytest.raises(ValueError, match='config.pairs.scale'):
    pair_metrics(*_perfect(gt_batch), gt_batch, scale_rule='mean')
  with pytest.raises(ValueError, match='config.pairs.motion_error'):
    pair_metrics(*_perfect(gt_batch), gt_batch, motion_error='flow')


def test_pairs_are_seeded_per_sequence_and_within_the_gap():
  a = sample_pairs(40, 200, 30, sequence_rng(0, 'seq_a'))
  assert a == sample_pairs(40, 200, 30, sequence_rng(0, 'seq_a'))
  assert a != sample_pairs(40, 200, 30, sequence_rng(0, 'seq_b'))
  assert a != sample_pairs(40, 200, 30, sequence_rng(1, 'seq_a'))
  gaps = [t2 - t1 for t1, t2 in a]
  assert min(gaps) == 1 and max(gaps) == 30 and all(0 <= t1 < t2 < 40 for t1, t2 in a)
  assert len(set(a)) == 200                                      # distinct
  assert sample_pairs(1, 5, 30, sequence_rng(0, 'x')) == []
  assert sorted(sample_pairs(4, 20, 2, sequence_rng(0, 'x'))) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
  fixed = sample_pairs(40, 5, 30, sequence_rng(0, 'x'), min_gap=30)
  assert len(fixed) == 5 and all(t2 - t1 == 30 for t1, t2 in fixed)


def test_crop_window_maps_the_processed_view_back():
  # Sintel: 1024x436 → long side 512 → 512x218 → crop to 512x208 at top 5
  view = {'orig_shape': (436, 1024), 'resized_shape': (218, 512), 'crop_offset': (5, 0),
          'true_shape': np.array([[208, 512]])}
  assert crop_window(view) == (slice(10, 426), slice(0, 1024))
  view = {'orig_shape': (480, 640), 'resized_shape': (384, 512), 'crop_offset': (0, 0),
          'true_shape': np.array([[384, 512]])}                   # Bonn: no crop, the whole frame
  assert crop_window(view) == (slice(0, 480), slice(0, 640))


# --- the job end to end ---------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def stereo4d_root(tmp_path_factory):
  root = tmp_path_factory.mktemp('s4d')
  synthetic.write_clips(str(root), 'test', 3, 8, size=SIZE, seed=5)
  bad = sorted((root / 'test').glob('*.npz'))[0]                   # NaN cameras: skipped, counted
  arrays = dict(np.load(bad))
  arrays['camera2world'][2] = np.nan
  np.savez(bad, **arrays)
  return root, bad.stem


def _config(checkpoint, root, **overrides):
  c = evaluate_config.get_config('stereo4d')
  c.checkpoint, c.data.root, c.pairs.per_sequence, c.batch_size = checkpoint, str(root), 3, 2
  c.update_from_flattened_dict(overrides)
  return c


def test_stereo4d_evaluation_end_to_end_and_resumed(dyna_checkpoint, stereo4d_root, tmp_path):
  root, bad = stereo4d_root
  results = evaluate(_config(dyna_checkpoint, root), str(tmp_path))
  assert results['counts'] == {'evaluated': 2, 'skipped': 1, 'pairs': 6}
  assert bad in results['skipped'] and 'camera2world' in results['skipped'][bad]
  agg = results['aggregate']
  for k in ('abs_rel', 'delta_1.25', 'epe3d', 'delta_0.05', 'delta_0.10', 'view1_abs_rel', 'l2r_epe3d'):
    assert np.isfinite(agg[k]), k
  assert 0 <= agg['delta_0.10'] <= 1 and agg['delta_0.05'] <= agg['delta_0.10']
  pooled = [x for r in results['sequences'].values() for x in r['metrics']['epe3d']]
  np.testing.assert_allclose(agg['epe3d'], np.nanmean(pooled))
  for r in results['sequences'].values():
    assert all(1 <= t2 - t1 <= 30 for t1, t2 in r['pairs'])
  written = json.loads((tmp_path / 'results.json').read_text())
  assert written['aggregate'] == pytest.approx(agg, nan_ok=True)
  md = (tmp_path / 'results.md').read_text()
  assert '| **this checkpoint** |' in md and '| DynaDUSt3R (Stereo4D) |' in md and '65.07' in md

  stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / 'sequences').glob('*.json')}
  again = evaluate(_config(dyna_checkpoint, root), str(tmp_path))         # resumed: nothing recomputed
  assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / 'sequences').glob('*.json')} == stamps
  assert again['aggregate'] == pytest.approx(agg, nan_ok=True)
  with pytest.raises(ValueError, match='other settings'):
    evaluate(_config(dyna_checkpoint, root, **{'pairs.max_gap': 5}), str(tmp_path))


def _main(tmp_path, *flags):
  return subprocess.run([sys.executable, 'main.py', '--config=configs/evaluate.py:stereo4d',
                         f'--workdir={tmp_path}/w', *flags], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_dust3r_checkpoint_has_no_motion_metrics(dust3r_checkpoint, stereo4d_root, tmp_path):
  root, _ = stereo4d_root
  out = _main(tmp_path, f'--config.checkpoint={dust3r_checkpoint}', f'--config.data.root={root}')
  assert out.returncode != 0 and 'Traceback' not in out.stderr
  assert out.stderr.strip().splitlines()[-1] == (
      f'main.py: config.checkpoint={dust3r_checkpoint}: a AsymmetricCroCo3DStereo model has no motion heads, so '
      'motion metrics cannot be computed; give a DynaDUSt3R checkpoint or --config.pairs.metrics=depth')
  results = evaluate(_config(dust3r_checkpoint, root, **{'pairs.metrics': ('depth',)}), str(tmp_path / 'd'))
  assert np.isfinite(results['aggregate']['abs_rel']) and 'epe3d' not in results['aggregate']


@pytest.mark.parametrize('flags, message', [
    ((), 'config.checkpoint is empty'),
    (('--config.checkpoint=x',), 'config.data.root is empty'),
])
def test_user_errors_are_one_line(tmp_path, flags, message):
  out = _main(tmp_path, *flags)
  assert out.returncode != 0 and 'Traceback' not in out.stderr and message in out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize('override, message', [
    ({'pairs.scale': 'mean'}, "config.pairs.scale='mean'; choose one of ('depth_median', 'norm_median', 'per_view')"),
    ({'pairs.motion_error': 'flow'}, "config.pairs.motion_error='flow'; choose one of ('displacement', 'end_position')"),
    ({'video.align': 'l1'}, "config.video.align='l1'; choose one of ('median', 'scale', 'lstsq', 'lad', 'lad2')"),
    ({'video.schedule': 'step'}, "config.video.schedule: schedule must be 'cosine' or 'linear', got 'step'"),
    ({'pairs.min_gap': 0}, 'config.pairs.min_gap=0, max_gap=30: give 1 <= min_gap <= max_gap'),
    ({'pairs.min_gap': 31}, 'config.pairs.min_gap=31, max_gap=30: give 1 <= min_gap <= max_gap'),
    ({'pairs.per_sequence': 0}, 'config.pairs.per_sequence=0: give at least 1 pair per sequence'),
    ({'video.scene_graph': 'swin-x'}, "config.video.scene_graph: make_pairs: unknown scene_graph='swin-x'; accepted: complete"),
    ({'co3d.scene_graph': 'oneref-10'}, "config.co3d.scene_graph: make_pairs: scene_graph='oneref-10': reference image 10"),
])
def test_a_bad_protocol_setting_is_one_message_before_the_model_loads(tmp_path, override, message):
  config = _config(str(tmp_path / 'no_checkpoint'), tmp_path / 'no_root', **override)   # nothing loads
  with pytest.raises(ValueError) as e:
    evaluate(config, str(tmp_path / 'w'))
  assert str(e.value).startswith(message)


def test_a_wrong_root_names_the_layout(dyna_checkpoint, tmp_path):
  with pytest.raises(FileNotFoundError, match='no usable Stereo4D clip'):
    evaluate(_config(dyna_checkpoint, tmp_path / 'nothing'), str(tmp_path / 'w'))
