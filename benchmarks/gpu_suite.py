"""The GPU suite: one command on the lent GPU machine installs the carried wheels, checks correctness on the
device, then times each benchmark against its baseline measured in the same run.

On the device machine (the `run` tool, carry=['.whl'], timeout_s=600), from the project root:

  PYTHONUNBUFFERED=1 python3 -m benchmarks.gpu_suite --out=$OUT
  PYTHONUNBUFFERED=1 python3 -m benchmarks.gpu_suite --out=$OUT --parts=ceilings,train_step   # a subset

.whl/ holds the pinned wheels of benchmarks/gpu_wheels.txt (made here by tools/download_gpu_wheels.sh);
the suite installs them itself (pip --target /tmp/site, on PYTHONPATH for every part). On a CPU:

  python -m benchmarks.gpu_suite --dry_run --out=/tmp/gpu_suite    # tiny sizes, ~2 min (tests/test_gpu_suite.py)

Parts run in the order of PARTS, each in its own subprocess (`--part=NAME`): the GPU memory is handed back
between parts (each JAX process preallocates most of it, and the PyTorch reference needs the GPU to itself),
a part is held to its time budget (it skips what its budget cannot fit, estimated from its previous
measurement, and is killed GRACE_S after the budget; the lines written so far stay), and a crash stays
inside its part. A part writes OUT/<part>.jsonl (its JSON lines); the suite then writes OUT/summary.md
(status of each part, then one table per part) and prints it last. A failed correctness part stops the
suite with one line. A later benchmark registers itself by adding one `Part` to PARTS (keep OUT within
the 8 files that come back: one .jsonl per part plus summary.md).

Budget plan for one H200 (GPU seconds, compiles included; the whole run under 9 minutes):
  ceilings 20, correctness 55, forward 185 (D4RT's encoder and query decoding first, held to 40, then DUSt3R's
  forward 145), attention 42, train_step 130, align 100 (global alignment 40, then the evaluation job's pairs
  throughput 45, then reconstruction at scale 15), data 45 = 577 s + the install (~5 s).
  Each part's lines give its compile times (compile_s): the numbers to re-plan the budgets with.
"""
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable

from absl import app, flags

flags.DEFINE_bool('dry_run', False, 'CPU: tiny sizes, one iteration, interpret-mode kernels, no wheel install.')
flags.DEFINE_list('parts', None, 'Parts to run (default: all, in order).')
flags.DEFINE_string('out', None, 'Output folder (default: $OUT, else ./gpu_suite_out).')
flags.DEFINE_float('budget_scale', 1.0, 'Multiplies every part\'s time budget.')
flags.DEFINE_string('part', None, 'Internal: run this one part in this process.')
FLAGS = flags.FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEELS = os.path.join(ROOT, '.whl')
SITE = '/tmp/site'
GRACE_S = 15                 # a part is killed this long after its budget
DRY_RUN_TIMEOUT_S = 600      # per part, on a loaded CPU (dry runs have no budget)
CORRECTNESS_FAILED = 3       # exit status of a part whose checks failed
TESTED_JAX = ('0.12.0.1', '0.11.2')   # CPU tests ran with these (the GPU image has 0.11.2)
MIN_VERSIONS = {'jax': '0.11.1', 'flax': '0.12.9', 'optax': '0.2.8', 'orbax-checkpoint': '0.12.8'}  # pyproject.toml
VERSIONS = ('jax', 'jaxlib', 'jax-cuda13-plugin', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'grain',
            'array-record', 'ml-collections', 'tensorboardX', 'torch', 'mini-dust3r', 'beartype', 'tokamax')
TINY_DUST3R = ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='PatchEmbedDust3R', img_size=(64, 64), "
               "head_type='dpt', output_mode='pts3d', depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), "
               "enc_embed_dim=64, enc_depth=2, enc_num_heads=2, dec_embed_dim=64, dec_depth=10, dec_num_heads=2, "
               "landscape_only=False)")


