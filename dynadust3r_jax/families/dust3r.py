"""DUSt3R (AsymmetricCroCo3DStereo): two views → two pointmaps with confidences; Regr3D + ConfLoss.

Trains on Stereo4D pairs (DynaDUSt3R's data, the motion targets unused) or DUSt3R's posed multi-view data;
validation adds DUSt3R's test criterion (Regr3D_ScaleShiftInv, as test_loss) and, for multi-view batches of
every pair in both orders, the pairs' relative pose accuracy (RRA@15, RTA@15, mAA@30). Reconstruction:
pairs (make_pairs, symmetrized) → batched inference → PairViewer for two images, else the global alignment.
"""
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from dynadust3r_jax import distributed
from dynadust3r_jax.common.torch_checkpoint import CheckpointError
from dynadust3r_jax.convert.constructor import parse_constructor
from dynadust3r_jax.convert.sources import make_config
from dynadust3r_jax.evaluation import pair_protocol
from dynadust3r_jax.evaluation.pair_pose import pair_pose_metrics
from dynadust3r_jax.families.base import Conversion, Family, Reconstruction
from dynadust3r_jax.inference.export import read_known_cameras
from dynadust3r_jax.inference.global_align import global_align, memory_bytes
from dynadust3r_jax.inference.inference import inference
from dynadust3r_jax.inference.pair_viewer import pair_viewer
from dynadust3r_jax.inference.pairs import duplicate_if_single, make_pairs
from dynadust3r_jax.losses import dust3r_loss, scale_shift_inv_loss
from dynadust3r_jax.model import ModelConfig, build_model

# With --model, parameters that may be left to their fresh initialisation and source tensors that may go unused
# (DUSt3R's `load_state_dict(strict=False)` when starting a new head).
HEADS = ('downstream_head', 'prediction_head', 'motion_head')


