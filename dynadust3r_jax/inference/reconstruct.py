"""The reconstruct job (`main.py` with configs/reconstruct.py): images or a video → an aligned scene → exports.

Stages, each with one summary line and its time in WORKDIR/summary.json: load the model; load the images
(DUSt3R's load_images; one image is duplicated, as DUSt3R's demo does); pairs (make_pairs, symmetrized);
batched inference; alignment (PairViewer for two images, else the global alignment); post-processing
(clean_pointcloud, sky mask); exports (export_all). A DynaDUSt3R model also gets config.query_times per pair;
its motion becomes world scene flow (inference/motion.py): scene.motion for frames/*.npz and, with 'motion'
in config.exports (a default, skipped for DUSt3R models), WORKDIR/motion/. summary.json also holds the
settings, the counts and the peak memory (the device's where it reports one, else the process's resident set).
A D4RT checkpoint replaces pairs, inference and alignment by one stage, 'd4rt' (inference/d4rt_scene.py: the
video in overlapping clips, each encoded once, cameras, depth, points and next-frame motion from its queries,
clips joined by Sim(3)); post-processing and exports are the same.
"""
import glob
import json
import os
import resource
import time

import jax
import numpy as np
from absl import logging

from dynadust3r_jax.inference import d4rt_scene, motion, postprocess
from dynadust3r_jax.inference.export import export_all, read_known_cameras
from dynadust3r_jax.inference.global_align import global_align, memory_bytes
from dynadust3r_jax.inference.images import VIDEO_EXTENSIONS, load_images, save_originals
from dynadust3r_jax.inference.inference import inference
from dynadust3r_jax.inference.pair_viewer import pair_viewer
from dynadust3r_jax.inference.pairs import duplicate_if_single, make_pairs
from dynadust3r_jax.model.d4rt import D4RTConfig
from dynadust3r_jax.pretrained import load_model, runtime_defaults

SUMMARY_FILE = 'summary.json'


class _Stages:
  """Times the job's stages: `with stages('inference'): ...` logs and records the seconds."""

  def __init__(self):
    self.seconds = {}

  def __call__(self, name):
    self.name = name
    return self

  def __enter__(self):
    self.start = time.perf_counter()

  def __exit__(self, *exc):
    self.seconds[self.name] = round(time.perf_counter() - self.start, 3)


def _inputs(inputs: str):
  """A glob that matches videos means its first video; anything else goes to load_images as it is."""
  if not inputs:
    raise ValueError('config.inputs is empty: give --config.inputs=a folder of images, a glob, an image or a video')
  if glob.has_magic(inputs):
    videos = sorted(p for p in glob.glob(inputs) if p.lower().endswith(VIDEO_EXTENSIONS))
    if videos:
      return videos[0]
  return inputs


def model_from_config(config):
  """load_model(config.checkpoint) with config.dtype / attention_impl ('auto': by backend); CroCo refused."""
  dtype, attention = runtime_defaults(config.dtype, config.attention_impl)
  model = load_model(config.checkpoint, dtype=dtype, attention_impl=attention)
  if isinstance(model.config, D4RTConfig):
    return model
  if model.config.arch == 'CroCoNet':
    raise ValueError(f'config.checkpoint={config.checkpoint}: a CroCo v2 (pretraining) network has no 3D head; '
                     'give a DUSt3R or DynaDUSt3R checkpoint')
  return model


def _memory_budget(config) -> float:
  if config.align.memory_budget_gb:
    return config.align.memory_budget_gb * 2 ** 30
  stats = jax.devices()[0].memory_stats() or {}
  if 'bytes_limit' in stats:
    return stats['bytes_limit']
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def _check_memory(config, imgs, pairs):
  area = max(int(np.prod(v['true_shape'][0])) for v in imgs)
  need = memory_bytes(len(imgs), len(pairs), area, config.align.edge_chunk)
  budget = _memory_budget(config)
  if len(imgs) > 2 and need > budget:
    raise ValueError(f'config.scene_graph={config.scene_graph!r}: {len(pairs)} pairs of {len(imgs)} images need '
                     f'~{need / 2 ** 30:.1f} GiB for the global alignment, more than the budget of '
                     f'{budget / 2 ** 30:.1f} GiB (config.align.memory_budget_gb); use a sparser graph '
                     '(swin-K, logwin-K, oneref) or fewer/smaller images')


