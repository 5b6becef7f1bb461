"""Trains ``augcomp-tiny``: the small neural codec that ships with augcomp, for offline use and tests.

One CompressAI ``ScaleHyperprior`` with small widths is trained at a middle rate point, then fine-tuned from there
once per rate point (one model per level, lowest rate first). Training data are the natural RGB images that
scikit-image ships plus procedurally generated textures (1/f noise and shapes); nothing is downloaded.

Fixed split of the scikit-image images:

- train: astronaut, coffee, rocket, hubble_deep_field, retina, immunohistochemistry (RGB) and camera, brick,
  grass, gravel, moon, coins (grayscale, replicated to RGB);
- held out for the rate-distortion evaluation: motorcycle_left and chelsea (motorcycle_right is left out of both,
  being a near copy of motorcycle_left).

The weights are written as float16 safetensors (entropy-model quantiles and CDF tables keep their own dtype) with a
JSON of metadata next to them (the format of :func:`augcomp.codecs.weights.save_package_states`): architecture,
widths, lambdas, seed, steps, wall time, the command, and the rate-distortion points on the held-out images against
JPEG (PIL, 4:2:0, ``optimize=True``, scan bytes only).

Both files go to ``--output-dir`` (default ``results/augcomp-tiny``, never the package): written and evaluated in a
temporary folder next to it, which then replaces it in one rename, so a run killed at any point leaves the previous
weights whole. Use them with ``weights=<that folder>`` (e.g. ``codecs.get("augcomp-tiny", weights=...)``), or copy
the two files to ``augcomp/weights`` to ship them.

Run::

    accelerate launch recipes/train_codec.py          # or: python recipes/train_codec.py
    python recipes/train_codec.py --base-steps 200 --steps 50 --output-dir tiny-smoke   # a quick smoke run
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from PIL import Image
from torch import Tensor
from torchmetrics.functional import peak_signal_noise_ratio
from tqdm import tqdm

from augcomp.codecs.jpeg import scan_length
from augcomp.codecs.weights import load_into, load_package_states, save_package_states
from augcomp.experiment.io import atomic_write_text, replace_dir

TRAIN_RGB = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry")
TRAIN_GRAY = ("camera", "brick", "grass", "gravel", "moon", "coins")
HELDOUT = ("motorcycle_left", "chelsea")
NAME = "augcomp-tiny"
PAD = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.0018, 0.0035, 0.0067, 0.0130],
                   help="rate-distortion trade-off per level (loss = lambda * 255^2 * MSE + bpp), lowest rate first")
    p.add_argument("--base-lambda", type=float, default=0.0035, help="lambda of the shared base model")
    p.add_argument("--base-steps", type=int, default=2200, help="steps of the shared base model")
    p.add_argument("--steps", type=int, default=300, help="fine-tuning steps per level")
    p.add_argument("--N", type=int, default=48, help="channels of the transforms")
    p.add_argument("--M", type=int, default=64, help="channels of the latent")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=128, help="a multiple of 64")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="learning rate: constant for the base model, cosine decay to lr / 20 when fine-tuning")
    p.add_argument("--aux-lr", type=float, default=1e-3)
    p.add_argument("--synthetic-fraction", type=float, default=0.125, help="share of each batch that is synthetic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    p.add_argument("--output-dir", type=Path, default=Path("results") / NAME,
                   help="folder for the weights and their JSON, replaced as a whole (default: %(default)s; "
                        "augcomp/weights holds the shipped ones)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if an accelerator is present")
    p.add_argument("--eval-only", action="store_true",
                   help="skip training: evaluate the weights in --output-dir and refresh the metadata's RD points")
    args = p.parse_args(argv)
    if not str(args.output_dir).strip() or args.output_dir == Path():
        p.error("--output-dir must name a folder of its own (it is replaced as a whole)")
    if args.patch_size % PAD:
        p.error(f"--patch-size must be a multiple of {PAD}")
    if sorted(args.lambdas) != list(args.lambdas):
        p.error("--lambdas must be increasing (level 1 is the lowest rate)")
    return args


# ---------------------------------------------------------------------------------------------------------------
# data


def load_skimage(name: str) -> Tensor:
    """A scikit-image sample as float32 ``(3, H, W)`` in [0, 1] (grayscale is replicated, alpha dropped)."""
    from skimage import data

    if name in ("motorcycle_left", "motorcycle_right"):
        img = data.stereo_motorcycle()[0 if name.endswith("left") else 1]
    else:
        img = getattr(data, name)()
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def natural_patches(images: list[Tensor], n: int, size: int, gen: torch.Generator) -> Tensor:
    """Random crops at a random scale in [0.4, 1] (antialiased), with random flips."""
    out = []
    for _ in range(n):
        img = images[int(torch.randint(len(images), (1,), generator=gen))]
        h, w = img.shape[-2:]
        smin = max(size / min(h, w), 0.4)
        s = smin + float(torch.rand(1, generator=gen)) * (1.0 - smin) if smin < 1 else smin
        crop = min(h, w, max(size, round(size / s)))
        top = int(torch.randint(h - crop + 1, (1,), generator=gen))
        left = int(torch.randint(w - crop + 1, (1,), generator=gen))
        patch = img[:, top:top + crop, left:left + crop].unsqueeze(0)
        if crop != size:
            patch = F.interpolate(patch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if float(torch.rand(1, generator=gen)) < 0.5:
            patch = patch.flip(-1)
        if float(torch.rand(1, generator=gen)) < 0.2:
            patch = patch.flip(-2)
        out.append(patch)
    return torch.cat(out).clamp(0, 1)


def pink_noise(n: int, channels: int, size: int, gen: torch.Generator) -> Tensor:
    """Noise with a 1/f^alpha power spectrum (alpha in [1.5, 2.5], like natural images), scaled to [0, 1]."""
    fy = torch.fft.fftfreq(size).view(-1, 1)
    fx = torch.fft.rfftfreq(size).view(1, -1)
    f = torch.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    alpha = 1.5 + torch.rand(n, 1, 1, 1, generator=gen)
    amp = f.pow(-alpha / 2)
    spec = torch.complex(torch.randn(n, channels, *f.shape, generator=gen), torch.randn(n, channels, *f.shape,
                                                                                         generator=gen)) * amp
    spec[..., 0, 0] = 0
    x = torch.fft.irfft2(spec, s=(size, size))
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo + 1e-8)


def synthetic_patches(n: int, size: int, gen: torch.Generator) -> Tensor:
    """Procedural scenes: coloured 1/f texture plus flat, gradient and textured shapes with soft edges."""
    lum = pink_noise(n, 1, size, gen)
    chroma = pink_noise(n, 3, size, gen) - 0.5
    tint = torch.rand(n, 3, 1, 1, generator=gen)
    img = (0.6 * lum + 0.25 * chroma + 0.4 * tint).clamp(0, 1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    for i in range(n):
        for _ in range(int(torch.randint(2, 9, (1,), generator=gen))):
            cy, cx, ry, rx = torch.rand(4, generator=gen).tolist()
            ry, rx = 0.05 + 0.3 * ry, 0.05 + 0.3 * rx
            kind = int(torch.randint(3, (1,), generator=gen))
            if kind == 0:
                d = torch.maximum((yy - cy).abs() / ry, (xx - cx).abs() / rx)
            elif kind == 1:
                d = torch.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
            else:
                theta = float(torch.rand(1, generator=gen)) * math.pi
                d = ((yy - cy) * math.cos(theta) - (xx - cx) * math.sin(theta)).abs() / (0.1 * ry)
            softness = 0.002 + 0.05 * float(torch.rand(1, generator=gen))
            mask = torch.sigmoid((1 - d) / softness * 0.05)
            colour = torch.rand(3, 1, 1, generator=gen)
            fill = colour.expand(3, size, size)
            style = float(torch.rand(1, generator=gen))
            if style < 0.33:
                fill = colour * (0.5 + yy * float(torch.rand(1, generator=gen)) + xx * 0.5)
            elif style < 0.66:
                fill = colour * 0.5 + pink_noise(1, 3, size, gen)[0] * 0.5
            img[i] = img[i] * (1 - mask) + fill.clamp(0, 1) * mask
    return img.clamp(0, 1)


def make_batch(images: list[Tensor], args: argparse.Namespace, gen: torch.Generator) -> Tensor:
    n_syn = int(round(args.batch_size * args.synthetic_fraction))
    parts = [natural_patches(images, args.batch_size - n_syn, args.patch_size, gen)]
    if n_syn:
        parts.append(synthetic_patches(n_syn, args.patch_size, gen))
    return torch.cat(parts)


# ---------------------------------------------------------------------------------------------------------------
# training


def rd_loss(out: dict, x: Tensor, lmbda: float) -> tuple[Tensor, Tensor, Tensor]:
    pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
    bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / pixels
    mse = F.mse_loss(out["x_hat"], x)
    return lmbda * 255.0**2 * mse + bpp, bpp, mse


def train_stage(model, images, args, accelerator: Accelerator, lmbda: float, steps: int, lr: float, desc: str,
                gen: torch.Generator, decay: bool = True):
    """Trains ``model`` in place for ``steps`` at ``lmbda``; with ``decay`` the rate falls by cosine to lr / 20."""
    quantiles = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    main = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    opt = torch.optim.Adam(main, lr=lr)
    aux_opt = torch.optim.Adam(quantiles, lr=args.aux_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1))) if decay else 1.0)
    wrapped, opt, aux_opt = accelerator.prepare(model, opt, aux_opt)
    wrapped.train()
    bar = tqdm(range(steps), desc=desc, disable=not accelerator.is_local_main_process, mininterval=5,
               dynamic_ncols=True)
    ema = None
    for _ in bar:
        x = make_batch(images, args, gen).to(accelerator.device)
        out = wrapped(x)
        loss, bpp, mse = rd_loss(out, x, lmbda)
        if not torch.isfinite(loss):  # a rare GDN blow-up; skipping the batch is cheaper than restarting
            continue
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(main, 1.0)
        opt.step()
        sched.step()
        aux = accelerator.unwrap_model(wrapped).aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        aux_opt.step()
        psnr = -10 * math.log10(max(float(mse.detach()), 1e-10))
        ema = (float(bpp), psnr) if ema is None else (0.95 * ema[0] + 0.05 * float(bpp), 0.95 * ema[1] + 0.05 * psnr)
        bar.set_postfix(bpp=f"{ema[0]:.3f}", psnr=f"{ema[1]:.2f}", aux=f"{float(aux):.1f}", refresh=False)
    return accelerator.unwrap_model(wrapped)


# ---------------------------------------------------------------------------------------------------------------
# export and evaluation


def finalize(model) -> dict[str, Tensor]:
    """Rounds weights to float16, then fixes quantiles and CDF tables for those weights; returns the tensors to save.

    The CDFs are computed from the rounded weights, so the saved model's ``compress()`` matches its forward pass.
    """
    model = model.cpu().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("quantiles"):
                p.copy_(p.half().float())
    model.update(force=True, update_quantiles=True)
    state = {}
    for name, t in model.state_dict().items():
        t = t.detach().contiguous()
        if t.is_floating_point() and not name.endswith("quantiles") and torch.equal(t.half().float(), t):
            t = t.half()
        state[name] = t.clone()
    return state


def jpeg_curve(img_u8: np.ndarray) -> list[dict]:
    pts = []
    pil = Image.fromarray(img_u8)
    for q in range(1, 96):
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=q, subsampling="4:2:0", optimize=True)
        data = buf.getvalue()
        dec = torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        pixels = img_u8.shape[0] * img_u8.shape[1]
        psnr = peak_signal_noise_ratio(dec.double(), torch.from_numpy(img_u8).double(), data_range=255.0)
        pts.append({"quality": q, "bpp": 8 * scan_length(data) / pixels, "bpp_file": 8 * len(data) / pixels,
                    "psnr": float(psnr)})
    return pts


def interp_psnr(points: list[dict], bpp: float, key: str = "bpp") -> float | None:
    """PSNR at ``bpp`` by linear interpolation in log(bpp) between the two bracketing points (None outside)."""
    pts = sorted(points, key=lambda p: p[key])
    for a, b in zip(pts, pts[1:], strict=False):
        if a[key] <= bpp <= b[key] and b[key] > a[key]:
            t = (math.log(bpp) - math.log(a[key])) / (math.log(b[key]) - math.log(a[key]))
            return a["psnr"] + t * (b["psnr"] - a["psnr"])
    return None


@torch.no_grad()
def neural_point(model, img: Tensor) -> dict:
    """Real bitstream: CompressAI ``compress()`` / ``decompress()`` on the edge-padded image."""
    h, w = img.shape[-2:]
    ph, pw = (-h) % PAD, (-w) % PAD
    x = F.pad(img.unsqueeze(0), (0, pw, 0, ph), mode="replicate")
    enc = model.compress(x)
    bits = sum(len(s[0]) * 8 for s in enc["strings"])
    dec = model.decompress(enc["strings"], enc["shape"])["x_hat"][..., :h, :w]
    est = model(x)["likelihoods"]
    est_bits = float(sum(-torch.log2(v).sum() for v in est.values()))
    # PSNR of the 8-bit images, as for JPEG.
    psnr = peak_signal_noise_ratio((dec[0].clamp(0, 1) * 255).round().double(), (img * 255).round().double(),
                                   data_range=255.0)
    return {"bpp": bits / (h * w), "bpp_estimate": est_bits / (h * w), "psnr": float(psnr)}


def library_curve(codec: str, img: Tensor, qualities) -> list[dict]:
    """RD points of one of augcomp's library codecs: its own encoder and decoder, payload bits as it counts them."""
    from augcomp import compress

    u8 = (img * 255).round().to(torch.uint8)
    pts = []
    for q in qualities:
        res = compress(u8, codec, quality=float(q))
        psnr = peak_signal_noise_ratio(res.image.double(), u8.double(), data_range=255.0)
        pts.append({"quality": q, "bpp": float(res.bpp), "psnr": float(psnr)})
    return pts