@dataclasses.dataclass
class Context:
  """What a part's function gets."""
  dry_run: bool
  out: str
  budget: object          # benchmarks.common.Budget (no limit in a dry run)
  peak_tflops: float | None  # the bf16 matmul rate measured by the ceilings part (None before it ran)
  emit: Callable[[dict], None]


@dataclasses.dataclass(frozen=True)
class Part:
  name: str
  budget_s: float                            # on one H200
  run: Callable[[Context], bool | None]      # emits its lines; False: a correctness failure (stops the suite)
  table: Callable[[list[dict]], list[str]]   # markdown lines of its summary
  required: dict                             # bench -> keys each of its measured (not skipped) lines has
  env: dict = dataclasses.field(default_factory=dict)   # extra environment of its subprocess


# --- the parts ---------------------------------------------------------------------------------------------


def ceilings_part(ctx):
  from benchmarks import ceilings  # noqa: PLC0415 - each part imports only what it runs
  if ctx.dry_run:
    ceilings.measure(n=256, copy_mib=8, iters=1, emit=ctx.emit)
  else:
    ceilings.measure(n=8192, copy_mib=4096, iters=10, emit=ctx.emit)


def correctness_part(ctx):
  from benchmarks import correctness  # noqa: PLC0415
  return correctness.run(small=ctx.dry_run, emit=ctx.emit)


def _has(module: str) -> bool:
  return importlib.util.find_spec(module) is not None


def _torch_python(ctx, bench):
  """This interpreter when it has torch + mini-dust3r (the PyTorch reference), else None and a skipped line."""
  if _has('torch') and _has('mini_dust3r'):
    return sys.executable
  ctx.emit(dict(bench=bench, impl='torch', skipped='no torch' if not _has('torch') else 'no mini-dust3r'))
  return None


D4RT_BUDGET_S = 40    # benchmarks/d4rt.py, 'g' at 48 x 256^2 bf16 on one H200: build, 3 compiles, 3 x 3 timed calls


def forward_part(ctx):
  from benchmarks import d4rt, forward  # noqa: PLC0415
  from benchmarks.common import Budget  # noqa: PLC0415
  # D4RT first, held to its own share: encoder per clip, queries/s with cached vs recomputed K/V
  if ctx.dry_run:
    d4rt.run(size='tiny', queries=64, chunk=16, iters=1, budget=ctx.budget, emit=ctx.emit)
  else:
    d4rt.run(budget=Budget(min(D4RT_BUDGET_S, ctx.budget.left())), emit=ctx.emit)
  torch_python = _torch_python(ctx, 'forward')
  impls = ['xla', 'cudnn', 'pallas']
  if ctx.dry_run:
    forward.run(batch_sizes=(1,), dtypes=['float32'], impls=impls, height=32, width=48, iters=1, model=TINY_DUST3R,
                torch_python=torch_python, peak_tflops=ctx.peak_tflops, budget=ctx.budget, emit=ctx.emit)
  else:
    forward.run(batch_sizes=(8, 1), dtypes=['bfloat16', 'float32'], impls=impls, height=384, width=512, iters=10,
                torch_python=torch_python, peak_tflops=ctx.peak_tflops, budget=ctx.budget, emit=ctx.emit)


def attention_part(ctx):
  from benchmarks import attention  # noqa: PLC0415
  shapes = {'self': (1, 64, 64, 2, 64), 'cross': (1, 48, 64, 2, 32)} if ctx.dry_run else None   # None: DUSt3R's
  attention.run(shapes=shapes, iters=1 if ctx.dry_run else 20, peak_tflops=ctx.peak_tflops, budget=ctx.budget,
                emit=ctx.emit)


