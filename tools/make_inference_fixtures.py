"""Make the reconstruction-input reference fixtures (load_images, make_pairs) in tests/fixtures/ (dev tool).

usage:  /work/venv/ref/bin/python tools/make_inference_fixtures.py tests/fixtures

Reference: mini-dust3r 0.1.2 (`mini_dust3r.utils.image.load_images`, `mini_dust3r.image_pairs.make_pairs`),
whose load_images equals the official one for patch 16 and whose make_pairs equals the official one for
complete / swin-K (cyclic) / oneref-R and the seq/cyc prefilters (spec/dust3r.md §7). Environment: the venv of
tools/make_fixtures.py (torch CPU, mini-dust3r, pillow, numpy, opencv).

mini_dust3r.utils.image imports torchvision only for `ImgNorm = Compose([ToTensor(), Normalize(.5, .5)])`.
When torchvision is not installed, this script puts a stand-in module in sys.modules that does what
torchvision does for an 8-bit RGB PIL image: uint8 (H,W,3) → permute to (3,H,W) → float32 → div(255) →
sub(0.5) → div(0.5) (torchvision's ToTensor and Normalize code paths, float32 throughout). Everything else
(EXIF transpose, resize filters, crop) is mini-dust3r's code running on PIL.

Writes (fixed seeds; re-running reproduces every file byte for byte):
  inference_images/  a_landscape.png (600x360 RGB), b_portrait.jpg (300x500), c_square.png (200x200),
                     d_small_gray.png (90x50, mode L), e_exif.jpg (stored 240x160 with EXIF Orientation=6,
                     i.e. shown as 160x240)
  inference_load_images.npz  for each case in CASES (size / square_ok), with the folder loaded in sorted
                     order: {case}_names (N,) str, {case}_true_shape (N,2) int32, {case}_sha256_{k} (0-d str)
                     = sha256 of image k's img[0] as (H,W,3) C-contiguous float32 bytes (the full exact check),
                     {case}_rows_{k} (8,W,3) uint8 = round((img+1)·127.5) of rows 0..3 and H//2-2..H//2+1 (to
                     measure a difference; lossless: the script checks that ImgNorm of the 8-bit image gives
                     back mini's float img bit for bit), {case}_corner_{k} (3,8,8) float32 = mini's img[0,:,:8,:8]
  inference_pairs.json  {"<graph>|<N>|<symmetrize 0/1>|<prefilter or none>": [[idx1, idx2], ...] or
                     "error"} for N = 1..8, graphs complete, swin, swin-1..4, oneref, oneref-0..N-1; symmetrize
                     both ways without prefilter, and seq1 seq2 cyc1 cyc2 with symmetrize
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import torch  # noqa: E402


def _install_torchvision_standin():
    try:
        import torchvision.transforms  # noqa: F401
        return False
    except ImportError:
        pass

    class ToTensor:
        def __call__(self, pic):
            a = np.array(pic, np.uint8, copy=True)  # (H,W,3)
            return torch.from_numpy(a).permute(2, 0, 1).contiguous().to(torch.float32).div(255)

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = mean, std

        def __call__(self, t):
            mean = torch.as_tensor(self.mean, dtype=t.dtype).view(-1, 1, 1)
            std = torch.as_tensor(self.std, dtype=t.dtype).view(-1, 1, 1)
            return t.clone().sub_(mean).div_(std)

    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

        def __call__(self, x):
            for t in self.transforms:
                x = t(x)
            return x

    tv = types.ModuleType("torchvision")
    tvt = types.ModuleType("torchvision.transforms")
    tvt.ToTensor, tvt.Normalize, tvt.Compose = ToTensor, Normalize, Compose
    tv.transforms = tvt
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tvt
    return True


STANDIN = _install_torchvision_standin()
from mini_dust3r.image_pairs import make_pairs  # noqa: E402
from mini_dust3r.utils.image import load_images  # noqa: E402

CASES = {"s512": dict(size=512, square_ok=False), "s224": dict(size=224, square_ok=False),
         "s512sq": dict(size=512, square_ok=True)}
IMAGES_DIR = "inference_images"


def pattern(seed, h, w, channels=3):
    """Sums of sinusoids (random frequencies, phases), uint8 (h,w,channels): structure for the resize
    filters at every scale, and no noise so that the PNGs stay small."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w, channels))
    for c in range(channels):
        for _ in range(3):
            fx, fy = rng.uniform(0.01, 0.12, size=2)
            ph = rng.uniform(0, 2 * np.pi)
            out[..., c] += np.sin(fx * x + fy * y + ph)
    out = 128 + 40 * out
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def write_images(folder):
    os.makedirs(folder, exist_ok=True)
    PIL.Image.fromarray(pattern(1, 360, 600)).save(os.path.join(folder, "a_landscape.png"))
    PIL.Image.fromarray(pattern(2, 500, 300)).save(os.path.join(folder, "b_portrait.jpg"), quality=90)
    PIL.Image.fromarray(pattern(3, 200, 200)).save(os.path.join(folder, "c_square.png"))
    PIL.Image.fromarray(pattern(4, 50, 90, 1)[..., 0], mode="L").save(os.path.join(folder, "d_small_gray.png"))
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    PIL.Image.fromarray(pattern(5, 160, 240)).save(os.path.join(folder, "e_exif.jpg"), quality=90,
                                                   exif=exif.tobytes())


