"""The architecture of a D4RT network (spec/d4rt.md §2-§4) plus the runtime knobs of the JAX port.

Named sizes (`SIZES`, `d4rt_config(name)`), spec §2.3:
  'g'    encoder ViT-g 1408/40/16, MLP 6144 (ratio 48/11): ~1.0B params; decoder 8 layers, d = 1280,
         16 heads, MLP ratio 3.5: ~147M (query embedding + 8 blocks + head; the paper says 144M; the
         spec's 8 x 11 d^2 = 144.2M assumes K/V from width d, ours project F's 1408 channels to d).
  'H'    ViT-H 1280/32/16, MLP 5120; decoder as 'g'.
  'L'    ViT-L 1024/24/16 (the paper's ablation backbone), decoder 6 layers (the ablation depth), d = 1280.
  'B'    ViT-B 768/12/12, decoder 6 layers, d = 768, 12 heads, ratio 4 (the spec's "project starter" range;
         inferred).
  'tiny' 64/4/4, 16 frames at 64^2, decoder 2 layers, d = 64, 4 heads: for tests and demos.
"""
import dataclasses
from typing import ClassVar

from dynadust3r_jax.model.config import ConfigFields

ATTENTION_IMPLS = ('xla', 'cudnn')  # (no 'pallas': its kernel is the DUSt3R family's fused RoPE attention)

# The 13 output channels of the head (spec §4, Fig. 7): name -> (start, stop).
HEAD_SPLITS = {'xyz': (0, 3), 'uv': (3, 5), 'vis_logit': (5, 6), 'disp': (6, 9), 'normal': (9, 12),
               'conf': (12, 13)}
HEAD_DIM = max(stop for _, stop in HEAD_SPLITS.values())