# The train step at 512²: baseline = the config's step with the XLA attention; then, by priority (the
# budget cuts from the end): the config itself (bf16, cuDNN, dots_no_batch), batch 16 and 32, the Pallas
# attention, the other remat policies, FSDP (over all devices; one H200 is a 1-device mesh, reported so).
TRAIN_BASELINES = [dict(batch=8, attention_impl='xla')]
TRAIN_CONFIGS = [dict(batch=8), dict(batch=16), dict(batch=32), dict(batch=8, attention_impl='pallas'),
                 dict(batch=8, remat_policy='none'), dict(batch=8, remat_policy='full'),
                 dict(batch=8, remat_policy='dots'), dict(batch=8, fsdp=-1)]


def train_step_part(ctx):
  from benchmarks import train_step  # noqa: PLC0415
  if ctx.dry_run:  # the tiny variant (float32, XLA, no remat): the config equals its baseline and runs once
    train_step.run([dict(batch=1), dict(batch=1, fsdp=-1)], baselines=[dict(batch=1)], variant='tiny', size=32,
                   iters=1, peak_tflops=ctx.peak_tflops, budget=ctx.budget, emit=ctx.emit)
  else:
    train_step.run(TRAIN_CONFIGS, baselines=TRAIN_BASELINES, size=512, iters=3, peak_tflops=ctx.peak_tflops,
                   budget=ctx.budget, emit=ctx.emit)


EVALUATE_ESTIMATE_S = 45    # benchmarks/evaluate.py on one H200: compiles at batch 1 and 8 + 2 x 16 pairs
SCALE_ESTIMATE_S = 15       # benchmarks/reconstruct_scale.py, 8 and 50 images at 512x384 (not measured yet)


def align_part(ctx):
  from benchmarks import align  # noqa: PLC0415
  torch_python = _torch_python(ctx, 'align')
  if ctx.dry_run:
    align.run(sizes=(4,), height=24, width=32, niter=5, scene_graph='swin-1', complete_up_to=4,
              torch_python=torch_python, budget=ctx.budget, emit=ctx.emit)
  else:  # the target first (50 images swin-5); 20 images only if the budget has room left
    align.run(sizes=(50, 8, 20), height=384, width=512, niter=300, torch_python=torch_python, torch_loop_s=5,
              budget=ctx.budget, emit=ctx.emit)
  # the evaluation job's pairs protocol (pairs/s, batched vs one pair per call): two compiles of the 512² model
  from benchmarks import evaluate  # noqa: PLC0415
  if ctx.dry_run:
    evaluate.run(tiny=True, size=64, pairs=4, batch_sizes=(1, 2), emit=ctx.emit)
  elif ctx.budget.allows(EVALUATE_ESTIMATE_S):
    evaluate.run(size=512, pairs=16, batch_sizes=(1, 8), emit=ctx.emit)
  else:
    ctx.emit(dict(bench='evaluate_pairs', skipped=f'budget: {ctx.budget.left():.0f} s left, needs ~{EVALUATE_ESTIMATE_S} s'))
  # reconstruction at scale: the stages on the machine's devices against one (a single GPU: one line per size)
  from benchmarks import reconstruct_scale  # noqa: PLC0415
  if ctx.dry_run:
    reconstruct_scale.run([4], resolution='64x48', niter=2, inference_pairs=4, emit=ctx.emit)
  elif ctx.budget.allows(SCALE_ESTIMATE_S):
    reconstruct_scale.run([8, 50], resolution='512x384', niter=20, budget=ctx.budget, emit=ctx.emit)
  else:
    ctx.emit(dict(bench='reconstruct_scale', skipped=f'budget: {ctx.budget.left():.0f} s left, needs ~{SCALE_ESTIMATE_S} s'))


