"""Reconstruction over 8 fake CPU devices (tests/scripts/sharded_reconstruct.py): pair inference split over the
mesh gives the single-device predictions (three image shapes, every group's batch padded to the devices), and the
reconstruct job with config.mesh.devices=-1 the scene of devices=1 (measured: both exactly equal on an AMD
EPYC)."""
import json
import subprocess
import sys

from tests.test_reconstruct import ROOT, checkpoint  # noqa: F401 - the fixture


def test_mesh_inference_and_job_equal_one_device(checkpoint, tmp_path):  # noqa: F811
  run = subprocess.run([sys.executable, '-m', 'tests.scripts.sharded_reconstruct', checkpoint, str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  out = json.loads(run.stdout.strip().splitlines()[-1])
  assert out['devices'] == 8 and out['pairs'] == 6 and len(out['shapes']) == 3
  assert max(out['inference'].values()) <= 1e-6, out['inference']
  assert out['summary_devices_-1'] == 8 and out['cam_to_world'] <= 1e-5, out
