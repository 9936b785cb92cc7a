"""Make the PyTorch reference fixtures in tests/fixtures/ (dev tool; CI only reads the files it writes).

usage:  /work/venv/ref/bin/python tools/make_fixtures.py tests/fixtures

The reference network is the PyPI package mini-dust3r 0.1.2, a packaged copy of the official PyTorch
DUSt3R / CroCo v2 network code. Environment (CPU only, float32):

    python3.11 -m venv /work/venv/ref
    /work/venv/ref/bin/pip install /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
    /work/venv/ref/bin/pip install --no-deps mini-dust3r==0.1.2
    /work/venv/ref/bin/pip install einops roma huggingface_hub beartype jaxtyping packaging safetensors

Modelled on /work/shared/fixtures/make_reference_fixtures.py: random but non-trivial weights (1-D params get
a deterministic perturbation, DPT conv weights a gain of 1.45), shrunk DPT widths (same modules and key names
as the official head; the widths are stored in each npz as dpt_feature_dim / dpt_last_dim / dpt_layer_dims and
can be read off the weight shapes), fixed seeds, one CPU thread, torch.no_grad(), net.eval().
Re-running reproduces every file byte for byte (checked: two runs, sha256 of every file).

Each DUSt3R fixture NAME has NAME.pth = {'model': state_dict, 'args': argparse.Namespace(model=<ctor>)} (the
official checkpoint layout; torch >= 2.6 needs weights_only=False to load it) and NAME.npz with img1, img2
(B,3,H,W) float32 in [-1,1], true_shape1/2 (B,2) int32, pts3d_1 (B,H,W,3), conf_1 (B,H,W),
pts3d_in_other_view_2, conf_2, model (ctor string) and, for DPT heads, dpt_feature_dim, dpt_last_dim,
dpt_layer_dims. See tests/fixtures/README.md for the list.

Besides writing the files, the script checks: outputs finite, conf > 1, vary over pixels; batch items equal
single-item runs; ManyAR/transpose_to_landscape outputs equal the inference path (PatchEmbedDust3R,
landscape_only=False) run on the un-transposed images; checkpoints reload (strict) to the same outputs; the
HF folder loads (missing keys = the scratch.layer_rn aliases only) and equals the .pth model of case 2.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import mini_dust3r.heads as heads_mod  # noqa: E402
import mini_dust3r.heads.dpt_head as dpt_mod  # noqa: E402
from mini_dust3r.model import AsymmetricCroCo3DStereo  # noqa: E402,F401  (eval'd below)
from mini_dust3r.croco.croco import CroCoNet  # noqa: E402,F401  (eval'd below)
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file, load_file  # noqa: E402

# mini_dust3r.croco.croco sets allow_tf32 = True at import; irrelevant on CPU, but be explicit.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
torch.set_default_dtype(torch.float32)

inf = float("inf")

# ---------------------------------------------------------------------------------------------------------
# Shrunk DPT widths (official: feature_dim=256, last_dim=128, layer_dims=[96,192,384,768]: 20M params/head).
DPT_WIDTHS = {}
DPT_GAIN = 1.45
_official_create = dpt_mod.create_dpt_head


def _create_dpt_head(net, has_conf=False):
    if not DPT_WIDTHS:
        return _official_create(net, has_conf)
    assert net.dec_depth > 9  # as the official create_dpt_head
    l2 = net.dec_depth
    ed, dd = net.enc_embed_dim, net.dec_embed_dim
    return dpt_mod.PixelwiseTaskWithDPT(
        num_channels=3 + has_conf, feature_dim=DPT_WIDTHS["feature_dim"], last_dim=DPT_WIDTHS["last_dim"],
        layer_dims=DPT_WIDTHS["layer_dims"], hooks_idx=[0, l2 * 2 // 4, l2 * 3 // 4, l2],
        dim_tokens=[ed, dd, dd, dd], postprocess=dpt_mod.postprocess, depth_mode=net.depth_mode,
        conf_mode=net.conf_mode, head_type="regression")


heads_mod.create_dpt_head = _create_dpt_head


# ---------------------------------------------------------------------------------------------------------
def dust3r_kwargs(head, patch_embed_cls, img_size, enc, dec, landscape_only=None):
    """kwargs in the order of the official constructor strings (README training commands)."""
    kw = dict(pos_embed="RoPE100", patch_embed_cls=patch_embed_cls, img_size=img_size, head_type=head,
              output_mode="pts3d", depth_mode=("exp", -inf, inf), conf_mode=("exp", 1, inf),
              enc_embed_dim=enc[0], enc_depth=enc[1], enc_num_heads=enc[2],
              dec_embed_dim=dec[0], dec_depth=dec[1], dec_num_heads=dec[2])
    if landscape_only is not None:  # what dust3r's load_model appends for inference
        kw["landscape_only"] = landscape_only
    return kw


def ctor_string(cls_name, kwargs):
    return f"{cls_name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"


LIN_ENC, LIN_DEC = (32, 2, 2), (24, 2, 2)      # (dim, depth, heads): head dims 16 / 12
DPT_ENC, DPT_DEC = (32, 2, 2), (16, 10, 2)     # head dims 16 / 8; hooks [0, 5, 7, 10]
DPT_W = dict(feature_dim=8, last_dim=4, layer_dims=[2, 4, 8, 16])
WID_ENC, WID_DEC = (32, 2, 1), (16, 12, 1)     # head dims 32 / 16; hooks [0, 6, 9, 12] (= official)
WID_W = dict(feature_dim=10, last_dim=12, layer_dims=[4, 8, 12, 16])  # last_dim != feature_dim // 2

L, P = (48, 80), (80, 48)  # ManyAR DPT: landscape / portrait true shapes (3x5 / 5x3 tokens, odd)
L2, P2 = (32, 80), (80, 32)  # ManyAR linear (2x5 / 5x2 tokens)

DUST3R = {
    # 1. inference path, linear head, different shapes per view (portrait / landscape)
    "dust3r_tiny_linear_inference": dict(
        kwargs=dust3r_kwargs("linear", "PatchEmbedDust3R", (112, 112), LIN_ENC, LIN_DEC, landscape_only=False),
        views=[dict(stored=(96, 64)), dict(stored=(64, 112))], batch=2, seed=10),
    # 2. inference path, DPT head, odd token grids (crop after refinenet4), landscape / portrait
    "dust3r_tiny_dpt_inference": dict(
        kwargs=dust3r_kwargs("dpt", "PatchEmbedDust3R", (112, 112), DPT_ENC, DPT_DEC, landscape_only=False),
        dpt=DPT_W, views=[dict(stored=(80, 112)), dict(stored=(112, 80))], batch=1, seed=20),
    # 3. training path: ManyAR_PatchEmbed + transpose_to_landscape (landscape_only=True), mixed batch, DPT
    "dust3r_tiny_dpt_manyar": dict(
        kwargs=dust3r_kwargs("dpt", "ManyAR_PatchEmbed", (80, 80), DPT_ENC, DPT_DEC),
        dpt=DPT_W, views=[dict(stored=L, true=[L, P, L, P]), dict(stored=L, true=[P, P, L, L])],
        batch=4, seed=30),
    # 4. same, linear head
    "dust3r_tiny_linear_manyar": dict(
        kwargs=dust3r_kwargs("linear", "ManyAR_PatchEmbed", (80, 80), LIN_ENC, LIN_DEC),
        views=[dict(stored=L2, true=[L2, P2, L2, P2]), dict(stored=L2, true=[P2, P2, L2, L2])],
        batch=4, seed=40),
    # 5. other widths: head dim 32 (enc) / 16 (dec), dec_depth 12, other DPT widths; same shape both views
    "dust3r_tiny_dpt_widths": dict(
        kwargs=dust3r_kwargs("dpt", "PatchEmbedDust3R", (80, 80), WID_ENC, WID_DEC, landscape_only=False),
        dpt=WID_W, views=[dict(stored=(48, 80)), dict(stored=(48, 80))], batch=2, seed=50),
}
# 7. HF folder: same architecture AND weights as case 2 (same kwargs, same seed); other inputs (same shape for
#    both views -> the encoder runs once on the concatenated batch; even 4x6 grid).
HF_NAME = "dust3r_tiny_dpt_hf"
HF_SPEC = dict(DUST3R["dust3r_tiny_dpt_inference"], views=[dict(stored=(64, 96)), dict(stored=(64, 96))],
               batch=1, img_seed=70)
# 6. CroCo v2 pretraining network
CROCO_NAME = "croco_tiny"
CROCO_KWARGS = dict(enc_embed_dim=64, enc_depth=2, enc_num_heads=4, dec_embed_dim=48, dec_depth=2,
                    dec_num_heads=4, pos_embed="RoPE100", img_size=64)
CROCO_SEED = 60
# 6b. the same CroCo with a 10-block decoder: the smallest that a DPT head accepts (DUSt3R asserts dec_depth > 9),
#     the stage-1 init of the DUSt3R recipe's demo (configs/dust3r.py:demo); weights only
CROCO_DEC10_NAME = "croco_tiny_dec10"
CROCO_DEC10_KWARGS = dict(CROCO_KWARGS, dec_depth=10)


# ---------------------------------------------------------------------------------------------------------
def save_npz(path, arrays):
    # np.savez_compressed stamps archive members with the fixed DOS epoch (1980-01-01): reproducible bytes
    np.savez_compressed(path, **arrays)


def perturb(net, seed):
    """Make the init less trivial than default (biases/norms non-zero), deterministic."""
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 1:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
            elif "downstream_head" in name and p.ndim == 4:
                p.mul_(DPT_GAIN)  # default init makes the DPT output almost constant over pixels
    return net.eval()


def build(model_str, seed):
    torch.manual_seed(seed)
    return perturb(eval(model_str), seed)


def rand_images(g, B, h, w):
    """8-bit-like images normalised as dust3r's ImgNorm (x/255 - 0.5) / 0.5: in [-1,1], compress well."""
    k = torch.randint(0, 256, (B, 3, h, w), generator=g)
    return ((k.to(torch.float32) / 255.0) - 0.5) / 0.5


