"""Training pairs from static multi-view scenes, drawn as DUSt3R's datasets draw them, and mixtures of such
datasets with per-dataset sizes (DUSt3R's `N @ Dataset + M @ Dataset`) as config data.

Sources (`open_source(kind, root, ...)`): 'co3d' (DUSt3R's processed CO3D, data/co3d.py; also the synthetic
static scenes of data/synthetic.py) and 'posed_scenes' (data/posed_scenes.py). A source lists its scenes
and reads frame t of a scene as data.co3d.read_frame's dict (image, depth, mask, K, c2w).

Pair rules (`MultiViewDataset(source, pairs=...)`), frames counted by their position in the scene's list:
  'all'   every unordered pair (i, j), i < j, of a scene's frames (with max_gap: j − i ≤ max_gap), in
          itertools.combinations order; scenes one after the other. View 1 is frame i, view 2 frame j.
  'co3d'  dust3r/datasets/co3d.py: a scene's image pool is its selected frames (in selected_seqs' order);
          every scene has the same CO3D_COMBINATIONS, the pairs (i, j) of range(100) with i < j and
          j − i ∈ {5, 10, ..., 30} (a processed sequence has up to 100 frames; 25 frames ≈ 90°), 495 in
          all; sample index s is scene s // 495 and combination s % 495. Each of i, j then moves by an
          integer drawn in [−4, 4] and is clipped to the pool (a pool of fewer than 100 frames clips
          many pairs to its last frame: use 'all' for short scenes such as the synthetic ones).
Randomness is a function of (seed, epoch, index): `np.random.default_rng([seed, epoch, index])`, drawn in
DUSt3R's order: first mask_bg='rand''s coin (`rng.choice(2)`), then the jitter of view 2, then of view 1
('co3d' only). mask_bg (True, False or 'rand': each sample with probability 1/2) zeroes the depth outside
the foreground mask, as DUSt3R's Co3d does. A frame left without any valid depth is replaced as DUSt3R
does: the next frame with valid depth in a random direction (cyclically); read here, not remembered, so
the choice depends only on the files and the sample.

Mixtures (`Mixture(configs, seed)`): configs is a list of dicts, one per dataset, for example
  [{'kind': 'co3d', 'root': '/data/co3d_processed', 'split': 'train', 'size': 100_000, 'aug_crop': 16,
    'mask_bg': 'rand'},
   {'kind': 'posed_scenes', 'root': '/data/mine', 'size': 20_000, 'pairs': 'all', 'max_gap': 10}]
Keys read here: kind, root, split and categories ('co3d'), pairs (default 'co3d' for kind 'co3d', 'all'
otherwise), max_gap, mask_bg (default False), size; every other key (aug_crop, resolution, ...) is kept in
`dataset.options` for the data pipeline. The mixture is the datasets one after the other
(`mixture_index`: DUSt3R's CatDataset); a dataset with 'size' N is resized as DUSt3R's `N @ D`
(easy_dataset.ResizedDataset): at each epoch a permutation of D's indices drawn with
`np.random.default_rng(epoch + 777)`, repeated until N long and cut there, so local index n is
D[perm[n mod len(D)]] (`resized_index`): every sample of D is used ⌊N / len(D)⌋ or ⌈N / len(D)⌉ times
an epoch. Without 'size' the dataset is used as it is (len(D), no permutation). Shuffling the mixture's
order is the sampler's job. Everything here is numpy and deterministic in (seed, epoch, index).
"""
import dataclasses
import functools
import itertools
import os

import numpy as np

from data import co3d, posed_scenes
from data.errors import BadClip

CO3D_POOL = 100                               # DUSt3R's combinations are of range(100)
CO3D_COMBINATIONS = np.array([(i, j) for i, j in itertools.combinations(range(CO3D_POOL), 2)
                              if 0 < abs(i - j) <= 30 and abs(i - j) % 5 == 0], np.int64)
