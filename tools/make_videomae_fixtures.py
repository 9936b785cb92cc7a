"""Make the Hugging Face VideoMAE reference fixture (dev tool; CI only reads the files it writes).

usage:  /work/venv/ref/bin/python tools/make_videomae_fixtures.py tests/fixtures

Environment: the venv of tools/make_fixtures.py plus `/work/venv/ref/bin/pip install transformers` (made with
transformers 5.24.0, torch 2.13.0 CPU, float32, one thread, eager attention, fixed seeds).

Writes
  videomae_tiny_hf/config.json, model.safetensors: a tiny random `VideoMAEForPreTraining` (hidden 64, 4 layers,
      4 heads, intermediate 128, tubelet 2, patch 16, image 64, 8 frames, qkv_bias, use_mean_pooling False, so
      the encoder ends with `videomae.layernorm`; decoder 16 wide, 1 layer), in the layout of the released
      MCG-NJU checkpoints: config key `qkv_bias`, tensors `attention.attention.q_bias` / `v_bias` (transformers
      >= 5 renames them to `query.bias` / `value.bias` when loading, and saves them under those names).
  videomae_tiny.npz: `video` (2, 8, 64, 64, 3) float32 in [-1, 1] (8-bit levels), channels last as the D4RT
      encoder takes it (VideoMAE's pixel_values are video.transpose(0, 1, 4, 2, 3)); `last_hidden_state`
      (2, 64, 64) = `VideoMAEModel` (the `videomae` part of the pre-training net) on it, no mask.

Weights: the transformers init with initializer_range 0.05, then every 1-D parameter (biases, LayerNorm
scales/shifts) + 0.05 N(0, 1), so nothing is exactly 0 or 1. The script checks that the folder reloads with
`VideoMAEForPreTraining.from_pretrained` and `VideoMAEModel.from_pretrained` (every encoder tensor loaded, the
q_bias/v_bias renamed) to the same last_hidden_state bit for bit, and that batch items equal single runs.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEModel  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

CONFIG = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, tubelet_size=2,
              patch_size=16, image_size=64, num_frames=8, qkv_bias=True, use_mean_pooling=False,
              hidden_act='gelu', layer_norm_eps=1e-12, initializer_range=0.05, norm_pix_loss=True,
              decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
              decoder_intermediate_size=32)


def released_layout(state_dict):
  """transformers-5 names → the released checkpoints' names (q_bias / v_bias)."""
  out = {}
  for k, v in state_dict.items():
    k = k.replace('attention.attention.query.bias', 'attention.attention.q_bias')
    k = k.replace('attention.attention.value.bias', 'attention.attention.v_bias')
    out[k] = v.detach().clone().contiguous()
  return out


def run(model, video):
  with torch.no_grad():
    return model(pixel_values=torch.from_numpy(video.transpose(0, 1, 4, 2, 3).copy())).last_hidden_state.numpy()


def main(out_dir):
  torch.manual_seed(13)
  cfg = VideoMAEConfig(**CONFIG)
  cfg._attn_implementation = 'eager'
  net = VideoMAEForPreTraining(cfg).eval()
  gen = torch.Generator().manual_seed(14)
  with torch.no_grad():
    for p in net.parameters():
      if p.ndim == 1:
        p.add_(0.05 * torch.randn(p.shape, generator=gen))
  rng = np.random.default_rng(15)
  video = (rng.integers(0, 256, (2, 8, 64, 64, 3)).astype(np.float32) / 127.5 - 1).astype(np.float32)
  ref = run(net.videomae, video)
  assert ref.shape == (2, 64, 64) and np.isfinite(ref).all() and ref.std(axis=1).min() > 1e-2
  for i in range(2):
    np.testing.assert_allclose(run(net.videomae, video[i:i + 1])[0], ref[i], rtol=0, atol=1e-5)

  folder = os.path.join(out_dir, 'videomae_tiny_hf')
  shutil.rmtree(folder, ignore_errors=True)
  os.makedirs(folder)
  tensors = released_layout(net.state_dict())
  assert sum('q_bias' in k for k in tensors) == 5 and not any('query.bias' in k for k in tensors)
  save_file(tensors, os.path.join(folder, 'model.safetensors'), metadata={'format': 'pt'})
  config = {'architectures': ['VideoMAEForPreTraining'], 'model_type': 'videomae', **CONFIG}
  with open(os.path.join(folder, 'config.json'), 'w') as f:
    json.dump(config, f, indent=2, sort_keys=True)
  np.savez_compressed(os.path.join(out_dir, 'videomae_tiny.npz'), video=video, last_hidden_state=ref)

  # The folder reloads (released layout renamed by transformers) to the same outputs, bit for bit.
  for cls in (VideoMAEForPreTraining, VideoMAEModel):
    loaded, info = cls.from_pretrained(folder, attn_implementation='eager', output_loading_info=True)
    missing = [k for k in info['missing_keys'] if 'position_embeddings' not in k]
    assert not missing and not info['mismatched_keys'], (cls.__name__, info)
    module = loaded.videomae if cls is VideoMAEForPreTraining else loaded
    got = run(module.eval(), video)
    assert np.array_equal(got, ref), (cls.__name__, np.abs(got - ref).max())
  print(f'wrote {folder}/ and videomae_tiny.npz; |last_hidden_state| max {np.abs(ref).max():.3f}')


if __name__ == '__main__':
  main(sys.argv[1] if len(sys.argv) > 1 else 'tests/fixtures')