def _peak_memory() -> dict:
  stats = jax.devices()[0].memory_stats() or {}
  return {'peak_device_bytes': stats.get('peak_bytes_in_use'),
          'peak_host_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _describe(cfg) -> str:
  if isinstance(cfg, D4RTConfig):
    return f'D4RT ({cfg.num_frames}-frame clips at {cfg.img_size}², {cfg.dtype}, attention {cfg.attention_impl})'
  return f'{cfg.arch} ({cfg.head_type} head, {cfg.dtype}, attention {cfg.attention_impl})'


def _dust3r_scene(config, model, imgs, known_intrinsics, known_poses, stages):
  """Pairs → batched inference → PairViewer or global alignment: (scene, pairs, output, query_times)."""
  with stages('pairs'):
    pairs = make_pairs(imgs, config.scene_graph, config.prefilter or None, symmetrize=True)
    logging.info('pairs: %d (scene_graph %s%s, symmetrized)', len(pairs), config.scene_graph,
                 f', prefilter {config.prefilter}' if config.prefilter else '')
    _check_memory(config, imgs, pairs)
  with stages('inference'):
    dyna = model.config.arch == 'DynaDUSt3R'
    query_times = motion.pair_query_times(len(pairs), config.query_times) if dyna else None
    output = inference(pairs, model, batch_size=config.batch_size, query_times=query_times)
  with stages('alignment'):
    if len(imgs) == 2 and not (known_intrinsics or known_poses):
      scene = pair_viewer(output, min_conf_thr=config.min_conf_thr)
      logging.info('alignment: PairViewer (two images, no optimisation)')
    else:
      a = config.align
      scene = global_align(output, niter=a.niter, lr=a.lr, schedule=a.schedule, init=a.init,
                           min_conf_thr=config.min_conf_thr, edge_chunk=a.edge_chunk,
                           known_intrinsics=known_intrinsics, known_poses=known_poses)
      logging.info('alignment: %d iterations, loss %.5g -> %.5g%s', a.niter, scene.losses[0], scene.losses[-1],
                   f'; known: {len(known_intrinsics)} intrinsics, {len(known_poses)} poses'
                   if config.known_cameras else '')
  return scene, pairs, output, query_times


def _d4rt_scene(config, model, imgs, stages):
  with stages('d4rt'):
    d = config.d4rt
    scene = d4rt_scene.reconstruct_views(model, imgs, overlap=d.overlap if d.overlap >= 0 else None, grid=d.grid,
                                         chunk=d.chunk, min_conf_thr=config.min_conf_thr, top_fraction=d.top_fraction)
    logging.info('d4rt: %d clip(s) %s, scales %s', len(scene.clips), scene.clips,
                 ', '.join(f'{s:.3g}' for s in scene.clip_scales))
  return scene


def reconstruct(config, workdir: str) -> dict:
  """Runs the job; returns (and writes) the summary."""
  os.makedirs(workdir, exist_ok=True)
  stages = _Stages()
  with stages('model'):
    model = model_from_config(config)
  cfg = model.config
  is_d4rt = isinstance(cfg, D4RTConfig)
  if is_d4rt and config.known_cameras:
    raise ValueError(f'config.known_cameras={config.known_cameras}: known cameras are used by the global '
                     'alignment of DUSt3R-family models; a D4RT model predicts its own (leave it empty)')
  logging.info('model: %s from %s', _describe(cfg), config.checkpoint)
  with stages('images'):
    source = _inputs(config.inputs)
    imgs = load_images(source, size=config.image_size, square_ok=config.square_ok,
                       frame_stride=config.frame_stride, max_frames=config.max_frames or None,
                       keep_original='transforms' in config.exports)  # for save_originals
    shapes = [list(s) for s in sorted({tuple(int(x) for x in v['true_shape'][0]) for v in imgs})]
    logging.info('images: %d from %s, processed to %s (H, W)', len(imgs), source, shapes)
    if len(imgs) == 1 and not is_d4rt:
      imgs = duplicate_if_single(imgs)
      logging.info('one image: duplicated (monocular), as DUSt3R does')
  # before the inference: a wrong file fails in a second, not after the whole inference
  known_intrinsics, known_poses = read_known_cameras(config.known_cameras, imgs) if config.known_cameras else ({}, {})
  flows, pairs = None, []
  if is_d4rt:
    scene = _d4rt_scene(config, model, imgs, stages)
  else:
    scene, pairs, output, query_times = _dust3r_scene(config, model, imgs, known_intrinsics, known_poses, stages)
  with stages('postprocess'):
    if config.clean_depth:
      scene.conf = postprocess.clean_pointcloud(scene.conf, scene.intrinsics, scene.cam_to_world, scene.depthmaps,
                                                scene.pts3d)
    if config.mask_sky:
      scene.conf = [np.where(postprocess.segment_sky(im), 0.0, c) for im, c in zip(scene.imgs, scene.conf)]
      scene.conf = scene.conf if len({c.shape for c in scene.conf}) > 1 else np.stack(scene.conf)
    kept = float(np.mean(np.concatenate([np.ravel(m) for m in scene.masks])))
    logging.info('points kept: %.1f%% (raw confidence > %g%s%s)', 100 * kept, config.min_conf_thr,
                 ', cleaned' if config.clean_depth else '', ', sky masked' if config.mask_sky else '')
    if is_d4rt:  # each frame's motion to the next one, from its queries
      flows = d4rt_scene.motion_records(scene)
    elif query_times is not None:  # DynaDUSt3R: world scene flow; per image the flow to the next frame (motion.py)
      # global_align fixes the pairwise scales' geometric mean unless >= 2 poses are known (then they are free)
      flows = motion.scene_flows(output, scene, query_times, norm_pw_scale=len(known_poses) <= 1)
      scene.motion, scene.motion_target = motion.per_image_motion(flows, len(imgs), [d.shape for d in scene.depthmaps])
  with stages('exports'):
    written = export_all(scene, imgs, workdir, formats=tuple(f for f in config.exports if f != 'motion'),
                         as_pointcloud=config.as_pointcloud, cam_size=config.cam_size)
    if flows is not None and 'motion' in config.exports:  # DUSt3R models: skipped silently
      written['motion'] = motion.write_motion(scene, flows, os.path.join(workdir, 'motion'), imgs)['index']
    if 'transforms' in config.exports:  # the originals transforms.json names (images/<name>)
      save_originals(imgs, os.path.join(workdir, 'images'))
      written['images'] = os.path.join(workdir, 'images')
    logging.info('exports: %s in %s', ', '.join(written), workdir)
  summary = {'inputs': source, 'checkpoint': config.checkpoint, 'model': 'D4RT' if is_d4rt else cfg.arch,
             'images': len(imgs), 'image_shapes': shapes, 'pairs': len(pairs),
             **({'clips': [list(c) for c in scene.clips], 'clip_scales': scene.clip_scales} if is_d4rt else {}), 'points_kept': kept, 'seconds': stages.seconds,
             'exports': {k: v if isinstance(v, str) else [str(x) for x in v] for k, v in written.items()},
             'losses': [float(scene.losses[0]), float(scene.losses[-1])] if len(scene.losses) else [],
             **_peak_memory(), 'config': config.to_dict()}
  with open(os.path.join(workdir, SUMMARY_FILE), 'w') as f:
    json.dump(summary, f, indent=1, default=str)
  logging.info('done in %.1f s: %s', sum(stages.seconds.values()), os.path.join(workdir, SUMMARY_FILE))
  return summary