CO3D_JITTER = 4                               # rng.integers(-4, 5)
RESIZE_SEED = 777                             # ResizedDataset.set_epoch: default_rng(seed=epoch + 777)
PAIR_RULES = ('all', 'co3d')
KINDS = ('co3d', 'posed_scenes')


# --- sources ----------------------------------------------------------------------------------------


class Co3dSource:
  """DUSt3R's processed CO3D: scenes 'category/seq' in selected_seqs_<split>.json's order (DUSt3R's
  scene_list), each with its selected frames (the image pool). Frames are read on demand."""
  kind = 'co3d'

  def __init__(self, root: str, split: str = 'train', categories=None):
    self.root = root
    _, self._pools = co3d._selected(root, split, categories)  # pylint: disable=protected-access
    self.names = list(self._pools)

  def frames(self, name: str) -> list[str]:
    return [f'frame{i:06d}' for i in self._pools[name]]

  def num_frames(self, name: str) -> int:
    return len(self._pools[name])

  def read(self, name: str, t: int) -> dict:
    return co3d.read_frame(os.path.join(self.root, *name.split('/')), self._pools[name][t])


class PosedScenesSource:
  """data/posed_scenes.py: scenes = root's sub-folders (sorted), frames = cameras.json's keys (sorted)."""
  kind = 'posed_scenes'

  def __init__(self, root: str):
    self.root = root
    self.names = posed_scenes.sequence_names(root)
    self._frames = {name: posed_scenes.frame_names(os.path.join(root, name)) for name in self.names}

  def frames(self, name: str) -> list[str]:
    return list(self._frames[name])

  def num_frames(self, name: str) -> int:
    return len(self._frames[name])

  def read(self, name: str, t: int) -> dict:
    return posed_scenes.read_frame(os.path.join(self.root, name), self._frames[name][t])


def open_source(kind: str, root: str, **options):
  """'co3d' (options split, categories) or 'posed_scenes' (no options)."""
  if kind == 'co3d':
    return Co3dSource(root, **options)
  if kind == 'posed_scenes':
    if options:
      raise ValueError(f"kind 'posed_scenes' takes no options; got {sorted(options)}")
    return PosedScenesSource(root)
  raise ValueError(f'kind={kind!r}; choose from {KINDS}')


# --- pairs ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def scene_pairs(num_frames: int, max_gap: int | None = None) -> np.ndarray:
  """(P, 2) int64: every (i, j), 0 <= i < j < num_frames, j − i <= max_gap (if given), in
  itertools.combinations order. Read-only (cached)."""
  pairs = np.array([(i, j) for i, j in itertools.combinations(range(num_frames), 2)
                    if max_gap is None or j - i <= max_gap], np.int64).reshape(-1, 2)
  pairs.flags.writeable = False
  return pairs


def co3d_jitter(i: int, j: int, pool_size: int, rng: np.random.Generator) -> tuple[int, int]:
  """DUSt3R co3d's `imgs_idxs`: view 2's then view 1's index + rng.integers(−4, 5), clipped to the pool."""
  last = pool_size - 1
  j2, i2 = (max(0, min(k + int(rng.integers(-CO3D_JITTER, CO3D_JITTER + 1)), last)) for k in (j, i))
  return i2, j2


@dataclasses.dataclass(frozen=True)
class Sample:
  """One training pair: frames (positions in the scene's frame list) of view 1 and view 2."""
  dataset: int            # index in the mixture (0 for a lone dataset)
  scene: str
  frames: tuple[int, int]
  mask_bg: bool
  key: tuple[int, ...]    # (seed, epoch, index): what the sample's randomness came from


def _draw_mask_bg(mask_bg, rng: np.random.Generator) -> bool:
  """DUSt3R: (mask_bg == True) or (mask_bg == 'rand' and rng.choice(2)); the coin only for 'rand'."""
  if mask_bg == 'rand':
    return bool(rng.choice(2))
  if isinstance(mask_bg, (bool, np.bool_)):
    return bool(mask_bg)
  raise ValueError(f"mask_bg={mask_bg!r}; choose True, False or 'rand'")