def run_dust3r(net, img1, img2, ts1, ts2, tag="v"):
    B = img1.shape[0]
    # distinct instance names: never "symmetrized" (which would encode only every other item)
    v1 = dict(img=img1, true_shape=ts1, idx=list(range(B)), instance=[f"{tag}1_{j}" for j in range(B)])
    v2 = dict(img=img2, true_shape=ts2, idx=list(range(B)), instance=[f"{tag}2_{j}" for j in range(B)])
    with torch.no_grad():
        r1, r2 = net(v1, v2)
    return dict(pts3d_1=r1["pts3d"], conf_1=r1["conf"], pts3d_in_other_view_2=r2["pts3d_in_other_view"],
                conf_2=r2["conf"])


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def check_nontrivial(name, outs):
    for k, v in outs.items():
        v = np.asarray(v)
        assert np.isfinite(v).all(), (name, k)
        if k.startswith("conf"):
            assert v.min() > 1.0, (name, k, v.min())
            flat = np.log(v - 1.0).reshape(v.shape[0], -1)  # the raw head channel: conf = 1 + exp(x)
        elif k.startswith("pts3d"):
            flat = v.reshape(v.shape[0], -1, 3)
        else:  # CroCo (B, N, C): per-channel spread over tokens, averaged over channels
            flat = v.reshape(v.shape[0], v.shape[1], -1)
        # per item: spread over pixels/tokens relative to magnitude
        spread = flat.std(axis=1) / (np.abs(flat).mean(axis=1) + 1e-12)
        if spread.ndim == 2 and flat.shape[-1] > 3:
            spread = spread.mean(axis=-1)
        SPREAD[(name, k)] = float(spread.min())
        assert spread.min() > 0.05, (name, k, spread.min())


