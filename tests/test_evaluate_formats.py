"""The evaluation job end to end on a tiny file of each dataset format (tests/eval_formats.py writes one
synthetic clip as TAPVid-3D, Dynamic Replica, Sintel, Bonn and processed CO3D), with a converted test
checkpoint; and the readers' ground truth through the pairs protocol equals Stereo4D's training targets."""
import re

import numpy as np
import pytest

from configs import evaluate as evaluate_config
from data import co3d, dynamic_replica, sintel, stereo4d, tapvid3d
from data.errors import BadClip
from dynadust3r_jax.evaluation import co3d_protocol, video_protocol
from dynadust3r_jax.evaluation.evaluate import evaluate
from dynadust3r_jax.evaluation.pair_protocol import GT_KEYS, sequence_examples
from dynadust3r_jax.inference.images import load_arrays
from tests import eval_formats


@pytest.fixture(scope='module')
def clip():
  return eval_formats.Clip(seed=3, num_frames=8, size=64)


def _config(bench, checkpoint, root, **overrides):
  c = evaluate_config.get_config(bench)
  c.checkpoint, c.data.root, c.image_size, c.batch_size = checkpoint, str(root), 64, 4
  c.pairs.per_sequence, c.video.max_frames, c.video.niter, c.co3d.num_frames, c.co3d.niter = 3, 5, 10, 4, 10
  c.update_from_flattened_dict(overrides)
  return c


def test_tapvid3d_ground_truth_equals_the_training_targets(clip, tmp_path):
  root = eval_formats.write_tapvid3d(clip, str(tmp_path))
  seq = tapvid3d.load_sequence(root, tapvid3d.sequence_names(root)[0])
  assert seq.dataset == 'adt'
  pairs = [(0, 3), (2, 7), (6, 5)]
  got = sequence_examples(seq, pairs, size=64, square_ok=True)
  for (l, r), ex in zip(pairs, got):
    c = clip.stereo4d
    want = stereo4d.build_example((c.frame(l, clip.images[l]), c.frame(r, None), c.frame(r, clip.images[r])), (l, r, r))
    for key in GT_KEYS:
      np.testing.assert_allclose(ex[key], want[key], atol=1e-5, err_msg=key)
    assert np.abs(ex['img1'] - want['img1']).mean() < 0.05                 # the same frame, through JPEG


def _finite(results, keys):
  for k in keys:
    assert np.isfinite(results['aggregate'][k]), k


def test_adt(dyna_checkpoint, clip, tmp_path):
  root = eval_formats.write_tapvid3d(clip, str(tmp_path / 'adt'))
  results = evaluate(_config('adt', dyna_checkpoint, root), str(tmp_path / 'out'))
  assert results['counts'] == {'evaluated': 1, 'skipped': 0, 'pairs': 3}
  _finite(results, ('epe3d', 'delta_0.05', 'delta_0.10', 'abs_rel', 'delta_1.25'))
  assert '| DynaDUSt3R (Stereo4D) | Stereo4D, ADT | 0.1231 | 51.98 | 65.20 |' in (tmp_path / 'out' / 'results.md').read_text()


def test_adt_without_extrinsics_is_one_message(dyna_checkpoint, clip, tmp_path):
  root = eval_formats.write_tapvid3d(clip, str(tmp_path / 'adt'))
  path = tmp_path / 'adt' / 'Apartment_release_clip_0.npz'
  arrays = dict(np.load(path))
  del arrays['extrinsics_w2c']                                         # as tapnet's ADT generator writes it
  np.savez(path, **arrays)
  with pytest.raises(ValueError, match=re.escape(f'{path}: no extrinsics_w2c') + '.*tapnet PR #137'):
    evaluate(_config('adt', dyna_checkpoint, root), str(tmp_path / 'out'))


