"""A D4RT checkpoint in the evaluation job's pairs protocol (evaluation/d4rt_pairs.py): the clip window of a pair,
a ground-truth decode scoring perfectly (the query conventions match the pair GT), the job end to end on a tiny
D4RT, the video protocol with a D4RT, and what is still refused."""
import numpy as np
import pytest

from configs import evaluate as evaluate_config
from data import stereo4d, synthetic
from data.pipeline import find_clips
from dynadust3r_jax.common.video import crop_resize
from dynadust3r_jax.evaluation import d4rt_pairs
from dynadust3r_jax.evaluation.d4rt_pairs import clip_window, predict_pairs
from dynadust3r_jax.evaluation.evaluate import evaluate
from dynadust3r_jax.evaluation.pair_protocol import score_pairs, stereo4d_examples
from dynadust3r_jax.inference.d4rt import Decoder, query_grid
from dynadust3r_jax.pretrained import load_model
from tests import eval_formats
from tests.conftest import FIXTURES

SIZE = 32


def test_the_window_holds_the_pair_centred_clamped_or_padded():
  np.testing.assert_array_equal(clip_window(4, 6, 8, 4), [3, 4, 5, 6])      # centred: ceil(5) − 2
  np.testing.assert_array_equal(clip_window(0, 1, 8, 4), [0, 1, 2, 3])      # clamped at the start
  np.testing.assert_array_equal(clip_window(6, 7, 8, 4), [4, 5, 6, 7])      # and at the end
  np.testing.assert_array_equal(clip_window(1, 4, 5, 8), [0, 1, 2, 3, 4, 4, 4, 4])  # short: the last frame repeated
  for t1 in range(20):
    for t2 in range(t1 + 1, min(20, t1 + 8)):
      assert {t1, t2} <= set(clip_window(t1, t2, 20, 8))


def _oracle(clip, window, scale):
  """decode(query_uv, query_t) of the clip positions of `window` from the clip's world tracks: the track seen
  nearest at the query's pixel of frame t_src, where it is at t_tgt, in camera t_cam, divided by `scale` (D4RT's
  normalised scale); zeros where no track. Queries must sit at pixel centres."""
  h, w = clip.images.shape[1:3]
  owners = np.full((clip.num_frames, h, w), -1)
  for t in range(clip.num_frames):                       # OpenCV K: pixel centres at integers, nearest wins
    ids = np.flatnonzero(clip.visible[t] & (clip.camera[t, :, 2] > 0))
    p = clip.camera[t, ids] @ clip.K.T
    col, row = np.floor(p[:, 0] / p[:, 2] + .5).astype(int), np.floor(p[:, 1] / p[:, 2] + .5).astype(int)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    far_first = np.argsort(-clip.camera[t, ids[inside], 2])
    owners[t, row[inside][far_first], col[inside][far_first]] = ids[inside][far_first]

  def decode(query_uv, query_t):
    x, y = query_uv[:, 0] * w - .5, query_uv[:, 1] * h - .5
    np.testing.assert_allclose(np.stack([x, y]), np.round(np.stack([x, y])), atol=1e-4)   # pixel centres
    src, tgt, cam = (window[query_t[:, i]] for i in range(3))
    track = owners[src, np.round(y).astype(int), np.round(x).astype(int)]
    world = clip.world[tgt, track]
    xyz = np.einsum('qij,qj->qi', clip.w2c[cam, :3, :3], world) + clip.w2c[cam, :3, 3]
    xyz = np.where((track >= 0)[:, None] & np.isfinite(xyz), xyz, 0.0) / scale
    return {'xyz': xyz, 'conf': np.ones(len(xyz))}
  return decode


def test_ground_truth_queries_score_perfectly():
  """Stereo4D's training targets of each pair against the decode of a GT 'model' (in another scale) through the
  D4RT prediction: the pixel centres, clip positions and t_cam of the queries are those of the GT."""
  clip = eval_formats.Clip(seed=3, num_frames=8, size=SIZE)
  pairs = [(1, 2), (4, 6), (0, 3)]                       # windows [0..3], [3..6], [0..3] again (shared)
  c = clip.stereo4d
  examples = [stereo4d.build_example((c.frame(l, clip.images[l]), c.frame(r, None), c.frame(r, clip.images[r])),
                                     (l, r, r)) for l, r in pairs]
  windows = []

  def decoder_for(window):
    windows.append(tuple(window))
    return _oracle(clip, window, scale=3.0)

  preds = predict_pairs(pairs, clip.num_frames, (SIZE, SIZE), 4, decoder_for, with_motion=True)
  m = score_pairs(examples, *preds, scale_rule='depth_median', motion_error='displacement', with_motion=True)
  assert windows == [(0, 1, 2, 3), (3, 4, 5, 6)]
  assert all(ex['valid1'].sum() > 50 and ex['valid_l2r'].sum() > 20 and ex['valid_r2l'].sum() > 20
             for ex in examples)
  np.testing.assert_allclose(m['scale'], 3.0, rtol=1e-5)
  for k in ('abs_rel', 'view2_abs_rel', 'epe3d', 'l2r_epe3d', 'r2l_epe3d'):
    np.testing.assert_allclose(m[k], 0, atol=1e-5, err_msg=k)
  for k in ('delta_1.25', 'delta_0.05', 'delta_0.10'):
    np.testing.assert_array_equal(m[k], 1.0)


