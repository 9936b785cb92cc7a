"""Training: optimiser, sharded jitted step, checkpoints and the training loop."""
