"""Make the golden data of tests/test_torch_checkpoint.py (needs torch; run with the reference venv):

  /work/venv/ref/bin/python tools/make_torch_reader_data.py

writes into tests/data/torch_reader/:
  tensors.pth  torch.save of a dict with one tensor of each dtype the reader maps, views (transposed,
               offset, two keys sharing one storage), an nn.Parameter, an nn.Sequential state_dict,
               an argparse.Namespace and plain Python values;
  tensors.npz  what the reader must return for every tensor of tensors.pth, under its path in the dict
               joined by '/' (bfloat16 and float8 as their bit patterns), the dtype names as the JSON
               string `dtypes`, and checksums of a few tensors of the shared dust3r_tiny_dpt.pth
               (`dpt/<key>/sum` in float64, `dpt/<key>/index` and `dpt/<key>/values` sampled elements);
  legacy.pth   a pre-1.6 (non-zip) torch.save file, which the reader must refuse with a hint.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / 'tests' / 'data' / 'torch_reader'
DPT = ROOT.parent / 'shared' / 'fixtures' / 'dust3r_tiny_dpt.pth'
DPT_KEYS = ('patch_embed.proj.weight', 'dec_blocks.3.cross_attn.projq.weight',
            'downstream_head1.dpt.scratch.layer_rn.0.weight', 'downstream_head2.dpt.head.4.bias')
BITS = {torch.bfloat16: torch.uint16, torch.float8_e4m3fn: torch.uint8}  # saved as their bit patterns


def checkpoint():
  """The object saved in tensors.pth."""
  g = torch.Generator().manual_seed(0)
  base = torch.randn(3, 4, generator=g)
  shared = torch.randn(2, 3, generator=g)
  torch.manual_seed(0)
  seq = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
  return {
      'float32': torch.randn(2, 3, generator=g),
      'float16': torch.randn(5, generator=g).half(),
      'bfloat16': torch.randn(2, 2, generator=g).bfloat16(),
      'float64': torch.randn(3, generator=g).double(),
      'int64': torch.tensor([-2**62, -1, 0, 2**40 + 7]),
      'int32': torch.tensor([[-2**31, 5], [7, 2**31 - 1]], dtype=torch.int32),
      'uint8': torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
      'bool': torch.tensor([True, False, True]),
      'uint16': torch.tensor([0, 1, 65535], dtype=torch.int32).to(torch.uint16),  # _rebuild_tensor_v3
      'float8_e4m3fn': torch.tensor([0.5, -3.0, 448.0]).to(torch.float8_e4m3fn),  # _rebuild_tensor_v3
      'complex64': torch.tensor([1 + 2j, -0.5j]),
      'scalar': torch.tensor(3.25),
      'empty': torch.zeros(0, 3),
      'transposed': base.t(),
      'sliced': base[1:, 1:3],
      'alias_a': shared.detach(),
      'alias_b': shared.detach(),
      'parameter': torch.nn.Parameter(torch.randn(4, generator=g)),
      'state_dict': seq.state_dict(),
      'args': argparse.Namespace(model='Foo(a=1)'),
      'nested': {'list': [1, 2.5, 'three', None, True], 'tuple': (4, 'five', (6.0, -7)),
                 'dict': {'a': -1, 'b': [b'\x00bytes\xff']}, 'big': 2**70, 'set': {1, 2},
                 'size': torch.Size([2, 3]), 'dtype': torch.float16},
  }


def expected(obj, prefix=''):
  """{path: (numpy value, dtype name)} for every tensor in obj; the names are numpy's / ml_dtypes'."""
  if isinstance(obj, torch.Tensor):
    t = obj.detach()
    value = t.view(BITS[t.dtype]).numpy() if t.dtype in BITS else t.numpy()
    return {prefix[:-1]: (np.array(value, order='C'), str(t.dtype).removeprefix('torch.'))}
  if isinstance(obj, dict):
    return {k: v for key, item in obj.items() for k, v in expected(item, f'{prefix}{key}/').items()}
  return {}


def main():
  OUT.mkdir(parents=True, exist_ok=True)
  obj = checkpoint()
  torch.save(obj, OUT / 'tensors.pth')
  tensors = expected(obj)
  arrays = {path: value for path, (value, _) in tensors.items()}
  arrays['dtypes'] = np.array(json.dumps({path: name for path, (_, name) in tensors.items()}))
  model = torch.load(DPT, map_location='cpu', weights_only=False)['model']
  for key in DPT_KEYS:
    flat = model[key].flatten()
    index = np.linspace(0, flat.numel() - 1, 7).round().astype(np.int64)
    arrays[f'dpt/{key}/sum'] = np.float64(flat.double().sum().item())
    arrays[f'dpt/{key}/index'] = index
    arrays[f'dpt/{key}/values'] = flat[torch.from_numpy(index)].numpy()
  np.savez_compressed(OUT / 'tensors.npz', **arrays)
  torch.save({'weight': torch.ones(2)}, OUT / 'legacy.pth', _use_new_zipfile_serialization=False)
  for name in ('tensors.pth', 'tensors.npz', 'legacy.pth'):
    print(f'{OUT / name}: {(OUT / name).stat().st_size} bytes')


if __name__ == '__main__':
  main()
