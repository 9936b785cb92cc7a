"""The family interface: a fourth model family defined and registered in this file alone (a toy per-pixel
pointmap regressor) trains, checkpoints, loads, reconstructs and is evaluated through the unchanged jobs; and
the lookups answer for the project's own families."""
import dataclasses
import json
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import d4rt as d4rt_config
from configs import dust3r as dust3r_config
from configs import evaluate as evaluate_config
from configs import reconstruct as reconstruct_config
from data import synthetic
from dynadust3r_jax import families, load_model
from dynadust3r_jax.evaluation.evaluate import evaluate
from dynadust3r_jax.families.dust3r import DUSt3R
from dynadust3r_jax.inference.reconstruct import reconstruct
from dynadust3r_jax.model.config import ConfigFields, ModelConfig
from dynadust3r_jax.model.d4rt import D4RTConfig
from dynadust3r_jax.train.trainer import train
from tests.conftest import FIXTURES


@dataclasses.dataclass(frozen=True)
class ToyConfig(ConfigFields):
  arch: ClassVar[str] = 'ToyRegressor'
  hidden: int = 8
  dtype: str = 'float32'
  attention_impl: str = 'xla'
  remat_policy: str = 'none'


class ToyRegressor(nnx.Module):
  """Each view alone: pixel colour and position → a 3D point and a confidence, by a 2-layer MLP."""

  def __init__(self, cfg: ToyConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    self.hidden = nnx.Linear(5, cfg.hidden, rngs=rngs)
    self.out = nnx.Linear(cfg.hidden, 4, rngs=rngs)

  def _head(self, img):
    b, h, w, _ = img.shape
    yy, xx = jnp.meshgrid(jnp.linspace(-1, 1, h), jnp.linspace(-1, 1, w), indexing='ij')
    x = jnp.concatenate([img, jnp.broadcast_to(jnp.stack([xx, yy], -1), (b, h, w, 2))], -1)
    y = self.out(jnp.tanh(self.hidden(x)))
    return y[..., :3] + jnp.array([0.0, 0.0, 2.0]), 1 + jnp.exp(y[..., 3])

  def __call__(self, view1, view2):
    pts1, conf1 = self._head(view1['img'])
    pts2, conf2 = self._head(view2['img'])
    return {'pts3d': pts1, 'conf': conf1}, {'pts3d_in_other_view': pts2, 'conf': conf2}


class Toy(DUSt3R):
  """DUSt3R's loss, validation, pictures and reconstruct path; its own config, network and data kinds."""
  arch = ToyConfig.arch
  config_family = 'toy'
  config_class = ToyConfig
  data_kinds = ('multiview',)

  def describe(self, cfg) -> str:
    return f'{self.arch} (hidden {cfg.hidden})'

  def build(self, cfg, seed: int = 0):
    return ToyRegressor(cfg, rngs=nnx.Rngs(seed))

  def for_inference(self, cfg):
    return cfg


@pytest.fixture(scope='module')
def toy_workdir(tmp_path_factory):
  families.register(Toy())
  config = dust3r_config.get_config('demo').stages['224_linear']
  config.model_family, config.model = 'toy', {'hidden': 8}
  config.num_steps, config.log_every, config.val_every, config.checkpoint_every, config.picture_every = 4, 2, 4, 4, 4
  config.data.resolutions, config.optimizer.warmup_steps = config.data.resolutions[:1], 1
  workdir = tmp_path_factory.mktemp('toy') / 'train'
  train(config, str(workdir))
  yield workdir
  families.unregister(Toy.arch)


def test_a_toy_family_trains_loads_reconstructs_and_evaluates(toy_workdir, tmp_path):
  records = [json.loads(line) for line in (toy_workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in records] == [2, 4] and np.isfinite(records[-1]['val_loss'])
  assert (toy_workdir / 'pictures' / 'step_0000004.png').is_file()
  assert json.loads((toy_workdir / 'config.json').read_text()) == {'arch': 'ToyRegressor', 'hidden': 8}
  model = load_model(str(toy_workdir))
  assert isinstance(model.config, ToyConfig) and families.of(model.config).arch == 'ToyRegressor'

  rec = reconstruct_config.get_config()
  rec.checkpoint, rec.inputs, rec.image_size, rec.align.niter = str(toy_workdir), str(FIXTURES / 'inference_images'), 64, 5
  summary = reconstruct(rec, str(tmp_path / 'rec'))
  assert summary['model'] == 'ToyRegressor' and summary['pairs'] == summary['images'] * (summary['images'] - 1)
  cameras = json.loads((tmp_path / 'rec' / 'cameras.json').read_text())
  assert len(cameras) == summary['images'] and all(np.isfinite(c['K']).all() for c in cameras.values())

  root = tmp_path / 's4d'
  synthetic.write_clips(str(root), 'test', 1, 8, size=32, seed=5)
  ev = evaluate_config.get_config('stereo4d')
  ev.checkpoint, ev.data.root, ev.pairs.per_sequence, ev.batch_size = str(toy_workdir), str(root), 2, 2
  ev.image_size, ev.pairs.metrics = 32, ('depth',)
  results = evaluate(ev, str(tmp_path / 'eval'))
  assert np.isfinite(results['aggregate']['abs_rel']) and 'epe3d' not in results['aggregate']


def test_lookups():
  assert families.for_arch('DynaDUSt3R').predicts_motion and not families.for_arch('AsymmetricCroCo3DStereo').predicts_motion
  assert families.of(D4RTConfig.from_dict({}, dtype='float32')).arch == 'D4RT'
  assert families.of(ModelConfig(pos_embed='RoPE100', arch='CroCoNet')).data_kinds == ()
  assert tuple(families.config_classes())[:2] == ('dust3r', 'd4rt')
  assert set(families.for_arch('DynaDUSt3R').batch_keys) > set(families.for_arch('AsymmetricCroCo3DStereo').batch_keys)
  with pytest.raises(ValueError, match=r"arch='Nope' is no model family's; known: \("):
    families.for_arch('Nope')


def test_an_init_checkpoint_of_another_config_class_fails_before_any_data(dust3r_checkpoint, tmp_path):
  config = d4rt_config.get_config('demo')
  config.init_checkpoint = dust3r_checkpoint
  with pytest.raises(ValueError, match=f'config.init_checkpoint={dust3r_checkpoint}: a ModelConfig checkpoint for '
                                       'a D4RTConfig model'):
    train(config, str(tmp_path / 'w'))
  assert not (tmp_path / 'w' / 'synthetic').exists()  # the demo's clips were not made
