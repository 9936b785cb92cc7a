"""The trainer's data, chosen by `config.data.kind`: what differs between the model families' recipes.

  'stereo4d'   DynaDUSt3R's Stereo4D clips (data/pipeline.py): train and val splits of one root; the demo
               makes synthetic clips in WORKDIR/synthetic (config.data.synthetic).
  'd4rt'       D4RT's examples from the same Stereo4D clips (data/d4rt.py: strided clips, queries from the
               tracks, config.data.d4rt its sampling options, the model its clip shape).
  'multiview'  DUSt3R's recipe on posed multi-view data (data/multiview_pipeline.py): config.data.train is a
               list of dataset dicts (data/multiview.py: kind, root, split, size = DUSt3R's `N @ Dataset`,
               pairs, mask_bg, aug_crop), mixed; config.data.test one dict per test set, each validated on its
               own; the demo makes synthetic static scenes in WORKDIR/synthetic (config.data.synthetic) for
               the dicts whose root is empty.

`prepare(config, workdir)` finds (or makes) the data before JAX starts; `make(config, sources, ...)` builds the
Grain datasets of this host: the training batches and {test set name: validation batches}.
"""
import os

from data import d4rt, multiview, multiview_pipeline, pipeline

KINDS = ('stereo4d', 'multiview', 'd4rt')
VAL_SEED = 777  # DUSt3R draws its test sets with seed 777


def _clips(config, split, workdir):
  root = config.data.root
  synthetic = config.data.synthetic
  if not root and synthetic.num_clips:  # the demo: small clips made in the workdir (again if a kill cut them short)
    from data import synthetic as synth  # pylint: disable=import-outside-toplevel
    root = os.path.join(workdir, 'synthetic')
    seed = config.seed + (0 if split == config.data.train_split else 1000)
    synth.ensure_clips(root, split, synthetic.num_clips, synthetic.num_frames, size=synthetic.size, seed=seed)
  if not root:
    raise ValueError('config.data.root is empty: give --config.data.root=/path/to/stereo4d (the official '
                     'layout: {train,test}/*.npz + lefteye-perspective/{train,test}/*-left_rectified.mp4), '
                     'or use the :demo config')
  return pipeline.Mp4Clips(pipeline.find_clips(root, split, config.data.max_frame_window))


def _with_roots(config, field, workdir) -> list[dict]:
  """config.data.<field>'s dataset dicts, the empty roots filled with the demo's synthetic scenes."""
  datasets = [dict(d) for d in config.data[field]]
  if not datasets:
    raise ValueError(f'config.data.{field} is empty: list at least one dataset dict (data/multiview.py)')
  synthetic = config.data.synthetic
  for i, d in enumerate(datasets):
    if d.get('root'):
      continue
    if not synthetic.num_scenes:
      raise ValueError(f'config.data.{field}[{i}].root is empty: give "--config.data.{field}[{i}].root=/path" '
                       f'(a {d.get("kind", "?")} dataset, see data/multiview.py), or use the :demo config')
    from data import synthetic as synth  # pylint: disable=import-outside-toplevel
    d['root'] = os.path.join(workdir, 'synthetic')
    split = d.get('split', 'train')
    synth.ensure_static_scenes(d['root'], split, synthetic.num_scenes, synthetic.num_views, size=synthetic.size,
                               seed=config.seed + (0 if split == 'train' else 1000))
  return datasets


def _name(d: dict, taken) -> str:
  name = f'{d["kind"]}_{d.get("split", "train")}'
  return name if name not in taken else f'{name}{len(taken)}'


def prepare(config, workdir: str):
  """The data sources (files found, the demo's made): (train, {test set name: val})."""
  kind = config.data.get('kind', 'stereo4d')
  if kind not in KINDS:
    raise ValueError(f'config.data.kind={kind!r}; choose one of {KINDS}')
  if kind in ('stereo4d', 'd4rt'):
    return _clips(config, config.data.train_split, workdir), {'': _clips(config, config.data.val_split, workdir)}
  train = multiview.Mixture(_with_roots(config, 'train', workdir), seed=config.seed)
  tests = {}
  for d in _with_roots(config, 'test', workdir):
    tests[_name(d, tests)] = multiview.Mixture([d], seed=VAL_SEED)
  return train, tests


def make(config, sources, model_options: dict, *, local_batch: int, accum: int, shard_index: int, shard_count: int):
  """(training batches of local_batch examples, {name: validation batches of local_batch // accum});
  model_options: the data options the model owns (families/: data_options, e.g. D4RT's clip shape)."""
  train, tests = sources
  kind = config.data.get('kind', 'stereo4d')
  if kind == 'd4rt':
    options = dict(config.data.d4rt, **model_options)
    train_ds = d4rt.make_dataset(train, batch_size=local_batch, seed=config.seed, shard_index=shard_index,
                                 shard_count=shard_count, **options)
    val = {name: d4rt.make_dataset(clips, batch_size=local_batch // accum, seed=0, shard_index=shard_index,
                                   shard_count=shard_count, **dict(options, photometric=False, crop=False))
           for name, clips in tests.items()}
    return train_ds, val
  if kind == 'stereo4d':
    options = dict(max_frame_window=config.data.max_frame_window, hfov=config.data.hfov,
                   pixel_rounding=config.data.pixel_rounding)
    train_ds = pipeline.make_dataset(train, batch_size=local_batch, seed=config.seed, shard_index=shard_index,
                                     shard_count=shard_count, augment_images=config.data.augment, **options)
    val = {name: pipeline.make_dataset(clips, batch_size=local_batch // accum, seed=0, shard_index=shard_index,
                                       shard_count=shard_count, augment_images=False, **options)
           for name, clips in tests.items()}
    return train_ds, val
  options = dict(resolutions=[tuple(r) for r in config.data.resolutions], both_orders=config.data.both_orders)
  train_ds = multiview_pipeline.make_dataset(train, batch_size=local_batch, global_batch_size=local_batch * shard_count,
                                             seed=config.seed, shard_index=shard_index, shard_count=shard_count,
                                             color_jitter=config.data.color_jitter, **options)
  val_batch = local_batch // accum
  val = {name: multiview_pipeline.make_dataset(m, batch_size=val_batch, global_batch_size=val_batch * shard_count,
                                               seed=VAL_SEED, shard_index=shard_index, shard_count=shard_count,
                                               color_jitter=False, aug_crop=0, **options)
         for name, m in tests.items()}
  return train_ds, val
