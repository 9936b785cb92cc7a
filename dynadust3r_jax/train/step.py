"""The training step: one pure function of (state, batch), jitted once with donated state.

state = {'step', 'params' (nnx.State of the model's Params), 'opt_state', 'data_skipped' (samples the
pipeline replaced so far)}; batch = the data pipeline's arrays shaped (accum, micro_batch, ...). Gradients of the micro-batches are summed in a
`lax.scan` inside the step (one compiled program, the all-reduce overlapping the last micro-step). The loss
and the validation metrics are the model family's (dynadust3r_jax/families/).
"""
import jax
import jax.numpy as jnp
import optax
from flax import nnx


def make_train_step(graphdef, optimizer, schedule, train_loss):
  """train_loss(model, batch) -> (loss, metrics): the model family's (`family.train_loss(config)`)."""
  def step(state, batch):
    params = state['params']
    grad_fn = jax.value_and_grad(lambda p, mb: train_loss(nnx.merge(graphdef, p), mb), has_aux=True)

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


def make_eval_step(graphdef, validation):
  """validation(model, batch) -> metrics with 'loss': the model family's (`family.validation(config)`)."""
  return lambda params, batch: validation(nnx.merge(graphdef, params), batch)
