"""The architecture of a CroCo / DUSt3R / DynaDUSt3R network, plus the runtime knobs of the JAX port.

Field names and defaults mirror the PyTorch constructors (`CroCoNet.__init__`,
`AsymmetricCroCo3DStereo.__init__` and the unofficial `DynaDUSt3R`), so a checkpoint's constructor
string maps onto this dataclass one keyword at a time (see `dynadust3r_jax/convert/constructor.py`).
"""
import dataclasses
import json
import math

INF = math.inf

ARCHS = ('CroCoNet', 'AsymmetricCroCo3DStereo', 'DynaDUSt3R')
PATCH_EMBEDS = ('PatchEmbedDust3R', 'ManyAR_PatchEmbed')
HEAD_TYPES = ('linear', 'dpt')
DTYPES = ('float32', 'bfloat16', 'float16')
ATTENTION_IMPLS = ('xla', 'cudnn', 'pallas')
REMAT_POLICIES = ('none', 'full', 'dots', 'dots_no_batch')

# Fields that describe the network (saved with a converted checkpoint). The rest are runtime
# choices of this port (compute dtype, attention kernel, rematerialisation).
RUNTIME_FIELDS = ('dtype', 'attention_impl', 'remat_policy')


class ConfigFields:
  """What the model families' configs (frozen dataclasses: ModelConfig, D4RTConfig) share: the architecture
  fields a converted checkpoint stores (all but RUNTIME_FIELDS), JSON, replace, and a from_dict that names
  unknown fields."""

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  @classmethod
  def architecture_fields(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in RUNTIME_FIELDS)

  def architecture(self) -> dict:
    return {k: getattr(self, k) for k in self.architecture_fields()}

  def to_json(self) -> str:
    return json.dumps(self.architecture(), indent=1)

  @classmethod
  def from_dict(cls, d: dict, **runtime):
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
      raise ValueError(f'{cls.__name__}: unknown field(s) {unknown}')
    return cls(**{**d, **runtime})

  @classmethod
  def from_json(cls, text: str, **runtime):
    return cls.from_dict(json.loads(text), **runtime)

  def check_runtime(self, check, attention_impls: tuple = ATTENTION_IMPLS, why: str = ''):
    """check(ok, message) for the runtime fields (dtype, attention_impl, remat_policy); `why`: a note on the
    attention kernels this family lacks."""
    check(self.dtype in DTYPES, f'dtype={self.dtype!r}; choose from {DTYPES}')
    check(self.attention_impl in attention_impls,
          f'attention_impl={self.attention_impl!r}; choose from {attention_impls}{why}')
    check(self.attention_impl != 'cudnn' or self.dtype != 'float32',
          "attention_impl='cudnn' needs dtype='bfloat16' or 'float16' (cuDNN flash attention has no float32)")
    check(self.remat_policy in REMAT_POLICIES, f'remat_policy={self.remat_policy!r}; choose from {REMAT_POLICIES}')


