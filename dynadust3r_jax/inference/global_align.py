"""DUSt3R's global alignment (`PointCloudOptimizer`, spec dust3r.md §3.3) in JAX: one jitted optimisation,
edges evaluated in chunks.

Parameters (float32; pixels raveled and zero-padded to the largest image area A, as the reference does):
  pw_poses (E,8)      per edge [q XYZW, τ, log σ]: P_e = σ_e·[R(q) | sign(τ)expm1|τ|], σ_e = base_scale·
                      exp(log σ_e − mean log σ) (geometric mean fixed; not normalised with ≥2 known poses)
  im_poses (N,7)      cam-to-world [q, τ]
  im_depthmaps (N,A)  log depth
  im_focals (N,1)     f = exp(param/20)
  im_pp (N,2)         pp = (W/2, H/2) + 10·param (frozen unless optimize_pp)
Loss: Σ_e Σ_pix log C_i^e ‖X_i − P_e X_i^e‖ / Σ_e A_i + the same for view j, X_n = the world points of image n
from its depth, focal, pp and pose. Adam β = (0.9, 0.9), eps 1e-8, lr by a cosine or linear schedule to
lr_min; known values (presets) are frozen by masks on the updates.

Memory (float32 words; A = pixels per image, the largest): the inputs hold 8·E·A (pred_i, pred_j: 3 each,
weights: 1 each) plus the pixel grid 2·N·A; the parameters N·A; the loss-and-gradient's temporaries
≈ (13·N + 27·edge_chunk)·A and the whole jitted optimiser's (Adam moments, the loop's carries included)
≈ (15·N + 26·edge_chunk)·A — XLA memory_analysis on CPU, independent of E — because each chunk's forward and
backward run together, one chunk at a time, and only the (N,3,A) world points and their gradient persist. In
all, with the returned parameters, ≤ 4·A·(8·E + 20·N + 28·edge_chunk) bytes on the device (`memory_bytes`).
The reference materialises several (E,A,3) tensors instead (dust3r issue #1). Over a mesh of D devices
(`global_align(..., mesh=)`) each holds its ⌈E/D⌉ edges' inputs and the replicated per-image state:
4·A·(8·⌈E/D⌉ + 20·N + 28·edge_chunk) bytes per device.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynadust3r_jax import distributed
from dynadust3r_jax.common import geometry as geo
from dynadust3r_jax.inference.init_known_poses import init_known_poses
from dynadust3r_jax.inference.init_mst import init_mst
from dynadust3r_jax.inference.scene import Scene

PARAM_NAMES = ('pw_poses', 'im_poses', 'im_depthmaps', 'im_focals', 'im_pp')
FOCAL_BREAK = 20.0


def memory_bytes(n_imgs: int, n_edges: int, area: int, edge_chunk: int = 16, devices: int = 1) -> int:
  """Bytes per device of `global_align` (the module docstring's measured bound) with the edges split over
  `devices`: 4·A·(8·⌈E/D⌉ + 20·N + 28·edge_chunk), the per-image state replicated on each."""
  return 4 * area * (8 * -(-n_edges // devices) + 20 * n_imgs + 28 * edge_chunk)


def lr_schedule(niter, lr, lr_min=1e-6, schedule='cosine'):
  """(niter,) learning rate of each step, t = step/niter: cosine lr_min + (lr−lr_min)(1+cos πt)/2, linear
  lr + (lr_min − lr)t."""
  t = np.arange(niter) / niter
  if schedule == 'cosine':
    return lr_min + (lr - lr_min) * (1 + np.cos(t * np.pi)) / 2
  if schedule == 'linear':
    return lr + (lr_min - lr) * t
  raise ValueError(f"schedule must be 'cosine' or 'linear', got {schedule!r}")


CONF_TRANSFORMS = {'log': np.log, 'sqrt': np.sqrt, 'm1': lambda c: c - 1, 'id': lambda c: c, 'none': lambda c: c}


def _safe_norm(x, axis=-1):
  sq = jnp.sum(jnp.square(x), axis=axis)
  return jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)


def pairwise_poses(pw_poses, base_scale=0.5, norm_pw_scale=True, mean_log_scale=None):
  """(E,8) parameters → (E,4,4) P_e with σ_e scaling both rotation and translation; mean_log_scale: the mean of
  log σ over all edges where pw_poses holds only some of them (a device's, sharded), else their own mean."""
  T = geo.pose_to_matrix(pw_poses)
  log_s = pw_poses[:, -1]
  if norm_pw_scale:
    log_s = log_s + (jnp.log(base_scale) - (jnp.mean(log_s) if mean_log_scale is None else mean_log_scale))
  scale = jnp.exp(log_s)
  return T.at[:, :3].multiply(scale[:, None, None])


def world_points(params, grid, base_pp):
  """(N,3,A) world points of every image (coordinates first, as the loss wants them): depth·((u,v) − pp)/f,
  depth, moved by the image pose."""
  depth = jnp.exp(params['im_depthmaps'])                                   # (N,A)
  focal = jnp.exp(params['im_focals'] / FOCAL_BREAK)                        # (N,1)
  pp = base_pp + 10.0 * params['im_pp']                                     # (N,2)
  cam = jnp.stack([depth * (grid[..., 0] - pp[:, :1]) / focal, depth * (grid[..., 1] - pp[:, 1:]) / focal, depth],
                  axis=1)                                                   # (N,3,A)
  P = geo.pose_to_matrix(params['im_poses'])
  return jnp.einsum('nij,nja->nia', P[:, :3, :3], cam) + P[:, :3, 3, None]


def edge_chunks(n_edges, edge_chunk):
  """(chunk, n_chunks): the fewest chunks of at most edge_chunk edges, of equal size (56 edges by 16: 4 of 14),
  so that at most n_chunks − 1 edges are evaluated twice (and masked)."""
  n_chunks = -(-n_edges // max(1, min(edge_chunk, n_edges)))
  return -(-n_edges // n_chunks), n_chunks


EDGE_KEYS = ('ei', 'ej', 'pred_i', 'pred_j', 'w_i', 'w_j', 'valid')  # the per-edge inputs (sharded over a mesh)


def alignment_loss(params, data, *, edge_chunk, norm_pw_scale=True, base_scale=0.5, dist='l1', axes=None):
  """Scalar loss (dist 'l1': ‖·‖, the default; 'l2': ‖·‖²). data: ei, ej (E,) int32; pred_i, pred_j (E,3,A)
  (coordinates before pixels: the elementwise work then runs along the long pixel axis, 2.5x faster on a CPU);
  w_i, w_j (E,A) (0 on padding); grid (N,A,2); base_pp (N,2); area_i, area_j (). The world points are made
  once; the edges are processed in chunks of at most edge_chunk (`edge_chunks`). Differentiable in params
  only.

  axes: inside a shard_map over edges (`optimize` with a mesh), the mesh axes the edges are split over: params'
  pw_poses and data's EDGE_KEYS are this device's edges (valid (E,) 0 on the padding that evens them out), the
  rest replicated; the mean log-scale and the loss are summed over the devices."""
  if dist not in ('l1', 'l2'):
    raise ValueError(f"dist must be 'l1' or 'l2', got {dist!r}")
  mean_log_scale = None
  if axes is not None:
    log_s = params['pw_poses'][:, -1]
    mean_log_scale = jax.lax.psum(jnp.sum(log_s * data['valid']), axes) / jax.lax.psum(jnp.sum(data['valid']), axes)
  P = pairwise_poses(params['pw_poses'], base_scale, norm_pw_scale, mean_log_scale)
  X = world_points(params, data['grid'], data['base_pp'])                  # (N,3,A)
  if axes is not None:  # used by this device's edges: its gradient (pcast's transpose) is summed over the devices
    X = _to_varying(X, axes)
  edge_data = {k: data[k] for k in ('ei', 'ej', 'pred_i', 'pred_j', 'w_i', 'w_j', 'area_i', 'area_j')}
  loss = _edge_loss(P, X, edge_data, edge_chunk, dist)
  return loss if axes is None else jax.lax.psum(loss, axes)


def _edge_scan(P, X, data, edge_chunk, dist, grad):
  """The loss of (E,4,4) pairwise poses P and (N,3,A) world points X, summed over the chunks by a scan; with
  grad, also its gradients (E,4,4) and (N,3,A): each chunk's forward and backward run together (one chunk's
  temporaries at a time, each edge evaluated once), its world-point gradients scatter-added into the carry."""
  E = data['ei'].shape[0]
  chunk, n_chunks = edge_chunks(E, edge_chunk)
  distance = partial(_safe_norm, axis=1) if dist == 'l1' else (lambda x: jnp.sum(jnp.square(x), axis=1))

  def chunk_loss(Pc, Xi, Xj, d, fresh):
    R, t = Pc[:, :3, :3], Pc[:, :3, 3, None]
    di = distance(Xi - (jnp.einsum('eij,eja->eia', R, d['pred_i']) + t))   # (chunk, A)
    dj = distance(Xj - (jnp.einsum('eij,eja->eia', R, d['pred_j']) + t))
    return (jnp.sum(jnp.where(fresh, d['w_i'] * di, 0.0)) / data['area_i'] +
            jnp.sum(jnp.where(fresh, d['w_j'] * dj, 0.0)) / data['area_j'])

  def body(carry, c):
    # the last chunk is shifted back to end at E (no padded copy of the inputs); edges already counted weigh 0
    start = jnp.minimum(c * chunk, E - chunk)
    d = {k: jax.lax.dynamic_slice_in_dim(data[k], start, chunk) for k in ('ei', 'ej', 'pred_i', 'pred_j', 'w_i', 'w_j')}
    fresh = (start + jnp.arange(chunk) >= c * chunk)[:, None]
    args = (jax.lax.dynamic_slice_in_dim(P, start, chunk), X[d['ei']], X[d['ej']], d, fresh)
    if not grad:
      return carry + chunk_loss(*args), None
    loss, gP, gX = carry
    value, (gPc, gXi, gXj) = jax.value_and_grad(chunk_loss, argnums=(0, 1, 2))(*args)
    gP = jax.lax.dynamic_update_slice_in_dim(gP, jax.lax.dynamic_slice_in_dim(gP, start, chunk) + gPc, start, 0)
    return (loss + value, gP, gX.at[d['ei']].add(gXi).at[d['ej']].add(gXj)), None

  init = (jnp.float32(0), jnp.zeros_like(P), jnp.zeros_like(X)) if grad else jnp.float32(0)
  return jax.lax.scan(body, _varying_like(init, P), jnp.arange(n_chunks))[0]


def _varying_axes(x) -> frozenset:
  """The manual mesh axes x varies over inside a shard_map (empty outside one); JAX 0.12 types it as
  `manual_axis_type.varying`, 0.11 as `vma`."""
  aval = jax.typeof(x)
  typed = getattr(aval, 'manual_axis_type', None)
  return frozenset(typed.varying if typed is not None else getattr(aval, 'vma', ()))


def _to_varying(x, axes):
  """x typed as varying over `axes` (jax.lax.pcast in JAX 0.12, pvary before)."""
  if hasattr(jax.lax, 'pcast'):
    return jax.lax.pcast(x, tuple(axes), to='varying')
  return jax.lax.pvary(x, tuple(axes))


def _varying_like(tree, ref):
  """`tree` typed as varying over the mesh axes `ref` varies over: inside a shard_map over edges (P is a device's
  edges) a scan's carry must be typed as its body makes it; outside one, tree unchanged."""
  axes = _varying_axes(ref)

  def cast(x):
    missing = sorted(axes - _varying_axes(x))
    return _to_varying(x, missing) if missing else x
  return jax.tree.map(cast, tree)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _edge_loss(P, X, data, edge_chunk, dist):
  """`_edge_scan`'s loss, differentiable in P and X (the gradients computed chunk by chunk in the forward)."""
  return _edge_scan(P, X, data, edge_chunk, dist, grad=False)


def _edge_loss_fwd(P, X, data, edge_chunk, dist):
  loss, gP, gX = _edge_scan(P, X, data, edge_chunk, dist, grad=True)
  return loss, (gP, gX)


def _edge_loss_bwd(edge_chunk, dist, grads, ct):
  del edge_chunk, dist
  return ct * grads[0], ct * grads[1], None


_edge_loss.defvjp(_edge_loss_fwd, _edge_loss_bwd)


def _edge_specs(tree, axes):
  """PartitionSpecs of params / data: per-edge entries split over `axes`, the rest replicated."""
  return {k: jax.P(axes) if k in ('pw_poses', *EDGE_KEYS) else jax.P() for k in tree}


@partial(jax.jit, static_argnames=('edge_chunk', 'norm_pw_scale', 'base_scale', 'dist', 'mesh'))
def optimize(params, data, masks, lrs, *, edge_chunk=16, norm_pw_scale=True, base_scale=0.5, dist='l1', mesh=None):
  """Adam(β=(0.9,0.9), eps=1e-8) for len(lrs) steps in one lax.fori_loop. masks: like params, 1 = free,
  0 = frozen (broadcastable). Returns (params, (niter,) loss before each step).

  mesh: the edges split over all its devices (`shard_edges` lays the inputs out): each device evaluates the
  loss of its own edges (the same chunked scan), the per-image parameters are replicated and their gradient
  summed over the devices (shard_map's transpose of a replicated input), pw_poses and its Adam moments stay
  split with the edges."""
  loss_fn = partial(alignment_loss, edge_chunk=edge_chunk, norm_pw_scale=norm_pw_scale, base_scale=base_scale,
                    dist=dist)
  if mesh is not None:
    axes = tuple(mesh.axis_names)
    loss_fn = jax.shard_map(partial(loss_fn, axes=axes), mesh=mesh,
                            in_specs=(_edge_specs(params, axes), _edge_specs(data, axes)), out_specs=jax.P())
  grad_fn = jax.value_and_grad(loss_fn)
  adam = optax.scale_by_adam(b1=0.9, b2=0.9, eps=1e-8)
  niter = lrs.shape[0]
  if niter == 0:
    return params, jnp.zeros(0)

  def step(n, carry):
    params, state, losses = carry
    loss, grads = grad_fn(params, data)
    grads = jax.tree.map(lambda g, m: g * m, grads, masks)
    updates, state = adam.update(grads, state)
    params = jax.tree.map(lambda p, u, m: p - lrs[n] * u * m, params, updates, masks)
    return params, state, losses.at[n].set(loss)

  params, _, losses = jax.lax.fori_loop(0, niter, step, (params, adam.init(params), jnp.zeros(niter)))
  return params, losses


IDENTITY_PW_POSE = np.array([0, 0, 0, 1, 0, 0, 0, 0], np.float32)  # q = 1, τ = 0, log σ = 0: the padding edges'


def shard_edges(params, data, mesh):
  """(params, data) as `optimize(..., mesh=mesh)` takes them: the edges padded to a multiple of the mesh's devices
  (zero weights, valid 0, identity pairwise poses) and split contiguously over all of them, the rest replicated."""
  axes, n_edges = tuple(mesh.axis_names), len(data['ei'])
  pad = -n_edges % mesh.size
  data = dict(data, valid=np.ones(n_edges, np.float32))

  def padded(x, fill=None):
    x = np.asarray(x)
    tail = np.zeros((pad,) + x.shape[1:], x.dtype) if fill is None else np.broadcast_to(fill, (pad,) + x.shape[1:])
    return np.concatenate([x, tail.astype(x.dtype)])

  data = {k: padded(v) if k in EDGE_KEYS else v for k, v in data.items()}
  params = dict(params, pw_poses=padded(params['pw_poses'], IDENTITY_PW_POSE))

  def place(tree):
    return {k: distributed.put(v, jax.sharding.NamedSharding(mesh, spec))
            for (k, v), spec in zip(tree.items(), _edge_specs(tree, axes).values())}
  return place(params), place(data)


def _per_image(values, n_imgs, name):
  """None / {image: value} / a sequence over all images → {image: np.ndarray}."""
  if values is None:
    return {}
  if isinstance(values, dict):
    out = {int(k): np.asarray(v, np.float64) for k, v in values.items()}
  else:
    values = list(values)
    if len(values) != n_imgs:
      raise ValueError(f'{name}: got {len(values)} values for {n_imgs} images; pass a dict {{image: value}} '
                       'for a subset')
    out = {n: np.asarray(v, np.float64) for n, v in enumerate(values)}
  bad = [k for k in out if not 0 <= k < n_imgs]
  if bad:
    raise ValueError(f'{name}: image indices {bad} out of range 0..{n_imgs - 1}')
  return out


def _per_edge(x, name):
  """(E,...) array or list of per-edge arrays → list of float32 arrays."""
  try:
    return [np.asarray(a, np.float32) for a in x]
  except (TypeError, ValueError) as err:
    raise ValueError(f'{name}: expected an (E,...) array or a list of per-edge arrays ({err})') from None


def _pad(x, area):
  """(h,w[,c]) → (area[,c]) raveled, zero-padded."""
  flat = x.reshape((-1,) + x.shape[2:])
  return np.concatenate([flat, np.zeros((area - len(flat),) + flat.shape[1:], flat.dtype)])


def prepare(output, min_conf_thr=3.0, conf='log'):
  """Arrays of a DUSt3R inference output (see global_align) → (data for the loss, per-image info).

  Images may differ in size: per-pixel arrays are raveled and zero-padded to the largest area A (padding
  weighs 0), and the loss is normalised by the true areas, as the reference does. conf: the weights'
  transform of the raw confidences, 'log' (default), 'sqrt', 'm1' (C − 1), 'id'/'none'."""
  if conf not in CONF_TRANSFORMS:
    raise ValueError(f'conf must be one of {sorted(CONF_TRANSFORMS)}, got {conf!r}')
  ei = np.asarray(output['view1']['idx']).astype(np.int32).reshape(-1)
  ej = np.asarray(output['view2']['idx']).astype(np.int32).reshape(-1)
  pred_i = _per_edge(output['pred1']['pts3d'], "pred1['pts3d']")
  pred_j = _per_edge(output['pred2']['pts3d_in_other_view'], "pred2['pts3d_in_other_view']")
  conf_i = _per_edge(output['pred1']['conf'], "pred1['conf']")
  conf_j = _per_edge(output['pred2']['conf'], "pred2['conf']")
  E = len(ei)
  if not (len(ej) == len(pred_i) == len(pred_j) == len(conf_i) == len(conf_j) == E):
    raise ValueError(f'view1/view2 idx, pred1/pred2 pts3d and conf must have one entry per edge; got '
                     f'{[len(ei), len(ej), len(pred_i), len(pred_j), len(conf_i), len(conf_j)]}')
  n_imgs = int(max(ei.max(), ej.max())) + 1
  if sorted(set(ei.tolist()) | set(ej.tolist())) != list(range(n_imgs)):
    raise ValueError(f'image indices of the pairs must be exactly 0..N-1, got {sorted(set(ei) | set(ej))}')
  shapes = [None] * n_imgs
  for e in range(E):
    for n, pts, c in ((ei[e], pred_i[e], conf_i[e]), (ej[e], pred_j[e], conf_j[e])):
      if pts.ndim != 3 or pts.shape[2] != 3 or c.shape != pts.shape[:2]:
        raise ValueError(f'edge {e}: pointmap {pts.shape} and confidence {c.shape} must be (H,W,3) and (H,W)')
      if shapes[n] is not None and shapes[n] != c.shape:
        raise ValueError(f'image {n} has predictions of two sizes, {shapes[n]} and {c.shape}')
      shapes[n] = c.shape
  areas = [h * w for h, w in shapes]
  A = max(areas)
  im_conf = [np.zeros(hw, np.float32) for hw in shapes]
  for e in range(E):
    im_conf[ei[e]] = np.maximum(im_conf[ei[e]], conf_i[e])
    im_conf[ej[e]] = np.maximum(im_conf[ej[e]], conf_j[e])
  stack = lambda xs: np.stack([_pad(x, A) for x in xs])  # noqa: E731
  data = {'ei': ei, 'ej': ej, 'pred_i': stack(pred_i).transpose(0, 2, 1).copy(),
          'pred_j': stack(pred_j).transpose(0, 2, 1).copy(),
          'w_i': stack([CONF_TRANSFORMS[conf](c) for c in conf_i]),
          'w_j': stack([CONF_TRANSFORMS[conf](c) for c in conf_j]),
          'grid': stack([geo.pixel_grid(h, w) for h, w in shapes]),
          'base_pp': np.array([(w / 2, h / 2) for h, w in shapes], np.float32),
          'area_i': np.float32(sum(areas[i] for i in ei)), 'area_j': np.float32(sum(areas[j] for j in ej))}
  info = {'n_imgs': n_imgs, 'shapes': shapes, 'edges': list(zip(ei.tolist(), ej.tolist())), 'im_conf': im_conf,
          'pts_i': pred_i, 'pts_j': pred_j, 'conf_i': conf_i, 'conf_j': conf_j}
  return data, info


def random_params(n_edges, shapes, seed=0):
  """The reference's random start: pw_poses, im_poses ~ N(0,1), log-depth N(0,1)/10 − 3 (0 on padding),
  focal max(H,W). shapes: per-image (H,W)."""
  rng = np.random.default_rng(seed)
  A = max(h * w for h, w in shapes)
  depth = np.stack([_pad(rng.standard_normal(h * w) / 10 - 3, A) for h, w in shapes])
  return {'pw_poses': rng.standard_normal((n_edges, 8)), 'im_poses': rng.standard_normal((len(shapes), 7)),
          'im_depthmaps': depth, 'im_focals': np.array([[FOCAL_BREAK * np.log(max(hw))] for hw in shapes]),
          'im_pp': np.zeros((len(shapes), 2))}


def global_align(output, niter=300, lr=0.01, schedule='cosine', init='mst', *, lr_min=1e-6, min_conf_thr=3.0,
                 base_scale=0.5, dist='l1', conf='log', optimize_pp=False, known_poses=None, known_focals=None,
                 known_pp=None, known_intrinsics=None, edge_chunk=16, niter_pnp=10, init_params=None, seed=0,
                 mesh=None):
  """DUSt3R's `global_aligner(output, mode=PointCloudOptimizer)` + `compute_global_alignment(init, niter,
  schedule, lr)` → Scene.

  output: {'view1': {'idx': (E,), 'img' (E,H,W,3) in [-1,1] optional, ...}, 'view2': ..., 'pred1': {'pts3d'
  (E,H,W,3), 'conf' (E,H,W)}, 'pred2': {'pts3d_in_other_view', 'conf'}} (numpy; lists of per-edge arrays
  where images differ in size — the Scene's per-image fields are then lists too).
  init: 'mst', 'known_poses' (every pose and focal given) or 'random' (seeded); init_params: a dict of raw
  parameters overriding the init (parity tests).
  known_poses (cam-to-world (4,4)), known_focals (px), known_pp (px), known_intrinsics ((3,3): focal = mean of
  fx, fy; pp): None, {image: value} for any subset, or a sequence over all images. Known values are frozen.
  dist 'l1' (‖·‖, default) or 'l2' (‖·‖²); conf: weights log C (default), 'sqrt', 'm1', 'id' (the reference's
  constructor options). edge_chunk: edges per chunk of the loss (memory, see the module docstring).
  mesh: a jax.sharding.Mesh: the optimisation runs over all its devices, the edges split between them
  (`optimize`); the result is the same scene (up to float32 summation order).
  """
  if dist not in ('l1', 'l2'):
    raise ValueError(f"dist must be 'l1' or 'l2', got {dist!r}")
  data, info = prepare(output, min_conf_thr, conf)
  n_imgs, shapes, edges = info['n_imgs'], info['shapes'], info['edges']
  poses = _per_image(known_poses, n_imgs, 'known_poses')
  focals = _per_image(known_focals, n_imgs, 'known_focals')
  pps = _per_image(known_pp, n_imgs, 'known_pp')
  for n, K in _per_image(known_intrinsics, n_imgs, 'known_intrinsics').items():
    focals[n] = np.asarray(K[[0, 1], [0, 1]].mean())
    pps[n] = K[:2, 2]
  focals = {n: float(f) for n, f in focals.items()}
  for name, values, shape in (('known_poses', poses, (4, 4)), ('known_pp', pps, (2,))):
    for n, v in values.items():
      if v.shape != shape or not np.isfinite(v).all():
        raise ValueError(f'{name}[{n}]: expected a finite array of shape {shape}, got shape {v.shape}')
  bad = {n: f for n, f in focals.items() if not (np.isfinite(f) and f > 0)}
  if bad:
    raise ValueError(f'known focals must be positive and finite, got {bad}')

  if init == 'mst':
    params = init_mst(edges, info['pts_i'], info['pts_j'], info['conf_i'], info['conf_j'], list(info['im_conf']),
                      min_conf_thr=min_conf_thr, base_scale=base_scale, niter_pnp=niter_pnp, known_poses=poses,
                      known_focals=focals, known_pp=pps)
    params['im_pp'] = np.zeros((n_imgs, 2))
    default = random_params(len(edges), shapes, seed)
    params['im_focals'] = np.where(np.isnan(params['im_focals']), default['im_focals'], params['im_focals'])
  elif init == 'known_poses':
    missing = [n for n in range(n_imgs) if n not in poses or n not in focals]
    if missing:
      raise ValueError(f"init='known_poses' needs known_poses and known_focals (or known_intrinsics) for every "
                       f"image; missing for images {missing}")
    params = random_params(len(edges), shapes, seed)
    known = init_known_poses(edges, info['pts_i'], info['pts_j'], info['conf_i'], poses, focals,
                             {n: pps.get(n, data['base_pp'][n]) for n in range(n_imgs)},
                             min_conf_thr=min_conf_thr, niter_pnp=niter_pnp)
    params['pw_poses'] = np.where(np.isnan(known['pw_poses']), params['pw_poses'], known['pw_poses'])
    params['im_depthmaps'] = known['im_depthmaps']
  elif init == 'random':
    params = random_params(len(edges), shapes, seed)
  else:
    raise ValueError(f"init must be 'mst', 'known_poses' or 'random', got {init!r}")
  if init_params is not None:
    params.update({k: np.asarray(v, np.float64) for k, v in init_params.items()})

  pose_mask = np.ones((n_imgs, 1))
  focal_mask = np.ones((n_imgs, 1))
  pp_mask = np.full((n_imgs, 1), 1.0 if optimize_pp else 0.0)
  for n, P in poses.items():
    params['im_poses'][n] = geo.matrix_to_pose(P)
    pose_mask[n] = 0
  for n, f in focals.items():
    params['im_focals'][n] = FOCAL_BREAK * np.log(f)
    focal_mask[n] = 0
  for n, pp in pps.items():
    params['im_pp'][n] = (pp - data['base_pp'][n]) / 10
    pp_mask[n] = 0
  masks = {'pw_poses': np.ones((1, 1)), 'im_poses': pose_mask, 'im_depthmaps': np.ones((1, 1)),
           'im_focals': focal_mask, 'im_pp': pp_mask}
  params = {k: np.asarray(params[k], np.float32) for k in PARAM_NAMES}
  masks = {k: jnp.asarray(v, jnp.float32) for k, v in masks.items()}
  lrs = jnp.asarray(lr_schedule(niter, lr, lr_min, schedule), jnp.float32)
  inputs = (jax.tree.map(jnp.asarray, (params, data)) if mesh is None else shard_edges(params, data, mesh))
  params, losses = optimize(*inputs, masks, lrs, edge_chunk=edge_chunk, norm_pw_scale=len(poses) <= 1,
                            base_scale=base_scale, dist=dist, mesh=mesh)
  params = {k: distributed.to_host(v) for k, v in params.items()}
  params['pw_poses'] = params['pw_poses'][:len(edges)]
  return make_scene(params, data, info, min_conf_thr, output, distributed.to_host(losses))


def _stack_or_list(xs):
  return np.stack(xs) if len({x.shape for x in xs}) == 1 else xs


def make_scene(params, data, info, min_conf_thr, output=None, losses=None):
  """Decode the raw parameters into a Scene (per-image lists where the images differ in size)."""
  n_imgs, shapes = info['n_imgs'], info['shapes']
  cam_to_world = np.asarray(geo.pose_to_matrix(params['im_poses']))
  focals = np.asarray(jnp.exp(params['im_focals'][:, 0] / FOCAL_BREAK))
  pp = np.asarray(data['base_pp'] + 10.0 * params['im_pp'])
  K = np.zeros((n_imgs, 3, 3), np.float32)
  K[:, 0, 0] = K[:, 1, 1] = focals
  K[:, :2, 2] = pp
  K[:, 2, 2] = 1
  depth = np.asarray(jnp.exp(params['im_depthmaps']))
  pts3d = np.asarray(world_points(params, jnp.asarray(data['grid']), jnp.asarray(data['base_pp']))).swapaxes(1, 2)
  unpad = lambda x, n: x[n, :shapes[n][0] * shapes[n][1]].reshape(shapes[n] + x.shape[2:])  # noqa: E731
  imgs = None
  if output is not None and 'img' in output['view1'] and 'img' in output['view2']:
    imgs = [np.zeros(hw + (3,), np.float32) for hw in shapes]
    for view in ('view1', 'view2'):
      for e, n in enumerate(np.asarray(output[view]['idx']).reshape(-1)):
        imgs[n] = (np.asarray(output[view]['img'][e], np.float32).reshape(shapes[n] + (3,)) + 1) / 2
    imgs = _stack_or_list(imgs)
  return Scene(cam_to_world=cam_to_world, focals=focals, principal_points=pp, intrinsics=K,
               depthmaps=_stack_or_list([unpad(depth, n) for n in range(n_imgs)]),
               pts3d=_stack_or_list([unpad(pts3d, n) for n in range(n_imgs)]),
               conf=_stack_or_list(info['im_conf']), min_conf_thr=min_conf_thr, imgs=imgs,
               losses=np.zeros(0) if losses is None else losses,
               params={k: np.asarray(v) for k, v in params.items()})
