"""Batched pair inference: DUSt3R's `inference(pairs, model, device, batch_size=8)` (spec dust3r.md §3.2).

    output = inference(pairs, model, batch_size=8)
    # output['view1'] = {'idx': (E,), 'instance': [E], 'img': (E,H,W,3), 'true_shape': (E,2)}, 'view2' alike
    # output['pred1'] = {'pts3d': (E,H,W,3), 'conf': (E,H,W)}, 'pred2' = {'pts3d_in_other_view', 'conf'}
    # (+ the motion outputs of a DynaDUSt3R model when query_times (E, 3) is given)

DUSt3R runs every pair one by one as soon as two shapes differ; here pairs are grouped by their (view 1,
view 2) image shapes and each group runs in batches of `batch_size`, the last batch padded with copies of
its last pair, so the model compiles once per shape group (a jitted `load_model` callable recompiles for
each new input shape). Results come back in the pairs' order, as numpy arrays; with mixed shapes the image
and prediction entries are lists of per-pair arrays (DUSt3R returns lists then too).

With `mesh`, each batch of batch_size pairs per device is split over all the mesh's devices (of every process:
`load_model`'s model, Predictor.on_mesh), a batch smaller than that padded to a multiple of the device count;
the predictions come back to the host as above.
"""
import collections

import numpy as np
from tqdm import tqdm

from dynadust3r_jax import distributed

VIEW_KEYS = ('img', 'true_shape')


def _batch(views, key):
  return np.concatenate([np.asarray(v[key]) for v in views])


def inference(pairs, model, batch_size: int = 8, query_times=None, progress: bool = True, mesh=None) -> dict:
  """pairs: make_pairs' (view1, view2) list; model: a `load_model` callable; query_times: (E, 3) or None;
  mesh: a jax.sharding.Mesh to run on (batch_size pairs per device), None: the model's own device."""
  if not pairs:
    raise ValueError('inference: no pairs (make_pairs returned an empty list?)')
  if batch_size < 1:
    raise ValueError(f'inference: batch_size={batch_size} must be >= 1')
  devices = 1
  if mesh is not None:
    if not hasattr(model, 'on_mesh'):
      raise ValueError('inference(mesh=...): the model must be a load_model model (it places its parameters on '
                       f'the mesh), got {type(model).__name__}')
    model, devices = model.on_mesh(mesh), mesh.size
  batch_size *= devices
  groups = collections.defaultdict(list)  # (shape of view 1, shape of view 2) → pair positions
  for e, (v1, v2) in enumerate(pairs):
    groups[(np.shape(v1['img']), np.shape(v2['img']))].append(e)
  preds = [None] * len(pairs)             # per pair: (res1, res2) of numpy arrays without the batch axis
  with tqdm(total=len(pairs), unit='pair', desc='inference', disable=not progress) as bar:
    for members in groups.values():
      for start in range(0, len(members), batch_size):
        chunk = members[start:start + batch_size]
        # the last batch padded to the full size (one compile per group), a group's only batch to the devices'
        size = batch_size if len(members) > batch_size else -(-len(chunk) // devices) * devices
        padded = chunk + [chunk[-1]] * (size - len(chunk))
        args = [{k: _batch([pairs[e][side] for e in padded], k) for k in VIEW_KEYS} for side in (0, 1)]
        if query_times is not None:
          args.append(np.asarray(query_times, np.float32)[padded])
        res1, res2 = (_to_numpy(r) for r in model(*args))
        for b, e in enumerate(chunk):
          preds[e] = ({k: v[b] for k, v in res1.items()}, {k: v[b] for k, v in res2.items()})
        bar.update(len(chunk))
  same_shape = len(groups) == 1
  stack = np.stack if same_shape else list

  def views(side):
    out = {'idx': np.array([p[side]['idx'] for p in pairs]), 'instance': [p[side]['instance'] for p in pairs]}
    out.update({k: stack([np.asarray(p[side][k])[0] for p in pairs]) for k in VIEW_KEYS})
    return out

  def predictions(side):
    return {k: stack([p[side][k] for p in preds]) for k in preds[0][side]}

  return {'view1': views(0), 'view2': views(1), 'pred1': predictions(0), 'pred2': predictions(1)}


def _to_numpy(res):
  return {k: distributed.to_host(v) for k, v in res.items()}
