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
import sys

from absl import app, flags

from dynadust3r_jax import console
from dynadust3r_jax.convert.checkpoint import LOG_FILE, convert
from dynadust3r_jax.convert.torch_checkpoint import CheckpointError

__all__ = ['convert']

flags.DEFINE_string('input', None, 'PyTorch checkpoint (.pth) or Hugging Face model folder.')
flags.DEFINE_string('output', None, 'Output directory (config.json + orbax params/).')
flags.DEFINE_string('model', None, 'Optional target constructor string: load the checkpoint into this '
                    'architecture the way DUSt3R training does (missing heads freshly initialised).')
flags.DEFINE_integer('seed', 0, 'Seed of the fresh parameters when --model leaves some uninitialised.')
flags.DEFINE_bool('overwrite', False, 'Replace an existing output directory.')
flags.DEFINE_bool('verbose', False, 'Print every log line on the console (third-party INFO included); the '
                  f'full log is in OUTPUT/{LOG_FILE} either way.')


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