SUMMARY = []
SPREAD = {}


def summarise(name, outs):
    for k, v in outs.items():
        v = np.asarray(v)
        SUMMARY.append(f"  {name:28s} {k:21s} {str(tuple(v.shape)):17s} min {v.min():+.2e} max {v.max():+.2e} "
                       f"std {v.std():.2e} min-item-spread {SPREAD[(name, k)]:.2f}")


def to_np(d):
    return {k: v.detach().numpy() for k, v in d.items()}


def make_dust3r(outdir, name, spec, hf_dir=None):
    DPT_WIDTHS.clear()
    DPT_WIDTHS.update(spec.get("dpt", {}))
    kwargs = spec["kwargs"]
    model_str = ctor_string("AsymmetricCroCo3DStereo", kwargs)
    net = build(model_str, spec["seed"])
    g = torch.Generator().manual_seed(spec.get("img_seed", spec["seed"]) + 2000)
    B = spec["batch"]
    imgs, tss = [], []
    for v in spec["views"]:
        h, w = v["stored"]
        imgs.append(rand_images(g, B, h, w))
        tss.append(torch.tensor(v.get("true", [[h, w]] * B), dtype=torch.int32))
    outs = to_np(run_dust3r(net, imgs[0], imgs[1], tss[0], tss[1]))
    check_nontrivial(name, outs)

    # (a) every batch item alone gives the same result (no batch coupling; single-orientation head paths)
    for b in range(B):
        ob = to_np(run_dust3r(net, imgs[0][b:b + 1], imgs[1][b:b + 1], tss[0][b:b + 1], tss[1][b:b + 1]))
        for k in outs:
            e = rel_err(ob[k][0], outs[k][b])
            assert e < 1e-5, (name, "item", b, k, e)

    # (b) ManyAR + transpose_to_landscape == inference path on the un-transposed (true-orientation) images,
    #     with the weights loaded as dust3r's load_model does (ManyAR -> PatchEmbedDust3R, landscape_only=False)
    if kwargs["patch_embed_cls"] == "ManyAR_PatchEmbed":
        inf_str = model_str.replace("ManyAR_PatchEmbed", "PatchEmbedDust3R")[:-1] + ", landscape_only=False)"
        net_inf = eval(inf_str).eval()
        net_inf.load_state_dict(net.state_dict(), strict=True)
        for b in range(B):
            def orient(img, ts):
                h, w = ts[b].tolist()
                x = img[b:b + 1]
                return (x, False) if w >= h else (x.swapaxes(-1, -2), True)
            (x1, t1), (x2, t2) = orient(imgs[0], tss[0]), orient(imgs[1], tss[1])
            ob = to_np(run_dust3r(net_inf, x1, x2, torch.tensor([x1.shape[-2:]], dtype=torch.int32),
                                  torch.tensor([x2.shape[-2:]], dtype=torch.int32)))
            for k, tr in (("pts3d_1", t1), ("conf_1", t1), ("pts3d_in_other_view_2", t2), ("conf_2", t2)):
                v = ob[k][0]
                if tr:  # back to the stored (landscape) layout; xyz components are NOT permuted
                    v = v.swapaxes(0, 1)
                e = rel_err(v, outs[k][b])
                assert e < 1e-5, (name, "manyar-vs-inference", b, k, e)

    ckpt = {"model": net.state_dict(), "args": argparse.Namespace(model=model_str)}
    extra = {f"dpt_{k}": np.asarray(v) for k, v in spec.get("dpt", {}).items()}
    arrays = dict(img1=imgs[0].numpy(), img2=imgs[1].numpy(), true_shape1=tss[0].numpy(),
                  true_shape2=tss[1].numpy(), **outs, model=np.asarray(model_str), **extra)
    save_npz(os.path.join(outdir, name + ".npz"), arrays)

    if hf_dir is None:
        pth = os.path.join(outdir, name + ".pth")
        torch.save(ckpt, pth)
        # (c) the checkpoint reloads (strict) to the same outputs
        ck = torch.load(pth, map_location="cpu", weights_only=False)
        torch.manual_seed(12345)
        net2 = eval(ck["args"].model).eval()
        net2.load_state_dict(ck["model"], strict=True)
        o2 = to_np(run_dust3r(net2, imgs[0], imgs[1], tss[0], tss[1]))
        assert all(np.array_equal(o2[k], outs[k]) for k in outs), name
    else:
        write_hf(hf_dir, net, kwargs, ckpt["model"], (imgs, tss, outs))
    summarise(name, outs)
    nparams = sum(p.numel() for p in net.parameters())
    print(f"{name}: {nparams} params; {model_str}")
    return net


