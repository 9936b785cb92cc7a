"""Orbax checkpoints of a run: the training state and the data iterator's position, together.

Keeps the latest checkpoint (resume) and the best `keep_best` by validation loss (preservation
policies; the deprecated `max_to_keep` + `best_fn` can delete the latest step, jax_stack.md §6).
Saving is asynchronous; restore targets carry the real shardings, so FSDP state is restored sharded.
"""
import grain
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from dynadust3r_jax.pretrained import BEST_METRIC, checkpoint_options


class Checkpoints:
  def __init__(self, directory: str, *, keep_best: int):
    self.directory = directory
    best = policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC], reverse=True, n=keep_best,
                          keep_checkpoints_without_metrics=False)
    options = checkpoint_options(
        preservation_policy=policies.AnyPreservationPolicy([policies.LatestN(n=1), best]),
        enable_async_checkpointing=True)
    self.manager = ocp.CheckpointManager(directory, options=options, item_names=('state', 'data'))

  def latest_step(self):
    return self.manager.latest_step()

  def best_step(self):
    return self.manager.best_step()

  def save(self, step: int, state, data_iterator, val_loss: float | None = None):
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   data=grain.checkpoint.CheckpointSave(data_iterator)),
                      metrics=None if val_loss is None else {BEST_METRIC: float(val_loss)}, force=True)

  def restore(self, step: int, abstract_state, data_iterator):
    """The state at `step` (shardings as in abstract_state); the iterator is moved to its position."""
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=grain.checkpoint.CheckpointRestore(data_iterator)))
    return restored['state']

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()