def data_part(ctx):
  from benchmarks import clip_index, data  # noqa: PLC0415
  with tempfile.TemporaryDirectory() as workdir:
    if ctx.dry_run:
      data.run(workdir, size=64, num_frames=8, num_clips=2, gops=(), samples=3, profile_samples=2,
               iterator_workers=(1,), batch_size=2, iterator_batches=2, emit=ctx.emit)
      clip_index.run(workdir, num_clips=50, repeats=1, emit=ctx.emit)
    else:  # no mp4 (no decord / ffmpeg carried): the pre-decoded path, per core and with 16 Grain workers
      data.run(workdir, size=512, num_frames=30, num_clips=3, gops=(), samples=40, profile_samples=10,
               iterator_workers=(16,), batch_size=8, iterator_batches=32, emit=ctx.emit)
      clip_index.run(workdir, num_clips=2000, emit=ctx.emit)


# --- summary tables ----------------------------------------------------------------------------------------


def _fmt(x, digits=3):
  if x is None:
    return ''
  if isinstance(x, float):
    return f'{x:.{digits}g}' if abs(x) < 1e-2 or abs(x) >= 1e4 else f'{x:.{digits}f}'.rstrip('0').rstrip('.')
  return str(x)


def _pct(x):
  return '' if x is None else f'{100 * x:.1f}%'


def _table(headers, rows) -> list[str]:
  lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
  return lines + ['| ' + ' | '.join(_fmt(c) for c in row) + ' |' for row in rows]


def _skip(r, width):
  """A skipped line's cells: its reason in the first measurement column."""
  return [f'skipped: {r["skipped"][:120]}'] + [''] * (width - 1)


def ceilings_table(rows):
  return _table(['device', 'bf16 matmul TFLOP/s', 'copy GB/s', 'datasheet bf16 TFLOP/s'],
                [[r['device'], r['bf16_matmul_tflops'], r['copy_gbs'], r['datasheet_bf16_tflops']] for r in rows])


def correctness_table(rows):
  cells = []
  for r in rows:
    what = [r['check'], r['case'], r.get('impl')]
    cells.append(what + (_skip(r, 3) if 'skipped' in r else [r['max_rel_err'], r['threshold'],
                                                            'ok' if r['ok'] else '**FAILED**']))
  return _table(['check', 'case', 'impl', 'max rel err', 'threshold', 'result'], cells)


def forward_table(rows):
  cells, notes = [], []
  d4rt_rows = [r for r in rows if r['bench'].startswith('d4rt')]
  for r in rows:
    if r['bench'].startswith('d4rt'):
      continue
    if r['bench'] == 'forward_parity':
      notes.append('JAX vs PyTorch, float32, batch 1: ' + (f'skipped: {r["skipped"]}' if 'skipped' in r else
                                                           f'max rel err {max(r["max_rel_err"].values()):.2e}'))
      continue
    what = [r['impl'], r.get('dtype', ''), r.get('batch', '')]
    cells.append(what + (_skip(r, 7) if 'skipped' in r else [
        r['ms_per_batch'], r['pairs_per_s'], _pct(r.get('frac_of_bf16_peak')), r.get('speedup_vs_torch'),
        r.get('rel_err_vs_xla'), r.get('compile_s'), r.get('peak_source')]))
  return _table(['impl', 'dtype', 'batch', 'ms', 'pairs/s', '% bf16 peak', 'vs torch', 'err vs xla', 'compile s',
                 'peak'], cells) + notes + \
      ['', 'D4RT (benchmarks/d4rt.py): encoder per clip, then query decoding (paper, Tab. 3: 40,180 queries/s):', ''] + \
      _table(['size', 'dtype', 'measurement', 'ms', 'queries/s', 'vs recompute', 'TFLOP/s', 'vs paper', 'compile s'],
             [[r.get('size', ''), r.get('dtype', ''), r['bench']] + _skip(r, 6) if 'skipped' in r else
              [r['size'], r['dtype'], f'encode {r["frames"]}x{r["img_size"]}^2', r['ms_per_clip'], '', '', '', '',
               r['compile_s']] if r['bench'] == 'd4rt_encode' else
              [r['size'], r['dtype'], f'decode, {r["kv"]} K/V, chunk {r["chunk"]}', r['ms_per_chunk'],
               r['queries_per_s'], r['speedup_vs_recompute'], r['tflops'], r['vs_paper'], r['compile_s']]
              for r in d4rt_rows])