# Codecs the held-out RD points are compared with, at the bitrate of each level: (name, qualities swept).
REFERENCE_CODECS = (("webp", range(0, 101, 2)), ("avif", range(0, 101, 2)))


def evaluate(models: list, lambdas: list[float]) -> dict:
    """Held-out RD points of every level, with JPEG (scan bits), WebP and AVIF interpolated at the same bpp."""
    report = {"target_bpp": 0.25, "images": {}}
    margins = []
    for name in HELDOUT:
        img = load_skimage(name)
        u8 = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        neural = [{"level": k + 1, "lambda": lam, **neural_point(m, img)} for k, (m, lam) in
                  enumerate(zip(models, lambdas, strict=True))]
        jpeg = jpeg_curve(u8)
        others = {codec: library_curve(codec, img, qualities) for codec, qualities in REFERENCE_CODECS}
        for p in neural:
            p["matched_psnr"] = {"jpeg": interp_psnr(jpeg, p["bpp"]),
                                 **{codec: interp_psnr(curve, p["bpp"]) for codec, curve in others.items()}}
        n25, j25 = interp_psnr(neural, 0.25), interp_psnr(jpeg, 0.25)
        j25_file = interp_psnr(jpeg, 0.25, key="bpp_file")
        report["images"][name] = {"size": list(img.shape[-2:]), "neural": neural,
                                  "jpeg": [p for p in jpeg if p["bpp"] < 2.5], **others,
                                  "psnr_at_0.25": {"neural": n25, "jpeg_scan": j25, "jpeg_file": j25_file}}
        if n25 is not None and j25 is not None:
            margins.append(n25 - j25)
    report["mean_margin_db_vs_jpeg_scan_at_0.25"] = float(np.mean(margins)) if len(margins) == len(HELDOUT) else None
    return report


