"""Correctness on the device, before any timing: the fused RoPE attention kernel and the model's three
attention implementations, checked with the helpers the CPU tests use (dynadust3r_jax/testing.py).

  python -m benchmarks.correctness            # GPU: the Mosaic GPU kernels (sm_90), DUSt3R-like shapes
  python -m benchmarks.correctness --small    # CPU-sized: the generic twin in interpret mode

One JSON line per check, {"bench": "correctness", "check", "case", "max_rel_err", "threshold", "ok", ...}
(or {"skipped": reason}); the exit status is 1 when a check fails. Checks:
  kernel   `rope_attention` (default backend: Mosaic GPU on a GPU) forward and gradients dq, dk, dv against
           `rope_attention_reference` in float32 on the same bf16 inputs: self, cross, ragged lengths,
           head dims 32/64/128; fresh random inputs (the seed is in the line); the CPU tests' tolerance
  parity   the converted fixture tests/fixtures/shared/dust3r_tiny_dpt.pth ('xla', float32, 'highest'
           matmuls) against its PyTorch reference outputs (the parity tests' tolerance)
  model    bf16 outputs of attention_impl 'xla', 'cudnn' and 'pallas' against 'xla' in float32, on that
           fixture (head dim 16: the Mosaic GPU kernels need a multiple of 32, so 'pallas' is skipped
           there on a GPU) and on a random-weight tiny DUSt3R with DUSt3R's head dim 64; 'xla' must be
           within XLA_BF16_TOL, 'cudnn' and 'pallas' within twice the error of 'xla' (at least 1e-2)
Errors are max |got - ref| / max |ref| over all outputs.
"""
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

import dynadust3r_jax
from benchmarks.common import print_row
from convert_weights import convert
from dynadust3r_jax.model import ModelConfig, abstract_model, build_model
from dynadust3r_jax.pretrained import Predictor
from dynadust3r_jax.testing import (ATTENTION_TOL, attention_errors, attention_inputs, fixture_views, out_and_grads,
                                    reference_out_and_grads, relative_error)
from pallas_kernels.rope_attention import rope_attention

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests', 'fixtures')
FIXTURE = 'shared/dust3r_tiny_dpt'
PARITY_TOL = 1e-4          # tests/test_model_parity.py
# bf16 network outputs against float32: 'xla' within XLA_BF16_TOL, 'cudnn' / 'pallas' within twice the
# error of 'xla' in bf16 on the same inputs (at least MODEL_BF16_FLOOR): no worse than XLA's own rounding
XLA_BF16_TOL, MODEL_BF16_FLOOR = 0.1, 1e-2
# (case, Nq, Nk, D, B, H)
KERNEL_CASES = {
    'gpu': [('self', 1024, 1024, 64, 2, 4), ('cross', 768, 1024, 64, 2, 4), ('self-ragged', 200, 200, 64, 2, 2),
            ('cross-ragged', 130, 300, 32, 2, 2), ('self-ragged-d128', 196, 196, 128, 1, 2)],
    'small': [('self-ragged', 40, 40, 64, 1, 2), ('cross', 96, 40, 32, 1, 2), ('cross-ragged', 40, 100, 64, 1, 2)],
}
TINY_HEAD_DIM_64 = dict(arch='AsymmetricCroCo3DStereo', pos_embed='RoPE100', patch_embed_cls='PatchEmbedDust3R',
                        img_size=(64, 96), head_type='dpt', enc_embed_dim=128, enc_depth=2, enc_num_heads=2,
                        dec_embed_dim=128, dec_depth=10, dec_num_heads=2, dpt_feature_dim=32, dpt_last_dim=16,
                        dpt_layer_dims=(8, 16, 24, 32), landscape_only=False)


def _fresh_seed() -> int:
  return int(np.random.SeedSequence().generate_state(1)[0])


def kernel_checks(cases, emit) -> bool:
  ok_all = True
  for case, nq, nk, d, b, h in cases:
    seed = _fresh_seed()
    row = dict(bench='correctness', check='kernel', case=case, impl='rope_attention', B=b, Nq=nq, Nk=nk, H=h, D=d,
               dtype='bfloat16', seed=seed, threshold=ATTENTION_TOL[jnp.bfloat16])
    inputs = attention_inputs(seed, nq, nk, d, jnp.bfloat16, b=b, h=h)
    try:
      errors = attention_errors(jax.jit(lambda *a: out_and_grads(rope_attention, *a))(*inputs),
                                reference_out_and_grads(*inputs))
    except Exception as e:  # noqa: BLE001 - a kernel that does not compile or run fails its check
      errors = {'error': f'{type(e).__name__}: {str(e)[:300]}'}
    err = errors.pop('error', None) or max(errors.values())
    ok = isinstance(err, float) and err <= row['threshold']
    emit(dict(row, errors=errors, max_rel_err=err, ok=ok))
    ok_all &= ok
  return ok_all


