"""D4RT on Stereo4D (spec d4rt.md §7, §12): the paper's recipe on our stack, and small variants.

  python main.py --config=configs/d4rt.py --workdir=runs/d4rt --config.data.root=/data/stereo4d
  python main.py --config=configs/d4rt.py:tiny --workdir=runs/d4rt_tiny --config.data.root=...
  python main.py --config=configs/d4rt.py:demo --workdir=runs/d4rt_demo    # synthetic clips, 2 CPU cores

The model is D4RT's (dynadust3r_jax/model/d4rt/: config.model names one of its sizes, `size`, 'g' here, 'tiny'
in the tiny/demo variants, and any D4RTConfig field that differs from the size's, e.g. img_size and num_frames;
another size: --config.model.size=L); the data are D4RT examples of
the Stereo4D clips (data/d4rt.py: config.data.d4rt are its sampling options; the clips take config.model's
num_frames and img_size); the loss is dynadust3r_jax/d4rt_losses.py with
config.d4rt_weights, every term's weight (the paper's, but λnormal = 0: Stereo4D has no normals; the keys '3d'
and '2d' are set as `--config.d4rt_weights['3d']=0.5`). AdamW (wd 0.03), 2.5k warmup steps to 1e-4, cosine to
1e-6, global gradient clip 10 (spec §7). Initialisation from VideoMAE: convert the checkpoint with
convert_weights.py, then --config.init_checkpoint=<the converted directory>.
"""
import ml_collections

def get_config(variant: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.mode = 'train'
  c.seed = 0
  c.init_checkpoint = ''
  c.model_family = 'd4rt'
  c.model = ml_collections.ConfigDict(dict(size='g', img_size=256, num_frames=48))
  c.model.dtype = 'bfloat16'
  c.model.attention_impl = 'cudnn'
  c.model.remat_policy = 'dots_no_batch'

  c.data = ml_collections.ConfigDict()
  c.data.kind = 'd4rt'
  c.data.root = ''                  # Stereo4D root: {train,test}/*.npz + lefteye-perspective/{train,test}/*.mp4
  c.data.train_split, c.data.val_split = 'train', 'test'
  c.data.max_frame_window = 60      # (find_clips: clips with fewer than 3 frames are left out)
  c.data.num_workers = 8
  c.data.d4rt = ml_collections.ConfigDict(dict(num_queries=2048, max_stride=4))  # clips: config.model's shape
  c.data.synthetic = ml_collections.ConfigDict(dict(num_clips=0, num_frames=0, size=0))  # demo only

  c.batch_size = 64                 # clips per step (the paper: 1 per chip x 64 chips)
  c.grad_accum_steps = 1
  c.num_steps = 500_000
  c.optimizer = ml_collections.ConfigDict(dict(
      learning_rate=1e-4, b1=0.9, b2=0.999, weight_decay=0.03, grad_clip=10.0,
      schedule='warmup_cosine', warmup_steps=2_500, min_learning_rate=1e-6))
  # the loss weights: the paper's (d4rt_losses.D4RT_WEIGHTS) but normal
  c.d4rt_weights = ml_collections.ConfigDict({'3d': 1.0, '2d': 0.1, 'vis': 0.1, 'disp': 0.1, 'normal': 0.0,
                                              'conf': 0.2})
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))

  c.log_every = 50
  c.val_every = 5_000
  c.val_batches = 8
  c.checkpoint_every = 5_000
  c.keep_best = 5
  c.picture_every = 5_000

  if variant in ('tiny', 'demo'):
    c.model = ml_collections.ConfigDict(dict(size='tiny', img_size=32, num_frames=8, dtype='float32',
                                             attention_impl='xla', remat_policy='none'))
    c.data.d4rt = ml_collections.ConfigDict(dict(num_queries=256, max_stride=2))
    c.data.num_workers = 0
    c.batch_size = 4
    c.num_steps = 2_000
    c.optimizer.learning_rate, c.optimizer.warmup_steps = 3e-4, 20
    c.log_every, c.val_every, c.checkpoint_every, c.picture_every, c.val_batches = 10, 100, 100, 100, 2
  if variant == 'demo':  # synthetic Stereo4D-format clips made in the workdir when no data root is given
    c.data.synthetic = ml_collections.ConfigDict(dict(num_clips=6, num_frames=24, size=64))
    c.num_steps = 200
    c.keep_best = 2
  elif variant not in ('', 'tiny'):
    raise ValueError(f'configs/d4rt.py: unknown variant {variant!r}; choose "", "tiny" or "demo"')
  return c
