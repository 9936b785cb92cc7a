"""Pair drawing per scene (data/multiview.py) as DUSt3R's datasets draw them, resized mixtures as DUSt3R's
`N @ D + M @ E`, determinism in (seed, epoch, index), and both sources read into the same frame dict."""
import collections
import itertools
import json

import numpy as np
import pytest

from data import co3d, multiview, posed_scenes, synthetic
from data.errors import BadClip


class FakeSource:
  """Scenes with given frame counts; frame t of a scene has depth t + 1 unless listed as invalid."""
  kind, root = 'fake', '/fake'

  def __init__(self, counts, invalid=(), masks=True):
    self.names = [f'scene{k}' for k in range(len(counts))]
    self.counts, self.invalid, self.masks = dict(zip(self.names, counts)), set(invalid), masks

  def num_frames(self, name):
    return self.counts[name]

  def frames(self, name):
    return [f'{name}_f{t}' for t in range(self.counts[name])]

  def read(self, name, t):
    depth = np.zeros((2, 3), np.float32) if (name, t) in self.invalid else np.full((2, 3), t + 1.0, np.float32)
    mask = np.array([[True, False, True], [False, True, False]]) if self.masks else None
    return {'image': np.zeros((2, 3, 3), np.uint8), 'depth': depth, 'mask': mask, 'K': np.eye(3), 'c2w': np.eye(4)}


def test_all_pairs_of_every_scene_once():
  source = FakeSource([4, 1, 6, 2])
  dataset = multiview.MultiViewDataset(source, pairs='all')
  assert len(dataset) == 6 + 0 + 15 + 1
  drawn = [dataset.pair(i) for i in range(len(dataset))]
  expected = [(name, i, j) for name in source.names for i, j in itertools.combinations(range(source.counts[name]), 2)]
  assert drawn == expected                                          # combinations order, scene after scene
  gap = multiview.MultiViewDataset(source, pairs='all', max_gap=2)
  assert [gap.pair(i) for i in range(len(gap))] == [p for p in expected if p[2] - p[1] <= 2]
  with pytest.raises(IndexError):
    dataset.sample(len(dataset))
  np.testing.assert_array_equal(multiview.scene_pairs(3), [[0, 1], [0, 2], [1, 2]])
  assert multiview.scene_pairs(1).shape == (0, 2)