def write_hf(hf_dir, net, kwargs, sd, io_ref):
    """config.json exactly as PyTorchModelHubMixin.save_pretrained writes it; model.safetensors without the
    scratch.layer_rn.{0..3} aliases (safetensors' save_model keeps the sorted-first name of each shared group,
    i.e. scratch.layer{1..4}_rn, and lists the dropped names in the header metadata)."""
    os.makedirs(hf_dir, exist_ok=True)
    config = net._hub_mixin_config  # the init kwargs, built by the mixin at construction
    config_str = json.dumps(config, sort_keys=True, indent=2)  # as huggingface_hub (Infinity, tuples -> lists)
    with open(os.path.join(hf_dir, "config.json"), "w") as f:
        f.write(config_str)
    sd_hf = {k: v.contiguous() for k, v in sd.items() if ".scratch.layer_rn." not in k}
    aliases = {k: re.sub(r"\.scratch\.layer_rn\.(\d)\.", lambda m: f".scratch.layer{int(m[1]) + 1}_rn.", k)
               for k in sd if ".scratch.layer_rn." in k}
    assert all(torch.equal(sd[k], sd[v]) and v in sd_hf for k, v in aliases.items())
    st_path = os.path.join(hf_dir, "model.safetensors")
    # The mixin's save_model writes the dropped aliases as header metadata {dropped: kept}; safetensors
    # serialises a multi-key metadata map in random (hash) order, so it is not byte-reproducible. We write
    # the same tensors with the conventional single-key metadata instead.
    save_file(sd_hf, st_path, metadata={"format": "pt"})
    os.chmod(st_path, 0o644)  # safetensors creates the file 0600

    # compare with the mixin's own save_pretrained: identical config.json, identical tensors and key set
    tmp = tempfile.mkdtemp()
    try:
        net.save_pretrained(tmp)
        with open(os.path.join(tmp, "config.json"), "rb") as f1, open(os.path.join(hf_dir, "config.json"), "rb") as f2:
            assert f1.read() == f2.read(), "config.json"
        with safe_open(os.path.join(tmp, "model.safetensors"), "pt") as f:
            assert f.metadata() == aliases, f.metadata()
            ref = {k: f.get_tensor(k) for k in f.keys()}
        mine = load_file(st_path)
        assert ref.keys() == mine.keys() and all(torch.equal(ref[k], mine[k]) for k in ref)
    finally:
        shutil.rmtree(tmp)

    # the folder loads: config -> constructor, weights strict=False with only the alias keys missing
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    torch.manual_seed(54321)
    net2 = AsymmetricCroCo3DStereo(**cfg).eval()
    res = net2.load_state_dict(load_file(st_path), strict=False)
    assert not res.unexpected_keys, res.unexpected_keys
    assert res.missing_keys and all(".scratch.layer_rn." in k for k in res.missing_keys), res.missing_keys
    imgs, tss, outs = io_ref
    o2 = to_np(run_dust3r(net2, imgs[0], imgs[1], tss[0], tss[1]))
    assert all(np.array_equal(o2[k], outs[k]) for k in outs)