def load_saved(output_dir: Path) -> tuple[list, dict]:
    """The models and metadata in ``output_dir``, read back the way the codec registry reads them."""
    from compressai.models import ScaleHyperprior

    meta, states = load_package_states(NAME, output_dir)
    models = []
    for k, state in enumerate(states, start=1):
        model = ScaleHyperprior(meta["N"], meta["M"])
        load_into(model, state, f"{NAME} level {k}")
        models.append(model.eval())
    return models, meta


def check_output_dir(output_dir: Path) -> None:
    """Refuses a folder holding anything but this codec's files: the whole folder is replaced."""
    if not output_dir.exists():
        return
    if not output_dir.is_dir():
        sys.exit(f"error: --output-dir {output_dir} is not a folder")
    others = sorted(p.name for p in output_dir.iterdir() if p.name not in (f"{NAME}.json", f"{NAME}.safetensors"))
    if others:
        sys.exit(f"error: --output-dir {output_dir} holds other files ({', '.join(others[:5])}), and the folder is "
                 "replaced as a whole; choose a folder of its own")


def write_atomically(output_dir: Path, fill) -> None:
    """Calls ``fill(folder)`` on a fresh temporary folder next to ``output_dir``, then puts that folder in its place.

    Until the final rename, ``output_dir`` keeps its previous contents; a failure or a kill before it leaves them
    untouched (and a failure removes the temporary folder).
    """
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    try:
        fill(tmp)
        # mkdtemp and safetensors make private files; these are meant to be shared like any file the umask allows.
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        for path in tmp.iterdir():
            os.chmod(path, 0o666 & ~mask)
        replace_dir(tmp, output_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def print_report(rd: dict) -> None:
    """The RD points as a markdown table (PSNR in dB; the references at each level's bpp, interpolated in log-bpp)."""
    refs = ["jpeg", *(codec for codec, _ in REFERENCE_CODECS)]
    print("| image | level | bpp | PSNR | " + " | ".join(refs) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(refs))
    for name, r in rd["images"].items():
        for p in r["neural"]:
            matched = p.get("matched_psnr", {})
            cells = ["-" if matched.get(k) is None else f"{matched[k]:.2f}" for k in refs]
            print(f"| {name} | {p['level']} | {p['bpp']:.3f} | {p['psnr']:.2f} | " + " | ".join(cells) + " |")
    print(f"mean margin at 0.25 bpp vs JPEG (scan bits): {rd['mean_margin_db_vs_jpeg_scan_at_0.25']} dB")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eval_only:
        models, meta = load_saved(args.output_dir)
        meta["rd_heldout"] = rd = evaluate(models, meta["lambdas"])
        atomic_write_text(args.output_dir / f"{NAME}.json", json.dumps(meta, indent=1) + "\n")
        print_report(rd)
        return
    check_output_dir(args.output_dir)
    start = time.time()
    accelerator = Accelerator(cpu=args.cpu,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed * 1000 + accelerator.process_index)
    images = [load_skimage(n) for n in TRAIN_RGB + TRAIN_GRAY]

    from compressai.models import ScaleHyperprior

    base = ScaleHyperprior(args.N, args.M)
    # The base keeps a constant rate: each level's fine-tuning ends with the decay.
    base = train_stage(base, images, args, accelerator, args.base_lambda, args.base_steps, args.lr, "base", gen,
                       decay=False)
    models = []
    for k, lam in enumerate(args.lambdas, start=1):
        m = train_stage(copy.deepcopy(base), images, args, accelerator, lam, args.steps, args.lr,
                        f"level {k} (lambda {lam:g})", gen)
        models.append(m)
    train_time = time.time() - start
    accelerator.print(f"training wall time: {train_time:.1f} s")
    if not accelerator.is_main_process:
        return

    import compressai

    states = [finalize(m) for m in models]
    meta = {
        "architecture": "ScaleHyperprior",
        "N": args.N,
        "M": args.M,
        "lambdas": list(args.lambdas),
        "distortion": "mse",
        "loss": "lambda * 255^2 * MSE + bpp",
        "pad_multiple": PAD,
        "weights_format": "q{level}.{state_dict key}; weights float16, quantiles float32, entropy-bottleneck CDF "
                          "tables int32; the Gaussian conditional's tables are rebuilt from its scale_table",
        "base_lambda": args.base_lambda,
        "base_steps": args.base_steps,
        "steps_per_level": args.steps,
        "batch_size": args.batch_size,
        "patch_size": args.patch_size,
        "lr": args.lr,
        "aux_lr": args.aux_lr,
        "synthetic_fraction": args.synthetic_fraction,
        "seed": args.seed,
        "train_images": list(TRAIN_RGB + TRAIN_GRAY),
        "heldout_images": list(HELDOUT),
        "processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "threads": torch.get_num_threads(),
        "train_wall_time_s": round(train_time, 1),
        "command": " ".join(shlex.quote(a) for a in ["python", "recipes/train_codec.py",
                                                     *(sys.argv[1:] if argv is None else argv)]),
        "versions": {"torch": torch.__version__, "compressai": compressai.__version__},
    }

    def fill(folder: Path) -> None:
        weights_file, json_file = save_package_states(folder, NAME, states, meta)
        # Evaluate exactly what was saved, then complete its metadata, all before the folder becomes visible.
        saved_models, saved_meta = load_saved(folder)
        saved_meta["rd_heldout"] = evaluate(saved_models, saved_meta["lambdas"])
        saved_meta["total_wall_time_s"] = round(time.time() - start, 1)
        json_file.write_text(json.dumps(saved_meta, indent=1) + "\n")
        print_report(saved_meta["rd_heldout"])
        print(f"weights: {os.path.getsize(weights_file) / 1e6:.2f} MB")

    write_atomically(args.output_dir, fill)
    print(f"wrote {args.output_dir / (NAME + '.safetensors')} and {NAME}.json")
    print(f"wall time: training {train_time:.1f} s, total {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
