"""The PyTorch reference (mini-dust3r = the official DUSt3R network code) for benchmarks/forward.py.

Runs in any Python with torch and mini-dust3r (here: a Python 3.11 venv, see tools/make_fixtures.py;
on the lent GPU: its image's torch plus a mini-dust3r wheel). Prints JSON lines; one run can do all three:

  python benchmarks/torch_reference.py --save_weights=W.pth        # the random weights (seed 0), torch.save
  python benchmarks/torch_reference.py --outputs=OUT.npz            # float32 outputs on `inputs(...)`
  python benchmarks/torch_reference.py --batch=1,8 --dtype=float32,bfloat16   # time the forward of those weights
  --model="AsymmetricCroCo3DStereo(...)" builds another architecture (default: DUSt3R 512 DPT).

Timing runs when --batch is given, or when neither --save_weights nor --outputs is; one line per
(dtype, batch): {"torch_ms_per_batch", "batch", "dtype", "torch_version", "device"}.
"""
import argparse
import json
import time

import numpy as np

DUST3R_512_DPT = ("AsymmetricCroCo3DStereo(pos_embed='RoPE100', patch_embed_cls='PatchEmbedDust3R', "
                  "img_size=(512, 512), head_type='dpt', output_mode='pts3d', depth_mode=('exp', -inf, inf), "
                  "conf_mode=('exp', 1, inf), enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, "
                  "dec_embed_dim=768, dec_depth=12, dec_num_heads=12, landscape_only=False)")


def inputs(batch, height, width):
  """The two views' images, (2, B, 3, H, W) float32 in [-1, 1]; the same in both benchmarks."""
  return np.random.default_rng(0).uniform(-1, 1, (2, batch, 3, height, width)).astype(np.float32)


def main():
  import torch  # pylint: disable=import-outside-toplevel
  from mini_dust3r.model import AsymmetricCroCo3DStereo  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser()
  parser.add_argument('--model', default=DUST3R_512_DPT, help='Constructor string of the network.')
  parser.add_argument('--save_weights')
  parser.add_argument('--outputs')
  parser.add_argument('--batch', help='Comma-separated batch sizes to time.')
  parser.add_argument('--height', type=int, default=384)
  parser.add_argument('--width', type=int, default=512)
  parser.add_argument('--dtype', default='float32', help='Comma-separated: float32, bfloat16.')
  parser.add_argument('--iters', type=int, default=10)
  args = parser.parse_args()
  torch.manual_seed(0)
  net = eval(args.model, {'AsymmetricCroCo3DStereo': AsymmetricCroCo3DStereo, 'inf': float('inf')}).eval()
  if args.save_weights:
    torch.save({'model': net.state_dict(), 'args': argparse.Namespace(model=args.model)}, args.save_weights)
    print(json.dumps({'saved': args.save_weights}), flush=True)
  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  net = net.to(device)

  def views(batch):
    return [{'img': torch.from_numpy(img).to(device), 'instance': [f'{v}{i}' for i in range(batch)]}
            for v, img in zip('ab', inputs(batch, args.height, args.width))]

  if args.outputs:  # full float32 (no TF32) for a parity check
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
      r1, r2 = net(*views(1))
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    np.savez(args.outputs, pts3d=r1['pts3d'].cpu().numpy(), conf1=r1['conf'].cpu().numpy(),
             pts3d_in_other_view=r2['pts3d_in_other_view'].cpu().numpy(), conf2=r2['conf'].cpu().numpy())
    print(json.dumps({'outputs': args.outputs}), flush=True)
  if args.batch is None and (args.save_weights or args.outputs):
    return

  for dtype in args.dtype.split(','):
    for batch in map(int, (args.batch or '1').split(',')):
      pair = views(batch)

      def run():
        # bf16: autocast, as DUSt3R's --amp does (the heads stay float32: the reference disables autocast
        # there). TF32 matmuls stay on in float32 (croco.py enables them on import), like XLA's default.
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == 'bfloat16'):
          net(*pair)
        if device == 'cuda':
          torch.cuda.synchronize()

      run()
      start = time.perf_counter()
      for _ in range(args.iters):
        run()
      seconds = (time.perf_counter() - start) / args.iters
      print(json.dumps({'torch_ms_per_batch': round(seconds * 1e3, 2), 'batch': batch, 'dtype': dtype,
                        'torch_version': torch.__version__, 'device': device}), flush=True)


if __name__ == '__main__':
  main()