class MultiViewDataset:
  """The pairs of one source's scenes under one pair rule (module docstring)."""

  def __init__(self, source, pairs: str = 'all', max_gap: int | None = None, mask_bg=False, seed: int = 0,
               **options):
    if pairs not in PAIR_RULES:
      raise ValueError(f'pairs={pairs!r}; choose from {PAIR_RULES}')
    if pairs == 'co3d' and max_gap is not None:
      raise ValueError("max_gap is for pairs='all' (the 'co3d' rule has its own gaps, 5 to 30 frames)")
    if max_gap is not None and max_gap < 1:
      raise ValueError(f'max_gap={max_gap}: need >= 1')
    _draw_mask_bg(mask_bg, np.random.default_rng(0))   # validates it
    self.source, self.rule, self.max_gap, self.mask_bg, self.seed = source, pairs, max_gap, mask_bg, seed
    self.options = options
    self.scenes = list(source.names)
    if pairs == 'co3d':
      self._counts = np.full(len(self.scenes), len(CO3D_COMBINATIONS), np.int64)
    else:
      self._counts = np.array([len(scene_pairs(source.num_frames(n), max_gap)) for n in self.scenes], np.int64)
    self._ends = np.cumsum(self._counts)
    if not len(self):
      raise ValueError(f'{source.kind} at {source.root}: no pairs (scenes with fewer than 2 frames only?)')

  def __len__(self) -> int:
    return int(self._ends[-1]) if len(self._ends) else 0

  def pair(self, index: int, epoch: int = 0) -> tuple[str, int, int]:
    """(scene, frame of view 1, frame of view 2) of sample `index`."""
    sample = self.sample(index, epoch)
    return (sample.scene, *sample.frames)

  def sample(self, index: int, epoch: int = 0, key: tuple[int, ...] | None = None, dataset: int = 0) -> Sample:
    """Sample `index` at `epoch`; its randomness from default_rng(key), key = (seed, epoch, index) unless
    given (a mixture passes its own)."""
    if not 0 <= index < len(self):
      raise IndexError(f'index {index} out of range for {len(self)} pairs')
    key = (self.seed, epoch, index) if key is None else tuple(key)
    rng = np.random.default_rng(key)
    s = int(np.searchsorted(self._ends, index, side='right'))
    local = index - (int(self._ends[s - 1]) if s else 0)
    scene = self.scenes[s]
    mask_bg = _draw_mask_bg(self.mask_bg, rng)
    if self.rule == 'co3d':
      i, j = CO3D_COMBINATIONS[local]
      i, j = co3d_jitter(int(i), int(j), self.source.num_frames(scene), rng)
    else:
      i, j = (int(k) for k in scene_pairs(self.source.num_frames(scene), self.max_gap)[local])
    return Sample(dataset, scene, (i, j), mask_bg, key)

  def _read_valid(self, sample: Sample, view: int) -> tuple[int, dict]:
    """Frame `view` of the sample, or DUSt3R's replacement when it has no valid depth (mask_bg applied)."""
    n = self.source.num_frames(sample.scene)
    t = sample.frames[view]
    direction = None
    for offset in range(n):
      if offset:
        if direction is None:
          direction = 2 * int(np.random.default_rng((*sample.key, view)).choice(2)) - 1
        t = (sample.frames[view] + direction * offset) % n
      frame = self.source.read(sample.scene, t)
      if sample.mask_bg:
        if frame['mask'] is None:
          raise BadClip(f'{self.source.root} {sample.scene} frame {self.source.frames(sample.scene)[t]}: '
                        'mask_bg needs a mask and the frame has none')
        frame['depth'] = frame['depth'] * frame['mask']
      if np.any(frame['depth'] > 0):
        return t, frame
    raise BadClip(f'{self.source.root} {sample.scene}: no frame with valid depth'
                  + (' inside its mask' if sample.mask_bg else ''))

  def read(self, sample: Sample) -> list[dict]:
    """The two views: data.co3d.read_frame's dict (depth zeroed outside the mask when sample.mask_bg) plus
    dataset (the source kind), label (the scene), instance (the frame's name) and frame (its position)."""
    views = []
    for view in (0, 1):
      t, frame = self._read_valid(sample, view)
      frame.update(dataset=self.source.kind, label=sample.scene, instance=self.source.frames(sample.scene)[t],
                   frame=t)
      views.append(frame)
    return views