def attention_table(rows):
  cells, notes = [], []
  for r in rows:
    if r['bench'] == 'rope_attention_check':
      notes.append(f'{r["case"]}: pallas vs xla max rel err o {r["o"]:.1e} dq {r["dq"]:.1e} dk {r["dk"]:.1e} '
                   f'dv {r["dv"]:.1e}')
      continue
    what = [r['case'], r.get('variant', ''), r.get('pass', '')]
    cells.append(what + (_skip(r, 6) if 'skipped' in r else [
        r['ms'], r['tflops'], r.get('vs_cudnn'), r.get('vs_xla'), r.get('total_mib'), _pct(r.get('frac_of_bf16_peak'))]))
  return _table(['case', 'variant', 'pass', 'ms', 'TFLOP/s', 'vs cudnn', 'vs xla', 'fwd+bwd MiB', '% bf16 peak'],
                cells) + notes


def train_step_table(rows):
  cells = []
  for r in rows:
    what = [('baseline ' if r['baseline'] else '') + str(r['batch']), r['dtype'], r['attention'], r['remat'],
            f'{r["mesh"]} x{r["devices"]}']
    cells.append(what + (_skip(r, 7) if 'skipped' in r else [
        r['ms_per_step'], r['pairs_per_s'], _pct(r.get('mfu')), r.get('peak_gib'), r.get('ratio_vs_baseline'),
        r['compile_s'], r.get('peak_source')]))
  return _table(['batch', 'dtype', 'attention', 'remat', 'mesh', 'ms/step', 'pairs/s', 'MFU', 'peak GiB',
                 'vs baseline', 'compile s', 'peak'], cells)


def align_table(rows):
  evaluation = [r for r in rows if r['bench'] == 'evaluate_pairs']
  scale = [r for r in rows if r['bench'] == 'reconstruct_scale']
  cells = []
  for r in rows:
    if r['bench'] in ('evaluate_pairs', 'reconstruct_scale'):
      continue
    what = [r.get('n_images', ''), r.get('graph', ''), r.get('n_edges', '')]
    if 'skipped' in r:
      cells.append(what + _skip(r, 11))
      continue
    torch_ms = r.get('torch_loop_ms_per_iter')
    cells.append(what + [r['jax_init_s'], r['jax_compile_s'], r['jax_loop_ms_per_iter'], r['jax_align_s'],
                         r.get('torch_init_s'), f'{torch_ms}*' if r.get('torch_extrapolated') else torch_ms,
                         r.get('speedup_loop'), r.get('speedup_total'), r.get('loss_rel_diff'),
                         round(r['jax_peak_bytes'] / 2**20), r.get('torch_peak_bytes') and
                         round(r['torch_peak_bytes'] / 2**20)])
  return _table(['images', 'graph', 'edges', 'jax init s', 'compile s', 'jax ms/iter', 'jax init+loop s',
                 'torch init s', 'torch ms/iter', 'loop speedup', 'total speedup', 'loss rel diff',
                 'jax MiB (XLA)', 'torch MiB'], cells) + \
      ['', '*: the PyTorch loop stopped early; its time per step is extrapolated (losses compared at its last step)',
       '', 'The evaluation job\'s pairs protocol (benchmarks/evaluate.py):', ''] + \
      _table(['model', 'size', 'batch', 'GT ms/pair', 'inference+metrics ms/pair', 'pairs/s', 'vs batch 1'],
             [_skip(r, 7) if 'skipped' in r else [r['model'], r['size'], r['batch_size'], r['gt_ms_per_pair'],
                                                  r['eval_ms_per_pair'], r['pairs_per_s'], r['ratio_vs_batch1']]
              for r in evaluation]) + \
      ['', 'Reconstruction at scale (benchmarks/reconstruct_scale.py; loop / floor: the alignment loop over one read '
       'of its inputs):', ''] + \
      _table(['images', 'edges', 'devices', 'inference pairs/s', 'init s', 'compile s', 'loop ms/iter', 'floor ms',
              'loop / floor', 'MiB per device', 'formula MiB', 'exports s'],
             [[r.get('n_images'), r.get('n_edges'), r.get('devices')] + (_skip(r, 9) if 'skipped' in r else [
                 r['inference_pairs_per_s'], r['init_s'], r['compile_s'], r['loop_ms_per_iter'], r['floor_ms'],
                 r['loop_over_floor'], round(r['bytes_per_device'] / 2**20),
                 round(r['formula_bytes_per_device'] / 2**20), r['exports_s']]) for r in scale])


