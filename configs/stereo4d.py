"""DynaDUSt3R on Stereo4D (spec dynadust3r.md §e): the full recipe, and small variants.

  python main.py --config=configs/stereo4d.py --workdir=runs/x --config.data.root=/data/stereo4d \
      --config.init_checkpoint=ckpt/dynadust3r_init
  python main.py --config=configs/stereo4d.py:tiny --workdir=runs/tiny --config.data.root=...
  python main.py --config=configs/stereo4d.py:demo --workdir=runs/demo    # synthetic clips, 2 CPU cores

`init_checkpoint` is a converted DynaDUSt3R directory; make one from the official DUSt3R 512 DPT weights
the way the paper initialises (motion heads = point heads, time MLPs' last layer zero):
  python convert_weights.py --input=DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth --output=ckpt/dynadust3r_init \
      --model="DynaDUSt3R(pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', img_size=(512, 512), \
head_type='dpt', enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12, \
dec_num_heads=12, time_pos_emb_dim=256)"
"""
import ml_collections

FULL_MODEL = dict(
    arch='DynaDUSt3R', pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', img_size=(512, 512),
    head_type='dpt', enc_embed_dim=1024, enc_depth=24, enc_num_heads=16, dec_embed_dim=768, dec_depth=12,
    dec_num_heads=12, time_pos_emb_dim=256)
TINY_MODEL = dict(
    arch='DynaDUSt3R', pos_embed='RoPE100', patch_embed_cls='ManyAR_PatchEmbed', img_size=(64, 64),
    head_type='dpt', enc_embed_dim=64, enc_depth=2, enc_num_heads=2, dec_embed_dim=48, dec_depth=10,
    dec_num_heads=2, dpt_feature_dim=32, dpt_last_dim=16, dpt_layer_dims=(8, 16, 24, 32), time_pos_emb_dim=32)


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.mode = 'train'
  c.seed = 2
  c.init_checkpoint = ''            # converted DynaDUSt3R directory; '' = random initialisation

  c.model = ml_collections.ConfigDict(dict(FULL_MODEL))
  c.model.dtype = 'bfloat16'        # backbone compute dtype; heads and losses stay float32
  c.model.attention_impl = 'cudnn'
  c.model.remat_policy = 'dots_no_batch'

  c.data = ml_collections.ConfigDict()
  c.data.root = ''                  # Stereo4D root: {train,test}/*.npz + lefteye-perspective/{train,test}/*.mp4
  c.data.train_split, c.data.val_split = 'train', 'test'
  c.data.max_frame_window = 60
  c.data.hfov = 60.0
  c.data.pixel_rounding = 'floor'   # 'round' reproduces the unofficial loader (for parity with its weights)
  c.data.augment = True
  c.data.num_workers = 8            # Grain worker processes per host
  c.data.synthetic = ml_collections.ConfigDict(dict(num_clips=0, num_frames=0, size=0))  # demo only

  c.batch_size = 16                 # global, per optimiser step
  c.grad_accum_steps = 2            # micro-batches per step (scanned inside the jitted step)
  c.num_steps = 49_000              # optimiser steps
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=2e-5, b1=0.9, b2=0.95, weight_decay=0.05, grad_clip=0.0,
      schedule='constant', warmup_steps=0, min_learning_rate=0.0))
  c.loss_alpha = 0.2

  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))  # -1: all remaining devices

  c.log_every = 50
  c.val_every = 2000
  c.val_batches = 16
  c.checkpoint_every = 2000
  c.keep_best = 20                  # best checkpoints by validation loss (+ always the latest)
  c.picture_every = 2000

  if variant in ('tiny', 'demo'):
    c.model = ml_collections.ConfigDict(dict(TINY_MODEL, dtype='float32', attention_impl='xla', remat_policy='none'))
    c.batch_size, c.grad_accum_steps = 4, 1
    c.optimizer.learning_rate = 3e-4
    c.data.num_workers = 0
    c.num_steps = 2000
    c.log_every, c.val_every, c.checkpoint_every, c.picture_every, c.val_batches = 10, 100, 100, 100, 2
  if variant == 'demo':  # synthetic Stereo4D-format clips made in the workdir when no data root is given
    c.data.synthetic = ml_collections.ConfigDict(dict(num_clips=6, num_frames=24, size=64))
    c.data.augment = False
    c.num_steps = 200
    c.keep_best = 2
  elif variant not in ('', 'tiny'):
    raise ValueError(f'configs/stereo4d.py: unknown variant {variant!r}; choose "", "tiny" or "demo"')
  return c
