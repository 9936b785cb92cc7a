"""Repeated blocks as one stacked module, applied with `jax.lax.scan` (one compiled block).

`stack(make, n, rngs)` builds n blocks whose parameters carry a leading (n,) axis — the
converter stacks PyTorch's `enc_blocks.{i}.*` tensors along that axis. `scan(step, carry, *stacks)`
runs `step(carry, *blocks) -> (carry, out)` over the layers, with the configured rematerialisation
(`xs=`: per-layer inputs, `step(carry, *blocks, x)`).
"""
import jax
from flax import nnx

REMAT_POLICIES = {
    'full': jax.checkpoint_policies.nothing_saveable,
    'dots': jax.checkpoint_policies.dots_saveable,
    'dots_no_batch': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def stack(make, n: int, rngs: nnx.Rngs):
  """n independent blocks `make(rngs)` stored as one module with stacked parameters."""
  @nnx.split_rngs(splits=n)
  @nnx.vmap(in_axes=(0,), out_axes=0)
  def make_stacked(rngs):
    return make(rngs)
  return make_stacked(rngs)


def scan(step, carry, *stacks, xs=None, remat_policy: str = 'none'):
  """Scan `step(carry, *blocks) -> (carry, y)` over the layers of the stacked modules; with xs (a pytree
  whose leaves have a leading layer axis), `step(carry, *blocks, x)`, x the layer's slice of xs."""
  graphdefs, states = zip(*(nnx.split(s) for s in stacks))

  def body(carry, layer):
    layer_states, x = layer
    blocks = [nnx.merge(g, s) for g, s in zip(graphdefs, layer_states)]
    return step(carry, *blocks) if xs is None else step(carry, *blocks, x)

  if remat_policy != 'none':
    body = jax.checkpoint(body, policy=REMAT_POLICIES[remat_policy], prevent_cse=False)
  return jax.lax.scan(body, carry, (tuple(states), xs))