def data_table(rows):
  cells = []
  for r in rows:
    if r['bench'] == 'data_write':
      cells.append(['pre-decode', '', 1, r['frames_per_s'], 'frames/s', ''])
    elif r['bench'] == 'data_sample':
      cells.append([f'DrawExample {r["path"]}', r.get('gop'), 1, r['samples_per_s'], 'samples/s',
                    r['samples_per_cpu_s']])
    elif r['bench'] == 'data_iterator':
      cells.append([f'Grain iterator {r["path"]}', r.get('gop'), r['num_workers'], r['samples_per_s'], 'samples/s',
                    ''])
    elif r['bench'] == 'clip_index':
      cells.append([f'find_clips, no index ({r["num_clips"]} clips)', '', 1, r['cold_clips_per_s'], 'clips/s', ''])
      cells.append([f'find_clips, index ({r["cold_over_warm"]}x)', '', 1, r['warm_clips_per_s'], 'clips/s', ''])
  return _table(['measurement', 'gop', 'processes', 'rate', 'unit', 'per CPU s'], cells)


PARTS = [
    Part('ceilings', 20, ceilings_part, ceilings_table, {'ceilings': ('bf16_matmul_tflops', 'copy_gbs')}),
    Part('correctness', 55, correctness_part, correctness_table, {'correctness': ('max_rel_err', 'threshold')}),
    Part('forward', 185, forward_part, forward_table, {'forward': ('ms_per_batch', 'pairs_per_s', 'tflops'),
                                                       'd4rt_encode': ('ms_per_clip', 'compile_s'),
                                                       'd4rt_decode': ('queries_per_s', 'speedup_vs_recompute',
                                                                       'paper_queries_per_s')}),
    Part('attention', 42, attention_part, attention_table, {'rope_attention': ('ms', 'tflops')}),
    Part('train_step', 130, train_step_part, train_step_table,
         {'train_step': ('ms_per_step', 'pairs_per_s', 'tflops', 'compile_s')}),
    Part('align', 100, align_part, align_table,
         {'align': ('jax_init_s', 'jax_compile_s', 'jax_loop_ms_per_iter', 'jax_final_loss', 'jax_peak_bytes'),
          'evaluate_pairs': ('pairs_per_s', 'ratio_vs_batch1'),
          'reconstruct_scale': ('loop_ms_per_iter', 'floor_ms', 'loop_over_floor', 'bytes_per_device')}),
    Part('data', 45, data_part, data_table, {'data_sample': ('samples_per_s',), 'data_iterator': ('samples_per_s',),
                                             'clip_index': ('cold_s', 'warm_s', 'cold_over_warm')},
         env={'JAX_PLATFORMS': 'cpu'}),   # CPU only: its 16 worker processes must not open the GPU
]
PART_NAMES = [p.name for p in PARTS]


# --- the suite ---------------------------------------------------------------------------------------------


def read_lines(out, name) -> list[dict]:
  path = os.path.join(out, f'{name}.jsonl')
  if not os.path.exists(path):
    return []
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except ValueError:  # the last line of a part killed while writing it
        pass
  return rows


