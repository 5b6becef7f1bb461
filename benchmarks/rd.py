"""Rate-distortion curves and bpp-targeting accuracy on the photographs scikit-image ships.

Two studies, written to ``--out`` (default ``results/bench/``):

1. **Rate-distortion** (``rd.md``, ``rd.json``, ``rd_psnr.png``, ``rd_msssim.png``): PSNR and MS-SSIM against bpp for
   augcomp's JPEG on its tensor backend (``backend="torch"``, the path that runs on GPUs), for libjpeg-turbo itself
   through Pillow at the same qualities (4:2:0, ``optimize=False``; bpp from the entropy-coded scan, as augcomp
   counts it), and for every other registered codec usable here, over its levels. The two JPEG curves
   must coincide: the report gives the largest PSNR and bpp differences over every (image, quality) pair.
   Curves average bpp and quality over the images at each level.
2. **bpp targeting** (``bpp_accuracy.md``, ``bpp_accuracy.json``, ``bpp_accuracy.png``): targets from 0.1 to 4 bpp
   (log-spaced) on odd-sized crops; a target is reachable when it lies between the crop's bpp at quality 1 and at
   quality 100. Reported: the share of reachable targets hit within 5 %, and the worst relative error.

Run::

    python benchmarks/rd.py                      # about 1-3 minutes on a CPU
    python benchmarks/rd.py --quick --out rd-smoke
    python benchmarks/rd.py --crop 256 --codecs jpeg,augcomp-tiny
    python benchmarks/rd.py --backend torch      # bpp targeting through the tensor path (the GPU path)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from oracles import libjpeg_reference  # this folder is on sys.path when a script in it runs
from torch import Tensor

from augcomp import codecs, functional
from augcomp.availability import codec_available
from augcomp.bench import DEFAULT_OUT, environment
from augcomp.samples import natural_images

QUALITIES = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
QUICK_QUALITIES = (20, 80)
JPEG = "jpeg"  # the registered codec the JPEG study compares with libjpeg-turbo
AUGCOMP_JPEG = "augcomp JPEG (torch)"
PIL_JPEG = "libjpeg-turbo (Pillow)"
# torchmetrics' MS-SSIM (five scales, 11-pixel window) needs side // 16 > 10 on both sides.
MSSSIM_MIN_SIDE = 176
TOLERANCE = 0.05


# ---------------------------------------------------------------------------------------------------- metrics


def ms_ssim(reference: Tensor, image: Tensor) -> list[float | None]:
    """MS-SSIM per sample of uint8 images (torchmetrics), None where the image is too small for five scales."""
    if min(reference.shape[-2:]) < MSSSIM_MIN_SIDE:
        return [None] * reference.shape[0]
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as msssim

    ref = reference.to(torch.float32) / 255.0
    img = image.to(torch.float32) / 255.0
    scores = msssim(img, ref, data_range=1.0, reduction="none")
    return [float(s) for s in scores.reshape(-1)]


# ---------------------------------------------------------------------------------------------------- codecs


def _to_tensor(image: np.ndarray) -> Tensor:
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].contiguous()


def _record(curve: dict[str, list], levels: Sequence[float], bpp: Sequence[float], psnrs: Sequence[float],
            msssims: Sequence[float | None]) -> None:
    curve["level"] += [float(v) for v in levels]
    curve["bpp"] += [float(v) for v in bpp]
    curve["psnr"] += [float(v) for v in psnrs]
    curve["ms_ssim"] += list(msssims)


def _empty() -> dict[str, list]:
    return {"level": [], "bpp": [], "psnr": [], "ms_ssim": []}


def rd_jpeg(images: dict[str, np.ndarray], qualities: Sequence[int],
            chunk: int = 4) -> dict[str, dict[str, dict[str, list]]]:
    """Per image, the augcomp (torch backend) and Pillow RD points at each quality, with their scan bits.

    The tensor path runs ``chunk`` qualities per call, which bounds its memory on full-size photographs.
    """
    out: dict[str, dict[str, dict[str, list]]] = {AUGCOMP_JPEG: {}, PIL_JPEG: {}}
    n = len(qualities)
    for name, image in images.items():
        x = _to_tensor(image)
        batch = x.expand(n, -1, -1, -1).contiguous()
        parts = [functional.compress(batch[i : i + chunk], codec=JPEG, backend="torch", grad="none",
                                     quality=torch.tensor([float(v) for v in qualities[i : i + chunk]]))
                 for i in range(0, n, chunk)]
        ours_image = torch.cat([p.image for p in parts])
        ours_bits = torch.cat([p.bits for p in parts])
        decoded, bits, _ = zip(*(libjpeg_reference(image, v) for v in qualities), strict=True)
        pil = torch.cat([_to_tensor(d) for d in decoded])
        pixels = image.shape[0] * image.shape[1]
        identical = [bool(torch.equal(pil[i], ours_image[i])) for i in range(n)]
        ours_scores = ms_ssim(batch, ours_image)
        # MS-SSIM dominates the run time; identical decodes have identical scores, so only the others are scored.
        differ = [i for i in range(n) if not identical[i]]
        pil_scores = list(ours_scores)
        if differ:
            for i, score in zip(differ, ms_ssim(batch[differ], pil[differ]), strict=True):
                pil_scores[i] = score
        ours = out[AUGCOMP_JPEG].setdefault(name, _empty())
        _record(ours, qualities, (ours_bits / pixels).tolist(), functional.psnr(batch, ours_image).tolist(),
                ours_scores)
        ours["bits"] = ours_bits.tolist()
        ref = out[PIL_JPEG].setdefault(name, _empty())
        _record(ref, qualities, [b / pixels for b in bits], functional.psnr(batch, pil).tolist(), pil_scores)
        ref["bits"] = [float(b) for b in bits]
        ref["identical_pixels"] = identical
    return out


def codec_levels(name: str, points: int = 8) -> list[float]:
    """Every level of a discrete codec, or ``points`` evenly spaced levels of a continuous one.

    ``points=2`` gives the two ends of the range for either kind.
    """
    e = codecs.entry(name)
    lo, hi = e.level_range
    if points == 2:
        return [float(lo), float(hi)]
    if e.discrete:
        return [float(v) for v in range(int(lo), int(hi) + 1)]
    return [float(v) for v in np.linspace(lo, hi, points)]


def rd_codec(images: dict[str, np.ndarray], name: str, points: int = 8) -> dict[str, dict[str, list]]:
    """Per image, the RD points of a codec over its levels (:func:`codec_levels`), bpp as the codec counts it.

    One level per call: a neural codec's activations on a full-size photograph take hundreds of megabytes.
    """
    levels = codec_levels(name, points)
    out = {}
    for image_name, image in images.items():
        x = _to_tensor(image)
        results = [functional.compress(x, codec=name, quality=level, grad="none") for level in levels]
        decoded = torch.cat([r.image for r in results])
        batch = x.expand(len(levels), -1, -1, -1)
        curve = out.setdefault(image_name, _empty())
        _record(curve, [r.level.item() for r in results], [r.bpp.item() for r in results],
                functional.psnr(batch, decoded).tolist(), ms_ssim(batch, decoded))
    return out


def mean_curve(per_image: dict[str, dict[str, list]]) -> dict[str, list]:
    """The curve averaged over images at each level (bpp, PSNR and MS-SSIM averaged separately)."""
    curves = list(per_image.values())
    n = len(curves[0]["level"])
    mean: dict[str, list] = _empty()
    for i in range(n):
        mean["level"].append(curves[0]["level"][i])
        for key in ("bpp", "psnr"):
            mean[key].append(float(np.mean([c[key][i] for c in curves])))
        scores = [c["ms_ssim"][i] for c in curves if c["ms_ssim"][i] is not None]
        mean["ms_ssim"].append(float(np.mean(scores)) if scores else None)
    return mean


def agreement(per_codec: dict[str, dict[str, dict[str, list]]]) -> dict[str, Any]:
    """Largest PSNR, bpp and bit-count differences between augcomp's torch JPEG and Pillow, over every pair."""
    dpsnr, dbpp, dbits, identical, pairs = 0.0, 0.0, 0.0, 0, 0
    for name, ours in per_codec[AUGCOMP_JPEG].items():
        ref = per_codec[PIL_JPEG][name]
        for a, b in zip(ours["psnr"], ref["psnr"], strict=True):
            # Identical images give infinite PSNR on both sides; their difference is zero.
            dpsnr = max(dpsnr, 0.0 if a == b else abs(a - b))
        dbpp = max(dbpp, *(abs(a - b) for a, b in zip(ours["bpp"], ref["bpp"], strict=True)))
        dbits = max(dbits, *(abs(a - b) for a, b in zip(ours["bits"], ref["bits"], strict=True)))
        identical += sum(ref["identical_pixels"])
        pairs += len(ref["identical_pixels"])
    return {"max_abs_dpsnr_db": dpsnr, "max_abs_dbpp": dbpp, "max_abs_dbits": dbits, "identical_images": identical,
            "pairs": pairs}


