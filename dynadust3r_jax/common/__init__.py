"""The bottom layer (../shared/DESIGN.md "Which part may import which"): what several layers share and which
imports nothing of the project, so that data/, the model's users, the metrics, the losses and the jobs all
import it from here and nothing points back up (pinned by the import-linter contracts of pyproject.toml).

  geometry          numpy geometry: rigid inverse, transforms, projection, Umeyama, quaternions,
                    OpenCV↔OpenGL axes, pixel-index ↔ pixel-edge coordinates
  torch_checkpoint  the safe `.pth` reader (no torch, no code from the file)
  video             video decoding (decord, frame by frame) and the crop-resize of a frame
  tum               TUM trajectory files
  motion_terms      the names of DynaDUSt3R's four motion targets, shared by its losses and its metrics

One subpackage rather than modules scattered at the package's top: the contract names one place, and a new
shared piece goes here only if it too imports nothing of the project.
"""
