"""The PyTorch reference of benchmarks/align.py: mini-dust3r's PointCloudOptimizer (the official DUSt3R global
alignment) on the pairwise predictions of an npz file, one JSON line.

Runs in any Python with torch and mini-dust3r (tools/make_align_fixtures.py's venv; on the lent GPU: its
image's torch plus a mini-dust3r wheel):

  python benchmarks/align_reference.py --inputs=PAIRS.npz --niter=300 --loop_s=60

PAIRS.npz: edges (E,2) int32, pts3d_i, pts3d_j (E,H,W,3), conf_i, conf_j (E,H,W) float32. As DUSt3R does:
torch.manual_seed(0), global_aligner(mode=PointCloudOptimizer), init_minimum_spanning_tree (niter_PnP=10), then
global_alignment_iter for each step (Adam β=(0.9,0.9), lr_min 1e-6). The loop stops after loop_s seconds
(at least 3 steps): the line then has fewer losses than niter. Line: {"torch_init_s", "torch_loop_ms_per_iter"
(mean over the steps run), "torch_steps", "torch_losses" (loss before each step run), "torch_peak_bytes",
"torch_peak_source", "torch_version", "device"}. Peak: torch.cuda.max_memory_allocated on a GPU, else this
process's max RSS minus its RSS before the inputs were read.
"""
import argparse
import json
import resource
import sys
import time

import numpy as np

import torchvision_stub  # benchmarks/ (this script's folder) is on sys.path


def _rss_bytes() -> int:
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * resource.getpagesize()


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--inputs', required=True)
  parser.add_argument('--niter', type=int, default=300)
  parser.add_argument('--lr', type=float, default=0.01)
  parser.add_argument('--schedule', default='cosine')
  parser.add_argument('--loop_s', type=float, default=float('inf'), help='Stop the loop after this many seconds.')
  args = parser.parse_args()
  torchvision_stub.install()
  import torch  # noqa: PLC0415
  from mini_dust3r.cloud_opt import GlobalAlignerMode, global_aligner  # noqa: PLC0415
  from mini_dust3r.cloud_opt import init_im_poses  # noqa: PLC0415
  from mini_dust3r.cloud_opt.base_opt import global_alignment_iter  # noqa: PLC0415

  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
  rss0 = _rss_bytes()
  if device == 'cuda':
    torch.cuda.reset_peak_memory_stats()
  data = np.load(args.inputs)
  edges = data['edges']
  t = torch.from_numpy
  output = {'view1': {'idx': edges[:, 0].tolist(), 'instance': [''] * len(edges)},
            'view2': {'idx': edges[:, 1].tolist(), 'instance': [''] * len(edges)},
            'pred1': {'pts3d': t(data['pts3d_i']), 'conf': t(data['conf_i'])},
            'pred2': {'pts3d_in_other_view': t(data['pts3d_j']), 'conf': t(data['conf_j'])}, 'loss': None}

  torch.manual_seed(0)
  start = time.perf_counter()
  scene = global_aligner(output, device=device, mode=GlobalAlignerMode.PointCloudOptimizer, verbose=False)
  init_im_poses.init_minimum_spanning_tree(scene, niter_PnP=10)
  sync()
  init_s = time.perf_counter() - start

  optimizer = torch.optim.Adam([p for p in scene.parameters() if p.requires_grad], lr=args.lr, betas=(0.9, 0.9))
  losses = []
  start = time.perf_counter()
  for n in range(args.niter):  # float(loss) in global_alignment_iter waits for the step, as in DUSt3R's loop
    losses.append(global_alignment_iter(scene, n, args.niter, args.lr, 1e-6, optimizer, args.schedule))
    if n >= 2 and time.perf_counter() - start > args.loop_s:
      break
  sync()
  loop_s = time.perf_counter() - start
  if device == 'cuda':
    peak, source = torch.cuda.max_memory_allocated(), 'torch.cuda.max_memory_allocated'
  else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    source = 'max RSS of the torch process minus its RSS before reading the inputs'
  print(json.dumps({'torch_init_s': round(init_s, 3), 'torch_loop_ms_per_iter': round(loop_s / len(losses) * 1e3, 3),
                    'torch_steps': len(losses), 'torch_losses': losses, 'torch_peak_bytes': int(peak),
                    'torch_peak_source': source, 'torch_version': torch.__version__, 'device': device}), flush=True)


if __name__ == '__main__':
  main()