# ---------------------------------------------------------------------------------------------------- bpp targeting


def odd_crops(images: dict[str, np.ndarray], per_image: int, low: int, high: int,
              seed: int) -> list[dict[str, Any]]:
    """``per_image`` random crops of each image with odd heights and widths in ``[low, high]``."""
    rng = np.random.default_rng(seed)
    crops = []
    for name, image in images.items():
        for _ in range(per_image):
            h, w = (int(rng.integers((low + 1) // 2, (min(high, s) + 1) // 2 + 1)) * 2 - 1 for s in image.shape[:2])
            h, w = max(h, 1), max(w, 1)
            top = int(rng.integers(0, image.shape[0] - h + 1))
            left = int(rng.integers(0, image.shape[1] - w + 1))
            crops.append({"image": name, "top": top, "left": left, "height": h, "width": w})
    return crops


def bpp_accuracy(images: dict[str, np.ndarray], targets: Sequence[float], crops: list[dict[str, Any]],
                 backend: str) -> dict[str, Any]:
    """Achieved against target bpp for every (crop, target), and the summary figures."""
    t = torch.tensor([float(v) for v in targets])
    samples = []
    for index, crop in enumerate(crops):
        image = images[crop["image"]]
        patch = image[crop["top"] : crop["top"] + crop["height"], crop["left"] : crop["left"] + crop["width"]]
        x = _to_tensor(patch)
        ends = functional.compress(x.expand(2, -1, -1, -1), codec="jpeg", quality=torch.tensor([1.0, 100.0]),
                                   grad="none", backend=backend).bpp.tolist()
        crop["bpp_q1"], crop["bpp_q100"] = ends
        res = functional.compress(x.expand(len(targets), -1, -1, -1).contiguous(), codec="jpeg", bpp=t,
                                  grad="none", backend=backend)
        for target, achieved, quality in zip(targets, res.bpp.tolist(), res.level.tolist(), strict=True):
            samples.append({"crop": index, "target": float(target), "achieved": achieved, "quality": quality,
                            "reachable": ends[0] <= target <= ends[1], "rel_error": achieved / target - 1.0})
    reachable = [s for s in samples if s["reachable"]]
    errors = [abs(s["rel_error"]) for s in reachable]
    worst = max(reachable, key=lambda s: abs(s["rel_error"])) if reachable else None
    # An unreachable target should end at the nearer end of the quality range.
    ends_hit = 0
    for s in samples:
        if not s["reachable"]:
            crop = crops[s["crop"]]
            end = crop["bpp_q1"] if s["target"] < crop["bpp_q1"] else crop["bpp_q100"]
            ends_hit += math.isclose(s["achieved"], end, rel_tol=1e-6)
    summary = {
        "total": len(samples),
        "reachable": len(reachable),
        "within_tolerance": sum(e <= TOLERANCE for e in errors),
        "tolerance": TOLERANCE,
        "share_within_tolerance": (sum(e <= TOLERANCE for e in errors) / len(errors)) if errors else None,
        "median_abs_rel_error": float(np.median(errors)) if errors else None,
        "worst_abs_rel_error": max(errors) if errors else None,
        "worst": worst,
        "unreachable_at_nearest_end": ends_hit,
    }
    return {"targets": [float(v) for v in targets], "backend": backend, "crops": crops, "samples": samples,
            "summary": summary}


# ---------------------------------------------------------------------------------------------------- reporting


def plot_rd(curves: dict[str, dict[str, list]], key: str, ylabel: str, path: Path) -> None:
    """One line per codec of ``key`` (``"psnr"`` or ``"ms_ssim"``) against bpp; Pillow as hollow markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for label, c in curves.items():
        points = [(b, v) for b, v in zip(c["bpp"], c[key], strict=True) if v is not None and math.isfinite(v)]
        if not points:
            continue
        bpp, val = zip(*sorted(points), strict=True)
        if label == PIL_JPEG:
            ax.plot(bpp, val, "o", mfc="none", ms=9, color="black", label=label)
        else:
            ax.plot(bpp, val, "-" if label == AUGCOMP_JPEG else "-s", ms=4, label=label)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy(result: dict[str, Any], path: Path) -> None:
    """Achieved against target bpp on log-log axes, with the 5 % band around the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    lo, hi = min(result["targets"]) / 2, max(result["targets"]) * 2
    line = np.geomspace(lo, hi, 50)
    ax.fill_between(line, line * (1 - TOLERANCE), line * (1 + TOLERANCE), color="0.85", label="within 5 %")
    ax.plot(line, line, "k-", lw=0.8)
    for reachable, style, label in ((True, "o", "reachable"), (False, "x", "out of reach (quality 1..100)")):
        pts = [(s["target"], s["achieved"]) for s in result["samples"] if s["reachable"] == reachable]
        if pts:
            t, a = zip(*pts, strict=True)
            ax.plot(t, a, style, ms=4, alpha=0.7, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("target bpp")
    ax.set_ylabel("achieved bpp")
    ax.set_title(f"JPEG bpp targeting ({result['backend']} backend)")
    ax.legend(loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def rd_markdown(report: dict[str, Any]) -> str:
    """The agreement line, the JPEG table (augcomp beside Pillow) and one table for the other codecs."""
    agree = report["agreement"]
    curves = report["curves"]
    sizes = ", ".join(f"{n} {h}x{w}" for n, (h, w) in report["images"].items())
    lines = [
        f"Images: {sizes}. Values average over the images at each level; JPEG bpp counts the entropy-coded scan.",
        "",
        f"augcomp JPEG (torch backend) against libjpeg-turbo (Pillow), over {agree['pairs']} (image, quality) "
        f"pairs: max |ΔPSNR| = {agree['max_abs_dpsnr_db']:.3g} dB, max |Δbpp| = {agree['max_abs_dbpp']:.3g}, "
        f"max |Δbits| = {agree['max_abs_dbits']:.3g}, identical decoded images {agree['identical_images']}/"
        f"{agree['pairs']}.",
        "",
        "| JPEG quality | bpp augcomp | bpp Pillow | PSNR augcomp | PSNR Pillow | MS-SSIM augcomp | MS-SSIM Pillow |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ours, ref = curves[AUGCOMP_JPEG], curves[PIL_JPEG]
    for i, q in enumerate(ours["level"]):
        lines.append(f"| {q:g} | {ours['bpp'][i]:.4f} | {ref['bpp'][i]:.4f} | {ours['psnr'][i]:.2f} | "
                     f"{ref['psnr'][i]:.2f} | {_fmt(ours['ms_ssim'][i], '.4f')} | {_fmt(ref['ms_ssim'][i], '.4f')} |")
    others = [label for label in curves if label not in (AUGCOMP_JPEG, PIL_JPEG)]
    if others:
        lines += ["", "| codec | level | bpp | PSNR (dB) | MS-SSIM |", "|---|---:|---:|---:|---:|"]
        for label in others:
            c = curves[label]
            for level, bpp, p, m in zip(c["level"], c["bpp"], c["psnr"], c["ms_ssim"], strict=True):
                lines.append(f"| {label} | {level:g} | {bpp:.4f} | {p:.2f} | {_fmt(m, '.4f')} |")
    if report["skipped"]:
        lines += ["", "Not run here:", ""]
        lines += [f"- {name}: {why}" for name, why in report["skipped"].items()]
    return "\n".join(lines) + "\n"


def accuracy_markdown(result: dict[str, Any]) -> str:
    """The bpp-targeting figures as a Markdown table."""
    s = result["summary"]
    worst = s["worst"]
    worst_txt = "–" if worst is None else (
        f"{100 * s['worst_abs_rel_error']:.2f} % (target {worst['target']:.3g} bpp, got {worst['achieved']:.4g}, "
        f"crop {result['crops'][worst['crop']]['height']}x{result['crops'][worst['crop']]['width']} of "
        f"{result['crops'][worst['crop']]['image']})")
    share = "–" if s["share_within_tolerance"] is None else f"{100 * s['share_within_tolerance']:.1f} %"
    median = "–" if s["median_abs_rel_error"] is None else f"{100 * s['median_abs_rel_error']:.2f} %"
    lines = [
        f"JPEG bpp targeting, {result['backend']} backend: {len(result['targets'])} targets from "
        f"{min(result['targets']):g} to {max(result['targets']):g} bpp on {len(result['crops'])} odd-sized crops.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| reachable targets (between quality 1 and 100) | {s['reachable']}/{s['total']} |",
        f"| reachable within {100 * s['tolerance']:g} % | {s['within_tolerance']}/{s['reachable']} ({share}) |",
        f"| median error (reachable) | {median} |",
        f"| worst error (reachable) | {worst_txt} |",
        f"| unreachable targets ending at the nearest end | {s['unreachable_at_nearest_end']}/"
        f"{s['total'] - s['reachable']} |",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
    """The script's options."""
    p = argparse.ArgumentParser(description="Rate-distortion curves and bpp-targeting accuracy on natural images.")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write both studies' results, without the per-image points, to one JSON file (the "
                        "docs' results pages read docs/data/rd.json)")
    p.add_argument("--crop", type=int, default=None, help="centre crop of this side (default: full images)")
    p.add_argument("--codecs", default="all",
                   help="'all' (every registered codec usable here) or a comma-separated list")
    p.add_argument("--qualities", default=None, help=f"JPEG qualities (default {','.join(map(str, QUALITIES))})")
    p.add_argument("--targets", type=int, default=12, help="number of log-spaced bpp targets in 0.1..4 (default 12)")
    p.add_argument("--crops-per-image", type=int, default=3, help="odd-sized crops per image (default 3)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "native"),
                   help="JPEG backend of the bpp-targeting study (default auto: native on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    return p


def _centre(image: np.ndarray, side: int) -> np.ndarray:
    # A fixed crop keeps runs comparable across images of different sizes.
    h, w = image.shape[:2]
    ch, cw = min(side, h), min(side, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[top : top + ch, left : left + cw])


def main(argv: Sequence[str] | None = None) -> int:
    """Runs both studies with ``argv`` (default: the command line) and writes their files; returns 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    start = time.perf_counter()
    images = natural_images()
    try:
        qualities = tuple(int(v) for v in args.qualities.split(",")) if args.qualities else QUALITIES
    except ValueError:
        parser.error(f"--qualities must be comma-separated integers, got {args.qualities!r}")
    if not all(1 <= q <= 100 for q in qualities):
        parser.error(f"--qualities must lie in [1, 100], got {args.qualities!r}")
    if args.crop is not None and args.crop < 1:
        parser.error(f"--crop must be a positive integer, got {args.crop}")
    targets = np.geomspace(0.1, 4.0, max(2, args.targets)).tolist()
    per_image, crop_lo, crop_hi = args.crops_per_image, 65, 301
    if args.quick:
        images = dict(list(images.items())[:2])
        args.crop = min(args.crop or MSSSIM_MIN_SIDE, MSSSIM_MIN_SIDE)
        qualities = QUICK_QUALITIES if not args.qualities else qualities
        targets = np.geomspace(0.1, 4.0, 4).tolist()
        per_image, crop_lo, crop_hi = 1, 33, 97
    rd_images = {n: _centre(a, args.crop) for n, a in images.items()} if args.crop else images

    wanted = codecs.list() if args.codecs == "all" else [c.strip() for c in args.codecs.split(",") if c.strip()]
    for name in wanted:
        try:
            codecs.entry(name)  # unknown names fail here, before any work
        except ValueError as err:
            parser.error(str(err))
    # JPEG has its own study above (against libjpeg-turbo); every other codec gets a curve over its levels.
    others, skipped = [], {}
    smallest = min(min(a.shape[:2]) for a in rd_images.values())
    for name in wanted:
        if name == JPEG:
            continue
        e = codecs.entry(name)
        ok, why = codec_available(name)
        if not ok:
            skipped[name] = why
        elif 3 not in e.channels:
            skipped[name] = f"takes {'/'.join(map(str, e.channels))} channels; the images are RGB"
        elif smallest < e.min_size:
            skipped[name] = f"needs images of at least {e.min_size} pixels a side"
        else:
            others.append(name)

    per_codec = rd_jpeg(rd_images, qualities)
    for name in others:
        print(f"rd: {name}", file=sys.stderr)
        try:
            per_codec[name] = rd_codec(rd_images, name, 2 if args.quick else 8)
        except Exception as err:  # noqa: BLE001 - a codec still being written must not sink the whole study
            skipped[name] = f"failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
    curves = {label: mean_curve(per) for label, per in per_codec.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "images": {n: list(a.shape[:2]) for n, a in rd_images.items()},
        "qualities": list(qualities),
        "jpeg_backend": "torch",
        "curves": curves,
        "per_image": per_codec,
        "agreement": agreement(per_codec),
        "skipped": skipped,
        "environment": environment(torch.device("cpu")),
    }
    plot_rd(curves, "psnr", "PSNR (dB)", out / "rd_psnr.png")
    plot_rd(curves, "ms_ssim", "MS-SSIM", out / "rd_msssim.png")
    text = rd_markdown(report)
    report["seconds"] = time.perf_counter() - start
    (out / "rd.md").write_text(text)
    (out / "rd.json").write_text(json.dumps(report, indent=2) + "\n")

    accuracy = bpp_accuracy(images, targets, odd_crops(images, per_image, crop_lo, crop_hi, args.seed), args.backend)
    plot_accuracy(accuracy, out / "bpp_accuracy.png")
    acc_text = accuracy_markdown(accuracy)
    accuracy["seconds"] = time.perf_counter() - start - report["seconds"]
    (out / "bpp_accuracy.md").write_text(acc_text)
    (out / "bpp_accuracy.json").write_text(json.dumps(accuracy, indent=2) + "\n")

    if args.json:
        # The docs' results pages are generated from this file; per-image points stay in rd.json only.
        summary = {"source": "python benchmarks/rd.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                   "rd": {k: v for k, v in report.items() if k != "per_image"},
                   "bpp_accuracy": {k: v for k, v in accuracy.items() if k not in ("samples", "crops")}}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    print(text)
    print(acc_text)
    print(f"wrote rd.md, rd.json, rd_psnr.png, rd_msssim.png, bpp_accuracy.md/json/png to {out} "
          f"in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
