"""Training: sharded step = single-device step; the optimiser's rules; exact resume after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import stereo4d
from dynadust3r_jax.model import ModelConfig, build_model
from dynadust3r_jax.pretrained import load_model
from dynadust3r_jax.train.optimizer import make_optimizer, weight_decay_mask

ROOT = Path(__file__).parents[1]


def test_sharded_step_equals_single_device():
  """(data=4, fsdp=2) on 8 fake CPU devices vs one device, same global batch (2 micro-batches of 8)."""
  out = subprocess.run([sys.executable, '-m', 'tests.scripts.sharded_step'], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, check=True)
  r = json.loads(out.stdout.strip().splitlines()[-1])
  assert r['fsdp_sharded_params'] > 50                     # FSDP really split parameters
  assert r['data_skipped'] == [8, 8]                         # the pipeline's skip counts, summed in the step
  assert r['loss'][0] == pytest.approx(r['loss'][1], rel=1e-6)
  assert r['grad_norm'][0] == pytest.approx(r['grad_norm'][1], rel=1e-5)
  # Adam's first step is lr·g/(|g| + eps): where |g| ≈ eps, float32 noise in g moves an element by a
  # fraction of the step (0.16 of it on an AMD EPYC with AVX-512): a few elements, never more than a step
  assert r['params_off'] < 1e-4 and r['max_abs_param_diff'] < r['max_update']


def test_weight_decay_only_on_kernels():
  cfg = ModelConfig(**dict(stereo4d.get_config('tiny').model))
  params = nnx.state(build_model(cfg), nnx.Param)
  flat = jax.tree_util.tree_flatten_with_path(weight_decay_mask(params))[0]
  mask = {'/'.join(str(getattr(k, 'key', k)) for k in path[:-1]): v for path, v in flat}  # drop '.value'
  assert mask['enc_blocks/attn/qkv/kernel'] and mask['downstream_head1/dpt/act_postprocess/0/1/kernel']
  assert not mask['mask_token'] and not mask['enc_blocks/attn/qkv/bias'] and not mask['enc_norm/scale']
  assert not mask['dec_blocks2/norm_y/scale']                  # stacked (layers, dim): still no decay


def test_non_finite_gradients_skip_the_update():
  opt = make_optimizer(stereo4d.get_config('tiny').optimizer, 10)
  params = {'w': jnp.ones((2, 2))}
  state = opt.init(params)
  updates, state = opt.update({'w': jnp.array([[1.0, jnp.nan], [0, 0]])}, state, params)
  assert np.all(np.asarray(optax.apply_updates(params, updates)['w']) == 1.0)
  assert int(state.total_notfinite) == 1
  updates, state = opt.update({'w': jnp.ones((2, 2))}, state, params)
  assert np.all(np.asarray(optax.apply_updates(params, updates)['w']) < 1.0) and int(state.total_notfinite) == 1


def _tensorboard_images(directory, tag):
  """(step, height, width) of each image summary `tag` in the TFRecord event files of `directory`."""
  from tensorboardX.proto import event_pb2
  found = []
  for path in sorted(Path(directory).iterdir()):
    data, offset = path.read_bytes(), 0
    while offset < len(data):  # record: uint64 length, uint32 crc, payload, uint32 crc
      length = int.from_bytes(data[offset:offset + 8], 'little')
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 16 + length
      found += [(event.step, v.image.height, v.image.width) for v in event.summary.value if v.tag == tag]
  return found


def _metrics(workdir):
  path = Path(workdir) / 'metrics.jsonl'
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize('model', [['--config=configs/stereo4d.py:tiny', '--config.model.img_size=(32, 32)'],
                                   ['--config=configs/d4rt.py:tiny', '--config.optimizer.warmup_steps=2']],
                         ids=['dynadust3r', 'd4rt'])
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(tmp_path, model):
  """Train 2k steps; train k steps, SIGKILL, rerun the same command: steps k+1..2k log the same values."""
  from data import synthetic
  synthetic.write_clips(str(tmp_path / 'data'), 'train', 3, 12, size=32, seed=0)
  synthetic.write_clips(str(tmp_path / 'data'), 'test', 2, 12, size=32, seed=1)
  command = [sys.executable, 'main.py', *model, f'--config.data.root={tmp_path}/data', '--config.num_steps=16', '--config.log_every=1',
             '--config.val_every=4', '--config.checkpoint_every=4', '--config.picture_every=1000']
  subprocess.run(command + [f'--workdir={tmp_path}/a'], cwd=ROOT, check=True, capture_output=True, timeout=900)
  killed = subprocess.Popen(command + [f'--workdir={tmp_path}/b'], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  while not any(m['step'] >= 10 for m in _metrics(tmp_path / 'b')):
    assert killed.poll() is None, 'the run ended before it could be killed'
    time.sleep(0.2)
  os.kill(killed.pid, signal.SIGKILL)
  killed.wait()
  subprocess.run(command + [f'--workdir={tmp_path}/b'], cwd=ROOT, check=True, capture_output=True, timeout=900)
  a, b = _metrics(tmp_path / 'a'), _metrics(tmp_path / 'b')
  assert [m['step'] for m in b] == list(range(1, 17))
  assert a == b


@pytest.mark.parametrize('args,message', [
    (['--config=configs/stereo4d.py:demo', '--config.optimizer.learnin_rate=1'],
     'main.py: bad --config: learnin_rate\' Did you mean "learning_rate"'),
    (['--config=configs/stereo4d.py:tiny'], 'main.py: config.data.root is empty: give --config.data.root='),
    (['--config=configs/stereo4d.py:tiny', '--config.data.root=/nonexistent'],
     'main.py: /nonexistent: no usable Stereo4D clip'),
])
def test_user_errors_end_in_one_line(tmp_path, args, message):
  out = subprocess.run([sys.executable, 'main.py', f'--workdir={tmp_path}/w', *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode != 0 and 'Traceback' not in out.stderr
  assert message in out.stderr


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(tmp_path):
  from data import synthetic
  synthetic.write_clips(str(tmp_path / 'data'), 'train', 2, 12, size=32, seed=0)
  synthetic.write_clips(str(tmp_path / 'data'), 'test', 1, 12, size=32, seed=1)
  run = subprocess.Popen([sys.executable, 'main.py', '--config=configs/stereo4d.py:tiny', f'--workdir={tmp_path}/w',
                          f'--config.data.root={tmp_path}/data', '--config.model.img_size=(32, 32)',
                          '--config.num_steps=1000', '--config.log_every=1', '--config.checkpoint_every=500',
                          '--config.val_every=500', '--config.picture_every=1000'], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  while len(_metrics(tmp_path / 'w')) < 3:
    assert run.poll() is None
    time.sleep(0.2)
  run.send_signal(signal.SIGTERM)
  assert run.wait(timeout=300) == 0
  step = _metrics(tmp_path / 'w')[-1]['step']
  assert step < 1000 and (tmp_path / 'w' / 'checkpoints' / str(step)).is_dir()


def test_training_run_writes_metrics_checkpoints_pictures_and_resumes(tmp_path):
  """The whole loop in-process on synthetic clips: 4 steps, then the same call resumes to 6."""
  from data import synthetic
  from dynadust3r_jax.train.trainer import train
  synthetic.write_clips(str(tmp_path / 'data'), 'train', 2, 10, size=32, seed=0)
  synthetic.write_clips(str(tmp_path / 'data'), 'test', 1, 10, size=32, seed=1)
  config = stereo4d.get_config('tiny')
  config.data.root = str(tmp_path / 'data')
  config.model.img_size = (32, 32)
  config.num_steps, config.log_every, config.val_every, config.checkpoint_every, config.picture_every = 4, 2, 4, 4, 4
  workdir = tmp_path / 'w'
  train(config, str(workdir))
  first = _metrics(workdir)
  assert [m['step'] for m in first] == [2, 4] and 'val_loss' in first[-1] and 'val_epe3d' in first[-1]
  assert all(np.isfinite(m['loss']) for m in first) and first[-1]['learning_rate'] == pytest.approx(3e-4)
  assert (workdir / 'checkpoints' / '4').is_dir() and (workdir / 'pictures' / 'step_0000004.png').is_file()
  assert _tensorboard_images(workdir / 'tensorboard', 'pictures') == [(4, 650, 2100)]  # the titled figure
  config.num_steps = 6
  state = train(config, str(workdir))
  assert int(state['step']) == 6 and [m['step'] for m in _metrics(workdir)] == [2, 4, 6]
  # the workdir is a model directory too: load_model reads a checkpoint's parameters (here step 6's)
  model = load_model(str(workdir), for_inference=False, step=6)
  loaded = jax.tree.leaves(nnx.state(model.module, nnx.Param))
  assert len(loaded) == len(jax.tree.leaves(state['params']))
  for a, b in zip(loaded, jax.tree.leaves(state['params'])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
