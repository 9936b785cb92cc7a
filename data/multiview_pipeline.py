"""The Grain input pipeline of DUSt3R's recipe: pairs of posed views from a multi-view Mixture (data/multiview.py)
through DUSt3R's view pipeline (data/dust3r_views.py), as DUSt3R trains on them (spec dust3r.md §5.2, §5.3).

    mixture = multiview.Mixture(config.data.datasets, seed=config.seed)
    ds = make_dataset(mixture, batch_size=local, global_batch_size=local * hosts, seed=config.seed,
                      shard_index=host, shard_count=hosts, resolutions=[(512, 384), (512, 336), ...])
    it = pipeline.make_iterator(ds, num_workers=8)     # data/pipeline.py's, checkpointable

Element e of the dataset is global sample e. With both_orders (the default) elements 2k and 2k+1 are pair k fed
in its two orders, (view a, view b) then (view b, view a): DUSt3R's `symmetrize_batch=True`
(`make_batch_symmetric` interleaves a batch of B pairs into 2B items in exactly this order, item 2k+1 the swap of
item 2k). So global_batch_size counts items: DUSt3R's 224 stage, 16 pairs × 8 GPUs, is global_batch_size=256.
Without both_orders element e is pair e. Pair k of the stream is position k mod N of epoch k // N of the mixture
(N = len(mixture)), through a permutation of range(N) drawn per (seed, epoch) (DUSt3R's sampler shuffles every
epoch); the mixture then resolves dataset, resize and pair rule at that epoch (Mixture.sample).

Example (numpy, the stored layout of data/dust3r_views.py: every view landscape, (H, W) = the batch's
resolution (W, H) reversed; a portrait view stored transposed, its true_shape (height, width) portrait):
  img1, img2                (H, W, 3) float32 in [-1, 1]
  pts3d1, pts3d2            (H, W, 3) float32, both in view 1's camera frame (DUSt3R's Regr3D GT:
                            inv(camera_pose1) · world points); 0 where not valid
  valid1, valid2            (H, W) bool
  true_shape1, true_shape2  (2,) int32, the real (height, width) of each view
  camera_pose1, camera_pose2 (4, 4) float32 camera → world; camera_intrinsics1/2 (3, 3) float32 (rows [1, 0, 2]
                            for a transposed view, so that K · p / z is (column, row) of the stored array always)
  num_skipped               () int32, failed draws this example replaced (both orders of a pair count theirs)
The resolution of element e is aspect_ratio_for_batch(seed, e // global_batch_size, resolutions): one per
global step batch, hence per host slice and per micro-batch. The model must be given the views' true_shape
(ManyAR_PatchEmbed and landscape_only heads read it; without it portrait views are treated as landscape).

Randomness: everything of pair k (the redraws, the crop orientation of square-ish views, aug_crop, ColorJitter)
comes from one generator seeded by (seed, k), so both orders of a pair share it and an example is a function of
(seed, element) only; the element's own Grain generator is not used. The pair's frames and its mask_bg coin
come from the mixture (its seed, the epoch and the index), as data/multiview.py documents.

Per-dataset options (a dataset config's extra keys, `dataset.options`) override the pipeline's defaults
(make_dataset's **draw_options): aug_crop (int, DUSt3R's; default 0) and color_jitter (bool, ColorJitter(0.5,
0.5, 0.5, 0.1); default True, the recipe's transform). mask_bg is a dataset config key that the mixture applies
(depth zeroed outside the mask), not an option here.

Failures: a pair whose reading or view pipeline fails (BadClip, e.g. no frame with valid depth; a missing,
unreadable or corrupt file; a principal point too far off centre; a view with no valid pixel after cropping) is
replaced by a uniform draw of a mixture index from the pair's generator and counted in num_skipped; after
max_attempts consecutive failures a RuntimeError names the last errors. A scene with fewer than 2 frames has no
pair: make_dataset refuses the mixture with one message naming such scenes. Note that data.co3d's reader (cv2,
as DUSt3R) decodes a JPEG cut short after its headers into a partly grey image without an error: such a frame
cannot be told apart here.
"""
import collections
import functools
import threading
import zlib

import cv2
import grain
import numpy as np

from data.dust3r_views import aspect_ratio_for_batch, view_from_frame
from data.errors import BadClip, redraw
from data.pipeline import batched
from dynadust3r_jax.common.geometry import apply_transform