def test_co3d_combinations_and_jitter():
  combos = multiview.CO3D_COMBINATIONS
  assert len(combos) == 495 and combos[0].tolist() == [0, 5] and combos[-1].tolist() == [94, 99]
  assert set((combos[:, 1] - combos[:, 0]).tolist()) == {5, 10, 15, 20, 25, 30} and combos.max() == 99
  source = FakeSource([100, 100, 40])
  dataset = multiview.MultiViewDataset(source, pairs='co3d', seed=3)
  assert len(dataset) == 3 * 495
  offsets = collections.Counter()
  for index in range(0, len(dataset), 7):
    scene, i, j = dataset.pair(index)
    assert scene == source.names[index // 495]                     # DUSt3R: scene_list[idx // len(combinations)]
    ci, cj = combos[index % 495]
    last = source.counts[scene] - 1
    assert 0 <= i <= last and 0 <= j <= last
    assert min(max(ci - 4, 0), last) <= i <= min(ci + 4, last) and min(max(cj - 4, 0), last) <= j <= min(cj + 4, last)
    if last == 99 and 4 <= ci and cj <= 95:
      offsets.update([i - ci, j - cj])
    if last == 39 and ci >= 44:
      assert i == j == 39                                           # a short pool clips to its last frame
  assert sorted(offsets) == list(range(-4, 5))
  assert min(offsets.values()) > 0.6 * max(offsets.values())        # uniform in [−4, 4]


def test_co3d_jitter_draws_view_2_first():
  """dust3r: imgs_idxs = [clip(im_idx + rng.integers(-4, 5)) for im_idx in [im2_idx, im1_idx]]."""
  rng = np.random.default_rng(11)
  a, b = rng.integers(-4, 5), rng.integers(-4, 5)
  assert multiview.co3d_jitter(50, 60, 100, np.random.default_rng(11)) == (50 + b, 60 + a)
  assert multiview.co3d_jitter(0, 99, 10, np.random.default_rng(0))[1] == 9


def test_determinism_in_seed_epoch_index():
  source = FakeSource([100, 100])
  make = lambda seed: multiview.MultiViewDataset(source, pairs='co3d', mask_bg='rand', seed=seed)
  a, b, c = make(0), make(0), make(1)
  draws = lambda d, epoch: [d.sample(i, epoch) for i in range(0, len(d), 13)]
  assert draws(a, 0) == draws(b, 0)
  assert draws(a, 0) != draws(c, 0) and draws(a, 0) != draws(a, 1)
  coins = [s.mask_bg for s in draws(a, 0)]
  assert 0.35 < np.mean(coins) < 0.65                               # 'rand': each sample with probability 1/2
  assert all(s.mask_bg for s in draws(multiview.MultiViewDataset(source, mask_bg=True), 0))
  assert not any(s.mask_bg for s in draws(multiview.MultiViewDataset(source), 0))
  with pytest.raises(ValueError, match='mask_bg'):
    multiview.MultiViewDataset(source, mask_bg='sometimes')
  with pytest.raises(ValueError, match='pairs'):
    multiview.MultiViewDataset(source, pairs='every')
  with pytest.raises(ValueError, match='max_gap'):
    multiview.MultiViewDataset(source, pairs='co3d', max_gap=3)


def test_read_masks_depth_and_replaces_frames_without_depth():
  source = FakeSource([5], invalid=[('scene0', 1), ('scene0', 2)])
  dataset = multiview.MultiViewDataset(source, pairs='all', mask_bg=True)
  sample = dataset.sample(0)                                        # (0, 1): frame 1 has no depth
  assert sample.frames == (0, 1)
  v1, v2 = dataset.read(sample)
  np.testing.assert_array_equal(v1['depth'], np.where(v1['mask'], 1.0, 0.0))   # zeroed outside the mask
  assert v1['frame'] == 0 and v1['instance'] == 'scene0_f0' and v1['label'] == 'scene0' and v1['dataset'] == 'fake'
  assert v2['frame'] in (0, 3)                                      # the nearest valid frame in a random direction
  assert np.all(v2['depth'][v2['mask']] == v2['frame'] + 1)
  seen = {dataset.read(multiview.Sample(0, 'scene0', (0, 1), True, (k,)))[1]['frame'] for k in range(20)}
  assert seen == {0, 3}                                             # both directions happen
  with pytest.raises(BadClip, match='valid depth'):
    multiview.MultiViewDataset(FakeSource([2], invalid=[('scene0', 0), ('scene0', 1)])).read(
        multiview.Sample(0, 'scene0', (0, 1), False, (0,)))
  with pytest.raises(BadClip, match='mask_bg needs a mask'):
    multiview.MultiViewDataset(FakeSource([2], masks=False), mask_bg=True).read(
        multiview.Sample(0, 'scene0', (0, 1), True, (0,)))


def test_mixture_index():
  sizes = [3, 5, 2]
  table = [multiview.mixture_index(sizes, i) for i in range(10)]
  assert table == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0), (2, 1)]
  for bad in (-1, 10):
    with pytest.raises(IndexError):
      multiview.mixture_index(sizes, bad)


