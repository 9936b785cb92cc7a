"""The evaluate job (`main.py` with configs/evaluate.py:BENCH): a checkpoint scored on one benchmark.

Sequences run one by one (a progress bar over them); each finished one is stored in WORKDIR/sequences/
and skipped by a rerun with the same settings, so a crashed evaluation continues where it stopped. A
sequence the reader or the ground truth cannot serve (an unreadable file, NaN cameras, no tracks) is
skipped, counted and named in results.json with its reason; a wrong root or a setting that cannot work is
one error before any sequence runs. Protocols: pair_protocol.py, video_protocol.py, co3d_protocol.py; which
of them a checkpoint runs, and how it predicts in them, its family says (families/: `protocols`,
`predict_pairs`, `reconstruct_frames`).
"""
import importlib
import os

import numpy as np
from absl import logging
from tqdm import tqdm

from data import tapvid3d
from data.errors import BadClip
from data.pipeline import find_clips
from data.sequence import LayoutError
from data.stereo4d import Mp4Clip
from dynadust3r_jax import compile_cache, families
from dynadust3r_jax.evaluation import co3d_protocol, pair_protocol, video_protocol
from dynadust3r_jax.evaluation.depth import ALIGNMENTS, weighted_average
from dynadust3r_jax.evaluation.depth_motion import MOTION_ERRORS, SCALE_RULES
from dynadust3r_jax.evaluation.results import SequenceStore, write_results
from dynadust3r_jax.inference.global_align import lr_schedule
from dynadust3r_jax.inference.pairs import pair_indices
from dynadust3r_jax.pretrained import load_config, model_from_config

PROTOCOLS = {'stereo4d': 'pairs', 'adt': 'pairs', 'dynamic_replica': 'pairs', 'bonn': 'video', 'sintel': 'video',
             'co3d': 'relative_pose'}
# benchmark → (reader module of data/sequence.py's contract, the config.data fields it takes; 'sequences' is
# passed only when set, so the reader's default set applies otherwise: Bonn's five of MonST3R)
READERS = {'adt': ('data.tapvid3d', ()), 'dynamic_replica': ('data.dynamic_replica', ('split',)),
           'bonn': ('data.bonn', ('sequences',)), 'sintel': ('data.sintel', ('sequences',)),
           'co3d': ('data.co3d', ('split',))}
SKIPPABLE = (BadClip, LayoutError)  # a sequence's own data problem: skipped and counted


def _settings(config) -> dict:
  """What the records depend on (a rerun must match it to reuse them)."""
  protocol = PROTOCOLS[config.benchmark]
  keep = {'pairs': 'pairs', 'video': 'video', 'relative_pose': 'co3d'}[protocol]
  return {'benchmark': config.benchmark, 'protocol': protocol, 'checkpoint': os.path.abspath(config.checkpoint),
          'dtype': config.dtype, 'attention_impl': config.attention_impl, 'seed': config.seed,
          'data': config.data.to_dict(), 'image_size': config.image_size, 'square_ok': config.square_ok,
          keep: config[keep].to_dict()}


def _check(config):
  """The settings' user errors, each one message before the model loads."""
  if config.benchmark not in PROTOCOLS:
    raise ValueError(f'config.benchmark={config.benchmark!r}: choose one of {sorted(PROTOCOLS)} '
                     '(--config=configs/evaluate.py:BENCH)')
  if not config.checkpoint:
    raise ValueError('config.checkpoint is empty: give --config.checkpoint=a converted model directory or a '
                     'training workdir')
  if not config.data.root:
    raise ValueError(f'config.data.root is empty: give --config.data.root=the {config.benchmark} dataset folder')
  unknown = set(config.pairs.metrics) - {'depth', 'motion'}
  if unknown:
    raise ValueError(f'config.pairs.metrics: unknown {sorted(unknown)}; choose from depth, motion')
  p = config.pairs
  for flag, value, choices in (('pairs.scale', p.scale, SCALE_RULES), ('pairs.motion_error', p.motion_error, MOTION_ERRORS),
                               ('video.align', config.video.align, ALIGNMENTS)):
    if value not in choices:
      raise ValueError(f'config.{flag}={value!r}; choose one of {choices}')
  if not 1 <= p.min_gap <= p.max_gap:
    raise ValueError(f'config.pairs.min_gap={p.min_gap}, max_gap={p.max_gap}: give 1 <= min_gap <= max_gap')
  if p.per_sequence < 1:
    raise ValueError(f'config.pairs.per_sequence={p.per_sequence}: give at least 1 pair per sequence')
  try:
    lr_schedule(1, config.video.lr, schedule=config.video.schedule)
  except ValueError as e:
    raise ValueError(f'config.video.schedule: {e}') from None
  # a graph's form only: oneref-R also needs R < the sequence's frame count, known when it runs
  for flag, graph, frames in (('video.scene_graph', config.video.scene_graph, config.video.max_frames or 1024),
                              ('co3d.scene_graph', config.co3d.scene_graph, config.co3d.num_frames)):
    try:
      pair_indices(frames, graph)
    except ValueError as e:
      raise ValueError(f'config.{flag}: {e}') from None


