"""A stand-in `torchvision` for running mini-dust3r's alignment code where torchvision is not installed.

mini_dust3r.utils.image builds `ImgNorm = Compose([ToTensor(), Normalize(...)])` at import; its cloud_opt
(global alignment, post-processing) never calls it. Used by benchmarks/align_reference.py and the fixture
tools that drive mini-dust3r's PointCloudOptimizer (tools/make_align_fixtures.py, make_postprocess_fixtures.py).
Image loading needs the real transforms: tools/make_inference_fixtures.py has a functional stand-in instead.
"""
import importlib.util
import sys
import types


def install():
  """Put the stand-in in sys.modules unless a real torchvision is importable."""
  if importlib.util.find_spec('torchvision') is not None:
    return
  tv = types.ModuleType('torchvision')
  tvf = types.ModuleType('torchvision.transforms')
  tvf.Compose = lambda fns: None
  tvf.ToTensor = lambda: None
  tvf.Normalize = lambda *a, **k: None
  tv.transforms = tvf
  sys.modules['torchvision'] = tv
  sys.modules['torchvision.transforms'] = tvf