OPTIONS = ('aug_crop', 'color_jitter')
DEFAULTS = {'aug_crop': 0, 'color_jitter': True}
_PAIR_STREAM = zlib.crc32(b'dust3r pair')
_SHUFFLE_STREAM = zlib.crc32(b'dust3r epoch shuffle')
# what a sample can fail with: BadClip, LayoutError (an OSError), other I/O, ValueError of the view pipeline
# (image and depth sizes differ, principal point off centre), cv2.error of a malformed image
FAILURES = (BadClip, OSError, ValueError, cv2.error)
_CACHE_SIZE = 8


@functools.lru_cache(maxsize=2)
def epoch_permutation(seed: int, epoch: int, size: int) -> np.ndarray:
  """The order of the mixture's indices in `epoch` (read-only)."""
  perm = np.random.default_rng([seed, epoch, _SHUFFLE_STREAM]).permutation(size)
  perm = perm.astype(np.int32 if size < 2 ** 31 else np.int64)
  perm.flags.writeable = False
  return perm


def _check_options(options: dict, where: str) -> dict:
  unknown = sorted(set(options) - set(OPTIONS))
  if unknown:
    raise ValueError(f'{where}: unknown option(s) {unknown}; the pair pipeline reads {list(OPTIONS)} (the batch '
                     'resolutions are the pipeline\'s, mask_bg is a dataset config key)')
  aug_crop = options.get('aug_crop', 0)
  if isinstance(aug_crop, bool) or not isinstance(aug_crop, (int, np.integer)) or aug_crop < 0:
    raise ValueError(f'{where}: aug_crop={aug_crop!r}; need an int >= 0')
  if not isinstance(options.get('color_jitter', True), (bool, np.bool_)):
    raise ValueError(f"{where}: color_jitter={options['color_jitter']!r}; need True or False")
  return options


def _check_resolutions(resolutions) -> tuple:
  try:
    out = tuple((int(w), int(h)) for w, h in resolutions)
  except (TypeError, ValueError):
    raise ValueError(f'resolutions={resolutions!r}: need a list of (W, H)') from None
  if not out or any(w < h or h < 1 for w, h in out):
    raise ValueError(f'resolutions={resolutions!r}: need a non-empty list of landscape (W, H), W >= H >= 1')
  return out


def _short_scenes(mixture) -> list[str]:
  """'kind at root: scene (n frames)' of every scene of the mixture's datasets with fewer than 2 frames."""
  short = []
  for dataset in mixture.datasets:
    source = dataset.source
    short += [f'{source.kind} at {source.root}: {name} ({source.num_frames(name)} frame(s))'
              for name in dataset.scenes if source.num_frames(name) < 2]
  return short


