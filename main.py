"""dynadust3r_jax entry point.

  python main.py --config=configs/stereo4d.py:demo --workdir=runs/demo
  python main.py --config=configs/stereo4d.py --workdir=runs/x --config.data.root=/data/stereo4d
  python main.py --config=configs/reconstruct.py --config.checkpoint=DIR --config.inputs=PATH --workdir=out

`--config` is an ml_collections config file (with an optional `:variant`), any field overridable as
`--config.a.b=value`; `config.mode` picks the job. The same command in the same workdir resumes.
The console shows progress bars, the job's summary lines and warnings; the full log (third-party INFO
lines included) is appended to WORKDIR/<mode>.log, and `--verbose` prints it all on the console too.
"""
import importlib
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from dynadust3r_jax import console
from dynadust3r_jax.common.torch_checkpoint import CheckpointError

config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/stereo4d.py:demo.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics.jsonl, TensorBoard events, pictures.')
flags.DEFINE_bool('verbose', False, 'Print every log line on the console (third-party INFO included), not '
                  'only the summary lines and warnings; the full log is in WORKDIR/<mode>.log either way.')
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS
# config.mode → the job function (imported when chosen): job(config, workdir)
JOBS = {'train': 'dynadust3r_jax.train.trainer.train',
        'train_stages': 'dynadust3r_jax.train.stages.train_stages',
        'reconstruct': 'dynadust3r_jax.inference.reconstruct.reconstruct',
        'evaluate': 'dynadust3r_jax.evaluation.evaluate.evaluate'}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = FLAGS.config
  log_file = os.path.join(FLAGS.workdir, f'{config.mode}.log')
  console.setup(log_file, verbose=FLAGS.verbose)
  logging.info('main.py %s: workdir %s (full log: %s)', config.mode, FLAGS.workdir, log_file)
  if config.mode not in JOBS:
    raise SystemExit(f'main.py: config.mode={config.mode!r} is not a job; choose one of {sorted(JOBS)}')
  module, name = JOBS[config.mode].rsplit('.', 1)
  job = getattr(importlib.import_module(module), name)
  try:
    job(config, FLAGS.workdir)
  except (ValueError, FileNotFoundError, CheckpointError) as e:  # user errors: config values, paths, checkpoints
    logging.error('%s', e, extra=console.FILE_ONLY)  # the console gets it once, as the exit line
    raise SystemExit(f'main.py: {e}') from None


def parse_flags_or_exit(argv):
  """absl's flag parsing, except that an error — a typo in --config.x.y included, which ml_collections
  raises from inside the parser — ends in one line instead of a traceback."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    sys.exit(f'main.py: {e}\nPass --helpshort or --helpfull to see help on flags.')
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    message = re.sub(r'\s+', ' ', str(e).replace('\\n', ' ').replace("\\'", "'")).strip(' \'"')
    sys.exit(f'main.py: bad --config: {message}')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags_or_exit)