def _with_runtime(model: Predictor, **runtime) -> Predictor:
  """The same parameters under another dtype / attention implementation."""
  graphdef, _ = nnx.split(abstract_model(model.config.replace(**runtime)))
  return Predictor(nnx.merge(graphdef, model.state))


def _outputs(res):
  res1, res2 = res
  return [res1['pts3d'], res1['conf'], res2['pts3d_in_other_view'], res2['conf']]


def _max_error(got, want):
  try:
    return max(relative_error(g, w) for g, w in zip(_outputs(got), want))
  except AssertionError as e:  # not finite
    return str(e)


def _agreement(model: Predictor, views, case, emit, *, want=None, unsupported_ok=False) -> bool:
  """bf16 outputs of the three attention implementations against `want`: 'xla' in float32. An
  implementation that raises is skipped when unsupported_ok (a shape it does not take), else fails."""
  on_gpu = jax.default_backend() == 'gpu'
  if want is None:
    with jax.default_matmul_precision('highest'):
      want = _outputs(_with_runtime(model, dtype='float32', attention_impl='xla')(*views))
  ok_all, threshold = True, XLA_BF16_TOL
  for impl in ('xla', 'cudnn', 'pallas'):
    row = dict(bench='correctness', check='model', case=case, impl=impl, dtype='bfloat16', threshold=threshold)
    if impl == 'cudnn' and not on_gpu:
      emit(dict(row, skipped='needs a GPU (cuDNN)'))
      continue
    try:
      err = _max_error(_with_runtime(model, dtype='bfloat16', attention_impl=impl)(*views), want)
    except Exception as e:  # noqa: BLE001 - e.g. the Mosaic GPU kernels' head dim (a multiple of 32)
      if unsupported_ok:
        emit(dict(row, skipped=f'{type(e).__name__}: {str(e)[:200]}'))
        continue
      err = f'{type(e).__name__}: {str(e)[:300]}'
    ok = isinstance(err, float) and err <= threshold
    emit(dict(row, max_rel_err=err, ok=ok))
    ok_all &= ok
    if impl == 'xla' and ok:
      threshold = max(2 * err, MODEL_BF16_FLOOR)
  return ok_all


def model_checks(emit) -> bool:
  with tempfile.TemporaryDirectory() as tmp:
    convert(os.path.join(FIXTURES, FIXTURE + '.pth'), tmp, overwrite=True)
    model = dynadust3r_jax.load_model(tmp)
  ref = np.load(os.path.join(FIXTURES, FIXTURE + '.npz'))
  views = fixture_views(ref)
  with jax.default_matmul_precision('highest'):
    f32 = model(*views)
  err = _max_error(f32, [ref['pts3d_1'], ref['conf_1'], ref['pts3d_in_other_view_2'], ref['conf_2']])
  ok = isinstance(err, float) and err <= PARITY_TOL
  emit(dict(bench='correctness', check='parity', case=FIXTURE, impl='xla', dtype='float32', max_rel_err=err,
            threshold=PARITY_TOL, ok=ok))
  ok &= _agreement(model, views, FIXTURE, emit, want=_outputs(f32), unsupported_ok=True)
  tiny = Predictor(build_model(ModelConfig.from_dict(TINY_HEAD_DIM_64), seed=0))
  rng = np.random.default_rng(_fresh_seed())
  h, w = TINY_HEAD_DIM_64['img_size']
  views = [{'img': rng.uniform(-1, 1, (2, h, w, 3)).astype(np.float32)} for _ in range(2)]
  return _agreement(tiny, views, 'tiny-random-head-dim-64', emit) & ok


def run(*, small=None, emit=print_row) -> bool:
  """All checks; True when every one passed. small: CPU-sized kernel cases (default: off a GPU)."""
  small = jax.default_backend() != 'gpu' if small is None else small
  return kernel_checks(KERNEL_CASES['small' if small else 'gpu'], emit) & model_checks(emit)


def main(argv):
  del argv
  sys.exit(0 if run(small=flags.FLAGS.small or None) else 1)


if __name__ == '__main__':
  flags.DEFINE_bool('small', False, 'CPU-sized kernel cases (the default off a GPU).')
  app.run(main)