# --- mixtures ---------------------------------------------------------------------------------------


def mixture_index(sizes, i: int) -> tuple[int, int]:
  """(dataset k, index within it) of sample i of the datasets of these sizes one after the other
  (DUSt3R's CatDataset: k = searchsorted(cumsum(sizes), i, 'right'))."""
  ends = np.cumsum(np.asarray(sizes, np.int64))
  if not 0 <= i < (int(ends[-1]) if len(ends) else 0):
    raise IndexError(f'index {i} out of range for sizes {list(sizes)}')
  k = int(np.searchsorted(ends, i, side='right'))
  return k, int(i - (ends[k - 1] if k else 0))


@functools.lru_cache(maxsize=16)
def _permutation(length: int, epoch: int) -> np.ndarray:
  perm = np.random.default_rng(seed=epoch + RESIZE_SEED).permutation(length)
  perm.flags.writeable = False
  return perm


def resized_index(local: int, new_size: int, length: int, epoch: int) -> int:
  """Index in a dataset of `length` samples of sample `local` of it resized to `new_size` (DUSt3R's
  `new_size @ D` at `epoch`: perm = default_rng(epoch + 777).permutation(length), repeated, cut at new_size)."""
  if not 0 <= local < new_size:
    raise IndexError(f'index {local} out of range for size {new_size}')
  return int(_permutation(length, epoch)[local % length])


def build_dataset(config: dict, seed: int = 0) -> MultiViewDataset:
  """One dataset of a mixture config (module docstring); 'size' is the mixture's business and is ignored."""
  config = dict(config)
  for key in ('kind', 'root'):
    if key not in config:
      raise ValueError(f'dataset config {config}: no {key!r}')
  if 'seed' in config:
    raise ValueError(f'dataset config {config}: no per-dataset seed (the mixture seeds every dataset)')
  kind, root = config.pop('kind'), config.pop('root')
  config.pop('size', None)
  source_options = {k: config.pop(k) for k in ('split', 'categories') if k in config}
  if kind != 'co3d' and source_options:
    raise ValueError(f'{kind} at {root}: {sorted(source_options)} are options of kind co3d')
  pairs = config.pop('pairs', 'co3d' if kind == 'co3d' else 'all')
  return MultiViewDataset(open_source(kind, root, **source_options), pairs=pairs, seed=seed, **config)


class Mixture:
  """Datasets from config dicts, each resized to its 'size' (module docstring)."""

  def __init__(self, configs: list[dict], seed: int = 0):
    if not configs:
      raise ValueError('a mixture needs at least one dataset config')
    self.seed = seed
    self.datasets = [build_dataset(c, seed) for c in configs]
    self.sizes = [int(c['size']) if c.get('size') is not None else len(d) for c, d in zip(configs, self.datasets)]
    self.resized = [c.get('size') is not None for c in configs]
    for c, size in zip(configs, self.sizes):
      if size < 1:
        raise ValueError(f'dataset config {c}: size {size}; need >= 1')

  def __len__(self) -> int:
    return sum(self.sizes)

  def sample(self, i: int, epoch: int = 0) -> Sample:
    """Sample i at `epoch`: dataset k and its local index (mixture_index), through the resize (resized_index),
    with randomness from default_rng((seed, epoch, i))."""
    k, local = mixture_index(self.sizes, i)
    dataset = self.datasets[k]
    index = resized_index(local, self.sizes[k], len(dataset), epoch) if self.resized[k] else local
    return dataset.sample(index, epoch, key=(self.seed, epoch, i), dataset=k)

  def read(self, sample: Sample) -> list[dict]:
    return self.datasets[sample.dataset].read(sample)