def img_norm(u8):
    return torch.from_numpy(u8.copy()).permute(2, 0, 1).to(torch.float32).div(255).sub(0.5).div(0.5)


def load_image_arrays(folder):
    arrays = {}
    for case, kw in CASES.items():
        imgs = load_images(folder, verbose=False, **kw)
        names = sorted(n for n in os.listdir(folder))
        assert len(imgs) == len(names)
        arrays[f"{case}_names"] = np.array(names)
        arrays[f"{case}_true_shape"] = np.concatenate([d["true_shape"] for d in imgs]).astype(np.int32)
        for k, d in enumerate(imgs):
            assert d["idx"] == k and d["instance"] == str(k)
            x = d["img"][0]  # (3,H,W) float32
            assert x.dtype == torch.float32 and tuple(x.shape[1:]) == tuple(d["true_shape"][0])
            u8 = np.round((x.numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
            assert torch.equal(img_norm(u8), x), (case, k)  # uint8 storage is lossless
            nhwc = np.ascontiguousarray(x.numpy().transpose(1, 2, 0))  # (H,W,3) float32
            arrays[f"{case}_sha256_{k}"] = np.array(hashlib.sha256(nhwc.tobytes()).hexdigest())
            h = u8.shape[0]
            arrays[f"{case}_rows_{k}"] = np.concatenate([u8[:4], u8[h // 2 - 2:h // 2 + 2]])  # (8,W,3)
            arrays[f"{case}_corner_{k}"] = x[:, :8, :8].numpy().copy()
    return arrays


def pair_lists():
    out = {}
    dummy = torch.zeros(1, 3, 16, 16)
    for n in range(1, 9):
        imgs = [dict(img=dummy, true_shape=np.int32([[16, 16]]), idx=i, instance=str(i)) for i in range(n)]
        graphs = ["complete", "swin"] + [f"swin-{k}" for k in range(1, 5)] + ["oneref"]
        graphs += [f"oneref-{r}" for r in range(n)]
        for g in graphs:
            runs = [(False, None), (True, None)] + [(True, p) for p in ("seq1", "seq2", "cyc1", "cyc2")]
            for sym, pre in runs:
                key = f"{g}|{n}|{int(sym)}|{pre or 'none'}"
                try:
                    pairs = make_pairs(imgs, scene_graph=g, prefilter=pre, symmetrize=sym)
                    out[key] = [[a["idx"], b["idx"]] for a, b in pairs]
                except Exception:  # noqa: BLE001 - e.g. a prefilter on no pairs (max of an empty list)
                    out[key] = "error"
    return out


def main(outdir):
    folder = os.path.join(outdir, IMAGES_DIR)
    write_images(folder)
    np.savez_compressed(os.path.join(outdir, "inference_load_images.npz"), **load_image_arrays(folder))
    with open(os.path.join(outdir, "inference_pairs.json"), "w") as f:
        json.dump(pair_lists(), f, separators=(",", ":"))
    print(f"torchvision stand-in: {STANDIN}; PIL {PIL.__version__}; python {sys.version.split()[0]}")
    files = [os.path.join(IMAGES_DIR, n) for n in sorted(os.listdir(folder))]
    for fn in files + ["inference_load_images.npz", "inference_pairs.json"]:
        data = open(os.path.join(outdir, fn), "rb").read()
        print(f"  {fn:36s} {len(data):9d}  sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
