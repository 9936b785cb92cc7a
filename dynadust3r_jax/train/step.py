"""The training step: one pure function of (state, batch), jitted once with donated state.

state = {'step', 'params' (nnx.State of the model's Params), 'opt_state', 'data_skipped' (samples the
pipeline replaced so far)}; batch = the data pipeline's arrays shaped (accum, micro_batch, ...). Gradients of the micro-batches are summed in a
`lax.scan` inside the step (one compiled program, the all-reduce overlapping the last micro-step).
"""
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from dynadust3r_jax.d4rt_losses import D4RT_WEIGHTS, d4rt_loss
from dynadust3r_jax.evaluation import dynadust3r_metrics
from dynadust3r_jax.evaluation.pair_pose import pair_pose_metrics
from dynadust3r_jax.losses import dust3r_loss, dynadust3r_loss, scale_shift_inv_loss
from dynadust3r_jax.model.d4rt import D4RT


def forward(graphdef, params, batch):
  """The model on a batch: DUSt3R's two views (with their true_shape when the batch has them: the multi-view
  data's portrait views are stored transposed) and query times for DynaDUSt3R → (res1, res2); D4RT's video
  and queries → its outputs dict."""
  model = nnx.merge(graphdef, params)
  if isinstance(model, D4RT):
    return model(batch['video'], batch['aspect_ratio'], batch['query_uv'], batch['query_t'])
  views = tuple({'img': batch[f'img{v}'], **({'true_shape': batch[f'true_shape{v}']} if f'true_shape{v}' in batch
                                               else {})} for v in (1, 2))
  return model(*views, batch['query_times']) if model.cfg.arch == 'DynaDUSt3R' else model(*views)


def _forward_and_loss(graphdef, params, batch, alpha, d4rt_weights=None):
  """(family, outputs, (loss, metrics)), family 'd4rt', 'dyna' or 'dust3r': D4RT's loss (d4rt_weights,
  default the paper's), DynaDUSt3R's six-term loss, or DUSt3R's two."""
  res = forward(graphdef, params, batch)
  if isinstance(res, dict):
    return 'd4rt', res, d4rt_loss(res, batch, d4rt_weights or D4RT_WEIGHTS)
  if 'motion_l2m' in res[0]:
    return 'dyna', res, dynadust3r_loss(*res, batch, alpha)
  return 'dust3r', res, dust3r_loss(*res, batch, alpha)


def forward_and_loss(graphdef, params, batch, alpha, d4rt_weights=None):
  """The model on a batch → (loss, metrics)."""
  return _forward_and_loss(graphdef, params, batch, alpha, d4rt_weights)[2]


def make_train_step(graphdef, optimizer, schedule, alpha, d4rt_weights=None):
  def step(state, batch):
    params = state['params']
    grad_fn = jax.value_and_grad(lambda p, mb: forward_and_loss(graphdef, p, mb, alpha, d4rt_weights), has_aux=True)

    def micro_step(grad_sum, micro_batch):
      (loss, metrics), grads = grad_fn(params, micro_batch)
      return jax.tree.map(jnp.add, grad_sum, grads), dict(metrics, loss=loss)

    grads, metrics = jax.lax.scan(micro_step, jax.tree.map(jnp.zeros_like, params), batch)
    accum = jax.tree.leaves(batch)[0].shape[0]
    grads = jax.tree.map(lambda g: g / accum, grads)
    updates, opt_state = optimizer.update(grads, state['opt_state'], params)
    metrics = jax.tree.map(jnp.mean, metrics)
    metrics.update(grad_norm=optax.global_norm(grads), learning_rate=schedule(state['step']),
                   skipped_updates=opt_state.total_notfinite)
    data_skipped = state['data_skipped'] + jnp.sum(batch['num_skipped'])
    metrics['data_skipped_samples'] = data_skipped
    new_state = {'step': state['step'] + 1, 'params': optax.apply_updates(params, updates), 'opt_state': opt_state,
                 'data_skipped': data_skipped}
    return new_state, metrics
  return step


def make_eval_step(graphdef, alpha, pair_poses=False, d4rt_weights=None):
  """Validation: the loss terms, plus the median-scaled evaluation metrics for DynaDUSt3R, or DUSt3R's test
  criterion (Regr3D_ScaleShiftInv, as test_loss) for DUSt3R (D4RT: its loss terms); pair_poses (batches
  holding every pair in both orders, with camera_pose1/2): RRA@15, RTA@15, mAA@30 of the pairs' relative
  poses (evaluation/pair_pose.py)."""
  def step(params, batch):
    family, res, (loss, metrics) = _forward_and_loss(graphdef, params, batch, alpha, d4rt_weights)
    if family == 'dyna':
      metrics.update(dynadust3r_metrics(*res, batch))
    elif family == 'dust3r':
      test_loss, details = scale_shift_inv_loss(*res, batch)
      metrics.update(details, test_loss=test_loss)
    if pair_poses:
      metrics.update(pair_pose_metrics(*res, batch))
    return dict(metrics, loss=loss)
  return step
