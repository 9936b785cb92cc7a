"""make_pairs: DUSt3R's pair sets and order (mini-dust3r dump + the official logwin / -noncyclic by hand)."""
import json

import pytest

from dynadust3r_jax.inference import duplicate_if_single, make_pairs
from tests.conftest import FIXTURES


def views(n):
  return [{'idx': i, 'instance': str(i), 'name': f'{i}.png'} for i in range(n)]


def ids(pairs):
  return [(a['idx'], b['idx']) for a, b in pairs]


def test_matches_mini_dust3r_dump():
  """complete / swin / swin-K / oneref / oneref-R, N = 1..8, symmetrize on/off, seq/cyc prefilters: same
  pairs in the same order as mini_dust3r.image_pairs.make_pairs (Python 3.11; this test runs on 3.12)."""
  ref = json.loads((FIXTURES / 'inference_pairs.json').read_text())
  assert len(ref) == 552
  for key, expected in ref.items():
    graph, n, sym, pre = key.split('|')
    kw = dict(scene_graph=graph, symmetrize=bool(int(sym)), prefilter=None if pre == 'none' else pre)
    if expected == 'error' or expected == []:  # mini: max() of no pairs / an empty list; ours: one ValueError
      with pytest.raises(ValueError, match='give no pairs'):
        make_pairs(views(int(n)), **kw)
      continue
    assert ids(make_pairs(views(int(n)), **kw)) == [tuple(p) for p in expected], key


def test_complete_order_and_pair_objects():
  imgs = views(4)
  pairs = make_pairs(imgs)
  fwd = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]  # i ascending, j < i
  assert ids(pairs) == fwd + [(j, i) for i, j in fwd]  # reversed pairs appended after all forward ones
  assert pairs[0][0] is imgs[1] and pairs[0][1] is imgs[0]  # the dicts themselves, not copies
  assert ids(make_pairs(imgs, symmetrize=False)) == fwd


# The official algorithm (naver/dust3r dust3r/image_pairs.py), which mini-dust3r lacks for these graphs:
#   swin-K-noncyclic: for i ascending, k = 1..K, keep (i, i+k) when i+k < N;
#   logwin-K[-noncyclic]: for i ascending, j in [i-1, i-2, .., i-2^(K-1)] + [i+1, .., i+2^(K-1)], j mod N when
#   cyclic, keep (min, max) when 0 <= j < N and j != i;
# each pair stored in a Python set, listed in the set's iteration order. The sets below follow by hand from
# those rules; the orders are CPython's iteration order of those sets, recorded by running the official loops
# under CPython 3.11 and 3.12 (identical in both). Note that the order depends on the contents (tuple hashes),
# e.g. swin-2-noncyclic and logwin-2-noncyclic of N=5 are the same set, listed in the same order.
OFFICIAL = {
    # N=5, offsets 1, 2, cyclic: every cyclic distance is 1 or 2 → all 10 pairs
    ('logwin-2', 5): [(0, 1), (2, 4), (1, 2), (0, 4), (3, 4), (0, 3), (1, 4), (2, 3), (0, 2), (1, 3)],
    # non-cyclic: |i-j| in {1, 2}: 4 + 3 pairs
    ('logwin-2-noncyclic', 5): [(0, 1), (2, 4), (1, 2), (3, 4), (2, 3), (0, 2), (1, 3)],
    ('swin-2-noncyclic', 5): [(0, 1), (2, 4), (1, 2), (3, 4), (2, 3), (0, 2), (1, 3)],
    # N=8, offsets 1, 2, 4, cyclic: cyclic distance in {1, 2, 4} (3 is skipped): 8 + 8 + 4 = 20 pairs
    ('logwin-3', 8): [(3, 4), (3, 7), (4, 6), (5, 7), (0, 2), (1, 3), (4, 5), (5, 6), (0, 1), (0, 7), (2, 4),
                      (1, 2), (0, 4), (1, 5), (6, 7), (3, 5), (0, 6), (2, 3), (1, 7), (2, 6)],
    # non-cyclic: |i-j| in {1, 2, 4}: 7 + 6 + 4 = 17 pairs
    ('logwin-3-noncyclic', 8): [(0, 1), (2, 4), (1, 2), (0, 4), (3, 4), (1, 5), (3, 7), (4, 6), (5, 7), (2, 3),
                                (6, 7), (0, 2), (4, 5), (2, 6), (5, 6), (1, 3), (3, 5)],
    # |i-j| in 1..3: 7 + 6 + 5 = 18 pairs (no wrap-around such as (0, 7))
    ('swin-3-noncyclic', 8): [(0, 1), (2, 4), (1, 2), (3, 4), (0, 3), (4, 6), (1, 4), (5, 7), (2, 3), (6, 7),
                              (0, 2), (4, 5), (5, 6), (3, 6), (2, 5), (1, 3), (4, 7), (3, 5)],
    # N=4: every pair is within the window → the complete set, in set order (not complete's order)
    ('logwin-3', 4): [(0, 1), (1, 2), (0, 3), (2, 3), (0, 2), (1, 3)],
    ('swin-3-noncyclic', 4): [(0, 1), (1, 2), (0, 3), (2, 3), (0, 2), (1, 3)],
    ('logwin-1-noncyclic', 4): [(0, 1), (1, 2), (2, 3)],
}


