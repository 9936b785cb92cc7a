"""Convert a PyTorch CroCo / DUSt3R checkpoint (or a Hugging Face VideoMAE, into D4RT) into a directory that
`dynadust3r_jax.load_model` loads.

  python convert_weights.py --input=DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth --output=ckpt/dust3r_512_dpt
  python convert_weights.py --input=hf_model_folder/ --output=ckpt/x        # config.json + model.safetensors
  # initialise another architecture from a checkpoint the way DUSt3R's training does (CroCo → DUSt3R:
  # dec_blocks copied into dec_blocks2, heads freshly initialised with --seed):
  python convert_weights.py --input=CroCo_V2_ViTLarge_BaseDecoder.pth --output=ckpt/dust3r_init \
      --model="AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(224, 224), head_type='linear', ...)"
  # a Hugging Face VideoMAE folder (config.json with model_type 'videomae' + model.safetensors) → a D4RT
  # directory: the encoder from VideoMAE (architecture from config.json), the aspect-ratio token, query
  # embedding, decoder and head freshly initialised with --seed. --model picks the decoder: a D4RT size name
  # ('g', 'H', 'L', 'B', 'tiny'; default: the size with the checkpoint's encoder width) or
  # "D4RT(size='L', num_frames=48, img_size=256, dec_depth=6, ...)" (any D4RTConfig field; encoder fields
  # must agree with the checkpoint; img_size / num_frames default to the checkpoint's):
  python convert_weights.py --input=videomae-large/ --output=ckpt/d4rt_init --model="D4RT(size='L', num_frames=48)"

No PyTorch needed, and nothing in the checkpoint's pickle is imported or run (see
dynadust3r_jax/common/torch_checkpoint.py). Every source key is mapped or on the documented ignore
list (dynadust3r_jax/convert/params.py); errors name the file, the key and both shapes.
"""
import sys

from absl import app, flags

from dynadust3r_jax import console
from dynadust3r_jax.common.torch_checkpoint import CheckpointError
from dynadust3r_jax.convert.checkpoint import LOG_FILE, convert

__all__ = ['convert']

flags.DEFINE_string('input', None, 'PyTorch checkpoint (.pth) or Hugging Face model folder (DUSt3R/CroCo or '
                    'VideoMAE).')
flags.DEFINE_string('output', None, 'Output directory (config.json + orbax params/).')
flags.DEFINE_string('model', None, 'Optional target constructor string: load the checkpoint into this '
                    'architecture the way DUSt3R training does (missing heads freshly initialised). For a '
                    "VideoMAE folder: a D4RT size name or D4RT(size=..., field=value, ...) (the decoder).")
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
