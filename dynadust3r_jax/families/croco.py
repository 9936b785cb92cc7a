"""CroCo v2 (CroCoNet): the pretraining network DUSt3R starts from. It converts and loads (its encoder and
decoder initialise DUSt3R's first stage) but has no 3D head: nothing here trains or reconstructs with it."""
from dynadust3r_jax.families.base import Family
from dynadust3r_jax.families.dust3r import DUSt3R


class CroCo(DUSt3R):
  arch = 'CroCoNet'
  data_kinds = ()
  protocols = ()

  describe = Family.describe  # no head to name

  def kind(self, cfg) -> str:
    return 'CroCo v2'

  def check_inference(self, config):
    raise ValueError(f'config.checkpoint={config.checkpoint}: a CroCo v2 (pretraining) network has no 3D head; '
                     'give a DUSt3R or DynaDUSt3R checkpoint')


FAMILY = CroCo()