@pytest.mark.parametrize('graph,n', list(OFFICIAL))
def test_official_logwin_and_noncyclic(graph, n):
  expected = OFFICIAL[(graph, n)]
  assert ids(make_pairs(views(n), graph, symmetrize=False)) == expected
  assert ids(make_pairs(views(n), graph)) == expected + [(j, i) for i, j in expected]


def test_default_windows_and_aliases():
  imgs = views(8)
  assert ids(make_pairs(imgs, 'logwin')) == ids(make_pairs(imgs, 'logwin-3'))
  assert ids(make_pairs(imgs, 'swin-noncyclic')) == ids(make_pairs(imgs, 'swin-3-noncyclic'))
  assert ids(make_pairs(imgs, 'logwin-noncyclic')) == ids(make_pairs(imgs, 'logwin-3-noncyclic'))
  assert ids(make_pairs(imgs, 'oneref', symmetrize=False)) == [(0, j) for j in range(1, 8)]
  # cyclic swin with K >= N makes self pairs (i, i), as the official code does
  assert ids(make_pairs(views(2), 'swin-3', symmetrize=False)) == [(0, 1), (1, 1), (0, 0)]


def test_prefilter_uses_idx_and_max_idx():
  # seq1 on complete(4): |i-j| <= 1; cyc1: n = 4 → (3, 0) is at cyclic distance 1
  assert ids(make_pairs(views(4), symmetrize=False, prefilter='seq1')) == [(1, 0), (2, 1), (3, 2)]
  assert ids(make_pairs(views(4), symmetrize=False, prefilter='cyc1')) == [(1, 0), (2, 1), (3, 0), (3, 2)]


def test_duplicate_if_single():
  one = views(1)
  two = duplicate_if_single(one)
  assert [v['idx'] for v in two] == [0, 1] and [v['instance'] for v in two] == ['0', '0']  # as DUSt3R's demo
  assert two[0] is one[0] and two[1] is not one[0] and two[1]['name'] == '0.png_2'
  assert ids(make_pairs(two)) == [(1, 0), (0, 1)]
  three = views(3)
  assert duplicate_if_single(three) is three


@pytest.mark.parametrize('graph', ['swin-', 'swin-x', 'logwin-3-cyclic', 'oneref-a', 'Complete', 'swin-0',
                                   'retrieval-20'])
def test_bad_graph_names(graph):
  with pytest.raises(ValueError) as e:
    make_pairs(views(4), graph)
  assert repr(graph) in str(e.value)
  if graph != 'swin-0':
    assert 'swin-K-noncyclic' in str(e.value) and 'oneref-R' in str(e.value)


def test_bad_oneref_and_prefilter_and_single_image():
  with pytest.raises(ValueError, match=r"'oneref-4'.*reference image 4 outside 0\.\.3"):
    make_pairs(views(4), 'oneref-4')
  with pytest.raises(ValueError, match=r"unknown prefilter='seq'.*seqK, cycK"):
    make_pairs(views(4), prefilter='seq')
  with pytest.raises(ValueError, match=r'1 image\(s\) give no pairs.*duplicate_if_single'):
    make_pairs(views(1))