@pytest.fixture(scope='module')
def d4rt_checkpoint(tmp_path_factory):
  """The tiny VideoMAE fixture converted as a tiny D4RT (as tests/test_train_d4rt.py makes one): 8 frames at 32²."""
  from dynadust3r_jax.convert.checkpoint import convert
  out = tmp_path_factory.mktemp('d4rt') / 'tiny'
  convert(str(FIXTURES / 'videomae_tiny_hf'), str(out), model='D4RT(size="tiny", img_size=32, num_frames=8)')
  return str(out)


def _config(bench, checkpoint, root, **overrides):
  c = evaluate_config.get_config(bench)
  c.checkpoint, c.data.root, c.pairs.per_sequence, c.pairs.max_gap = checkpoint, str(root), 2, 4
  c.update_from_flattened_dict(overrides)
  return c


def test_stereo4d_evaluation_of_a_d4rt_checkpoint(d4rt_checkpoint, tmp_path):
  """One 6-frame clip (shorter than the model's 8: the last frame repeated), two pairs, every metric finite."""
  root = tmp_path / 's4d'
  synthetic.write_clips(str(root), 'test', 1, 6, size=SIZE, seed=5)
  results = evaluate(_config('stereo4d', d4rt_checkpoint, root), str(tmp_path / 'out'))
  assert results['model'] == 'D4RT' and results['counts'] == {'evaluated': 1, 'skipped': 0, 'pairs': 2}
  for k in ('abs_rel', 'delta_1.25', 'epe3d', 'delta_0.05', 'delta_0.10', 'view2_abs_rel', 'r2l_epe3d'):
    assert np.isfinite(results['aggregate'][k]), k
  assert (tmp_path / 'out' / 'results.json').exists() and '| **this checkpoint** |' in (
      tmp_path / 'out' / 'results.md').read_text()


def test_a_pair_prediction_equals_a_direct_decode_of_its_window(d4rt_checkpoint, tmp_path):
  """Pair (4, 6) of a 10-frame clip through the job's path (its frames from the examples, window 1..8) against
  the window's frames decoded and resized here, one Decoder, pixel-centre queries at clip positions 3 and 5."""
  synthetic.write_clips(str(tmp_path), 'test', 1, 10, size=SIZE, seed=5)
  entry = find_clips(str(tmp_path), 'test', 4)[0]
  opened = stereo4d.Mp4Clip(entry.npz, entry.mp4)
  module = load_model(d4rt_checkpoint, dtype='float32', attention_impl='xla').module
  examples = stereo4d_examples(opened, [(4, 6)])
  pred1, pred2 = d4rt_pairs.predict(examples, [(4, 6)], opened, module, size=SIZE, square_ok=True, with_motion=True)

  size = module.cfg.img_size
  video = [crop_resize(opened.frame(t).image.astype(np.float32) / 127.5 - 1, (0, 0, SIZE, SIZE), size)
           for t in range(1, 9)]
  decode = Decoder(module, np.stack(video), 1.0)
  grid = query_grid(SIZE, SIZE)

  def xyz(src, tgt):
    out = decode(grid, np.tile(np.array([[src, tgt, 3]], np.int32), (len(grid), 1)))
    return np.asarray(out['xyz']).reshape(SIZE, SIZE, 3)
  np.testing.assert_allclose(pred1['pts3d'][0], xyz(3, 3), atol=1e-5)
  np.testing.assert_allclose(pred2['pts3d_in_other_view'][0], xyz(5, 5), atol=1e-5)
  np.testing.assert_allclose(pred1['motion_l2r'][0], xyz(3, 5) - xyz(3, 3), atol=1e-5)
  np.testing.assert_allclose(pred2['motion_r2l'][0], xyz(5, 3) - xyz(5, 5), atol=1e-5)


def test_bonn_evaluation_of_a_d4rt_checkpoint(d4rt_checkpoint, tmp_path):
  """The video protocol: the sequence reconstructed from the D4RT's queries (one padded clip), finite depth
  metrics (exact queries give perfect ones: tests/test_evaluate_formats.py)."""
  from tests import eval_formats
  root = eval_formats.write_bonn(eval_formats.Clip(seed=3, num_frames=6, size=64), str(tmp_path / 'bonn'))
  results = evaluate(_config('bonn', d4rt_checkpoint, root, **{'data.sequences': ('balloon2',), 'image_size': 64,
                                                                'video.max_frames': 5}), str(tmp_path / 'out'))
  assert results['model'] == 'D4RT' and results['sequences']['balloon2']['frames'] == 5
  for k in ('abs_rel', 'delta_1.25', 'rmse'):
    assert np.isfinite(results['aggregate'][k]), k


@pytest.mark.parametrize('bench, overrides, message', [
    ('co3d', {}, 'a D4RT model; the relative_pose protocol of co3d'),
    ('adt', {'pairs.max_gap': 30}, r'config.pairs.max_gap=30: .* one D4RT clip of 8 frames .* '
                                   r'--config.pairs.max_gap<=7'),
])
def test_what_a_d4rt_checkpoint_cannot_run_is_one_message(d4rt_checkpoint, tmp_path, bench, overrides, message):
  with pytest.raises(ValueError, match=message):
    evaluate(_config(bench, d4rt_checkpoint, tmp_path, **overrides), str(tmp_path / 'out'))