def _model(config):
  """model_from_config's model handle, once the checkpoint's config.json says its family runs this benchmark's
  protocol with these settings (before the weights load)."""
  cfg = load_config(config.checkpoint)
  family, protocol = families.of(cfg), PROTOCOLS[config.benchmark]
  family.check_inference(config)
  if protocol not in family.protocols:
    runs = sorted(b for b, p in PROTOCOLS.items() if p in family.protocols)
    raise ValueError(f'config.checkpoint={config.checkpoint}: a {family.arch} model; the {protocol} protocol of '
                     f'{config.benchmark} is not one it runs (it runs {", ".join(family.protocols)}: '
                     f'--config=configs/evaluate.py:{" / ".join(runs)})')
  family.check_evaluate(config, cfg, protocol)
  return model_from_config(config)


class _Stereo4DSequence:
  """A Stereo4D test clip, opened when it runs."""

  def __init__(self, entry):
    self.entry = entry
    self.name = os.path.basename(entry.npz)[:-len('.npz')]


def _sequences(config) -> list:
  """The benchmark's sequences: (name, opener) where opener() gives what its protocol takes."""
  root = config.data.root
  if config.benchmark == 'stereo4d':
    clips = [_Stereo4DSequence(e) for e in find_clips(root, config.data.split, config.pairs.max_gap)]
    items = [(c.name, lambda c=c: Mp4Clip(c.entry.npz, c.entry.mp4)) for c in clips]
  else:
    module, fields = READERS[config.benchmark]
    reader = importlib.import_module(module)
    options = {f: tuple(config.data[f]) if f == 'sequences' else config.data[f] for f in fields
               if f != 'sequences' or config.data.sequences}
    items = [(n, lambda n=n: reader.load_sequence(root, n, **options)) for n in reader.sequence_names(root, **options)]
  if config.data.sequences:
    names = {n for n, _ in items}
    missing = [n for n in config.data.sequences if n not in names]
    if missing:
      raise ValueError(f'config.data.sequences: {missing} not under {root} (it has e.g. {sorted(names)[:5]})')
    items = [(n, o) for n, o in items if n in set(config.data.sequences)]
  return items[:config.max_sequences] if config.max_sequences else items


def _run_pairs(config, model, with_motion, name, opened):
  """The pairs of sequence `name` (their generator seeded by it) and their metrics."""
  p = config.pairs
  rng = pair_protocol.sequence_rng(config.seed, name)
  if isinstance(opened, Mp4Clip):
    pairs = pair_protocol.sample_pairs(opened.num_frames, p.per_sequence, p.max_gap, rng, p.min_gap)
    examples = pair_protocol.stereo4d_examples(opened, pairs)
  else:
    if opened.tracks_xyz is None or opened.intrinsics is None:
      raise LayoutError(f'{opened.name}: no 3D tracks or intrinsics in this sequence')
    if not np.any(opened.visibility):
      raise BadClip(f'{opened.name}: no visible track in any frame')
    if opened.world_to_camera is None and opened.dataset in ('adt', 'drivetrack'):
      raise ValueError(tapvid3d.requires_extrinsics_message(os.path.join(config.data.root, f'{opened.name}.npz')))
    pairs = pair_protocol.sample_pairs(opened.num_frames, p.per_sequence, p.max_gap, rng, p.min_gap)
    examples = pair_protocol.sequence_examples(opened, pairs, config.image_size, config.square_ok)
  if not examples:
    raise BadClip('fewer than two frames')
  pred1, pred2 = model.family.predict_pairs(model, examples, pairs, opened, size=config.image_size,
                                            square_ok=config.square_ok, batch_size=config.batch_size,
                                            with_motion=with_motion)
  metrics = pair_protocol.score_pairs(examples, pred1, pred2, scale_rule=p.scale, motion_error=p.motion_error,
                                      with_motion=with_motion)
  return {'pairs': [list(x) for x in pairs], 'metrics': metrics,
          'mean': {k: _nanmean(v) for k, v in metrics.items()}}


