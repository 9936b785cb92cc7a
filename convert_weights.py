"""Convert a PyTorch CroCo / DUSt3R checkpoint into a directory that `dynadust3r_jax.load_model` loads.

  python convert_weights.py --input=DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth --output=ckpt/dust3r_512_dpt
  python convert_weights.py --input=hf_model_folder/ --output=ckpt/x        # config.json + model.safetensors
  # initialise another architecture from a checkpoint the way DUSt3R's training does (CroCo → DUSt3R:
  # dec_blocks copied into dec_blocks2, heads freshly initialised with --seed):
  python convert_weights.py --input=CroCo_V2_ViTLarge_BaseDecoder.pth --output=ckpt/dust3r_init \
      --model="AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(224, 224), head_type='linear', ...)"

No PyTorch needed, and nothing in the checkpoint's pickle is imported or run (see
dynadust3r_jax/convert/torch_checkpoint.py). Every source key is mapped or on the documented ignore
list (dynadust3r_jax/convert/params.py); errors name the file, the key and both shapes.
"""
import os
import sys

from absl import app, flags, logging
from flax import nnx

from dynadust3r_jax import console, pretrained

from dynadust3r_jax.convert import params as conversion
from dynadust3r_jax.convert.constructor import parse_constructor
from dynadust3r_jax.convert.sources import make_config, read_source
from dynadust3r_jax.convert.torch_checkpoint import CheckpointError
from dynadust3r_jax.model import abstract_model, build_model
from dynadust3r_jax.pretrained import param_count

LOG_FILE = 'convert.log'  # inside the output directory

flags.DEFINE_string('input', None, 'PyTorch checkpoint (.pth) or Hugging Face model folder.')
flags.DEFINE_string('output', None, 'Output directory (config.json + orbax params/).')
flags.DEFINE_string('model', None, 'Optional target constructor string: load the checkpoint into this '
                    'architecture the way DUSt3R training does (missing heads freshly initialised).')
flags.DEFINE_integer('seed', 0, 'Seed of the fresh parameters when --model leaves some uninitialised.')
flags.DEFINE_bool('overwrite', False, 'Replace an existing output directory.')
flags.DEFINE_bool('verbose', False, 'Print every log line on the console (third-party INFO included); the '
                  f'full log is in OUTPUT/{LOG_FILE} either way.')

# With --model, parameters that may be left to their fresh initialisation and source tensors that
# may go unused (DUSt3R `load_state_dict(strict=False)` when starting a new head).
_HEADS = ('downstream_head', 'prediction_head', 'motion_head')


def describe(cfg) -> str:
  kind = {'CroCoNet': 'CroCo v2', 'DynaDUSt3R': f'DynaDUSt3R, time embedding {cfg.time_pos_emb_dim}'}.get(
      cfg.arch, f'DUSt3R {cfg.head_type} head')
  return (f'{cfg.arch} ({kind}; encoder {cfg.enc_depth}x{cfg.enc_embed_dim}/{cfg.enc_num_heads}h, '
          f'decoder {cfg.dec_depth}x{cfg.dec_embed_dim}/{cfg.dec_num_heads}h)')


def convert(input_path: str, output_dir: str, *, model: str | None = None, seed: int = 0,
            overwrite: bool = False) -> str:
  """Convert and save; returns the summary line. Raises CheckpointError for user errors."""
  if not os.path.exists(input_path):
    raise CheckpointError(f'{input_path}: no such file or directory')
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
    raise CheckpointError(f'{output_dir}: output directory is not empty (use --overwrite to replace it)')
  source = read_source(input_path)
  allow = ()
  if not model:
    cfg = source.config()
  else:
    try:
      arch, kwargs = parse_constructor(model)
    except ValueError as e:
      raise CheckpointError(f'--model: {e}') from None
    cfg = make_config(arch, kwargs, source.state_dict, '--model')
    allow = _HEADS
  shapes = {k: v.shape for k, v in source.state_dict.items()}
  target = abstract_model(cfg)
  p = conversion.plan(shapes, target, source_name=input_path, allow_missing=allow, allow_unused=allow)
  flat = conversion.apply_plan(p, source.state_dict, source_name=input_path)
  if p.missing:  # only with --model: a fresh model, overwritten with what the checkpoint has
    model = build_model(cfg, seed)
    conversion.assign(model, flat)
    flat = {path: v[...] for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  n_keys = len(source.state_dict)
  used = len({k for a in p.assignments for k in a.sources})
  fresh = f', {len(p.missing)} parameters freshly initialised (seed {seed})' if p.missing else ''
  notes = ''.join(f'; {n}' for n in p.notes)
  summary = (f'converted {input_path}: {describe(cfg)}, {param_count(target):,} parameters; {n_keys} keys: '
             f'{used} mapped, {len(p.aliases)} aliases, {len(p.ignored)} ignored{fresh}{notes} -> {output_dir}')
  # Written aside and moved into place whole, with its log (orbax's INFO lines included) inside.
  with pretrained.staged_directory(output_dir, overwrite) as staging:
    with console.log_file(os.path.join(staging, LOG_FILE)):
      pretrained.write_pretrained(staging, cfg, flat)
      logging.info('%s', summary, extra=console.FILE_ONLY)
  return summary


def main(argv):
  del argv
  console.setup(verbose=flags.FLAGS.verbose)
  if not flags.FLAGS.input or not flags.FLAGS.output:
    sys.exit('convert_weights: give --input=CHECKPOINT and --output=DIR')
  try:
    print(convert(flags.FLAGS.input, flags.FLAGS.output, model=flags.FLAGS.model, seed=flags.FLAGS.seed,
                  overwrite=flags.FLAGS.overwrite))
  except CheckpointError as e:
    sys.exit(f'convert_weights: {e}')


if __name__ == '__main__':
  app.run(main)