class DUSt3R(Family):
  arch = 'AsymmetricCroCo3DStereo'
  config_family = 'dust3r'
  config_class = ModelConfig
  data_kinds = ('stereo4d', 'multiview')
  input_keys = ('img1', 'img2', 'true_shape1', 'true_shape2')
  target_keys = ('pts3d1', 'pts3d2', 'valid1', 'valid2', 'camera_pose1', 'camera_pose2')
  protocols = ('pairs', 'video', 'relative_pose')

  def describe(self, cfg) -> str:
    return f'{self.arch} ({cfg.head_type} head, {cfg.dtype}, attention {cfg.attention_impl})'

  def kind(self, cfg) -> str:
    """What the model is, in words (the converter's summary)."""
    return f'DUSt3R {cfg.head_type} head'

  def describe_architecture(self, cfg) -> str:
    return (f'{cfg.arch} ({self.kind(cfg)}; encoder {cfg.enc_depth}x{cfg.enc_embed_dim}/{cfg.enc_num_heads}h, '
            f'decoder {cfg.dec_depth}x{cfg.dec_embed_dim}/{cfg.dec_num_heads}h)')

  @property
  def source_archs(self) -> tuple:
    return (self.arch,)  # its own checkpoints (the constructor string or tensor shapes say which: sources.py)

  def conversion(self, source, model):
    """The checkpoint's own architecture, or --model's (any of ModelConfig's: CroCo → DUSt3R initialises the
    heads freshly and leaves CroCo's prediction head unused)."""
    if not model:
      return Conversion(source.config(), source.state_dict)
    try:
      arch, kwargs = parse_constructor(model)
    except ValueError as e:
      raise CheckpointError(f'--model: {e}') from None
    return Conversion(make_config(arch, kwargs, source.state_dict, '--model'), source.state_dict, fresh=HEADS,
                      unused=HEADS)

  def build(self, cfg, seed: int = 0):
    return build_model(cfg, seed)

  def for_inference(self, cfg):
    return cfg.for_inference()

  def views(self, batch):
    """The two views of a batch, with their true_shape where the batch has them (the multi-view data's
    portrait views are stored transposed)."""
    return tuple({'img': batch[f'img{v}'], **({'true_shape': batch[f'true_shape{v}']} if f'true_shape{v}' in batch
                                              else {})} for v in (1, 2))

  def forward(self, model, batch):
    return model(*self.views(batch))

  def loss_fn(self, config):
    return functools.partial(_pair_loss, dust3r_loss, config.loss_alpha)

  def validation_fn(self, config):
    pair_poses = config.data.get('kind', 'stereo4d') == 'multiview' and config.data.both_orders

    def metrics(outputs, batch):
      test_loss, details = scale_shift_inv_loss(*outputs, batch)
      out = dict(details, test_loss=test_loss)
      return dict(out, **pair_pose_metrics(*outputs, batch)) if pair_poses else out
    return metrics

  def pictures(self, graphdef):
    from dynadust3r_jax.train.pictures import save_pictures  # pylint: disable=import-outside-toplevel (matplotlib)
    predict = jax.jit(lambda params, batch: self.forward(nnx.merge(graphdef, params), batch))

    def draw(params, batch, path, step, val_loss):
      res1, _ = jax.device_get(predict(params, {k: jnp.asarray(v) for k, v in batch.items() if k in self.input_keys}))
      return save_pictures(path, batch, res1, step, val_loss)
    return draw

  def query_times(self, config, num_pairs):
    """Per-pair query times of the inference (None: the model takes none)."""
    del config, num_pairs

  def pair_motion(self, config, output, scene, query_times, known_poses):
    """() -> motion records of the aligned scene (None: no motion)."""
    del config, output, scene, query_times, known_poses

  def reconstruct(self, config, model, imgs, stages) -> Reconstruction:
    if len(imgs) == 1:
      imgs = duplicate_if_single(imgs)
      logging.info('one image: duplicated (monocular), as DUSt3R does')
    # before the inference: a wrong file fails in a second, not after the whole inference
    known_intrinsics, known_poses = read_known_cameras(config.known_cameras, imgs) if config.known_cameras else (
        {}, {})
    mesh = distributed.edge_mesh(config.mesh.devices)  # None: one device
    with stages('pairs'):
      pairs = make_pairs(imgs, config.scene_graph, config.prefilter or None, symmetrize=True)
      logging.info('pairs: %d (scene_graph %s%s, symmetrized)', len(pairs), config.scene_graph,
                   f', prefilter {config.prefilter}' if config.prefilter else '')
      _check_memory(config, imgs, pairs, 1 if mesh is None else mesh.size)
    with stages('inference'):
      query_times = self.query_times(config, len(pairs))
      output = inference(pairs, model, batch_size=config.batch_size, query_times=query_times, mesh=mesh)
    with stages('alignment'):
      if len(imgs) == 2 and not (known_intrinsics or known_poses):
        scene = pair_viewer(output, min_conf_thr=config.min_conf_thr)
        logging.info('alignment: PairViewer (two images, no optimisation)')
      else:
        a = config.align
        scene = global_align(output, niter=a.niter, lr=a.lr, schedule=a.schedule, init=a.init,
                             min_conf_thr=config.min_conf_thr, edge_chunk=a.edge_chunk,
                             known_intrinsics=known_intrinsics, known_poses=known_poses, mesh=mesh)
        logging.info('alignment: %d iterations, loss %.5g -> %.5g%s', a.niter, scene.losses[0], scene.losses[-1],
                     f'; known: {len(known_intrinsics)} intrinsics, {len(known_poses)} poses'
                     if config.known_cameras else '')
    return Reconstruction(scene, imgs, pairs,
                          motion=self.pair_motion(config, output, scene, query_times, known_poses))

  def predict_pairs(self, model, examples, pairs, opened, *, size, square_ok, batch_size, with_motion):
    del pairs, opened, size, square_ok  # each example holds both processed frames
    return pair_protocol.predict_pairs(examples, model, batch_size=batch_size, with_motion=with_motion)

  def reconstruct_frames(self, model, imgs, *, scene_graph, niter, lr, schedule, batch_size):
    """The symmetrized pair graph, batched inference and the global alignment from the MST init."""
    output = inference(make_pairs(imgs, scene_graph, None, symmetrize=True), model, batch_size=batch_size,
                       progress=False)
    return global_align(output, niter=niter, lr=lr, schedule=schedule, init='mst')


def _memory_budget(config) -> float:
  if config.align.memory_budget_gb:
    return config.align.memory_budget_gb * 2 ** 30
  stats = jax.local_devices()[0].memory_stats() or {}
  if 'bytes_limit' in stats:
    return stats['bytes_limit']
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def _check_memory(config, imgs, pairs, devices):
  area = max(int(np.prod(v['true_shape'][0])) for v in imgs)
  need = memory_bytes(len(imgs), len(pairs), area, config.align.edge_chunk, devices)
  budget = _memory_budget(config)
  if len(imgs) > 2 and need > budget:
    raise ValueError(f'config.scene_graph={config.scene_graph!r}: {len(pairs)} pairs of {len(imgs)} images need '
                     f'~{need / 2 ** 30:.1f} GiB per device for the global alignment over {devices} device(s), '
                     f'more than the budget of {budget / 2 ** 30:.1f} GiB (config.align.memory_budget_gb); use a '
                     'sparser graph (swin-K, logwin-K, oneref), fewer/smaller images or more devices '
                     '(config.mesh.devices)')


def _pair_loss(loss, alpha, outputs, batch):
  return loss(*outputs, batch, alpha)


FAMILY = DUSt3R()
