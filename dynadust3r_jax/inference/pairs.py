"""Pair graphs for reconstruction: DUSt3R's `make_pairs` (dust3r/image_pairs.py, spec/dust3r.md §3.1).

The pair sets AND their order are DUSt3R's: global alignment numbers its edges in this order.
  complete            (i, j) for i = 0..N-1, j = 0..i-1 (the first image has the higher index)
  swin[-K][-noncyclic]   (default K=3) for i ascending, k = 1..K: (i, i+k), taken mod N when cyclic (so
                         K >= N gives self pairs (i, i), as in DUSt3R), dropped past N-1 when non-cyclic
  logwin[-K][-noncyclic] (default K=3) for i ascending, offsets 2^0..2^(K-1), first i-off (all), then i+off:
                         j mod N when cyclic; j outside [0, N) or j == i dropped
  oneref[-R]          (default R=0) (R, j) for j = 0..N-1, j != R
swin and logwin store each pair as (min, max) in a Python set and list the pairs in the set's iteration
order, which for tuples of ints is deterministic in CPython (int hashes are the ints themselves, tuple hashes
do not depend on PYTHONHASHSEED) and depends on the insertion order: `_set_order` reproduces it by inserting
the same tuples in the same order.
symmetrize appends every reversed pair after all the forward ones. prefilter 'seqK' keeps the pairs with
|i - j| <= K, 'cycK' with the cyclic distance min(|i-j|, |i+n-j|, |i-n-j|) <= K, where i, j are the images'
'idx' and n = 1 + the largest idx in the pairs (as in DUSt3R).
"""
import copy
import re

GRAPH_FORMS = ('complete', 'swin', 'swin-K', 'swin-noncyclic', 'swin-K-noncyclic', 'logwin', 'logwin-K',
               'logwin-noncyclic', 'logwin-K-noncyclic', 'oneref', 'oneref-R')
_WINDOW = re.compile(r'^(swin|logwin)(?:-(\d+))?(-noncyclic)?$')
_ONEREF = re.compile(r'^oneref(?:-(\d+))?$')
_PREFILTER = re.compile(r'^(seq|cyc)(\d+)$')


def make_pairs(imgs, scene_graph='complete', prefilter=None, symmetrize=True):
  """imgs (list of load_images dicts) → list of (view1, view2) tuples of those dicts, in DUSt3R's order."""
  edges = pair_indices(len(imgs), scene_graph)  # positions in imgs
  pairs = [(imgs[i], imgs[j]) for i, j in edges]
  if symmetrize:
    pairs += [(b, a) for a, b in pairs]
  if prefilter is not None:
    pairs = _filter_pairs(pairs, prefilter)
  if not pairs:
    raise ValueError(f'make_pairs: {len(imgs)} image(s) give no pairs with scene_graph={scene_graph!r}, '
                     f'prefilter={prefilter!r}' +
                     ('; with one image, call duplicate_if_single(imgs) first (as DUSt3R\'s demo does)'
                      if len(imgs) == 1 else ''))
  return pairs


def pair_indices(n, scene_graph='complete'):
  """The graph's (i, j) index pairs before symmetrize/prefilter, in DUSt3R's order."""
  if scene_graph == 'complete':
    return [(i, j) for i in range(n) for j in range(i)]
  m = _WINDOW.match(scene_graph) if isinstance(scene_graph, str) else None
  if m:
    kind, k, noncyclic = m.group(1), int(m.group(2) or 3), bool(m.group(3))
    if k < 1:
      raise ValueError(f'make_pairs: scene_graph={scene_graph!r}: the window K must be >= 1')
    return _swin(n, k, not noncyclic) if kind == 'swin' else _logwin(n, k, not noncyclic)
  m = _ONEREF.match(scene_graph) if isinstance(scene_graph, str) else None
  if m:
    ref = int(m.group(1) or 0)
    if not 0 <= ref < n:
      raise ValueError(f'make_pairs: scene_graph={scene_graph!r}: reference image {ref} outside 0..{n - 1}')
    return [(ref, j) for j in range(n) if j != ref]
  raise ValueError(f'make_pairs: unknown scene_graph={scene_graph!r}; accepted: {", ".join(GRAPH_FORMS)} '
                   f'(K, R: integers)')


def duplicate_if_single(imgs):
  """One image → [img, copy with idx 1], as DUSt3R's demo does before make_pairs (its 'instance' stays
  '0', as in the demo; 'name' gets a '_2' suffix like the demo's file list). Otherwise imgs unchanged."""
  if len(imgs) != 1:
    return imgs
  second = copy.deepcopy(imgs[0])
  second['idx'] = 1
  if 'name' in second:
    second['name'] = second['name'] + '_2'
  return [imgs[0], second]


def _set_order(edges):
  """The iteration order of a Python set filled with `edges` in this order (duplicates collapse)."""
  s = set()
  for e in edges:
    s.add(e)
  return list(s)


def _swin(n, k, cyclic):
  candidates = []
  for i in range(n):
    for off in range(1, k + 1):
      j = (i + off) % n if cyclic else i + off
      if j < n:
        candidates.append((min(i, j), max(i, j)))
  return _set_order(candidates)


def _logwin(n, k, cyclic):
  offsets = [2 ** e for e in range(k)]
  candidates = []
  for i in range(n):
    for j in [i - off for off in offsets] + [i + off for off in offsets]:
      if cyclic:
        j = j % n
      if 0 <= j < n and j != i:
        candidates.append((min(i, j), max(i, j)))
  return _set_order(candidates)


def _filter_pairs(pairs, prefilter):
  m = _PREFILTER.match(prefilter) if isinstance(prefilter, str) else None
  if not m:
    raise ValueError(f'make_pairs: unknown prefilter={prefilter!r}; accepted: None, seqK, cycK (K an integer)')
  cyclic, thr = m.group(1) == 'cyc', int(m.group(2))
  edges = [(a['idx'], b['idx']) for a, b in pairs]
  if not edges:
    return []
  n = max(max(e) for e in edges) + 1
  kept = []
  for pair, (i, j) in zip(pairs, edges):
    dist = abs(i - j)
    if cyclic:
      dist = min(dist, abs(i + n - j), abs(i - n - j))
    if dist <= thr:
      kept.append(pair)
  return kept
