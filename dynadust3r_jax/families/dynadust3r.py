"""DynaDUSt3R: DUSt3R plus time-conditioned motion heads (query times per pair), trained on Stereo4D with
the six-term loss; validation adds the median-scaled structure and motion metrics (evaluation/depth_motion.py).
Reconstruction: DUSt3R's, with config.query_times per pair; the motion becomes world scene flow
(inference/motion.py): scene.motion / motion_target per image, and the records of WORKDIR/motion/."""
import functools

from dynadust3r_jax.common.motion_terms import MOTION_QUERIES
from dynadust3r_jax.evaluation import dynadust3r_metrics
from dynadust3r_jax.families.dust3r import DUSt3R, _pair_loss
from dynadust3r_jax.inference import motion
from dynadust3r_jax.losses import dynadust3r_loss

MOTION_TARGETS = tuple(f'{p}_{n}' for p in ('target', 'valid') for n in MOTION_QUERIES)


class DynaDUSt3R(DUSt3R):
  arch = 'DynaDUSt3R'
  data_kinds = ('stereo4d',)
  predicts_motion = True
  input_keys = (*DUSt3R.input_keys, 'query_times')
  target_keys = (*DUSt3R.target_keys, *MOTION_TARGETS)

  def kind(self, cfg) -> str:
    return f'DynaDUSt3R, time embedding {cfg.time_pos_emb_dim}'

  def forward(self, model, batch):
    return model(*self.views(batch), batch['query_times'])

  def loss_fn(self, config):
    return functools.partial(_pair_loss, dynadust3r_loss, config.loss_alpha)

  def validation_fn(self, config):
    del config
    return lambda outputs, batch: dynadust3r_metrics(*outputs, batch)

  def query_times(self, config, num_pairs):
    return motion.pair_query_times(num_pairs, config.query_times)

  def pair_motion(self, config, output, scene, query_times, known_poses):
    def flows():
      # global_align fixes the pairwise scales' geometric mean unless >= 2 poses are known (then they are free)
      records = motion.scene_flows(output, scene, query_times, norm_pw_scale=len(known_poses) <= 1)
      scene.motion, scene.motion_target = motion.per_image_motion(records, len(scene.imgs),
                                                                  [d.shape for d in scene.depthmaps])
      return records
    return flows


FAMILY = DynaDUSt3R()
