"""Training across processes: two CPU processes joined by jax.distributed (2 fake devices each, one global
mesh of 4) run the real trainer like one process with 4 devices — the same global batches, losses and
parameters — and their checkpoints (written and restored by both) load in one process.

The global batch of a step is a function of (seed, step) only: make_dataset gives process p of P the p-th
contiguous slice of it, and the trainer splits each slice into micro-batches by stride (_micro_batches), so
micro-batch j holds the same examples whatever P is.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_reconstruct import checkpoint  # noqa: F401 - the fixture

ROOT = Path(__file__).parents[1]
SCRIPT = [sys.executable, '-m', 'tests.scripts.multiprocess_train']
RECONSTRUCT = [sys.executable, '-m', 'tests.scripts.multiprocess_reconstruct']


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _start(args, env, log, script=SCRIPT):
  return subprocess.Popen(script + args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(runs, logs, timeout=600):
  try:
    for run in runs:
      run.wait(timeout=timeout)
  finally:
    for run in runs:
      if run.poll() is None:
        run.kill()
        run.wait()
  for run, log in zip(runs, logs):
    assert run.returncode == 0, Path(log.name).read_text()[-3000:]


def _two_processes(common, steps, env, tmp_path, script=SCRIPT):
  port, runs, logs = _free_port(), [], []
  for i in range(2):
    logs.append(open(tmp_path / f'multi_{steps}_{i}.log', 'w'))
    args = (common(i) if callable(common) else common) + ([f'--steps={steps}'] if steps else [])
    runs.append(_start(args + ['--devices=2', '--num_processes=2', f'--process_id={i}', f'--port={port}'], env,
                       logs[-1], script))
  return runs, logs


def _metrics(workdir):
  return [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]


def _params(workdir, step):
  import jax
  from flax import nnx
  from dynadust3r_jax.pretrained import load_model
  state = nnx.state(load_model(str(workdir), for_inference=False, step=step).module, nnx.Param)
  return [np.asarray(x) for x in jax.tree.leaves(state)]


def test_micro_batches_of_the_global_batch_do_not_depend_on_the_process_count():
  """The trainer's split of each process's slice (accum=2): global micro-batch j is the same examples."""
  from dynadust3r_jax.train.trainer import _micro_batches
  global_batch = np.arange(16 * 3).reshape(16, 3)          # one step: 16 examples, 8 per micro-batch
  one = _micro_batches(global_batch, 2)
  for processes in (2, 4):
    local = np.split(global_batch, processes)             # make_dataset's contiguous slices
    # make_array_from_process_local_data puts process p's rows p-th along the (sharded) batch axis
    np.testing.assert_array_equal(np.concatenate([_micro_batches(x, 2) for x in local], axis=1), one)
  assert set(one[0, :, 0] // 3) == set(range(0, 16, 2))


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
  """4 steps of 2 micro-batches of 4 (32x32 images, tiny DynaDUSt3R), validation, pictures, checkpoints at 2
  and 4: one process with 4 devices; two processes with 2 each, for 2 steps then resumed to 4."""
  from data import synthetic
  synthetic.write_clips(str(tmp_path / 'data'), 'train', 2, 10, size=32, seed=0)
  synthetic.write_clips(str(tmp_path / 'data'), 'test', 1, 10, size=32, seed=1)
  # the resumed two-process run compiles what the first one did: the persistent cache saves it the time
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / 'cache'),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0', JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  env.pop('XLA_FLAGS', None)
  single, multi = tmp_path / 'single', tmp_path / 'multi'
  data = f'--data={tmp_path}/data'
  single_log = open(tmp_path / 'single.log', 'w')
  one = _start([data, f'--workdir={single}', f'--out={tmp_path}/out_single', '--devices=4', '--steps=4'], env,
               single_log)
  common = [data, f'--workdir={multi}', f'--out={tmp_path}/out_multi']
  runs, logs = _two_processes(common, 2, env, tmp_path)
  _wait([one] + runs, [single_log] + logs)
  runs, logs = _two_processes(common, 4, env, tmp_path)   # both processes restore step 2, iterators included
  _wait(runs, logs)

  done = [json.loads((tmp_path / 'out_multi' / f'done_{i}.json').read_text()) for i in range(2)]
  assert done == [{'step': 4, 'devices': 4, 'local_devices': 2, 'processes': 2}] * 2
  iterators = sorted(f for f in os.listdir(multi / 'checkpoints' / '4' / 'data') if f.startswith('process_'))
  assert iterators == ['process_0-of-2.json', 'process_1-of-2.json']  # each process's data position
  # (a) the same run: every logged value (train and validation losses included) at every step
  a, b = _metrics(single), _metrics(multi)
  assert [m['step'] for m in a] == [m['step'] for m in b] == [1, 2, 3, 4]
  for x, y in zip(a, b):
    assert set(x) == set(y)
    assert y['loss'] == pytest.approx(x['loss'], rel=1e-6, abs=0)
    if 'val_loss' in x:  # of the parameters after the step (the train loss: before it), a step's drift more
      assert y['val_loss'] == pytest.approx(x['val_loss'], rel=1e-5, abs=0)  # measured 1.8e-6 at step 4
    for k in x:
      assert y[k] == pytest.approx(x[k], rel=1e-4, abs=1e-4), (x['step'], k)
  # the parameters: the processes hold the same copy, close to the one process's. Adam moves an element by
  # ~lr·g/|g|, so one whose gradient is float32 noise (the cross-process all-reduce sums in another order)
  # may differ by up to ~lr per step: measured 4.7e-5 at step 4 in 11 of 1.7M elements, the rest <= 1e-5
  mine = [np.load(tmp_path / 'out_multi' / f'params_{i}.npz') for i in range(2)]
  for k in mine[0]:
    np.testing.assert_array_equal(mine[0][k], mine[1][k])
  ref = _params(single, 4)
  for step in (2, 4):
    diffs = [np.abs(x - y) for x, y in zip(_params(single, step), _params(multi, step))]
    assert max(float(d.max()) for d in diffs) < 3e-4         # 1 lr
    assert sum(int((d > 1e-5).sum()) for d in diffs) / sum(d.size for d in diffs) < 1e-4
  # (b) the checkpoint the two processes wrote restores here, in one process, to their parameters
  got = _params(multi, 4)
  assert len(got) == len(ref) == len(mine[0])
  for x, (k, y) in zip(got, mine[0].items()):
    np.testing.assert_array_equal(x, y, err_msg=k)


def test_two_processes_reconstruct_like_one(checkpoint, tmp_path):
  """The reconstruct job (3 images, 6 pairs, 20 iterations) on 2 processes x 2 devices: the scene of 1 process x 4
  devices (cameras.json), every process computing it; only process 0 writes into its workdir."""
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  single_log = open(tmp_path / 'single.log', 'w')
  one = _start([f'--checkpoint={checkpoint}', f'--workdir={tmp_path}/single', f'--out={tmp_path}/out_single',
                '--devices=4'], env, single_log, RECONSTRUCT)
  runs, logs = _two_processes(lambda i: [f'--checkpoint={checkpoint}', f'--workdir={tmp_path}/multi_{i}',
                                         f'--out={tmp_path}/out_multi'], 0, env, tmp_path, RECONSTRUCT)
  _wait([one] + runs, [single_log] + logs)
  summaries = [json.loads((tmp_path / 'out_multi' / f'summary_{i}.json').read_text()) for i in range(2)]
  single = json.loads((tmp_path / 'out_single' / 'summary_0.json').read_text())
  assert [(s['devices'], s['processes']) for s in summaries] == [(4, 2), (4, 2)] and single['processes'] == 1
  assert summaries[0]['losses'] == summaries[1]['losses']                  # every process aligned the same scene
  np.testing.assert_allclose(summaries[0]['losses'], single['losses'], rtol=1e-5)
  cams = [json.loads((tmp_path / d / 'cameras.json').read_text()) for d in ('single', 'multi_0')]
  for name in cams[0]:
    np.testing.assert_allclose(cams[1][name]['cam_to_world'], cams[0][name]['cam_to_world'], atol=1e-5)
  assert sorted(os.listdir(tmp_path / 'multi_0')) == sorted(os.listdir(tmp_path / 'single'))
  assert os.listdir(tmp_path / 'multi_1') == []                             # process 1 wrote nothing
