"""Evaluation: a checkpoint scored on the papers' benchmarks (spec evaluation.md), one variant per benchmark.

  python main.py --config=configs/evaluate.py:stereo4d --config.checkpoint=ckpt/dynadust3r \
      --config.data.root=/data/stereo4d --workdir=eval/stereo4d
  python main.py --config=configs/evaluate.py:adt --config.checkpoint=ckpt/dynadust3r \
      --config.data.root=/data/tapvid3d_dataset/adt --workdir=eval/adt
  python main.py --config=configs/evaluate.py:bonn --config.checkpoint=ckpt/dust3r_512_dpt \
      --config.data.root=/data/rgbd_bonn_dataset --workdir=eval/bonn
  python main.py --config=configs/evaluate.py:demo --workdir=runs/evaluate_demo  # after the training demo

Writes WORKDIR/results.json (every metric per sequence and aggregated, with these settings) and
WORKDIR/results.md (the aggregate beside the papers' numbers). Finished sequences are kept in
WORKDIR/sequences/ and skipped when the same command runs again.

Protocols (dynadust3r_jax/evaluation/{pair,video,co3d}_protocol.py; D4RT: d4rt_pairs.py, inference/d4rt_scene.py):
  pairs        stereo4d, adt, dynamic_replica: random frame pairs ≤ max_gap apart (fixed seed); structure
               (AbsRel, δ<1.25) and, for DynaDUSt3R and D4RT, motion (EPE3D, δ0.05, δ0.10) after a median scale.
  video        bonn, sintel: the reconstruction pipeline over the sequence; MonST3R's video depth (one
               scale & shift per sequence, LAD2) and, with poses, ATE / RPE (evo, Sim(3)).
  relative_pose co3d: 10 random frames per sequence aligned globally; RRA@15, RTA@15, mAA@30 per category.
"""
import ml_collections

BENCHMARKS = ('stereo4d', 'adt', 'dynamic_replica', 'bonn', 'sintel', 'co3d')


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.mode = 'evaluate'
  c.benchmark = variant if variant in BENCHMARKS else ''
  c.checkpoint = ''                 # converted model directory or training workdir
  c.dtype = 'auto'                  # 'auto' = bfloat16 on GPU, float32 on CPU
  c.attention_impl = 'auto'         # 'auto' = cudnn on GPU, xla on CPU
  c.batch_size = 8                  # pairs per inference batch
  c.compile_cache_dir = 'default'   # JAX's persistent compilation cache: 'default' (~/.cache/dynadust3r_jax/jax), a path, '' off
  c.max_sequences = 0               # evaluate the first N sequences only (0: all)
  c.seed = 0                        # pair / frame sampling

  c.data = ml_collections.ConfigDict()
  c.data.root = ''
  c.data.split = 'test'             # stereo4d, dynamic_replica, co3d
  c.data.sequences = ()             # names to evaluate (empty: the reader's default set)

  c.image_size = 512                # load_images size; 512x512 inputs stay square (square_ok)
  c.square_ok = True

  # pairs protocol (spec §3, §4.5): the choices the papers leave open, with the spec's defaults
  c.pairs = ml_collections.ConfigDict()
  c.pairs.per_sequence = 10         # random pairs per sequence
  c.pairs.max_gap = 30              # frames between the two views: min_gap <= t2 - t1 <= max_gap
  c.pairs.min_gap = 1               # = max_gap for a fixed gap (the unofficial ADT eval's every 30 frames)
  c.pairs.scale = 'depth_median'    # depth_median: median(z_gt)/median(z_pred) on view 1 (A);
                                    # norm_median: median ‖X_gt‖/median ‖X̂‖ (B); per_view: one s per view (C)
  c.pairs.motion_error = 'displacement'  # displacement: s·M̂ − Δ; end_position: s·(P̂+M̂) − (P+Δ)
  c.pairs.metrics = ('depth', 'motion')  # motion needs a DynaDUSt3R or D4RT checkpoint

  # video protocol (spec §6, §7): reconstruction settings and MonST3R's depth evaluation
  c.video = ml_collections.ConfigDict()
  c.video.scene_graph = 'swin-5-noncyclic'  # MonST3R's swinstride-5-noncyclic window
  c.video.niter = 300
  c.video.lr = 0.01
  c.video.schedule = 'cosine'
  c.video.max_frames = 0            # frames per sequence (0: all the reader gives)
  c.video.align = 'lad2'            # depth alignment: lad2 (MonST3R's tables), median, scale, lstsq, lad
  c.video.max_depth = 70.0
  c.video.post_clip_max = 0.0       # 0: none (Sintel: 70)
  c.video.poses = False             # also ATE / RPE against the GT trajectory

  # relative pose protocol (spec §2.4, §8.3)
  c.co3d = ml_collections.ConfigDict()
  c.co3d.num_frames = 10
  c.co3d.scene_graph = 'complete'
  c.co3d.niter = 300

  if variant == 'sintel':
    c.video.post_clip_max, c.video.poses = 70.0, True
  elif variant == 'demo':  # the training demo's model on its synthetic Stereo4D test clips
    c.benchmark = 'stereo4d'
    c.checkpoint = 'runs/demo'
    c.data.root = 'runs/demo/synthetic'
    c.pairs.per_sequence = 4
    c.batch_size = 4
  elif variant not in BENCHMARKS + ('',):
    raise ValueError(f'configs/evaluate.py: unknown variant {variant!r}; choose one of {BENCHMARKS} or "demo"')
  return c