@dataclasses.dataclass(frozen=True)
class D4RTConfig(ConfigFields):
  """D4RT architecture + runtime options. Defaults are the paper's main model ('g')."""
  arch: ClassVar[str] = 'D4RT'       # config.json's "arch" (not a field: D4RT has one architecture class)
  # Encoder (ViT, pre-LN, exact GELU, LayerNorm eps 1e-6 as VideoMAE).
  enc_embed_dim: int = 1408
  enc_depth: int = 40                # even: layer 2i is frame-wise, layer 2i+1 global
  enc_num_heads: int = 16
  enc_mlp_ratio: float = 48 / 11     # hidden = round(dim * ratio) = 6144 for ViT-g
  tubelet: tuple[int, int, int] = (2, 16, 16)   # (frames, height, width) of one token
  img_size: int = 256                # the square input resolution (videos are resized, not cropped)
  num_frames: int = 48               # clip length T; size of the three query time tables
  # False: every encoder layer global over the video tokens alone, no AR token (VideoMAE's encoder exactly,
  # for parity with a converted VideoMAE; `ar_embed` stays in the tree, unused).
  frame_attention: bool = True
  # Decoder (cross-attention only; queries never attend to each other).
  dec_embed_dim: int = 1280
  dec_depth: int = 8
  dec_num_heads: int = 16
  dec_mlp_ratio: float = 3.5
  # Query embedding (spec §3).
  fourier_bands: int = 8             # frequencies 2^k * pi, k = 0..bands-1; features 2 + 4 * bands
  query_patch_size: int = 9          # the RGB patch around (u, v) in frame t_src (odd)
  # Head: conf = 1 + exp(min(x, conf_logit_max)).
  conf_logit_max: float = 20.0
  # Runtime options of the port.
  dtype: str = 'float32'             # encoder/decoder compute dtype; query embedding and head run in float32
  attention_impl: str = 'xla'        # 'xla' (einsum + float32 softmax) or 'cudnn' (GPU, bf16/fp16)
  remat_policy: str = 'none'         # rematerialisation of each scanned block (pair)

  @classmethod
  def from_dict(cls, d: dict, **runtime):
    """Also a named size, as the training configs give it: {'size': 'L', field: value, ...} is SIZES['L'] with
    those fields replaced."""
    d = dict(d)
    if 'size' in d:
      size = d.pop('size')
      if size not in SIZES:
        raise ValueError(f'D4RTConfig: size={size!r} (config.model.size); choose from {tuple(SIZES)}')
      d = {**SIZES[size], **d}
    return super().from_dict(d, **runtime)

  def __post_init__(self):
    if isinstance(self.tubelet, list):
      object.__setattr__(self, 'tubelet', tuple(self.tubelet))
    self.validate()

  @property
  def fourier_dim(self) -> int:
    """Raw (u, v) + sin and cos of each coordinate at each band."""
    return 2 + 4 * self.fourier_bands

  @property
  def patch_dim(self) -> int:
    """Values of one tubelet token: t * h * w * 3."""
    t, h, w = self.tubelet
    return t * h * w * 3

  @property
  def query_patch_dim(self) -> int:
    return self.query_patch_size ** 2 * 3

  @property
  def enc_mlp_dim(self) -> int:
    return int(round(self.enc_embed_dim * self.enc_mlp_ratio))

  @property
  def dec_mlp_dim(self) -> int:
    return int(round(self.dec_embed_dim * self.dec_mlp_ratio))

  def grid(self):
    """Token grid (T/2, H/16, W/16) of the configured clip."""
    t, h, w = self.tubelet
    return self.num_frames // t, self.img_size // h, self.img_size // w

  @property
  def num_tokens(self) -> int:
    gt, gh, gw = self.grid()
    return gt * gh * gw

  def validate(self):
    def check(ok, msg):
      if not ok:
        raise ValueError(f'D4RT config: {msg}')
    check(self.enc_depth >= 2 and self.enc_depth % 2 == 0,
          f'enc_depth={self.enc_depth} must be even (frame-wise and global layers alternate, scanned in pairs)')
    check(self.dec_depth >= 1, f'dec_depth={self.dec_depth} must be >= 1')
    for name, dim, heads in (('enc', self.enc_embed_dim, self.enc_num_heads),
                             ('dec', self.dec_embed_dim, self.dec_num_heads)):
      check(heads >= 1 and dim % heads == 0, f'{name}_embed_dim={dim} is not a multiple of {name}_num_heads={heads}')
    check(len(self.tubelet) == 3 and all(s >= 1 for s in self.tubelet), f'tubelet={self.tubelet}')
    check(self.num_frames % self.tubelet[0] == 0,
          f'num_frames={self.num_frames} must be a multiple of the tubelet length {self.tubelet[0]}')
    check(self.img_size % self.tubelet[1] == 0 and self.img_size % self.tubelet[2] == 0,
          f'img_size={self.img_size} must be a multiple of the tubelet size {self.tubelet[1:]}')
    check(self.query_patch_size >= 1 and self.query_patch_size % 2 == 1,
          f'query_patch_size={self.query_patch_size} must be odd (the patch is centred on (u, v))')
    check(self.fourier_bands >= 0, f'fourier_bands={self.fourier_bands}')
    self.check_runtime(check, ATTENTION_IMPLS, ' (D4RT has no RoPE)')


_DEC_G = dict(dec_embed_dim=1280, dec_depth=8, dec_num_heads=16, dec_mlp_ratio=3.5)
SIZES = {
    'g': dict(enc_embed_dim=1408, enc_depth=40, enc_num_heads=16, enc_mlp_ratio=48 / 11, **_DEC_G),
    'H': dict(enc_embed_dim=1280, enc_depth=32, enc_num_heads=16, enc_mlp_ratio=4.0, **_DEC_G),
    'L': dict(enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, enc_mlp_ratio=4.0,
              **{**_DEC_G, 'dec_depth': 6}),
    'B': dict(enc_embed_dim=768, enc_depth=12, enc_num_heads=12, enc_mlp_ratio=4.0,
              dec_embed_dim=768, dec_depth=6, dec_num_heads=12, dec_mlp_ratio=4.0),
    'tiny': dict(enc_embed_dim=64, enc_depth=4, enc_num_heads=4, enc_mlp_ratio=4.0, img_size=64, num_frames=16,
                 dec_embed_dim=64, dec_depth=2, dec_num_heads=4, dec_mlp_ratio=4.0),
}


def d4rt_config(size: str = 'g', **overrides) -> D4RTConfig:
  """The named size ('g', 'H', 'L', 'B', 'tiny') with any field overridden."""
  if size not in SIZES:
    raise ValueError(f'D4RT size {size!r}; choose from {tuple(SIZES)}')
  return D4RTConfig(**{**SIZES[size], **overrides})
