"""bfloat16 on the CPU backend: one warning line before anything compiles.

XLA's CPU compiler (jaxlib 0.12.1, its LLVM) aborts the whole process on x86 machines whose vector ISA
stops at AVX2 (no AVX-512: e.g. AMD EPYC Rome/Milan, most Intel desktop parts) when it emits a bfloat16
transpose whose new minor dimension is 5 or 6 elements long (`LLVM ERROR: Cannot select: v8bf16 =
X86ISD::VBROADCAST` in a `transpose_copy_fusion`): the attention's v of an image with 5 or 6 patches is one.
AVX-only and AVX-512 code generation (`--xla_cpu_max_isa=AVX` / `AVX512`) builds the same program. An abort
cannot be caught, so an explicit `dtype='bfloat16'` on a CPU gets a warning naming the CPU first; 'auto'
picks float32 there (`pretrained.runtime_defaults`), which is also the CPU's fast path.
"""
import functools
import logging
import os
import re

import jax


def _cpuinfo() -> str:
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      return f.read()
  except OSError:
    return ''


def _field(cpuinfo: str, name: str) -> str:
  match = re.search(rf'^{name}\s*:\s*(.*)$', cpuinfo, re.MULTILINE)
  return match.group(1).strip() if match else ''


def isa_level(cpuinfo: str, xla_flags: str) -> str:
  """The x86 vector ISA XLA's CPU compiler targets: 'avx512', 'avx2', 'older' or 'unknown' (not Linux/x86).

  The CPU's own flags (/proc/cpuinfo), capped by `--xla_cpu_max_isa` in XLA_FLAGS where it is set."""
  flags = set(_field(cpuinfo, 'flags').split())
  if not flags:
    return 'unknown'
  level = 'avx512' if 'avx512f' in flags else 'avx2' if 'avx2' in flags else 'older'
  cap = re.search(r'--xla_cpu_max_isa=(\w+)', xla_flags)
  if cap:
    capped = cap.group(1).upper()
    if capped in ('SSE4_2', 'AVX'):
      level = 'older'
    elif capped == 'AVX2' and level == 'avx512':
      level = 'avx2'
  return level


def describe_cpu(cpuinfo: str | None = None, xla_flags: str | None = None) -> str:
  """'AMD EPYC 7B12, avx2, no avx512f': the CPU model and the ISA level XLA compiles for."""
  cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
  xla_flags = os.environ.get('XLA_FLAGS', '') if xla_flags is None else xla_flags
  level = isa_level(cpuinfo, xla_flags)
  isa = {'avx512': 'avx512f', 'avx2': 'avx2, no avx512f', 'older': 'no avx2', 'unknown': 'flags unknown'}[level]
  capped = ' (capped by --xla_cpu_max_isa)' if '--xla_cpu_max_isa' in xla_flags else ''
  return f"{_field(cpuinfo, 'model name') or 'unknown CPU'}, {isa}{capped}"


def bfloat16_cpu_message(dtype: str, cpuinfo: str | None = None, xla_flags: str | None = None) -> str | None:
  """The warning for `dtype` on a CPU backend (None where there is nothing to say)."""
  if dtype != 'bfloat16':
    return None
  cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
  xla_flags = os.environ.get('XLA_FLAGS', '') if xla_flags is None else xla_flags
  cpu = describe_cpu(cpuinfo, xla_flags)
  fix = "float32 is the CPU choice: dtype='float32' (or 'auto', which picks it on a CPU)"
  if isa_level(cpuinfo, xla_flags) == 'avx2':
    return (f"dtype='bfloat16' on the CPU backend ({cpu}): XLA's CPU compiler aborts the whole process on "
            "some bfloat16 shapes of this ISA ('LLVM ERROR: Cannot select ... v8bf16 = X86ISD::VBROADCAST'), "
            f'with no Python error to catch; {fix}')
  return f"dtype='bfloat16' on the CPU backend ({cpu}): bfloat16 is meant for GPUs here; {fix}"


@functools.cache
def warn_if_bfloat16_on_cpu(dtype: str) -> None:
  """Log the warning once per process and dtype, when JAX's default backend is the CPU."""
  message = bfloat16_cpu_message(dtype)
  if message and jax.default_backend() == 'cpu':
    logging.warning(message)