class DrawPair(grain.transforms.RandomMap):
  """Global sample index → one training example (module docstring) of a multi-view Mixture."""

  def __init__(self, mixture, *, seed: int, global_batch_size: int, resolutions, both_orders: bool = True,
               max_attempts: int = 32, **defaults):
    if global_batch_size < 1 or (both_orders and global_batch_size % 2):
      raise ValueError(f'global_batch_size={global_batch_size}: need >= 1, and even with both_orders (a batch '
                       'holds both orders of its pairs)')
    if max_attempts < 1:
      raise ValueError(f'max_attempts={max_attempts}: need >= 1')
    short = _short_scenes(mixture)
    if short:
      raise ValueError(f'{len(short)} scene(s) with fewer than 2 frames, so without any pair: '
                       f'{"; ".join(short[:10])}{" ..." if len(short) > 10 else ""}. Remove them from the '
                       'dataset (its selection JSON or folder)')
    self.mixture, self.seed = mixture, seed
    self.global_batch_size, self.both_orders, self.max_attempts = global_batch_size, both_orders, max_attempts
    self.resolutions = _check_resolutions(resolutions)
    defaults = _check_options({**DEFAULTS, **defaults}, 'pipeline options')
    self.options = [_check_options({**defaults, **d.options}, f'{d.source.kind} at {d.source.root}')
                    for d in mixture.datasets]
    self._init_cache()

  def _init_cache(self):
    self._lock = threading.Lock()
    self._cache = collections.OrderedDict()  # pair → (views, num_skipped): both orders are read once

  def __getstate__(self):
    state = dict(self.__dict__)
    del state['_lock'], state['_cache']
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._init_cache()

  def random_map(self, element, rng: np.random.Generator = None):
    del rng  # both orders of a pair share the pair's generator (module docstring)
    element = int(element)
    pair, swap = divmod(element, 2) if self.both_orders else (element, 0)
    resolution = aspect_ratio_for_batch(self.seed, element // self.global_batch_size, self.resolutions)
    views, skipped = self._pair(pair, resolution)
    return _example(views[1], views[0], skipped) if swap else _example(views[0], views[1], skipped)

  def _pair(self, pair: int, resolution):
    key = (pair, resolution)
    with self._lock:
      if key in self._cache:
        self._cache.move_to_end(key)
        return self._cache[key]
    value = self._draw(pair, resolution)
    with self._lock:
      self._cache[key] = value
      while len(self._cache) > _CACHE_SIZE:
        self._cache.popitem(last=False)
    return value

  def _draw(self, pair: int, resolution):
    """(the two views of pair `pair` at `resolution`, failed draws before them)."""
    size = len(self.mixture)
    epoch, position = divmod(pair, size)
    rng = np.random.default_rng([self.seed, pair, _PAIR_STREAM])
    index = int(epoch_permutation(self.seed, epoch, size)[position])
    # attempt 0: the epoch's pair; after a failure, a uniform draw of the mixture from the pair's generator
    return redraw(lambda attempt: self._views(index if attempt == 0 else int(rng.integers(size)), epoch, resolution,
                                              rng), self.max_attempts, FAILURES)

  def _views(self, index, epoch, resolution, rng):
    sample = self.mixture.sample(index, epoch)
    options = self.options[sample.dataset]
    views = []
    for frame in self.mixture.read(sample):  # mask_bg already applied by the mixture
      view = view_from_frame(frame['image'], frame['depth'], frame['K'], frame['c2w'], resolution, rng,
                             aug_crop=int(options['aug_crop']), color_jitter=bool(options['color_jitter']))
      where = f'{frame["dataset"]} {frame["label"]} frame {frame["instance"]}'
      if not (np.isfinite(view['camera_pose']).all() and np.isfinite(view['camera_intrinsics']).all()):
        raise BadClip(f'{where}: camera with non-finite values')
      if not view['valid_mask'].any():
        raise BadClip(f'{where}: no valid pixel at resolution {resolution}')
      views.append(view)
    return tuple(views)


def _example(view1, view2, skipped) -> dict:
  """The example of (view1, view2): both pointmaps in view 1's camera frame."""
  pose1 = view1['camera_pose'].astype(np.float64)
  world_to_cam1 = np.linalg.inv(pose1)
  example = {}
  for k, view in ((1, view1), (2, view2)):
    valid = view['valid_mask']
    pts = apply_transform(world_to_cam1, view['pts3d'].astype(np.float64))
    example.update({
        f'img{k}': view['img'], f'pts3d{k}': np.where(valid[..., None], pts, 0).astype(np.float32),
        f'valid{k}': valid, f'true_shape{k}': np.asarray(view['true_shape'], np.int32),
        f'camera_pose{k}': view['camera_pose'], f'camera_intrinsics{k}': view['camera_intrinsics']})
  example['num_skipped'] = np.int32(skipped)
  return example


def make_dataset(mixture, *, batch_size: int, global_batch_size: int, seed: int, shard_index: int = 0,
                 shard_count: int = 1, resolutions, both_orders: bool = True, **draw_options) -> grain.MapDataset:
  """Batches of examples of the host `shard_index` of `shard_count`: its slice of every global batch (global
  batch s = elements [s·G, (s+1)·G), G = global_batch_size = batch_size · shard_count), as
  data/pipeline.make_dataset shards. draw_options: aug_crop, color_jitter (defaults of the datasets without
  their own), max_attempts."""
  if batch_size < 1 or batch_size * shard_count != global_batch_size:
    raise ValueError(f'batch_size={batch_size} × shard_count={shard_count} must be global_batch_size='
                     f'{global_batch_size}')
  if both_orders and batch_size % 2:
    raise ValueError(f'batch_size={batch_size}: with both_orders a host batch holds both orders of its pairs '
                     '(need an even size)')
  if not 0 <= shard_index < shard_count:
    raise ValueError(f'shard_index={shard_index} out of range for shard_count={shard_count}')
  draw = DrawPair(mixture, seed=seed, global_batch_size=global_batch_size, resolutions=resolutions,
                  both_orders=both_orders, **draw_options)
  return batched(draw, batch_size=batch_size, seed=seed, shard_index=shard_index, shard_count=shard_count)
