"""The warning an explicit bfloat16 model gets on the CPU backend (dynadust3r_jax/model/cpu_bfloat16.py)."""
import logging

from dynadust3r_jax.model import ModelConfig, abstract_model
from dynadust3r_jax.model.cpu_bfloat16 import bfloat16_cpu_message, describe_cpu, isa_level, warn_if_bfloat16_on_cpu
from dynadust3r_jax.model.d4rt import abstract_d4rt
from tests.test_d4rt_model import TINY as TINY_D4RT

EPYC_AVX2 = 'processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse4_2 avx avx2 fma\n'
EPYC_AVX512 = 'processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse4_2 avx avx2 avx512f avx512bw\n'


def test_isa_level_reads_the_flags_and_the_xla_cap():
  assert isa_level(EPYC_AVX2, '') == 'avx2'
  assert isa_level(EPYC_AVX512, '') == 'avx512'
  assert isa_level(EPYC_AVX512, '--xla_force_host_platform_device_count=8 --xla_cpu_max_isa=AVX2') == 'avx2'
  assert isa_level(EPYC_AVX512, '--xla_cpu_max_isa=AVX') == 'older'
  assert isa_level(EPYC_AVX2, '--xla_cpu_max_isa=AVX512') == 'avx2'  # a cap cannot add what the CPU lacks
  assert isa_level('', '') == 'unknown'
  assert describe_cpu(EPYC_AVX2, '') == 'AMD EPYC 7B12, avx2, no avx512f'
  assert describe_cpu(EPYC_AVX512, '--xla_cpu_max_isa=AVX2') == \
      'AMD EPYC 9B14, avx2, no avx512f (capped by --xla_cpu_max_isa)'


def test_message_names_the_abort_only_where_it_happens():
  avx2 = bfloat16_cpu_message('bfloat16', EPYC_AVX2, '')
  assert avx2.startswith("dtype='bfloat16' on the CPU backend (AMD EPYC 7B12, avx2, no avx512f): ")
  assert 'aborts the whole process' in avx2 and "dtype='float32'" in avx2
  avx512 = bfloat16_cpu_message('bfloat16', EPYC_AVX512, '')
  assert 'abort' not in avx512 and "dtype='float32'" in avx512
  assert 'aborts the whole process' in bfloat16_cpu_message('bfloat16', EPYC_AVX512, '--xla_cpu_max_isa=AVX2')
  for dtype in ('float32', 'float16'):
    assert bfloat16_cpu_message(dtype, EPYC_AVX2, '') is None


def test_building_a_bfloat16_model_on_cpu_warns_once(caplog):
  warn_if_bfloat16_on_cpu.cache_clear()
  with caplog.at_level(logging.WARNING):
    abstract_model(ModelConfig(pos_embed='RoPE100', dtype='bfloat16'))
    abstract_model(ModelConfig(pos_embed='RoPE100', dtype='bfloat16'))
    abstract_d4rt(TINY_D4RT.replace(dtype='bfloat16'))
    abstract_model(ModelConfig(pos_embed='RoPE100'))
  warned = [r.getMessage() for r in caplog.records if "dtype='bfloat16' on the CPU backend" in r.getMessage()]
  assert warned == [bfloat16_cpu_message('bfloat16')]