class FixedMask(torch.nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.mask = mask

    def forward(self, x):
        return self.mask


def make_croco(outdir):
    name = CROCO_NAME
    model_str = ctor_string("CroCoNet", CROCO_KWARGS)
    torch.manual_seed(CROCO_SEED)
    net = perturb(CroCoNet(**CROCO_KWARGS), CROCO_SEED)
    torch.manual_seed(CROCO_SEED)
    assert all(torch.equal(a, b) for a, b in zip(perturb(eval(model_str), CROCO_SEED).state_dict().values(),
                                                  net.state_dict().values()))
    g = torch.Generator().manual_seed(CROCO_SEED + 2000)
    B, S = 2, CROCO_KWARGS["img_size"]
    img1, img2 = rand_images(g, B, S, S), rand_images(g, B, S, S)
    with torch.no_grad():
        torch.manual_seed(CROCO_SEED + 3000)  # RandomMask draws with torch.rand inside forward
        out, mask1, target = net(img1, img2)
        f1, p1, _ = net._encode_image(img1, do_mask=False)
        f2, p2, _ = net._encode_image(img2, do_mask=False)
        out_nomask = net.prediction_head(net._decoder(f1, p1, None, f2, p2))
    N = net.patch_embed.num_patches
    assert mask1.shape == (B, N) and mask1.dtype == torch.bool
    assert (mask1.sum(1) == int(0.9 * N)).all()
    outs = dict(out=out.numpy(), target=target.numpy(), out_nomask=out_nomask.numpy())
    check_nontrivial(name, outs)
    assert rel_err(outs["out"], outs["out_nomask"]) > 1e-2

    ckpt = {"model": net.state_dict(), "croco_kwargs": dict(CROCO_KWARGS)}
    pth = os.path.join(outdir, name + ".pth")
    torch.save(ckpt, pth)
    ck = torch.load(pth, map_location="cpu", weights_only=True)  # plain dicts: loads with weights_only
    torch.manual_seed(777)
    net2 = CroCoNet(**ck["croco_kwargs"]).eval()
    net2.load_state_dict(ck["model"], strict=True)
    with torch.no_grad():
        # re-run the masked forward with the stored mask (replace the generator's draw)
        net2.mask_generator = FixedMask(mask1)
        o2, m2, _ = net2(img1, img2)
    assert torch.equal(m2, mask1) and np.array_equal(o2.numpy(), outs["out"])

    save_npz(os.path.join(outdir, name + ".npz"), dict(
        img1=img1.numpy(), img2=img2.numpy(), mask1=mask1.numpy(), out=outs["out"], target=outs["target"],
        out_nomask=outs["out_nomask"], model=np.asarray(model_str),
        croco_kwargs=np.asarray(json.dumps(CROCO_KWARGS))))
    summarise(name, outs)
    print(f"{name}: {sum(p.numel() for p in net.parameters())} params; {model_str}")


def make_croco_dec10(outdir):
    torch.manual_seed(CROCO_SEED)
    net = perturb(CroCoNet(**CROCO_DEC10_KWARGS), CROCO_SEED)
    ckpt = {"model": net.state_dict(), "croco_kwargs": dict(CROCO_DEC10_KWARGS)}
    pth = os.path.join(outdir, CROCO_DEC10_NAME + ".pth")
    torch.save(ckpt, pth)
    ck = torch.load(pth, map_location="cpu", weights_only=True)
    assert all(torch.equal(ck["model"][k], v) for k, v in net.state_dict().items())


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    nets = {}
    for name, spec in DUST3R.items():
        nets[name] = make_dust3r(outdir, name, spec)
    hf_net = make_dust3r(outdir, HF_NAME, HF_SPEC, hf_dir=os.path.join(outdir, HF_NAME))
    ref_sd = nets["dust3r_tiny_dpt_inference"].state_dict()
    assert ref_sd.keys() == hf_net.state_dict().keys()
    assert all(torch.equal(ref_sd[k], v) for k, v in hf_net.state_dict().items()), "HF weights != case 2"
    make_croco(outdir)
    make_croco_dec10(outdir)

    print("\nsummary of reference outputs:")
    print("\n".join(SUMMARY))
    print("\nfiles:")
    total = 0
    names = [n + ext for n in list(DUST3R) + [CROCO_NAME] for ext in (".pth", ".npz")] + [CROCO_DEC10_NAME + ".pth"]
    names += [HF_NAME + ".npz", f"{HF_NAME}/config.json", f"{HF_NAME}/model.safetensors"]
    for fn in sorted(names):
        with open(os.path.join(outdir, fn), "rb") as f:
            data = f.read()
        total += len(data)
        print(f"  {fn:36s} {len(data):9d}  sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"  total {total} bytes")


if __name__ == "__main__":
    main()
