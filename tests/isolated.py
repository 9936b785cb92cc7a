"""Checks that can abort the process, run in a fresh interpreter so that an abort fails one test, not a worker.

XLA's CPU compiler aborts (SIGABRT, `LLVM ERROR: ...`) on some bfloat16 programs where it generates AVX2
code (`dynadust3r_jax/model/cpu_bfloat16.py`); such an abort is reported as an expected failure naming the
CPU and LLVM's message. Any other failure of the child fails the test with its stderr.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynadust3r_jax.model.cpu_bfloat16 import describe_cpu

ROOT = Path(__file__).resolve().parent.parent
AVX2 = '--xla_cpu_max_isa=AVX2'  # XLA generates AVX2 code on any x86 CPU: the ISA of the machines that abort


def run_python(code: str, *, xla_flags: str = '', timeout: float = 600) -> subprocess.CompletedProcess:
  """Run `code` (the repository root importable) in a new Python with XLA_FLAGS=xla_flags."""
  env = dict(os.environ, XLA_FLAGS=xla_flags, PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout, check=False)


def stdout_or_xfail(proc: subprocess.CompletedProcess, xla_flags: str = '') -> str:
  """The child's stdout; its compiler abort an xfail naming the CPU and LLVM's message; else a failure."""
  lines = proc.stderr.splitlines()
  llvm = next((line for line in lines if line.startswith('LLVM ERROR')), None)
  if proc.returncode != 0 and llvm:
    where = next((line for line in lines if line.startswith('In function')), '')
    pytest.xfail(f'XLA CPU compiler aborted on {describe_cpu(xla_flags=xla_flags)}: {llvm} {where}')
  assert proc.returncode == 0, f'child exited with {proc.returncode}:\n{proc.stderr[-4000:]}'
  return proc.stdout
