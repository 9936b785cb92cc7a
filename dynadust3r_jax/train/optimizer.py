"""The optimiser of the recipe (spec dynadust3r.md §e, dust3r.md §5.1), from optax parts.

AdamW (β = 0.9/0.95, weight decay 0.05) without decay on 1-D parameters (norms, biases) and
`mask_token` (`get_parameter_groups` of CroCo), a constant or warmup + cosine learning rate, optional
global-norm clipping, and `optax.apply_if_finite`: a step whose gradients are not finite changes
nothing (parameters and Adam moments) and is counted in the optimiser state.
"""
import jax
import optax

NEVER_FORCE = 2 ** 30  # apply_if_finite applies updates anyway after this many consecutive bad steps


def learning_rate_schedule(opt, num_steps: int) -> optax.Schedule:
  if opt.schedule == 'constant':
    return optax.constant_schedule(opt.learning_rate)
  if opt.schedule == 'warmup_cosine':
    if not 0 <= opt.warmup_steps < num_steps:
      raise ValueError(f'config.optimizer.warmup_steps={opt.warmup_steps} with config.num_steps={num_steps}: the '
                       'warm-up must end before the last step (give --config.optimizer.warmup_steps < num_steps)')
    return optax.warmup_cosine_decay_schedule(0.0, opt.learning_rate, opt.warmup_steps, num_steps,
                                              end_value=opt.min_learning_rate)
  raise ValueError(f"config.optimizer.schedule={opt.schedule!r}; choose 'constant' or 'warmup_cosine'")


def weight_decay_mask(params):
  """True where weight decay applies: Linear/Conv kernels. Biases, norm scales and mask_token are
  excluded — PyTorch's "1-D or .bias or mask_token" rule, which a stacked (layers, dim) bias would
  escape if the rule looked at ranks."""
  def decays(path, leaf):
    del leaf
    return 'kernel' in [str(getattr(k, 'key', getattr(k, 'name', k))) for k in path]
  return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(opt, num_steps: int) -> optax.GradientTransformation:
  parts = [optax.clip_by_global_norm(opt.grad_clip)] if opt.grad_clip > 0 else []
  parts.append(optax.adamw(learning_rate_schedule(opt, num_steps), b1=opt.b1, b2=opt.b2,
                           weight_decay=opt.weight_decay, mask=weight_decay_mask))
  return optax.apply_if_finite(optax.chain(*parts), max_consecutive_errors=NEVER_FORCE)
