"""Reconstruction: images or a video → cameras, depth, points (DUSt3R's demo pipeline, spec dust3r.md §1.2, §3).

  python main.py --config=configs/reconstruct.py --config.checkpoint=ckpt/dust3r_512_dpt \
      --config.inputs=photos/ --workdir=out/photos
  python main.py --config=configs/reconstruct.py --config.checkpoint=runs/x --config.inputs=clip.mp4 \
      --config.frame_stride=5 --config.max_frames=40 --config.scene_graph=swin-5 --workdir=out/clip
  python main.py --config=configs/reconstruct.py:demo --workdir=runs/reconstruct_demo  # after the training demo
  python main.py --config=configs/reconstruct.py:d4rt_demo --workdir=runs/reconstruct_d4rt  # after configs/d4rt.py:demo

`checkpoint` is a converted model directory (convert_weights.py) or a training workdir (its best
checkpoint). `inputs` is a folder of images, a glob, one image or a video file; a glob that matches videos
takes the first. Two images are aligned by DUSt3R's PairViewer, more by the global alignment. A D4RT
checkpoint reads the frames as one video (clips of its num_frames, `d4rt.*`) and needs no pairs or alignment.
"""
import ml_collections


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.mode = 'reconstruct'
  c.checkpoint = ''                 # converted model directory or training workdir
  c.inputs = ''                     # folder, glob, image or video
  c.image_size = 512                # DUSt3R's load_images size: 512 (long side) or 224 (short side, square crop)
  c.square_ok = False               # keep square crops square (else 4:3, as DUSt3R)
  c.frame_stride = 1                # videos: every k-th frame
  c.max_frames = 0                  # videos: at most this many frames (0: all)
  c.dtype = 'auto'                  # backbone compute dtype: 'auto' = bfloat16 on GPU, float32 on CPU
  c.attention_impl = 'auto'         # 'auto' = cudnn on GPU, xla on CPU; or xla / cudnn / pallas
  c.batch_size = 8                  # pairs per inference batch
  c.mesh = ml_collections.ConfigDict(dict(devices=-1))  # devices of the job (every host's) the pairs and edges split over
  c.compile_cache_dir = 'default'   # JAX's persistent compilation cache: 'default' (~/.cache/dynadust3r_jax/jax), a path, '' off
  c.query_times = (0.5, 1.0, 0.0)   # DynaDUSt3R: [t_mid, t_view2, t_view1] per pair (view 1 at 0, view 2 at 1)

  c.scene_graph = 'complete'        # complete, swin-K[-noncyclic], logwin-K[-noncyclic], oneref-R
  c.prefilter = ''                  # '', seqK or cycK

  c.known_cameras = ''              # a cameras.json-format file: known K (original size) / cam_to_world per image
  c.align = ml_collections.ConfigDict()
  c.align.niter = 300
  c.align.lr = 0.01
  c.align.schedule = 'cosine'       # cosine or linear (DUSt3R's demo uses linear, its README cosine)
  c.align.init = 'mst'
  c.align.edge_chunk = 16           # edges per chunk of the loss (memory grows with it, not with the edges)
  c.align.memory_budget_gb = 0.0    # refuse graphs whose alignment would need more; 0 = the device's memory

  c.d4rt = ml_collections.ConfigDict()  # D4RT checkpoints (inference/d4rt_scene.py)
  c.d4rt.overlap = -1               # frames shared by consecutive clips (-1: a quarter of the clip, at least 1)
  c.d4rt.top_fraction = 0.85        # the most confident points of an overlap that fit the clips' Sim(3) (App. B)
  c.d4rt.grid = 32                  # the grid x grid queries of the pose and focal estimates (spec §8)
  c.d4rt.chunk = 4096               # queries per jitted decoder call (memory, not results)

  c.min_conf_thr = 3.0              # on the raw confidence (>= 1): points kept in the exports
  c.clean_depth = True              # DUSt3R's clean_pointcloud (its demo default)
  c.mask_sky = False                # DUSt3R's colour-rule sky mask → confidence 0
  c.exports = ('cameras', 'colmap', 'glb', 'ply', 'transforms', 'tum', 'intrinsics', 'frames',
               'motion')            # motion: DynaDUSt3R's scene flow under motion/ (skipped for DUSt3R models)
  c.as_pointcloud = False           # GLB: points instead of a per-pixel mesh
  c.cam_size = 0.05                 # GLB camera size

  if variant == 'demo':  # the training demo's model on one of its synthetic test videos (64x64 frames)
    c.checkpoint = 'runs/demo'
    c.inputs = 'runs/demo/synthetic/lefteye-perspective/test/*.mp4'
    c.image_size, c.square_ok = 64, True
    c.frame_stride, c.max_frames = 4, 5
    c.scene_graph = 'swin-2'
    c.align.niter = 100
    c.min_conf_thr = 1.1           # the 200-step demo model's confidences are ~1.0-1.4
  elif variant == 'd4rt_demo':  # the D4RT demo's model (configs/d4rt.py:demo) on one of its test videos
    c.checkpoint = 'runs/d4rt_demo'
    c.inputs = 'runs/d4rt_demo/synthetic/lefteye-perspective/test/*.mp4'
    c.image_size, c.square_ok = 64, True
    c.min_conf_thr = 1.0           # keep every point (D4RT's confidence is 1 + exp(.) > 1)
  elif variant:
    raise ValueError(f'configs/reconstruct.py: unknown variant {variant!r}; choose "", "demo" or "d4rt_demo"')
  return c
