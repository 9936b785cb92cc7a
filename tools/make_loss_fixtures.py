"""Make tests/fixtures/scale_shift_inv_reference.npz, the parity fixture of DUSt3R's test criterion
`Regr3D_ScaleShiftInv(L21, gt_scale=True)` (dev tool; CI only reads the file).

usage:  /work/venv/ref/bin/python tools/make_loss_fixtures.py tests/fixtures

mini-dust3r ships no losses, so the reference here is DUSt3R's dust3r/losses.py chain written out in torch
op for op as spec dust3r.md §2 gives it (Regr3D → ShiftInv → ScaleInv, `get_joint_pointcloud_depth` and
`get_joint_pointcloud_center_scale` with torch.nanmedian, the prediction avg_dis-normalised with the GT masks,
L21 'mean' per view): what the JAX version must match is torch's nanmedian (the lower middle value) and the
order of the normalisations.

Inputs (seed 0): B=3 pairs of 6×8 pointmaps, GT with z in [2, 6], predictions = GT × a per-pair scale, a z
shift, and noise; masks with ~25 % invalid pixels (pair 2's view 2 all invalid but one pixel).
Keys: gt1, gt2, pred1, pred2 (B,H,W,3) float32, valid1, valid2 (B,H,W) bool, loss (), loss1 (), loss2 ().
"""
import os
import sys

import numpy as np
import torch

B, H, W = 3, 6, 8


def avg_dis(p1, p2, m1, m2):
  """normalize_pointcloud(..., 'avg_dis', valid1, valid2): joint mean distance, all pixels divided."""
  n1, n2 = p1.norm(dim=-1), p2.norm(dim=-1)
  total = (n1 * m1).flatten(1).sum(1) + (n2 * m2).flatten(1).sum(1)
  count = m1.flatten(1).sum(1) + m2.flatten(1).sum(1)
  z = (total / (count + 1e-8)).clip(min=1e-8)
  return p1 / z[:, None, None, None], p2 / z[:, None, None, None]


def joint_depth(z1, z2, m1, m2):
  """get_joint_pointcloud_depth: nanmedian of z over both views' valid pixels."""
  z = torch.cat([torch.where(m1, z1, torch.nan).flatten(1), torch.where(m2, z2, torch.nan).flatten(1)], 1)
  return z.nanmedian(dim=1).values


def joint_center_scale(p1, p2, m1, m2):
  """get_joint_pointcloud_center_scale: per-coordinate nanmedian centre, nanmedian distance to it."""
  pts = torch.cat([torch.where(m1[..., None], p1, torch.nan).flatten(1, 2),
                   torch.where(m2[..., None], p2, torch.nan).flatten(1, 2)], 1)  # (B, n, 3)
  centre = pts.nanmedian(dim=1, keepdim=True).values
  scale = (pts - centre).norm(dim=-1).nanmedian(dim=1).values
  return centre, scale


def scale_shift_inv(gt1, gt2, pred1, pred2, m1, m2):
  pred1, pred2 = avg_dis(pred1, pred2, m1, m2)                       # Regr3D, gt_scale=True: GT untouched
  sg, sp = joint_depth(gt1[..., 2], gt2[..., 2], m1, m2), joint_depth(pred1[..., 2], pred2[..., 2], m1, m2)
  gt1, gt2, pred1, pred2 = (x.clone() for x in (gt1, gt2, pred1, pred2))
  gt1[..., 2] -= sg[:, None, None]
  gt2[..., 2] -= sg[:, None, None]
  pred1[..., 2] -= sp[:, None, None]
  pred2[..., 2] -= sp[:, None, None]
  _, s_gt = joint_center_scale(gt1, gt2, m1, m2)
  _, s_pr = joint_center_scale(pred1, pred2, m1, m2)
  s_pr = s_pr.clip(min=1e-3, max=1e3)
  pred1, pred2 = (p * (s_gt / s_pr)[:, None, None, None] for p in (pred1, pred2))
  l1 = (pred1[m1] - gt1[m1]).norm(dim=-1).mean()
  l2 = (pred2[m2] - gt2[m2]).norm(dim=-1).mean()
  return l1 + l2, l1, l2


def main(out_dir):
  rng = np.random.default_rng(0)
  gt = rng.uniform(-1, 1, (2, B, H, W, 3)).astype(np.float32)
  gt[..., 2] = rng.uniform(2, 6, (2, B, H, W))
  scale = rng.uniform(0.3, 3, (1, B, 1, 1, 1)).astype(np.float32)
  pred = gt * scale + rng.normal(0, 0.05, gt.shape).astype(np.float32)
  pred[..., 2] += rng.uniform(-1, 1, (1, B, 1, 1)).astype(np.float32)
  valid = rng.uniform(size=(2, B, H, W)) > 0.25
  valid[1, 2] = False
  valid[1, 2, 3, 4] = True
  t = [torch.from_numpy(x) for x in (gt[0], gt[1], pred[0], pred[1])]
  loss, l1, l2 = scale_shift_inv(*t, torch.from_numpy(valid[0]), torch.from_numpy(valid[1]))
  path = os.path.join(out_dir, 'scale_shift_inv_reference.npz')
  np.savez(path, gt1=gt[0], gt2=gt[1], pred1=pred[0], pred2=pred[1], valid1=valid[0], valid2=valid[1],
           loss=loss.numpy(), loss1=l1.numpy(), loss2=l2.numpy())
  print(f'wrote {path}: loss {float(loss):.6f} ({float(l1):.6f} + {float(l2):.6f}), torch {torch.__version__}')


if __name__ == '__main__':
  main(sys.argv[1])