def install_wheels():
  """pip-installs .whl/*.whl into SITE and puts SITE first on the path of this process and the parts."""
  wheels = sorted(os.path.join(WHEELS, f) for f in os.listdir(WHEELS) if f.endswith('.whl')) \
      if os.path.isdir(WHEELS) else []
  if not wheels:
    print(f'gpu_suite: install: no wheels in {WHEELS} (carry .whl; see benchmarks/gpu_wheels.txt)', flush=True)
    return
  start = time.perf_counter()
  subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps', '--no-compile',
                  '--no-cache-dir', '--upgrade', '--target', SITE, *wheels], check=True)
  if importlib.util.find_spec('xprof') is None:  # tokamax imports xprof (32 MB, its profiler) at import time
    os.makedirs(os.path.join(SITE, 'xprof', 'cli'), exist_ok=True)
    for path, text in (('xprof/__init__.py', ''), ('xprof/cli/__init__.py', ''),
                       ('xprof/cli/tools.py', 'get_kernel_stats_tool = None  # stand-in: tokamax without xprof\n')):
      with open(os.path.join(SITE, path), 'w') as f:
        f.write(text)
  os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (SITE, os.environ.get('PYTHONPATH')) if p)
  sys.path.insert(0, SITE)
  importlib.invalidate_caches()
  print(f'gpu_suite: install: {len(wheels)} wheels into {SITE} in {time.perf_counter() - start:.1f} s', flush=True)


def print_versions():
  def version(name):
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      return 'missing'
  found = {n: version(n) for n in VERSIONS}
  print('gpu_suite: versions: ' + ', '.join(f'{n} {v}' for n, v in found.items()), flush=True)
  from packaging.version import Version  # noqa: PLC0415
  if found['jax'] not in TESTED_JAX:
    print(f'gpu_suite: WARNING: jax {found["jax"]}; the code was tested (CPU) with jax {" and ".join(TESTED_JAX)}',
          flush=True)
  for name, least in MIN_VERSIONS.items():
    if found[name] == 'missing' or Version(found[name]) < Version(least):
      print(f'gpu_suite: WARNING: {name} {found[name]}; pyproject.toml asks for >= {least}', flush=True)


def run_part(part: Part, ctx_out: str, dry_run: bool, budget_scale: float) -> int:
  """This process runs one part (the --part=NAME subprocess); returns its exit status."""
  from benchmarks.common import Budget  # noqa: PLC0415 - imports JAX (the parent process never does)
  path = os.path.join(ctx_out, f'{part.name}.jsonl')
  ceilings = read_lines(ctx_out, 'ceilings') if part.name != 'ceilings' else []
  peak = next((r['bf16_matmul_tflops'] for r in ceilings if 'bf16_matmul_tflops' in r), None)
  with open(path, 'w') as f:
    def emit(row):
      f.write(json.dumps(row) + '\n')
      f.flush()
      print(f'[{part.name}] {json.dumps(row)[:300]}', flush=True)
    budget = Budget(None if dry_run else part.budget_s * budget_scale - 5)
    ok = part.run(Context(dry_run=dry_run, out=ctx_out, budget=budget, peak_tflops=peak, emit=emit))
  return CORRECTNESS_FAILED if ok is False else 0


def _failure_line(rows) -> str:
  def what(r):
    err = r.get('max_rel_err')
    return f'{_fmt(err)} > {r["threshold"]}' if isinstance(err, float) else str(err)
  bad = [r for r in rows if r.get('ok') is False]
  return '; '.join(f'{r["check"]} {r["case"]} {r.get("impl", "")}: {what(r)}' for r in bad) or \
      'the part crashed before its checks (see its output above)'


def summary(out, status) -> str:
  lines = ['# GPU suite', '', *_table(['part', 'status', 'elapsed s', 'budget s', 'lines'],
                                     [[n, s, e, b, len(read_lines(out, n))] for n, (s, e, b) in status.items()])]
  for part in PARTS:
    rows = read_lines(out, part.name)
    if part.name in status and rows:
      try:
        table = part.table(rows)
      except Exception as e:  # noqa: BLE001 - a line the table did not expect must not cost the summary
        table = [f'(no table: {type(e).__name__}: {e}; the lines are in {part.name}.jsonl)']
      lines += ['', f'## {part.name}', '', *table]
  return '\n'.join(lines) + '\n'