def test_dynamic_replica(dyna_checkpoint, clip, tmp_path):
  root = eval_formats.write_dynamic_replica(clip, str(tmp_path / 'dr'))
  seq = dynamic_replica.load_sequence(root, dynamic_replica.sequence_names(root)[0])
  pixel_err, depth_err = dynamic_replica.check_reprojection(seq, 2)
  assert np.abs(pixel_err).max() < 1e-3                                   # the default (PyTorch3D) convention
  assert np.nanmedian(np.abs(depth_err)) < 0.05                        # tracks sit between pixel centres
  results = evaluate(_config('dynamic_replica', dyna_checkpoint, root), str(tmp_path / 'out'))
  assert results['counts']['evaluated'] == 1
  _finite(results, ('epe3d', 'abs_rel'))


def test_sintel_depth_and_poses(dust3r_checkpoint, clip, tmp_path):
  root = eval_formats.write_sintel(clip, str(tmp_path / 'sintel'))
  results = evaluate(_config('sintel', dust3r_checkpoint, root), str(tmp_path / 'out'))
  record = results['sequences']['alley_2']
  gt = clip.depth[:5]
  assert record['frames'] == 5 and record['valid_pixels'] == int(((gt > 0) & (gt < 70)).sum())
  _finite(results, ('abs_rel', 'delta_1.25'))
  assert 0 <= results['aggregate']['delta_1.25'] <= 1
  # the untrained model may put every camera at one point, which evo cannot align: NaN, with the reason
  assert set(record['pose']) == {'ate', 'rpe_trans', 'rpe_rot'}
  assert np.isfinite(record['pose']['ate']) or 'Degenerate' in record['pose_error']
  assert results['settings']['video']['align'] == 'lad2' and results['settings']['video']['post_clip_max'] == 70


def test_bonn(dust3r_checkpoint, clip, tmp_path):
  root = eval_formats.write_bonn(clip, str(tmp_path / 'bonn'))
  with pytest.raises(FileNotFoundError, match='rgbd_bonn_crowd2: missing'):  # the default: MonST3R's five
    evaluate(_config('bonn', dust3r_checkpoint, root), str(tmp_path / 'out'))
  results = evaluate(_config('bonn', dust3r_checkpoint, root, **{'data.sequences': ('balloon2',)}),
                     str(tmp_path / 'out'))
  assert list(results['sequences']) == ['balloon2'] and 'pose' not in results['sequences']['balloon2']
  _finite(results, ('abs_rel', 'delta_1.25', 'rmse'))


def test_co3d_relative_pose(dust3r_checkpoint, clip, tmp_path):
  root = eval_formats.write_co3d(clip, str(tmp_path / 'co3d'))
  results = evaluate(_config('co3d', dust3r_checkpoint, root), str(tmp_path / 'out'))
  record = results['sequences']['apple/000_00000_00000']
  assert len(record['frames']) == 4 and len(record['rot_err']) == 6 == len(record['trans_err'])  # 4 frames: 6 pairs
  agg = results['aggregate']
  assert list(agg['per_category']) == ['apple']
  for k in ('RRA@15', 'RTA@15', 'mAA@30'):
    assert 0 <= agg[k] <= 100 and agg[k] == agg['per_category']['apple'][k]
  assert '| DUSt3R-512 w/ GA | DUSt3R Table 2 | 96.2000 |' in (tmp_path / 'out' / 'results.md').read_text()


def _oracle(clip, seq):
  views = load_arrays([seq.load_image(t) for t in range(seq.num_frames)], seq.frames, size=64, square_ok=True)
  return eval_formats.OracleModel(clip, [v['img'][0] for v in views])


def test_video_protocol_on_gt_predictions_is_near_perfect(clip, tmp_path):
  """GT pointmaps in place of the network: depth, after the sequence's LAD2 scale & shift, and the aligned
  trajectory must match the GT (what is left: the half-pixel principal point the alignment assumes)."""
  seq = sintel.load_sequence(eval_formats.write_sintel(clip, str(tmp_path)), 'alley_2')
  video = evaluate_config.get_config('sintel').video
  video.max_frames = 5
  record = video_protocol.evaluate_video(seq, _oracle(clip, seq), video, size=64, square_ok=True, batch_size=4,
                                         with_poses=True)
  assert record['depth']['abs_rel'] < 0.005 and record['depth']['delta_1.25'] == 1.0
  travel = np.linalg.norm(clip.c2w[4, :3, 3] - clip.c2w[0, :3, 3])
  assert record['pose']['ate'] < 0.05 * travel and record['pose']['rpe_rot'] < 0.01   # degrees


