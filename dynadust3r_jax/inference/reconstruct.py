"""The reconstruct job (`main.py` with configs/reconstruct.py): images or a video → an aligned scene → exports.

Stages, each with one summary line and its time in WORKDIR/summary.json: load the model; load the images
(DUSt3R's load_images); the model family's own stages (families/: DUSt3R's pairs, batched inference and
alignment, where one image is duplicated as DUSt3R's demo does; D4RT's clips joined by Sim(3)); post-processing
(clean_pointcloud, sky mask), then the family's motion records where it predicts motion (DynaDUSt3R's world scene
flow, D4RT's next-frame motion: scene.motion for frames/*.npz and, with 'motion' in config.exports, a default,
WORKDIR/motion/); exports (export_all). summary.json also holds the settings, the counts, the devices and
processes, the peak memory (the device's where it reports one, else the process's resident set) and the compile
time (`compile`: JAX's persistent cache in config.compile_cache_dir, so a rerun of the same shapes compiles
nothing: compile_cache.py).
"""
import glob
import json
import os
import resource
import time

import jax
import numpy as np
from absl import logging

from dynadust3r_jax import compile_cache, distributed
from dynadust3r_jax.inference import motion, postprocess
from dynadust3r_jax.inference.export import export_all
from dynadust3r_jax.inference.images import VIDEO_EXTENSIONS, load_images, save_originals
from dynadust3r_jax.pretrained import model_from_config

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


def _peak_memory() -> dict:
  """The largest peak of this process's devices (None where the backend reports none, as a CPU), each device's,
  and the process's resident set."""
  peaks = [(d.memory_stats() or {}).get('peak_bytes_in_use') for d in jax.local_devices()]
  return {'peak_device_bytes': max(peaks) if None not in peaks else None, 'peak_bytes_per_device': peaks,
          'peak_host_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _load_views(config):
  """(the input, its processed views, their distinct (H, W))."""
  source = _inputs(config.inputs)
  imgs = load_images(source, size=config.image_size, square_ok=config.square_ok, frame_stride=config.frame_stride,
                     max_frames=config.max_frames or None,
                     keep_original='transforms' in config.exports)  # for save_originals
  shapes = [list(s) for s in sorted({tuple(int(x) for x in v['true_shape'][0]) for v in imgs})]
  logging.info('images: %d from %s, processed to %s (H, W)', len(imgs), source, shapes)
  return source, imgs, shapes


def _postprocess(config, scene) -> float:
  """Confidence cleaning and sky masking on the scene (in place); the fraction of points kept."""
  if config.clean_depth:
    scene.conf = postprocess.clean_pointcloud(scene.conf, scene.intrinsics, scene.cam_to_world, scene.depthmaps,
                                              scene.pts3d)
  if config.mask_sky:
    scene.conf = [np.where(postprocess.segment_sky(im), 0.0, c) for im, c in zip(scene.imgs, scene.conf)]
    scene.conf = scene.conf if len({c.shape for c in scene.conf}) > 1 else np.stack(scene.conf)
  kept = float(np.mean(np.concatenate([np.ravel(m) for m in scene.masks])))
  logging.info('points kept: %.1f%% (raw confidence > %g%s%s)', 100 * kept, config.min_conf_thr,
               ', cleaned' if config.clean_depth else '', ', sky masked' if config.mask_sky else '')
  return kept


def _exports(config, scene, imgs, flows, workdir) -> dict:
  """export_all's files, the motion records (where the family has them and 'motion' is asked) and the originals
  transforms.json names: {format: path or paths}."""
  written = export_all(scene, imgs, workdir, formats=tuple(f for f in config.exports if f != 'motion'),
                       as_pointcloud=config.as_pointcloud, cam_size=config.cam_size)
  if flows is not None and 'motion' in config.exports:  # models without motion: skipped silently
    written['motion'] = motion.write_motion(scene, flows, os.path.join(workdir, 'motion'), imgs)['index']
  if 'transforms' in config.exports:  # the originals transforms.json names (images/<name>)
    save_originals(imgs, os.path.join(workdir, 'images'))
    written['images'] = os.path.join(workdir, 'images')
  logging.info('exports: %s in %s', ', '.join(written), workdir)
  return {k: v if isinstance(v, str) else [str(x) for x in v] for k, v in written.items()}


def reconstruct(config, workdir: str) -> dict:
  """Runs the job; returns (and, on process 0, writes) the summary. On a cluster every process runs it (the same
  command on every host) and computes; process 0 writes the files."""
  distributed.maybe_initialize()
  os.makedirs(workdir, exist_ok=True)
  cache_dir = compile_cache.enable(config.compile_cache_dir)
  with compile_cache.CompileTimer() as compiled:
    summary = _reconstruct(config, workdir)
  summary['compile'] = dict(compiled.summary(), cache_dir=cache_dir)
  if distributed.is_writer():
    with open(os.path.join(workdir, SUMMARY_FILE), 'w') as f:
      json.dump(summary, f, indent=1, default=str)
  logging.info('done in %.1f s (compiling %.1f s, %d of %d programs from the cache): %s',
               sum(summary['seconds'].values()), compiled.compile_seconds, compiled.hits, compiled.programs,
               os.path.join(workdir, SUMMARY_FILE))
  return summary


def _reconstruct(config, workdir: str) -> dict:
  stages = _Stages()
  with stages('model'):
    model = model_from_config(config)
  family = model.family
  family.check_reconstruct(config)
  logging.info('model: %s from %s', family.describe(model.config), config.checkpoint)
  with stages('images'):
    source, imgs, shapes = _load_views(config)
  result = family.reconstruct(config, model, imgs, stages)
  scene, imgs = result.scene, result.imgs
  with stages('postprocess'):
    kept = _postprocess(config, scene)
    flows = result.motion() if result.motion else None  # the family's motion records (inference/motion.py)
  with stages('exports'):
    written = _exports(config, scene, imgs, flows, workdir) if distributed.is_writer() else {}
  summary = {'inputs': source, 'checkpoint': config.checkpoint, 'model': family.arch,
             'images': len(imgs), 'image_shapes': shapes, 'pairs': len(result.pairs), **result.summary,
             'points_kept': kept, 'seconds': stages.seconds, 'exports': written,
             'losses': [float(scene.losses[0]), float(scene.losses[-1])] if len(scene.losses) else [],
             'devices': jax.device_count(), 'processes': jax.process_count(), **_peak_memory(),
             'config': config.to_dict()}
  return summary