def launch(part: Part, out: str, *, dry_run: bool, budget_scale: float, env: dict) -> tuple[str, int]:
  """Runs one part in its own process (group), killed GRACE_S after its budget; (result, exit status)."""
  timeout = DRY_RUN_TIMEOUT_S if dry_run else part.budget_s * budget_scale + GRACE_S
  cmd = [sys.executable, '-m', 'benchmarks.gpu_suite', f'--part={part.name}', f'--out={out}',
         f'--budget_scale={budget_scale}'] + (['--dry_run'] if dry_run else [])
  proc = subprocess.Popen(cmd, cwd=ROOT, env={**env, **part.env}, start_new_session=True)
  try:
    rc = proc.wait(timeout=timeout)
  except subprocess.TimeoutExpired:  # the part and what it started (its process group); its lines stay
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return f'KILLED after {timeout:.0f} s', -1
  return {0: 'ok', CORRECTNESS_FAILED: 'CHECKS FAILED'}.get(rc, f'FAILED (exit {rc})'), rc


def suite(names, out: str, *, dry_run: bool, budget_scale: float = 1.0) -> int:
  """Install, versions, the parts in `names` (in PARTS order), the summary; returns the exit status."""
  suite_start = time.perf_counter()
  if not dry_run:
    install_wheels()
  print_versions()
  env = dict(os.environ)
  if not dry_run:
    env.setdefault('XLA_PYTHON_CLIENT_MEM_FRACTION', '0.9')   # one part at a time has the GPU
  status, stopped = {}, None
  for part in PARTS:
    if part.name not in names:
      continue
    budget = round(part.budget_s * budget_scale)
    if stopped:
      status[part.name] = ('not run: ' + stopped, '', budget)
      continue
    print(f'gpu_suite: part {part.name} (budget {budget} s) ...', flush=True)
    start = time.perf_counter()
    result, rc = launch(part, out, dry_run=dry_run, budget_scale=budget_scale, env=env)
    elapsed = time.perf_counter() - start
    status[part.name] = (result, round(elapsed, 1), budget)
    print(f'gpu_suite: part {part.name}: {result} in {elapsed:.1f} s', flush=True)
    if part.name == 'correctness' and rc != 0:
      stopped = 'correctness failed'
      print(f'gpu_suite: STOPPED: correctness failed on the device: {_failure_line(read_lines(out, part.name))} '
            f'(see {out}/correctness.jsonl); the timings did not run (--parts= runs them alone)', flush=True)
  text = summary(out, status)
  with open(os.path.join(out, 'summary.md'), 'w') as f:
    f.write(text)
  print(text, flush=True)
  print(f'gpu_suite: {time.perf_counter() - suite_start:.0f} s in all; lines and summary.md in {out}', flush=True)
  return 1 if stopped or any(s != 'ok' for s, _, _ in status.values()) else 0


def main(argv):
  del argv
  out = os.path.abspath(FLAGS.out or os.environ.get('OUT') or 'gpu_suite_out')
  os.makedirs(out, exist_ok=True)
  if FLAGS.part:
    sys.exit(run_part(PARTS[PART_NAMES.index(FLAGS.part)], out, FLAGS.dry_run, FLAGS.budget_scale))
  names = FLAGS.parts or PART_NAMES
  unknown = sorted(set(names) - set(PART_NAMES))
  if unknown:
    sys.exit(f'gpu_suite: unknown part(s) {unknown}; choose from {PART_NAMES}')
  sys.exit(suite(names, out, dry_run=FLAGS.dry_run, budget_scale=FLAGS.budget_scale))


if __name__ == '__main__':
  app.run(main)