@dataclasses.dataclass(frozen=True)
class ModelConfig(ConfigFields):
  """Architecture (PyTorch constructor keywords) + runtime options."""
  arch: str = 'AsymmetricCroCo3DStereo'
  # CroCoNet keywords (defaults are CroCoNet's).
  img_size: tuple[int, int] = (224, 224)
  patch_size: int = 16
  mask_ratio: float = 0.9
  enc_embed_dim: int = 768
  enc_depth: int = 12
  enc_num_heads: int = 12
  dec_embed_dim: int = 512
  dec_depth: int = 8
  dec_num_heads: int = 16
  mlp_ratio: float = 4.0
  norm_im2_in_dec: bool = True
  pos_embed: str = 'cosine'
  # AsymmetricCroCo3DStereo keywords (defaults are DUSt3R's).
  output_mode: str = 'pts3d'
  head_type: str = 'linear'
  depth_mode: tuple = ('exp', -INF, INF)
  conf_mode: tuple | None = ('exp', 1, INF)
  freeze: str = 'none'
  landscape_only: bool = True
  patch_embed_cls: str = 'PatchEmbedDust3R'
  # DPT widths: fixed in the official `create_dpt_head`, read off tensor shapes by the converter.
  dpt_feature_dim: int = 256
  dpt_last_dim: int = 128
  dpt_layer_dims: tuple[int, int, int, int] = (96, 192, 384, 768)
  # DynaDUSt3R motion heads (spec dynadust3r.md §a.2): time-embedding size (the class default 128 of the
  # paper; the released unofficial run used 256, which the converter reads off the weights) and the
  # post-processing of the displacement: 'exp' as the newest readable unofficial head does (§h.3).
  time_pos_emb_dim: int = 128
  motion_depth_mode: tuple = ('exp', -INF, INF)
  motion_conf_mode: tuple | None = ('exp', 1, INF)
  # Runtime options of the port.
  dtype: str = 'float32'            # backbone compute dtype; heads always run in float32
  # 'xla' (einsum + softmax), 'cudnn' (GPU, bf16/fp16) or 'pallas' (fused RoPE + flash attention,
  # pallas_kernels/rope_attention.py: Mosaic GPU kernels on a GPU, bf16/fp16; on a CPU backend the
  # kernels run in Pallas interpret mode automatically, any dtype, slowly: for tests)
  attention_impl: str = 'xla'
  remat_policy: str = 'none'        # rematerialisation of each scanned block

  def __post_init__(self):
    for name in ('img_size', 'depth_mode', 'conf_mode', 'dpt_layer_dims', 'motion_depth_mode', 'motion_conf_mode'):
      value = getattr(self, name)
      if isinstance(value, list):
        object.__setattr__(self, name, tuple(value))
    if isinstance(self.img_size, int):
      object.__setattr__(self, 'img_size', (self.img_size, self.img_size))
    self.validate()

  @property
  def rope_base(self) -> float:
    return float(self.pos_embed[len('RoPE'):])

  @property
  def has_conf(self) -> bool:
    return bool(self.conf_mode)

  @property
  def dpt_hooks(self) -> tuple[int, int, int, int]:
    """Indices into the 13-entry decoder output list [encoder, dec 1..L] (`create_dpt_head`)."""
    depth = self.dec_depth
    return (0, depth * 2 // 4, depth * 3 // 4, depth)

  def validate(self):
    """Raise ValueError naming the field for anything this port does not implement."""
    def check(ok, msg):
      if not ok:
        raise ValueError(f'model config: {msg}')
    check(self.arch in ARCHS, f'arch={self.arch!r}; supported: {ARCHS}')
    check(self.pos_embed.startswith('RoPE'),
          f"pos_embed={self.pos_embed!r}; only RoPE ('RoPE100') models are supported "
          '(the cosine embedding is CroCo v1)')
    check(self.norm_im2_in_dec, 'norm_im2_in_dec=False is not supported')
    check(self.enc_num_heads > 0 and self.dec_num_heads > 0, 'enc_num_heads and dec_num_heads must be >= 1')
    check(self.enc_embed_dim % self.enc_num_heads == 0, 'enc_embed_dim % enc_num_heads != 0')
    check(self.dec_embed_dim % self.dec_num_heads == 0, 'dec_embed_dim % dec_num_heads != 0')
    for dim, heads in ((self.enc_embed_dim, self.enc_num_heads), (self.dec_embed_dim, self.dec_num_heads)):
      check((dim // heads) % 4 == 0, f'head dim {dim // heads} must be a multiple of 4 for 2D RoPE')
    check(self.img_size[0] % self.patch_size == 0 and self.img_size[1] % self.patch_size == 0,
          f'img_size={self.img_size} must be a multiple of patch_size={self.patch_size}')
    self.check_runtime(check)
    if self.arch == 'CroCoNet':
      return
    check(self.output_mode == 'pts3d', f'output_mode={self.output_mode!r}; only pts3d is supported')
    check(self.head_type in HEAD_TYPES, f'head_type={self.head_type!r}; choose from {HEAD_TYPES}')
    check(self.patch_embed_cls in PATCH_EMBEDS,
          f'patch_embed_cls={self.patch_embed_cls!r}; choose from {PATCH_EMBEDS}')
    check(not (self.patch_embed_cls == 'ManyAR_PatchEmbed' and not self.landscape_only),
          'ManyAR_PatchEmbed needs landscape_only=True (inference uses PatchEmbedDust3R, '
          'landscape_only=False, as dust3r.model.load_model does)')
    for name in ('depth_mode', 'motion_depth_mode'):
      mode = getattr(self, name)
      check(mode[0] in ('exp', 'linear', 'square') and tuple(mode[1:]) == (-INF, INF),
            f'{name}={mode}; supported: exp/linear/square with bounds (-inf, inf)')
    for name in ('conf_mode', 'motion_conf_mode'):
      mode = getattr(self, name)
      check(mode is None or mode[0] in ('exp', 'sigmoid'), f'{name}={mode}; supported: exp, sigmoid')
    check(self.freeze in ('none', 'mask', 'encoder'), f'freeze={self.freeze!r}')
    if self.head_type == 'dpt':
      check(self.dec_depth > 9, f'a DPT head needs dec_depth > 9, got {self.dec_depth}')
    if self.arch == 'DynaDUSt3R':
      check(self.head_type == 'dpt', "DynaDUSt3R needs head_type='dpt' (its motion heads are DPT heads)")
      check(self.time_pos_emb_dim % 2 == 0, f'time_pos_emb_dim={self.time_pos_emb_dim} must be even')

  def for_inference(self) -> 'ModelConfig':
    """What `dust3r.model.load_model` does: PatchEmbedDust3R and no head transposition."""
    if self.arch == 'CroCoNet':
      return self
    return self.replace(patch_embed_cls='PatchEmbedDust3R', landscape_only=False)

