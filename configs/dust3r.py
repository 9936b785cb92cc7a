"""DUSt3R's own training recipe (spec dust3r.md §5.2): CroCo v2 → 224 linear → 512 linear → 512 DPT.

  python convert_weights.py --input=CroCo_V2_ViTLarge_BaseDecoder.pth --output=ckpt/croco_dust3r224 \
      --model="AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(224, 224), head_type='linear', \
output_mode='pts3d', depth_mode=('exp', -inf, inf), conf_mode=('exp', 1, inf), enc_embed_dim=1024, \
enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12)"
  python main.py --config=configs/dust3r.py:224_linear --workdir=runs/dust3r_224 \
      --config.init_checkpoint=ckpt/croco_dust3r224 "--config.data.train[0].root=/data/co3d_processed"
  python main.py --config=configs/dust3r.py:512_linear --workdir=runs/dust3r_512 --config.init_checkpoint=runs/dust3r_224 ...
  python main.py --config=configs/dust3r.py:512_dpt --workdir=runs/dust3r_512_dpt --config.init_checkpoint=runs/dust3r_512 ...
  python main.py --config=configs/dust3r.py:demo --workdir=runs/dust3r_demo   # the three stages, tiny, synthetic scenes

A stage starts from the previous stage's workdir (its best checkpoint by validation loss): what matches by
name and shape is loaded, the rest (the DPT head of the last stage) starts as DUSt3R initialises it
(`strict=False`). Epochs are steps here: DUSt3R's `N @ Dataset` epoch of P pairs at an effective batch of
B pairs is P/B steps; every pair is fed in both orders (DUSt3R's symmetrized batches), so `batch_size`
counts 2·B examples. The README's datasets (Habitat, BlendedMVS, MegaDepth, ARKitScenes, StaticThings3D,
ScanNet++) have no reader yet: `data.train` lists what does (processed CO3D, your posed scenes: data/multiview.py).
"""
import ml_collections

LARGE = dict(enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12, dec_num_heads=12)
TINY = dict(enc_embed_dim=64, enc_depth=2, enc_num_heads=4, dec_embed_dim=48, dec_depth=10, dec_num_heads=4,
            dpt_feature_dim=32, dpt_last_dim=16, dpt_layer_dims=(8, 16, 24, 32))  # tests/fixtures/croco_tiny_dec10's
COMMON = dict(arch='AsymmetricCroCo3DStereo', pos_embed='RoPE100', output_mode='pts3d',
              depth_mode=('exp', float('-inf'), float('inf')), conf_mode=('exp', 1, float('inf')))
RESOLUTIONS_512 = ((512, 384), (512, 336), (512, 288), (512, 256), (512, 160))
# stage → (image size, head, patch embedding, pairs per epoch, effective batch in pairs, accum, warmup / epochs)
STAGES = {
    '224_linear': ((224, 224), 'linear', 'PatchEmbedDust3R', 800_000, 128, 1, 10, 100),
    '512_linear': ((512, 512), 'linear', 'ManyAR_PatchEmbed', 80_000, 64, 2, 20, 100),
    '512_dpt': ((512, 512), 'dpt', 'ManyAR_PatchEmbed', 80_000, 64, 2, 15, 90),
}
DEMO_SIZES = {'224_linear': ((32, 32),), '512_linear': ((64, 48), (64, 32)), '512_dpt': ((64, 48), (64, 32))}


def _stage(name: str, demo: bool) -> ml_collections.ConfigDict:
  img_size, head, patch_embed, pairs_per_epoch, pairs_per_step, accum, warmup_epochs, epochs = STAGES[name]
  steps_per_epoch = pairs_per_epoch // pairs_per_step
  c = ml_collections.ConfigDict()
  c.mode = 'train'
  c.seed = 0
  c.init_checkpoint = ''            # converted directory (CroCo for 224_linear) or the previous stage's workdir
  c.model = ml_collections.ConfigDict(dict(COMMON, **(TINY if demo else LARGE), img_size=(64, 64) if demo else img_size,
                                           head_type=head, patch_embed_cls=patch_embed))
  c.model.dtype = 'float32' if demo else 'bfloat16'
  c.model.attention_impl = 'xla' if demo else 'cudnn'
  c.model.remat_policy = 'none' if demo else 'dots_no_batch'

  c.data = ml_collections.ConfigDict()
  c.data.kind = 'multiview'         # data/multiview_pipeline.py over a data/multiview.py Mixture
  size = pairs_per_epoch // 8       # per dataset: the README's `N @ Dataset` sizes (8 datasets) ...
  c.data.train = [dict(kind='co3d', root='', split='train', size=size, aug_crop=16, mask_bg='rand', pairs='co3d')]
  c.data.test = [dict(kind='co3d', root='', split='test', size=1000, pairs='co3d')]  # each tested separately
  c.data.resolutions = DEMO_SIZES[name] if demo else ((224, 224),) if name == '224_linear' else RESOLUTIONS_512
  c.data.both_orders = True
  c.data.color_jitter = True
  c.data.num_workers = 0 if demo else 8
  c.data.synthetic = ml_collections.ConfigDict(dict(num_scenes=0, num_views=0, size=0))  # demo only

  c.batch_size = 2 * pairs_per_step  # examples per optimiser step: each pair in both orders
  c.grad_accum_steps = accum
  c.num_steps = epochs * steps_per_epoch
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-4, b1=0.9, b2=0.95, weight_decay=0.05, grad_clip=0.0,
      schedule='warmup_cosine', warmup_steps=warmup_epochs * steps_per_epoch, min_learning_rate=1e-6))
  c.loss_alpha = 0.2
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))

  c.log_every = 50
  c.val_every = steps_per_epoch     # DUSt3R tests every epoch
  c.val_batches = 16
  c.checkpoint_every = steps_per_epoch
  c.keep_best = 5
  c.picture_every = steps_per_epoch

  if demo:
    c.data.train = [dict(kind='co3d', root='', split='train', pairs='all', aug_crop=4, mask_bg='rand')]
    c.data.test = [dict(kind='co3d', root='', split='test', pairs='all')]
    c.data.synthetic = ml_collections.ConfigDict(dict(num_scenes=4, num_views=6, size=64))
    c.batch_size, c.grad_accum_steps = 4, 1
    c.num_steps = 40
    c.optimizer.learning_rate, c.optimizer.warmup_steps, c.optimizer.min_learning_rate = 3e-4, 4, 1e-5
    c.log_every, c.val_every, c.checkpoint_every, c.picture_every, c.val_batches = 5, 20, 20, 40, 2
    c.keep_best = 2
  return c


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  variant = variant or '512_dpt'
  if variant in STAGES:
    return _stage(variant, demo=False)
  if variant == 'demo':  # the three stages in a row, tiny, on synthetic static scenes made in the workdir
    c = ml_collections.ConfigDict()
    c.mode = 'train_stages'
    c.init_checkpoint = 'tests/fixtures/croco_tiny_dec10.pth'  # a tiny CroCo v2, converted for stage 1
    c.stage_order = tuple(STAGES)    # (a ConfigDict sorts its keys)
    c.stages = ml_collections.ConfigDict({name: _stage(name, demo=True) for name in STAGES})
    return c
  raise ValueError(f'configs/dust3r.py: unknown variant {variant!r}; choose one of {sorted(STAGES)} or "demo"')
