"""Parse a PyTorch constructor string such as `ckpt['args'].model` safely (ast, never eval).

    parse_constructor("AsymmetricCroCo3DStereo(pos_embed='RoPE100', depth_mode=('exp', -inf, inf))")
    → ('AsymmetricCroCo3DStereo', {'pos_embed': 'RoPE100', 'depth_mode': ('exp', -inf, inf)})

Only literals are accepted (numbers, strings, tuples/lists/dicts of them, True/False/None, inf).
"""
import ast
import math

_NAMES = {'inf': math.inf, 'True': True, 'False': False, 'None': None}


def _literal(node, text):
  if isinstance(node, ast.Constant):
    return node.value
  if isinstance(node, ast.Name) and node.id in _NAMES:
    return _NAMES[node.id]
  if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
    value = _literal(node.operand, text)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return -value if isinstance(node.op, ast.USub) else value
  if isinstance(node, (ast.Tuple, ast.List)):
    items = [_literal(e, text) for e in node.elts]
    return tuple(items) if isinstance(node, ast.Tuple) else items
  if isinstance(node, ast.Dict):
    return {_literal(k, text): _literal(v, text) for k, v in zip(node.keys, node.values)}
  raise ValueError(f'not a literal: {ast.get_source_segment(text, node)!r}')


def parse_constructor(text: str) -> tuple[str, dict]:
  """'Name(k=v, ...)' → (Name, {k: v}). Raises ValueError for anything but keyword literals."""
  try:
    tree = ast.parse(text.strip(), mode='eval').body
  except SyntaxError as e:
    raise ValueError(f'not a constructor call: {text!r} ({e.msg})') from None
  if not isinstance(tree, ast.Call) or not isinstance(tree.func, (ast.Name, ast.Attribute)):
    raise ValueError(f'not a constructor call: {text!r}')
  if tree.args:
    raise ValueError(f'positional arguments are not supported: {text!r}')
  name = tree.func.id if isinstance(tree.func, ast.Name) else tree.func.attr
  kwargs = {}
  for kw in tree.keywords:
    if kw.arg is None:
      raise ValueError(f'**kwargs are not supported: {text!r}')
    kwargs[kw.arg] = _literal(kw.value, text)
  return name, kwargs