def test_resized_index_is_dust3rs_rotary_permutation():
  length, new_size = 40, 100
  for epoch in (0, 3):
    mapping = [multiview.resized_index(n, new_size, length, epoch) for n in range(new_size)]
    perm = np.random.default_rng(seed=epoch + 777).permutation(length)   # ResizedDataset.set_epoch
    assert mapping == np.concatenate([perm] * (1 + (new_size - 1) // length))[:new_size].tolist()
    counts = np.bincount(mapping, minlength=length)
    assert set(counts.tolist()) == {2, 3} and counts.sum() == new_size
    assert sorted(mapping[:length]) == list(range(length))
  assert [multiview.resized_index(n, 10, length, 0) for n in range(10)] != \
         [multiview.resized_index(n, 10, length, 1) for n in range(10)]
  with pytest.raises(IndexError):
    multiview.resized_index(new_size, new_size, length, 0)


def _posed_copy(static_root, out):
  """The synthetic static scenes rewritten in the posed_scenes layout (K back to the pixel-edge convention)."""
  for name in co3d.sequence_names(str(static_root), 'train'):
    seq_dir = static_root / name
    scene = out / name.split('/')[1]
    (scene / 'images').mkdir(parents=True)
    (scene / 'depth').mkdir()
    cameras = {}
    for t in range(3):
      frame = co3d.read_frame(str(seq_dir), t)
      (scene / 'images' / f'v{t}.jpg').write_bytes((seq_dir / 'images' / f'frame{t:06d}.jpg').read_bytes())
      np.save(scene / 'depth' / f'v{t}.npy', frame['depth'])
      cameras[f'v{t}.jpg'] = {'K': (frame['K'] + [[0, 0, .5], [0, 0, .5], [0, 0, 0]]).tolist(),
                              'cam_to_world': frame['c2w'].tolist()}
    (scene / 'cameras.json').write_text(json.dumps(cameras))


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
  static = tmp_path_factory.mktemp('static')
  synthetic.write_static_scenes(str(static), 'train', 2, 3, size=24, seed=0)
  posed = tmp_path_factory.mktemp('posed')
  _posed_copy(static, posed)
  return static, posed


def test_mixture_of_both_sources(roots):
  static, posed = roots
  configs = [{'kind': 'co3d', 'root': str(static), 'split': 'train', 'pairs': 'all', 'size': 30, 'aug_crop': 16,
              'mask_bg': 'rand'},
             {'kind': 'posed_scenes', 'root': str(posed), 'size': 10},
             {'kind': 'posed_scenes', 'root': str(posed), 'max_gap': 1}]          # no size: as it is
  mixture = multiview.Mixture(configs, seed=5)
  assert [len(d) for d in mixture.datasets] == [6, 6, 4] and mixture.sizes == [30, 10, 4] and len(mixture) == 44
  assert mixture.datasets[0].options == {'aug_crop': 16} and mixture.datasets[1].rule == 'all'
  samples = [mixture.sample(i) for i in range(len(mixture))]
  assert [s.dataset for s in samples] == [0] * 30 + [1] * 10 + [2] * 4
  pairs0 = collections.Counter((s.scene, s.frames) for s in samples[:30])
  assert len(pairs0) == 6 and set(pairs0.values()) == {5}             # 30 @ (6 pairs): each pair 5 times
  assert len({(s.scene, s.frames) for s in samples[30:40]}) == 6      # 10 @ (6 pairs): all of them, 4 twice
  assert [(s.scene, s.frames) for s in samples[40:]] == [('train_0000', (0, 1)), ('train_0000', (1, 2)),
                                                        ('train_0001', (0, 1)), ('train_0001', (1, 2))]
  again = multiview.Mixture(configs, seed=5)
  assert [again.sample(i) for i in range(len(again))] == samples
  assert [mixture.sample(i, epoch=1) for i in range(len(mixture))] != samples

  # one training dataset class reads both layouts into the same dict
  for s in samples[:30:7]:
    v1, v2 = mixture.read(s)
    assert v1['dataset'] == 'co3d' and v1['label'] == f'synthetic/{s.scene.split("/")[-1]}'
    posed_views = mixture.datasets[1].read(multiview.Sample(1, s.scene.split('/')[1], s.frames, False, s.key))
    for a, b in zip((v1, v2), posed_views):
      assert set(a) == set(b)
      np.testing.assert_allclose(a['K'], b['K'], atol=1e-5)
      np.testing.assert_allclose(a['c2w'], b['c2w'], atol=1e-6)
      np.testing.assert_array_equal(a['image'], b['image'])
      np.testing.assert_array_equal(np.where(a['mask'], b['depth'], 0) if s.mask_bg else b['depth'], a['depth'])
      assert b['mask'] is None and a['mask'].dtype == bool


def test_config_errors(roots):
  static, posed = roots
  with pytest.raises(ValueError, match='kind'):
    multiview.build_dataset({'kind': 'habitat', 'root': str(static)})
  with pytest.raises(ValueError, match="no 'root'"):
    multiview.build_dataset({'kind': 'co3d'})
  with pytest.raises(ValueError, match='options of kind co3d'):
    multiview.build_dataset({'kind': 'posed_scenes', 'root': str(posed), 'split': 'train'})
  with pytest.raises(ValueError, match='size'):
    multiview.Mixture([{'kind': 'posed_scenes', 'root': str(posed), 'size': 0}])
  with pytest.raises(ValueError, match='per-dataset seed'):
    multiview.build_dataset({'kind': 'posed_scenes', 'root': str(posed), 'seed': 1})
  with pytest.raises(ValueError, match='at least one'):
    multiview.Mixture([])
  assert multiview.build_dataset({'kind': 'co3d', 'root': str(static), 'split': 'train'}).rule == 'co3d'
  assert posed_scenes.sequence_names(str(posed)) == ['train_0000', 'train_0001']
