"""The learning-rate schedule's user errors (train/optimizer.py), named by their config keys."""
import ml_collections
import pytest

from dynadust3r_jax.train.optimizer import learning_rate_schedule


def _opt(**kw):
  return ml_collections.ConfigDict(dict(dict(schedule='warmup_cosine', learning_rate=1e-3, warmup_steps=20,
                                             min_learning_rate=1e-6), **kw))


def test_warmup_longer_than_the_run_names_both_keys():
  with pytest.raises(ValueError, match=r'config.optimizer.warmup_steps=20 with config.num_steps=5'):
    learning_rate_schedule(_opt(), 5)
  with pytest.raises(ValueError, match=r'warmup_steps=20 with config.num_steps=20'):
    learning_rate_schedule(_opt(), 20)


def test_warmup_then_cosine():
  schedule = learning_rate_schedule(_opt(warmup_steps=2), 10)
  assert float(schedule(0)) == 0.0 and float(schedule(2)) == pytest.approx(1e-3)
  assert float(schedule(10)) == pytest.approx(1e-6)
