"""Throughput of the evaluation job's pairs protocol (dynadust3r_jax/evaluation/pair_protocol.py): pairs
scored per second, batched on the device, against one pair per call (DUSt3R's loop) in the same run.

  python -m benchmarks.evaluate                           # the 512² DynaDUSt3R of configs/stereo4d.py
  python -m benchmarks.evaluate --tiny --size=64          # the tiny model, a quick CPU run

Input: one synthetic clip (data/synthetic.py) as a data/sequence.py Sequence in memory (camera-frame tracks,
K, cameras), `pairs` random pairs <= 30 frames apart, random weights (the speed does not depend on them).
Each configuration runs once untimed (compiles), then timed over the same pairs: the ground truth from the
tracks (`sequence_examples`: load_images' processing + data/pair_targets.py, numpy on the host) and the
inference + metrics (`evaluate_pairs`). Line per batch size:
  {"bench": "evaluate_pairs", "model", "size", "batch_size", "pairs", "device", "dtype", "gt_ms_per_pair",
   "eval_ms_per_pair", "pairs_per_s", "ratio_vs_batch1"}
"""
import time

import jax
import numpy as np
from absl import app, flags

from benchmarks.common import print_row
from configs import stereo4d as stereo4d_config
from data import synthetic
from data.sequence import Sequence
from data.stereo4d import Clip, intrinsics, world_to_camera
from dynadust3r_jax.evaluation.pair_protocol import evaluate_pairs, sample_pairs, sequence_examples
from dynadust3r_jax.model import ModelConfig, build_model
from dynadust3r_jax.pretrained import Predictor, runtime_defaults

flags.DEFINE_bool('tiny', False, 'The tiny model of configs/stereo4d.py:tiny instead of the 512² one.')
flags.DEFINE_integer('size', 512, 'Frame size (square).')
flags.DEFINE_integer('pairs', 32, 'Pairs per measurement.')
flags.DEFINE_list('batch_sizes', ['1', '8'], 'Batch sizes; the first is the baseline.')


def synthetic_sequence(size: int, num_frames: int = 31, seed: int = 0) -> Sequence:
  """A synthetic clip as an evaluation Sequence (Stereo4D's K moved to pixel centres at integers)."""
  arrays = synthetic.make_clip(seed=seed, num_frames=num_frames, size=size)
  clip = Clip('bench', arrays['camera2world'].astype(np.float64),
              np.repeat(np.arange(len(arrays['track_lengths'])), arrays['track_lengths']),
              arrays['track_indices'].astype(np.int64), arrays['track_coordinates'])
  w2c = np.stack([world_to_camera(c) for c in clip.camera2world])
  world = clip.dense_tracks().transpose(1, 0, 2).astype(np.float64)
  camera = np.einsum('tij,tnj->tni', w2c[:, :3, :3], world) + w2c[:, None, :3, 3]
  K = intrinsics(size, size) - np.array([[0, 0, .5], [0, 0, .5], [0, 0, 0]])
  return Sequence(dataset='synthetic', name='bench', frames=[f'{t:05d}' for t in range(num_frames)],
                  load_image=lambda t: arrays['frames'][t], intrinsics=np.repeat(K[None], num_frames, 0),
                  world_to_camera=w2c, tracks_xyz=camera, visibility=np.isfinite(camera).all(-1))


def _model(tiny: bool):
  config = stereo4d_config.get_config('tiny' if tiny else '').model
  dtype, attention_impl = runtime_defaults()
  cfg = ModelConfig.from_dict(dict(config), dtype=dtype, attention_impl=attention_impl, remat_policy='none').for_inference()
  return Predictor(build_model(cfg, 0)), cfg


def run(*, tiny=False, size=512, pairs=32, batch_sizes=(1, 8), emit=print_row):
  model, cfg = _model(tiny)
  seq = synthetic_sequence(size)
  chosen = sample_pairs(seq.num_frames, pairs, 30, np.random.default_rng(0))
  base = None
  for batch_size in batch_sizes:
    def once():
      t0 = time.perf_counter()
      examples = sequence_examples(seq, chosen, size=size, square_ok=True)
      t1 = time.perf_counter()
      evaluate_pairs(examples, model, batch_size=batch_size, scale_rule='depth_median',
                     motion_error='displacement', with_motion=True)  # returns host floats: synchronised
      return t1 - t0, time.perf_counter() - t1
    once()                                           # compiles for this batch size
    gt_s, eval_s = once()
    rate = len(chosen) / (gt_s + eval_s)
    base = base or rate
    emit(dict(bench='evaluate_pairs', model='tiny' if tiny else 'DynaDUSt3R-512', size=size, batch_size=batch_size,
              pairs=len(chosen), device=jax.devices()[0].device_kind, dtype=cfg.dtype,
              gt_ms_per_pair=round(1e3 * gt_s / len(chosen), 3), eval_ms_per_pair=round(1e3 * eval_s / len(chosen), 3),
              pairs_per_s=round(rate, 2), ratio_vs_batch1=round(rate / base, 3)))


def main(argv):
  del argv
  f = flags.FLAGS
  run(tiny=f.tiny, size=f.size, pairs=f.pairs, batch_sizes=[int(b) for b in f.batch_sizes])


if __name__ == '__main__':
  app.run(main)
