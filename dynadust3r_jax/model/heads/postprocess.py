"""Head output → 3D points and confidence (`dust3r/heads/postprocess.py`), in float32."""
import jax
import jax.numpy as jnp


def reg_dense_depth(xyz, mode):
  """xyz (..., 3). 'exp': direction of xyz with radius expm1(|xyz|); 'square': radius |xyz|^2."""
  name, _, _ = mode  # bounds are (-inf, inf), checked by ModelConfig.validate
  if name == 'linear':
    return xyz
  # sqrt of a clamped sum of squares: same value as the norm (the clamp is far below the 1e-8 below)
  # but a finite gradient at xyz = 0.
  d = jnp.sqrt(jnp.maximum(jnp.sum(xyz * xyz, axis=-1, keepdims=True), 1e-30))
  direction = xyz / jnp.maximum(d, 1e-8)
  return direction * (jnp.square(d) if name == 'square' else jnp.expm1(d))


def reg_dense_conf(x, mode):
  """'exp': vmin + exp(x) (clipped at vmax - vmin); 'sigmoid': (vmax - vmin) * sigmoid(x) + vmin."""
  name, vmin, vmax = mode
  if name == 'exp':
    return vmin + jnp.minimum(jnp.exp(x), vmax - vmin)
  return (vmax - vmin) * jax.nn.sigmoid(x) + vmin


def postprocess(out, depth_mode, conf_mode):
  """out (B, H, W, 3 or 4) → {'pts3d': (B, H, W, 3), 'conf': (B, H, W)}."""
  out = out.astype(jnp.float32)
  res = {'pts3d': reg_dense_depth(out[..., 0:3], depth_mode)}
  if conf_mode:
    res['conf'] = reg_dense_conf(out[..., 3], conf_mode)
  return res