def test_video_protocol_on_gt_d4rt_queries_is_near_perfect(clip, tmp_path):
  """The same with a D4RT stand-in answering queries exactly, in clips of 3 frames (so the clips' Sim(3)
  alignment is on the path): depth and trajectory match the GT."""
  seq = sintel.load_sequence(eval_formats.write_sintel(clip, str(tmp_path)), 'alley_2')
  video = evaluate_config.get_config('sintel').video
  video.max_frames = 5
  record = video_protocol.evaluate_video(seq, eval_formats.D4RTOracle(clip, num_frames=3), video, size=64,
                                         square_ok=True, batch_size=4, with_poses=True)
  assert record['depth']['abs_rel'] < 1e-4 and record['depth']['delta_1.25'] == 1.0
  travel = np.linalg.norm(clip.c2w[4, :3, 3] - clip.c2w[0, :3, 3])
  assert record['pose']['ate'] < 1e-4 * travel and record['pose']['rpe_rot'] < 1e-3   # degrees


def test_co3d_protocol_on_gt_predictions_is_perfect(clip, tmp_path):
  root = eval_formats.write_co3d(clip, str(tmp_path))
  seq = co3d.load_sequence(root, co3d.sequence_names(root)[0])
  settings = evaluate_config.get_config('co3d').co3d
  settings.num_frames = 6
  record = co3d_protocol.evaluate_sequence(seq, _oracle(clip, seq), settings, seed=0, size=64, square_ok=True,
                                           batch_size=4)
  assert len(record['rot_err']) == 15 and max(record['rot_err']) < 1.0 and max(record['trans_err']) < 5.0
  agg = co3d_protocol.aggregate({seq.name: record})
  assert agg['RRA@15'] == agg['RTA@15'] == 100.0 and agg['mAA@30'] > 80
  settings.num_frames = clip.num_frames + 1                           # too short: skipped and counted by the job
  with pytest.raises(BadClip, match='fewer than config.co3d.num_frames=9'):
    co3d_protocol.evaluate_sequence(seq, None, settings, seed=0, size=64, square_ok=True, batch_size=4)


def test_a_clip_without_tracks_is_skipped_and_counted(dyna_checkpoint, clip, tmp_path):
  root = eval_formats.write_tapvid3d(clip, str(tmp_path / 'adt'))
  eval_formats.write_tapvid3d(clip, root, name='Lite_release_empty_0')
  path = tmp_path / 'adt' / 'Lite_release_empty_0.npz'
  arrays = dict(np.load(path))
  arrays['visibility'][:] = False
  np.savez(path, **arrays)
  results = evaluate(_config('adt', dyna_checkpoint, root), str(tmp_path / 'out'))
  assert results['counts'] == {'evaluated': 1, 'skipped': 1, 'pairs': 3}
  assert results['skipped'] == {'Lite_release_empty_0': 'Lite_release_empty_0: no visible track in any frame'}


@pytest.mark.parametrize('bench, writer', [('adt', 'write_sintel'), ('sintel', 'write_bonn'), ('bonn', 'write_co3d'),
                                           ('co3d', 'write_tapvid3d'), ('dynamic_replica', 'write_sintel'),
                                           ('stereo4d', 'write_co3d')])
def test_a_root_of_another_layout_is_one_message(dust3r_checkpoint, clip, tmp_path, bench, writer):
  root = getattr(eval_formats, writer)(clip, str(tmp_path / 'data'))
  with pytest.raises(FileNotFoundError) as error:
    evaluate(_config(bench, dust3r_checkpoint, root, **{'pairs.metrics': ('depth',)}), str(tmp_path / 'out'))
  message = str(error.value)
  assert str(tmp_path / 'data') in message and 'expected' in message and '\n' not in message
  assert not (tmp_path / 'out' / 'sequences').exists()
