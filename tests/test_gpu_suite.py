"""The GPU suite's dry run on CPU (tiny sizes, interpret-mode kernels), so that the suite cannot rot between
runs on a GPU: every registered part writes its JSON lines with its expected keys and finite values, and
the summary lists each part."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import gpu_suite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _numbers(x):
  if isinstance(x, dict):
    for v in x.values():
      yield from _numbers(v)
  elif isinstance(x, list):
    for v in x:
      yield from _numbers(v)
  elif isinstance(x, (int, float)) and not isinstance(x, bool):
    yield x


def test_dry_run(tmp_path):
  out = tmp_path / 'out'
  proc = subprocess.run([sys.executable, '-m', 'benchmarks.gpu_suite', '--dry_run', f'--out={out}'], cwd=ROOT,
                        capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  summary = (out / 'summary.md').read_text()
  assert proc.stdout.rstrip().endswith(f'lines and summary.md in {out}')
  assert summary in proc.stdout
  for part in gpu_suite.PARTS:
    assert f'| {part.name} | ok |' in summary
    assert f'## {part.name}' in summary
    rows = [json.loads(line) for line in (out / f'{part.name}.jsonl').read_text().splitlines()]
    assert rows, part.name
    for row in rows:
      assert all(math.isfinite(v) for v in _numbers(row)), row
    for bench, keys in part.required.items():
      measured = [r for r in rows if r.get('bench') == bench and 'skipped' not in r]
      assert measured, (part.name, bench)
      for row in measured:
        assert set(keys) <= set(row), (part.name, row)
  assert 'skipped: no torch' in summary or '| torch | float32 |' in summary
  align = [r for r in map(json.loads, (out / 'align.jsonl').read_text().splitlines())
           if r['bench'] == 'align' and 'skipped' not in r]
  assert [(r['n_images'], r['graph'], r['niter']) for r in align] == [(4, 'swin-1', 5), (4, 'complete', 5)]
  assert all(r['jax_final_loss'] > 0 and r['jax_loop_ms_per_iter'] > 0 for r in align)
  assert all(r['ok'] for r in map(json.loads, (out / 'correctness.jsonl').read_text().splitlines()) if 'ok' in r)
  assert sorted(os.listdir(out)) == sorted([f'{p.name}.jsonl' for p in gpu_suite.PARTS] + ['summary.md'])
  assert len(os.listdir(out)) <= 8   # what the device machine sends back


def test_failed_correctness_stops_the_suite(tmp_path, monkeypatch, capsys):
  """A correctness part that reports a failure stops the suite with one line; the timings do not run."""
  launched = []

  def fake_launch(part, out, **_):
    launched.append(part.name)
    if part.name == 'correctness':
      (tmp_path / 'correctness.jsonl').write_text(json.dumps(
          {'bench': 'correctness', 'check': 'kernel', 'case': 'self', 'max_rel_err': 0.5, 'threshold': 0.02,
           'ok': False}) + '\n')
      return 'CHECKS FAILED', gpu_suite.CORRECTNESS_FAILED
    return 'ok', 0

  monkeypatch.setattr(gpu_suite, 'launch', fake_launch)
  assert gpu_suite.suite(gpu_suite.PART_NAMES, str(tmp_path), dry_run=True) == 1
  assert launched == ['ceilings', 'correctness']
  stdout = capsys.readouterr().out
  assert 'gpu_suite: STOPPED: correctness failed on the device: kernel self : 0.5 > 0.02' in stdout
  summary = (tmp_path / 'summary.md').read_text()
  assert '| forward | not run: correctness failed |' in summary
  assert '| **FAILED** |' in summary


FAKE_TORCH = '''#!{python}
"""Stands in for `python benchmarks/torch_reference.py ARGS`: the fixture's weights and outputs."""
import json, shutil, sys
import numpy as np
args = dict(a[2:].split('=', 1) for a in sys.argv[2:])
shutil.copy({pth!r}, args['save_weights'])
ref = np.load({npz!r})
np.savez(args['outputs'], pts3d=ref['pts3d_1'][:1], conf1=ref['conf_1'][:1],
         pts3d_in_other_view=ref['pts3d_in_other_view_2'][:1], conf2=ref['conf_2'][:1])
for dtype in args['dtype'].split(','):
  for batch in args['batch'].split(','):
    print(json.dumps({{'torch_ms_per_batch': 100.0, 'batch': int(batch), 'dtype': dtype, 'torch_version': 'fake'}}))
'''


def test_forward_with_a_torch_reference(tmp_path):
  """benchmarks.forward's PyTorch branch (one reference run: weights, outputs, timings; then the JAX model
  on those weights, ratios and the parity line), with a stand-in interpreter serving a fixture."""
  from benchmarks import forward  # noqa: PLC0415
  fixtures = os.path.join(ROOT, 'tests', 'fixtures', 'shared')
  ref = np.load(os.path.join(fixtures, 'dust3r_tiny_dpt.npz'))
  widths = f', dpt_feature_dim={ref["dpt_feature_dim"]}, dpt_last_dim={ref["dpt_last_dim"]}, ' \
           f'dpt_layer_dims={tuple(int(d) for d in ref["dpt_layer_dims"])})'
  model = str(ref['model'])[:-1] + widths
  fake = tmp_path / 'python'
  fake.write_text(FAKE_TORCH.format(python=sys.executable, pth=os.path.join(fixtures, 'dust3r_tiny_dpt.pth'),
                                    npz=os.path.join(fixtures, 'dust3r_tiny_dpt.npz')))
  fake.chmod(0o755)
  rows = []
  forward.run(batch_sizes=(1,), dtypes=['float32'], impls=['xla'], height=64, width=96, iters=1, model=model,
              torch_python=str(fake), emit=rows.append)
  torch_row, jax_row, parity = rows
  assert torch_row['impl'] == 'torch' and torch_row['ms_per_batch'] == 100.0
  assert jax_row['impl'] == 'jax-xla' and jax_row['torch_ms_per_batch'] == 100.0
  assert jax_row['speedup_vs_torch'] == round(100.0 / jax_row['ms_per_batch'], 3)
  assert parity['bench'] == 'forward_parity'
  assert set(parity['max_rel_err']) == set(forward.OUTPUTS)
  assert all(math.isfinite(v) for v in parity['max_rel_err'].values())


TORCH_PYTHON = os.environ.get('TORCH_PYTHON', '/work/venv/ref/bin/python')  # torch + mini-dust3r (tools/)


@pytest.mark.skipif(not os.path.exists(TORCH_PYTHON), reason=f'no PyTorch reference interpreter at {TORCH_PYTHON}')
def test_align_against_the_torch_reference():
  """benchmarks.align with the real reference (mini-dust3r) on a tiny problem: both sides get the same inputs and
  reach the same losses; the ratios and the extrapolation mark are filled in."""
  from benchmarks import align  # noqa: PLC0415
  rows = []
  align.run(sizes=(4,), height=24, width=32, niter=8, scene_graph='swin-1', complete_up_to=0,
            torch_python=TORCH_PYTHON, emit=rows.append)
  (row,) = rows
  assert row['torch_steps'] == 8 and not row['torch_extrapolated']
  assert row['loss_rel_diff'] < 1e-3, row
  assert row['torch_final_loss'] == row['torch_loss_at_step']
  assert row['speedup_loop'] > 0 and row['peak_ratio'] > 0