def _run_one(config, model, with_motion, name, opened):
  protocol = PROTOCOLS[config.benchmark]
  if protocol == 'pairs':
    return _run_pairs(config, model, with_motion, name, opened)
  common = dict(size=config.image_size, square_ok=config.square_ok, batch_size=config.batch_size)
  if protocol == 'video':
    poses = config.video.poses and (config.benchmark != 'sintel' or opened.name in _sintel_pose_sequences())
    return video_protocol.evaluate_video(opened, model, config.video, with_poses=poses, **common)
  return co3d_protocol.evaluate_sequence(opened, model, config.co3d, seed=config.seed, **common)


def _sintel_pose_sequences():
  return importlib.import_module('data.sintel').POSE_SEQUENCES


def _nanmean(values):
  values = np.asarray(values, np.float64)
  return float(np.nanmean(values)) if np.isfinite(values).any() else float('nan')


def _aggregate(config, records: dict) -> dict:
  protocol = PROTOCOLS[config.benchmark]
  if not records:
    return {}
  if protocol == 'pairs':  # pooled over all pairs
    keys = next(iter(records.values()))['metrics']
    return {k: _nanmean([x for r in records.values() for x in r['metrics'][k]]) for k in keys}
  if protocol == 'video':  # depth: weighted by valid pixels; poses: mean over sequences
    weights = [r['valid_pixels'] for r in records.values()]
    out = weighted_average([r['depth'] for r in records.values()], weights) if sum(weights) > 0 else {}
    posed = [r['pose'] for r in records.values() if 'pose' in r]
    out.update({k: _nanmean([p[k] for p in posed]) for k in (posed[0] if posed else {})})
    return out
  return co3d_protocol.aggregate(records)


def evaluate(config, workdir: str) -> dict:
  """Runs the job; returns (and writes) the results (with the compile time: compile_cache.py)."""
  _check(config)
  os.makedirs(workdir, exist_ok=True)
  cache_dir = compile_cache.enable(config.compile_cache_dir)
  with compile_cache.CompileTimer() as compiled:
    results = _evaluate(config, workdir)
  results['compile'] = dict(compiled.summary(), cache_dir=cache_dir)
  json_path, md_path = write_results(workdir, results)
  shown = {k: round(v, 4) for k, v in results['aggregate'].items() if isinstance(v, float)}
  logging.info('%s: %s; %s and %s', config.benchmark, shown, json_path, md_path)
  return results


def _evaluate(config, workdir: str) -> dict:
  model = _model(config)
  family = model.family
  with_motion = PROTOCOLS[config.benchmark] == 'pairs' and 'motion' in config.pairs.metrics
  if with_motion and not family.predicts_motion:
    raise ValueError(f'config.checkpoint={config.checkpoint}: a {family.arch} model has no motion heads, so motion '
                     'metrics cannot be computed; give a DynaDUSt3R checkpoint or --config.pairs.metrics=depth')
  items = _sequences(config)  # a wrong root fails here, before anything is written
  settings = _settings(config)
  store = SequenceStore(workdir, settings)
  logging.info('evaluate %s (%s protocol): %s on %d sequences from %s', config.benchmark,
               settings['protocol'], family.arch, len(items), config.data.root)
  records, skipped, resumed = {}, {}, 0
  for name, open_sequence in tqdm(items, unit='seq', desc=config.benchmark):
    record = store.get(name)
    if record is None:
      try:
        record = _run_one(config, model, with_motion, name, open_sequence())
      except SKIPPABLE as e:
        record = {'skipped': str(e)}
        logging.warning('%s: skipped (%s)', name, e)
      store.put(name, record)
    else:
      resumed += 1
    (skipped if 'skipped' in record else records)[name] = record
  if resumed:
    logging.info('%d sequences were already done in %s (kept)', resumed, store.dir)
  counts = {'evaluated': len(records), 'skipped': len(skipped)}
  if settings['protocol'] == 'pairs':
    counts['pairs'] = sum(len(r['pairs']) for r in records.values())
  results = {'benchmark': config.benchmark, 'checkpoint': config.checkpoint, 'model': family.arch, 'settings': settings,
             'counts': counts, 'aggregate': _aggregate(config, records), 'sequences': records,
             'skipped': {n: r['skipped'] for n, r in skipped.items()}}
  return results
