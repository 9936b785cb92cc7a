"""The demo as a newcomer runs it: a quiet console with the job's summary lines, the full log in the
workdir, and a kill while it makes its data that changes nothing once the same command runs again."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from data.pipeline import CLIP_INDEX

ROOT = Path(__file__).parents[1]
# the demo, made small: 4 training clips (so that a kill can land between two of them), 2 steps
DEMO = [sys.executable, 'main.py', '--config=configs/stereo4d.py:demo', '--config.data.synthetic.num_clips=4',
        '--config.data.synthetic.num_frames=12', '--config.data.synthetic.size=32', '--config.model.img_size=(32, 32)',
        '--config.num_steps=2', '--config.log_every=1', '--config.val_every=2', '--config.checkpoint_every=2',
        '--config.picture_every=2']
ABSL_PREFIX = re.compile(r'^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]', re.M)  # absl's line format


def _files(workdir: Path) -> dict:
  """Every file of the demo's synthetic data: relative path → bytes (not find_clips' index: a cache of file
  sizes and modification times)."""
  root = workdir / 'synthetic'
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
          if p.is_file() and p.name != CLIP_INDEX}


def test_quiet_console_full_log_and_a_kill_during_data_generation(tmp_path):
  a, b = tmp_path / 'a', tmp_path / 'b'
  run = subprocess.run(DEMO + [f'--workdir={a}'], cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stderr
  console = run.stdout + run.stderr
  # the console: the project's summary lines and the progress bar, no third-party INFO, no fork warning
  for line in ('making 4 synthetic clips in', 'synthetic/train: 4 clips', 'synthetic/test: 4 clips',
               'model: DynaDUSt3R, ', 'step 2 validation: loss ', f'step 2: checkpoint -> {a}/checkpoints/2',
               '2/2 ['):
    assert line in console, line
  assert not ABSL_PREFIX.search(console), ABSL_PREFIX.search(console).group()
  for noise in ('orbax', 'CheckpointManager', "Unable to initialize backend", 'os.fork()'):
    assert noise not in console, noise
  # the log file: everything, in absl's format
  log = (a / 'train.log').read_text()
  assert 'CheckpointManager created' in log and "Unable to initialize backend 'tpu'" in log
  assert re.search(r'^I\d{4} .* trainer\.py:\d+\] model: DynaDUSt3R, ', log, re.M)

  killed = subprocess.Popen(DEMO + [f'--workdir={b}'], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  train_dir = b / 'synthetic' / 'train'
  while not list(train_dir.glob('*.npz')):  # the first clip is written: kill before the last one
    assert killed.poll() is None, 'the demo ended before it could be killed'
    time.sleep(0.01)
  os.kill(killed.pid, signal.SIGKILL)
  killed.wait()
  cut_short = _files(b)
  assert 'train/.complete.json' not in cut_short and len(list(train_dir.glob('*.npz'))) < 4
  rerun = subprocess.run(DEMO + [f'--workdir={b}'], cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert rerun.returncode == 0, rerun.stderr
  assert 'making 4 synthetic clips in' in rerun.stderr and 'synthetic/train: 4 clips' in rerun.stderr
  # the same clips, byte for byte (no leftovers of the killed run), and the same training
  assert _files(b) == _files(a)
  assert (b / 'metrics.jsonl').read_text() == (a / 'metrics.jsonl').read_text()
