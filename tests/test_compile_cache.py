"""The reconstruct job's persistent compilation cache (dynadust3r_jax/compile_cache.py): a second run of the same
shapes in a fresh process reads every program from config.compile_cache_dir, and summary.json says so."""
import json
import subprocess
import sys

from tests.test_reconstruct import IMAGES, ROOT, checkpoint  # noqa: F401 - the fixture


def _run(checkpoint, workdir, cache):  # noqa: F811
  out = subprocess.run([sys.executable, 'main.py', '--config=configs/reconstruct.py', f'--workdir={workdir}',
                        f'--config.checkpoint={checkpoint}', f'--config.inputs={IMAGES}', '--config.image_size=224',
                        '--config.scene_graph=swin-1', '--config.align.niter=5', '--config.exports=("cameras",)',
                        f'--config.compile_cache_dir={cache}'], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads((workdir / 'summary.json').read_text())['compile']


def test_a_rerun_compiles_nothing(checkpoint, tmp_path):  # noqa: F811
  cache = tmp_path / 'cache'
  first = _run(checkpoint, tmp_path / 'a', cache)
  second = _run(checkpoint, tmp_path / 'b', cache)
  assert first['cache_dir'] == second['cache_dir'] == str(cache)
  assert first['programs'] > 5 and first['cache_hits'] < first['programs']
  assert second['programs'] == first['programs'] and second['cache_hits'] == second['programs']
