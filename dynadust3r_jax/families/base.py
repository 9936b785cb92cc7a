"""The model-family interface: everything that differs between DUSt3R, DynaDUSt3R, D4RT (and a family added later).

A job looks its family up once (`families.of(cfg)`, `families.for_arch(arch)`, `families.for_training(config)`)
and asks it; it never tests which family it holds. A family is one module of this package defining a subclass
of `Family` and registering one instance of it (`families.register`), plus its network under `model/`.

    family = families.of(cfg)
    model = family.build(cfg, seed)               # an nnx.Module with `.cfg`
    loss, metrics = family.train_loss(config)(model, batch)
"""
import dataclasses
from typing import Callable

from flax import nnx

# every batch carries it: how many samples the pipeline replaced (the step sums it)
SKIP_KEY = 'num_skipped'


@dataclasses.dataclass
class Reconstruction:
  """What a family's reconstruct path hands the reconstruct job (inference/reconstruct.py)."""
  scene: object                  # an inference.scene.Scene (or a subclass)
  imgs: list                     # the views the scene holds (DUSt3R duplicates a single image)
  pairs: list = dataclasses.field(default_factory=list)   # the image pairs inferred (none for clip models)
  summary: dict = dataclasses.field(default_factory=dict)  # the family's own summary.json entries
  motion: Callable | None = None  # () -> motion records (inference/motion.py), called after post-processing


@dataclasses.dataclass
class Conversion:
  """What a family makes of a PyTorch checkpoint (convert/checkpoint.py writes it as a model directory)."""
  cfg: object                    # the architecture to convert into
  tensors: dict                  # PyTorch-style key → array in the model's layout, what convert/params.plan maps
  fresh: tuple = ()              # parameter-path prefixes that may keep their fresh initialisation (seed)
  unused: tuple = ()             # tensor-key prefixes that may go unused
  ignored: list = dataclasses.field(default_factory=list)  # source keys read and deliberately dropped
  notes: list = dataclasses.field(default_factory=list)    # for the summary line


class Family:
  """Defaults shared by every family; a family overrides what is its own."""
  arch: str = ''                 # its config.json "arch" (one per family); what logs and summaries call the model
  config_family: str = ''        # the training config's `config.model_family` value that selects config_class
  config_class: type = None      # its config dataclass (model/config.py ConfigFields: from_dict, architecture())
  data_kinds: tuple = ()         # config.data.kind values it trains on (train/datasets.py)
  input_keys: tuple = ()         # batch entries its forward reads
  target_keys: tuple = ()        # batch entries its loss and validation read
  predicts_motion: bool = False  # 3D motion outputs (scene flow, tracks): motion metrics and exports apply
  protocols: tuple = ()          # evaluation protocols its checkpoints run (evaluation/evaluate.py PROTOCOLS)
  source_archs: tuple = ()       # architectures of the PyTorch checkpoints it converts (convert/sources.Source.arch)

  # --- configs ----------------------------------------------------------------------------------------------

  @property
  def batch_keys(self) -> tuple:
    """What the training step reads (moved to the devices; the rest of a batch stays on the host)."""
    return (*self.input_keys, *self.target_keys, SKIP_KEY)

  def check_training_config(self, config, cfg):
    """One error for a training config this family cannot run (cfg: config.model read by config_class)."""
    kind = config.data.get('kind', 'stereo4d')
    if kind not in self.data_kinds:
      raise ValueError(f'config.data.kind={kind!r} for a {self.arch} model (config.model_family / config.model.arch): '
                       f'it trains on {self.data_kinds or "no data kind"}')

  def data_options(self, cfg) -> dict:
    """Options of its data kind that the model config owns (train/datasets.make passes them to the pipeline)."""
    del cfg
    return {}

  def describe(self, cfg) -> str:
    """One line for logs: the model and its runtime options."""
    return f'{self.arch} ({cfg.dtype}, attention {cfg.attention_impl})'

  def describe_architecture(self, cfg) -> str:
    """The architecture in one line (the converter's summary)."""
    return self.arch

  # --- networks ---------------------------------------------------------------------------------------------

  def build(self, cfg, seed: int = 0) -> nnx.Module:
    """The network for cfg with freshly initialised parameters."""
    raise NotImplementedError(self.arch)

  def abstract(self, cfg) -> nnx.Module:
    """The network's structure with ShapeDtypeStruct parameters (no memory, no compute)."""
    return nnx.eval_shape(lambda: self.build(cfg))

  def for_inference(self, cfg):
    """cfg as a loaded model runs it (DUSt3R: the inference patch embedding)."""
    return cfg

  def conversion(self, source, model: str | None) -> Conversion:
    """A checkpoint of one of `source_archs` (convert/sources.Source) as this family's model; `model`: the
    converter's --model (another architecture to load it into), None for the checkpoint's own."""
    raise NotImplementedError(self.arch)

  # --- training ---------------------------------------------------------------------------------------------

  def forward(self, model, batch):
    """The network on a training batch."""
    raise NotImplementedError(self.arch)

  def loss_fn(self, config):
    """(outputs, batch) -> (loss, metrics), the loss of this training config."""
    raise NotImplementedError(self.arch)

  def validation_fn(self, config):
    """(outputs, batch) -> metrics that validation adds to the loss terms."""
    del config
    return lambda outputs, batch: {}

  def train_loss(self, config):
    """(model, batch) -> (loss, metrics): what the training step differentiates."""
    loss = self.loss_fn(config)
    return lambda model, batch: loss(self.forward(model, batch), batch)

  def validation(self, config):
    """(model, batch) -> metrics: the loss terms, the validation metrics and 'loss'."""
    loss, extra = self.loss_fn(config), self.validation_fn(config)

    def metrics(model, batch):
      outputs = self.forward(model, batch)
      value, terms = loss(outputs, batch)
      return dict(terms, **extra(outputs, batch), loss=value)
    return metrics

  def pictures(self, graphdef):
    """draw(params, validation batch, PNG path, step, val_loss) -> the figure's (H, W, 3) uint8 pixels."""
    raise NotImplementedError(self.arch)

  # --- reconstruction ---------------------------------------------------------------------------------------

  def check_inference(self, config):
    """One error where a loaded model of this family cannot run the reconstruct or evaluate job."""

  def check_reconstruct(self, config):
    """One error for a reconstruct config this family cannot run (before the images load)."""

  def reconstruct(self, config, model, imgs, stages) -> Reconstruction:
    """The images (load_images' views) → an aligned scene; `stages(name)` times each of its stages."""
    raise NotImplementedError(self.arch)

  # --- evaluation (evaluation/evaluate.py and its protocols; `model`: a model handle, pretrained.Predictor) ---

  def check_evaluate(self, config, cfg, protocol: str):
    """One error for an evaluate config this family's checkpoint (cfg: its config.json) cannot run, before the
    weights load; the protocol is one of `protocols`."""

  def predict_pairs(self, model, examples, pairs, opened, *, size: int, square_ok: bool, batch_size: int,
                    with_motion: bool) -> tuple[dict, dict]:
    """(pred1, pred2) stacked (B, H, W, ...) for the pairs protocol's examples of frame pairs `pairs` of the opened
    sequence (evaluation/pair_protocol.py); size, square_ok: how the examples' images were processed."""
    raise NotImplementedError(self.arch)

  def reconstruct_frames(self, model, imgs, *, scene_graph: str, niter: int, lr: float, schedule: str,
                         batch_size: int):
    """A Scene of a sequence's processed frames for the video and pose protocols (no motion, no exports)."""
    raise NotImplementedError(self.arch)
