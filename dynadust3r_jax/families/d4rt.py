"""D4RT: a video encoder (once per clip) and independent point queries (u, v, t_src, t_tgt, t_cam) decoded
against it; trained on D4RT examples of Stereo4D clips (data/d4rt.py) with its six-term loss (d4rt_losses.py,
the weights of config.d4rt_weights, default the paper's). Reconstruction (inference/d4rt_scene.py): the video in
overlapping clips, each encoded once; cameras, depth, points and next-frame motion from its queries; clips
joined by Sim(3)."""
import functools

from absl import logging

from dynadust3r_jax.convert import videomae
from dynadust3r_jax.convert.sources import VIDEOMAE
from dynadust3r_jax.d4rt_losses import D4RT_WEIGHTS, d4rt_loss
from dynadust3r_jax.evaluation import d4rt_pairs
from dynadust3r_jax.families.base import Conversion, Family, Reconstruction
from dynadust3r_jax.inference import d4rt_scene
from dynadust3r_jax.model.d4rt import D4RTConfig, build_d4rt

# parameters a VideoMAE checkpoint does not provide: freshly initialised (seed) and reported
FRESH = ('encoder.ar_embed.', 'query_embed.', 'decoder.', 'head.')
# data/d4rt.py options the model's config owns (data_options): {data option: D4RTConfig field}
DATA_KEYS = {'num_frames': 'num_frames', 'size': 'img_size'}


class D4RT(Family):
  arch = D4RTConfig.arch
  config_family = 'd4rt'
  config_class = D4RTConfig
  data_kinds = ('d4rt',)
  predicts_motion = True
  source_archs = (VIDEOMAE,)      # its encoder from VideoMAE (convert/videomae.py)
  protocols = ('pairs', 'video')  # pairs: d4rt_pairs.py; video: the reconstruct job's clips (d4rt_scene.py)
  input_keys = ('video', 'aspect_ratio', 'query_uv', 'query_t')
  target_keys = ('target_xyz', 'target_uv', 'target_vis', 'target_disp', 'target_normal', 'mask_3d', 'mask_uv',
                 'mask_vis', 'mask_normal')

  def check_training_config(self, config, cfg):
    """Also: a clip shape in config.data.d4rt is config.model's, config.d4rt_weights names loss terms only."""
    super().check_training_config(config, cfg)
    data = config.data.get('d4rt') or {}
    for data_key, model_key in DATA_KEYS.items():
      if data_key in data and data[data_key] != getattr(cfg, model_key):
        raise ValueError(f'config.data.d4rt.{data_key}={data[data_key]} but config.model.{model_key}='
                         f'{getattr(cfg, model_key)}: the clips take the model\'s shape (remove '
                         f'config.data.d4rt.{data_key})')
    unknown = sorted(set(config.get('d4rt_weights') or {}) - set(D4RT_WEIGHTS))
    if unknown:
      raise ValueError(f'config.d4rt_weights.{unknown[0]}: not a D4RT loss weight; choose from {sorted(D4RT_WEIGHTS)}')

  def data_options(self, cfg) -> dict:
    """The clips have the model's shape."""
    return {data_key: getattr(cfg, model_key) for data_key, model_key in DATA_KEYS.items()}

  def describe(self, cfg) -> str:
    return f'{self.arch} ({cfg.num_frames}-frame clips at {cfg.img_size}², {cfg.dtype}, attention {cfg.attention_impl})'

  def describe_architecture(self, cfg) -> str:
    return (f'{self.arch} (encoder {cfg.enc_depth}x{cfg.enc_embed_dim}/{cfg.enc_num_heads}h, tubelet '
            f'{"x".join(map(str, cfg.tubelet))}; decoder {cfg.dec_depth}x{cfg.dec_embed_dim}/{cfg.dec_num_heads}h; '
            f'{cfg.num_frames} frames at {cfg.img_size}^2)')

  def conversion(self, source, model):
    """A VideoMAE folder: the encoder from it (every key mapped or ignored), the aspect-ratio token, query
    embedding, decoder and head fresh; `model` picks the decoder (videomae.videomae_config)."""
    cfg = videomae.videomae_config(source, model)
    tensors, ignored, notes = videomae.videomae_tensors(source, cfg)
    fresh = FRESH
    if 'encoder.norm.weight' not in tensors:  # use_mean_pooling: VideoMAE's encoder has no final LayerNorm
      fresh += ('encoder.norm.',)
      notes.append('encoder.norm fresh (scale 1, bias 0): the checkpoint mean-pools, no final layernorm')
    return Conversion(cfg, tensors, fresh=fresh, ignored=ignored, notes=notes)

  def build(self, cfg, seed: int = 0):
    return build_d4rt(cfg, seed)

  def forward(self, model, batch):
    return model(*(batch[k] for k in self.input_keys))

  def loss_fn(self, config):
    weights = dict(config.get('d4rt_weights') or {}) or D4RT_WEIGHTS
    return functools.partial(_loss, weights)

  def pictures(self, graphdef):
    from dynadust3r_jax.train import d4rt_pictures  # pylint: disable=import-outside-toplevel (matplotlib)

    def draw(params, batch, path, step, val_loss):
      return d4rt_pictures.save_pictures(path, batch, d4rt_pictures.predict(graphdef, params, batch), step, val_loss)
    return draw

  def check_reconstruct(self, config):
    if config.known_cameras:
      raise ValueError(f'config.known_cameras={config.known_cameras}: known cameras are used by the global '
                       'alignment of DUSt3R-family models; a D4RT model predicts its own (leave it empty)')

  def reconstruct(self, config, model, imgs, stages) -> Reconstruction:
    with stages('d4rt'):
      d = config.d4rt
      scene = d4rt_scene.reconstruct_views(model, imgs, overlap=d.overlap if d.overlap >= 0 else None, grid=d.grid,
                                           chunk=d.chunk, min_conf_thr=config.min_conf_thr,
                                           top_fraction=d.top_fraction)
      logging.info('d4rt: %d clip(s) %s, scales %s', len(scene.clips), scene.clips,
                   ', '.join(f'{s:.3g}' for s in scene.clip_scales))
    return Reconstruction(scene, imgs, summary={'clips': [list(c) for c in scene.clips],
                                                'clip_scales': scene.clip_scales},
                          motion=lambda: d4rt_scene.motion_records(scene))

  def check_evaluate(self, config, cfg, protocol):
    if protocol == 'pairs' and config.pairs.max_gap >= cfg.num_frames:
      raise ValueError(f'config.pairs.max_gap={config.pairs.max_gap}: both frames of a pair must be in one D4RT '
                       f'clip of {cfg.num_frames} frames (the checkpoint\'s num_frames); give '
                       f'--config.pairs.max_gap<={cfg.num_frames - 1}')

  def predict_pairs(self, model, examples, pairs, opened, *, size, square_ok, batch_size, with_motion):
    del batch_size  # one encoder pass per clip window, its queries in chunks
    return d4rt_pairs.predict(examples, pairs, opened, model, size=size, square_ok=square_ok, with_motion=with_motion)

  def reconstruct_frames(self, model, imgs, *, scene_graph, niter, lr, schedule, batch_size):
    """The frames as one video (clips of the model's num_frames, a quarter overlapping, joined by Sim(3)); the
    pair graph and the alignment settings do not apply."""
    del scene_graph, niter, lr, schedule, batch_size
    return d4rt_scene.reconstruct_views(model, imgs, with_motion=False)


def _loss(weights, outputs, batch):
  return d4rt_loss(outputs, batch, weights)


FAMILY = D4RT()
