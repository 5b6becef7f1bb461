"""Rate-distortion, bpp targeting and speed of the library codecs (WebP, AVIF, JPEG 2000, JPEG XL, HEIC) against JPEG.

Everything runs through augcomp itself (``augcomp.compress`` and the registry); the codecs are JPEG plus every
registered :class:`~augcomp.codecs.LibraryCodec` usable here, and the level grids come from each registry entry (every
level of a discrete codec, geometric spacing for ranges spanning more than two decades, linear otherwise). Three
sections, written to ``--out`` (default ``results/bench/``) as ``codecs.md``, ``codecs.json`` and ``rd_codecs.png``:

1. **Rate-distortion** on fifteen 224 x 224 crops: the centre crop of each photograph scikit-image ships, and its centre
   after scaling the short side to 224 (:data:`augcomp.samples.NATURAL_IMAGES`); the scaled centre of three
   astronomy and microscopy images; two off-centre crops. Each codec is swept over a dense grid of levels (150, or
   every level of a discrete codec). Per codec: PSNR at 0.1, 0.25, 0.5 and 1 bpp (median over the crops whose sweep
   reaches that rate, piecewise linear in log-bpp on the monotone part of the curve, with the count), BD-rate against
   JPEG (PSNR, piecewise linear in log-rate over the common PSNR range, median over crops), the lowest bpp (median
   over crops of the bpp at the low-rate end of the level range), the crops reaching 0.1 bpp, and the PSNR gain over
   JPEG at 0.5 bpp (median over crops).
2. **bpp targeting**: 8 targets per crop drawn log-uniformly in 0.3-2 bpp (seed 0). A target is *in range* when it
   lies between the bpp at the two ends of the level range, and *reachable* when some level of the sweep lands
   within 5 % of it (a codec's rate can jump over a target between adjacent levels). Reported: the share within 5 %
   of the in-range targets and of the reachable ones, the mean relative error over the in-range targets, the encodes
   per sample (calls to the codec's ``encode``, counted on the built codec instance) and how many out-of-range targets
   end at the nearest end of the level range.
3. **Speed**: images/s on a batch of 64 natural 224 x 224 crops (:func:`augcomp.samples.natural_crops`), at a fixed
   level (the middle of the level range, :func:`augcomp.bench.fixed_level`) and at per-sample targets drawn
   log-uniformly in 0.3-2 bpp, best of 3 timed runs after a warm-up, and the cost of rate control (time targeted /
   time fixed).

Run::

    .venv/bin/python benchmarks/codecs.py                            # all three sections: several minutes on 2 cores
    .venv/bin/python benchmarks/codecs.py --quick --out codecs-smoke  # 2 crops, 2 codecs, 6 levels: seconds
    .venv/bin/python benchmarks/codecs.py --codecs webp,avif --threads 1
    .venv/bin/python benchmarks/codecs.py --out results/bench --no-progress

JPEG is always included: it is the reference of the BD-rate and of the gain.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

import augcomp
from augcomp import codecs, functional
from augcomp.availability import codec_available
from augcomp.bench import (
    BPP_RANGE,
    DEFAULT_OUT,
    Inputs,
    Row,
    busy_cpu_warning,
    codec_row_keys,
    environment,
    fixed_level,
    run,
)
from augcomp.codecs import LibraryCodec
from augcomp.codecs.library import default_threads
from augcomp.samples import NATURAL_IMAGES, natural_crops, natural_images

REFERENCE = "jpeg"
SIZE = 224
POINTS = (0.1, 0.25, 0.5, 1.0)  # bpp at which the RD table reads PSNR
GAIN_AT = 0.5
SWEEP = 150  # levels per sweep (a discrete codec: all of its levels when fewer)
PER_CROP = 8  # bpp targets per crop
TOLERANCE = 0.05
SEED = 0
BATCH, REPEATS = 64, 3
EXTRA_IMAGES = ("hubble_deep_field", "immunohistochemistry", "retina")  # only their scaled centre is used
OFF_CENTRE = {"astronaut/topleft": ("astronaut", 0, 0), "coffee/right": ("coffee", 100, 376)}  # name, top, left


# ---------------------------------------------------------------------------------------------------- inputs


def acceptance_crops(size: int = SIZE) -> dict[str, np.ndarray]:
    """The fifteen ``size`` x ``size`` RGB crops of the RD and targeting sections, in a fixed order."""

    def centre(a: np.ndarray) -> np.ndarray:
        top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        return np.ascontiguousarray(a[top : top + size, left : left + size])

    def scaled(a: np.ndarray) -> np.ndarray:  # the short side to ``size`` (bicubic), then the centre
        k = size / min(a.shape[:2])
        new = (max(size, round(a.shape[1] * k)), max(size, round(a.shape[0] * k)))
        return centre(np.asarray(Image.fromarray(a).resize(new, Image.Resampling.BICUBIC)))

    photos = natural_images(NATURAL_IMAGES)
    out = {}
    for name, a in photos.items():
        out[f"{name}/crop"], out[f"{name}/resized"] = centre(a), scaled(a)
    try:
        out.update({f"{name}/resized": scaled(a) for name, a in natural_images(EXTRA_IMAGES).items()})
    except RuntimeError:  # none of them in this scikit-image installation
        pass
    for key, (name, top, left) in OFF_CENTRE.items():
        if name in photos:
            out[key] = np.ascontiguousarray(photos[name][top : top + size, left : left + size])
    return out


def level_grid(entry: codecs.CodecEntry, points: int) -> list[float]:
    """``points`` levels over the entry's range, both ends included, in increasing order.

    Every level of a discrete codec when it has at most ``points``; otherwise geometric spacing for a range spanning
    more than two decades, linear spacing for the others (rounded and deduplicated for a discrete codec).
    """
    lo, hi = entry.level_range
    if entry.discrete and hi - lo + 1 <= points:
        return [float(v) for v in np.arange(math.ceil(lo), math.floor(hi) + 1)]
    grid = np.geomspace(lo, hi, points) if lo > 0 and hi / lo > 100 else np.linspace(lo, hi, points)
    return [float(v) for v in (np.unique(np.round(grid)) if entry.discrete else grid)]


def choose_codecs(wanted: Sequence[str] | None, channels: int = 3) -> tuple[list[str], dict[str, str]]:
    """The codecs to run (``REFERENCE`` first) and, for the others, why they are not run.

    ``wanted=None`` means every registered codec built on :class:`~augcomp.codecs.LibraryCodec`.
    """
    names = [REFERENCE] + [n for n in (codecs.list() if wanted is None else wanted) if n != REFERENCE]
    chosen, skipped = [], {}
    for name in names:
        entry = codecs.entry(name)
        cls = getattr(entry.builder, "codec_class", entry.builder)
        library = isinstance(cls, type) and issubclass(cls, LibraryCodec)
        if wanted is None and name != REFERENCE and not library:
            continue  # not a library codec (neural codecs have their own benchmarks)
        reason = entry.missing()
        usable, why = (False, reason) if reason else codec_available(name)
        if not usable:
            skipped[name] = why
        elif channels not in entry.channels:
            skipped[name] = f"takes {'/'.join(map(str, entry.channels))} channels; the crops are RGB"
        elif SIZE < entry.min_size:
            skipped[name] = f"needs images of at least {entry.min_size} pixels a side"
        else:
            chosen.append(name)
    return chosen, skipped


def _options(name: str, threads: int | None) -> dict[str, Any]:
    # The options of every call for ``name``: the same ones give the same cached codec instance (codecs.get).
    entry = codecs.entry(name)
    opts: dict[str, Any] = {"grad": "none" if "none" in entry.grad_modes else entry.grad_modes[0]}
    if threads is not None and "threads" in entry.accepted:
        opts["threads"] = threads
    return opts


def _tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1).contiguous()


def _progress(iterable: Any, enabled: bool, **kw: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, file=sys.stderr, **kw)


# ---------------------------------------------------------------------------------------------------- RD


def sweep(crops: dict[str, np.ndarray], name: str, points: int, threads: int | None,
          progress: bool) -> dict[str, dict[str, list]]:
    """Per crop, the level, bpp and PSNR at each level of :func:`level_grid` (one batched call per crop)."""
    levels = level_grid(codecs.entry(name), points)
    out = {}
    for key, a in _progress(crops.items(), progress, desc=f"sweep {name}", unit="crop", leave=False):
        x = _tensor(a)[None].expand(len(levels), -1, -1, -1).contiguous()
        res = augcomp.compress(x, name, quality=torch.tensor(levels), **_options(name, threads))
        out[key] = {"level": levels, "bpp": res.bpp.tolist(), "psnr": functional.psnr(x, res.image).tolist()}
    return out


def monotone(curve: dict[str, list]) -> tuple[np.ndarray, np.ndarray]:
    """``(log bpp, PSNR)`` of the points where both increase (sorted by bpp; non-finite PSNR dropped)."""
    pts = sorted((b, p) for b, p in zip(curve["bpp"], curve["psnr"], strict=True) if b > 0 and math.isfinite(p))
    keep = [pts[0]]
    for b, p in pts[1:]:
        if b > keep[-1][0] and p > keep[-1][1]:
            keep.append((b, p))
    bpp, psnr = np.array(keep).T
    return np.log(bpp), psnr


def psnr_at(curve: dict[str, list], bpp: float) -> float:
    """PSNR at ``bpp`` (linear in log-bpp), NaN outside the swept rates."""
    lb, p = monotone(curve)
    x = math.log(bpp)
    return float(np.interp(x, lb, p)) if lb[0] <= x <= lb[-1] else math.nan


def bd_rate(reference: dict[str, list], test: dict[str, list], samples: int = 100) -> float:
    """Bjøntegaard delta rate (%) of ``test`` against ``reference``: piecewise linear log-rate over the common PSNR
    range (negative: fewer bits for the same PSNR); NaN when the PSNR ranges do not overlap."""
    (lr, pr), (lt, pt) = monotone(reference), monotone(test)
    lo, hi = max(pr[0], pt[0]), min(pr[-1], pt[-1])
    if hi <= lo:
        return math.nan
    ps = np.linspace(lo, hi, samples)
    return float((np.exp(np.mean(np.interp(ps, pt, lt) - np.interp(ps, pr, lr))) - 1) * 100)


def _median(values: Sequence[float]) -> float | None:
    v = np.array(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def rd_summary(curves: dict[str, dict[str, dict[str, list]]]) -> list[dict[str, Any]]:
    """One row per codec of the RD table (see the module docstring)."""
    rows = []
    ref = curves[REFERENCE]
    for name, per_crop in curves.items():
        entry = codecs.entry(name)
        low_end = 0 if entry.rate_increases_with_level else -1  # the grids are in increasing level order
        lowest = [c["bpp"][low_end] for c in per_crop.values()]
        at = {}
        for b in POINTS:
            v = [psnr_at(c, b) for c in per_crop.values()]
            at[str(b)] = {"median": _median(v), "crops": int(np.isfinite(v).sum())}
        rows.append({
            "codec": name,
            "psnr_at": at,
            "bd_rate_vs_jpeg_pct": _median([bd_rate(ref[k], c) for k, c in per_crop.items()]),
            "lowest_bpp": _median(lowest),
            "lowest_bpp_per_crop": dict(zip(per_crop, lowest, strict=True)),
            "crops_reaching_0.1": sum(b <= 0.1 for b in lowest),
            "crops": len(per_crop),
            f"gain_vs_jpeg_at_{GAIN_AT}_db": _median([psnr_at(c, GAIN_AT) - psnr_at(ref[k], GAIN_AT)
                                                     for k, c in per_crop.items()]),
        })
    return rows


# ---------------------------------------------------------------------------------------------------- bpp targeting


def encoder(codec: torch.nn.Module) -> LibraryCodec | None:
    """The library coder whose ``encode`` a codec's rate control calls: the codec itself, or the one it delegates to
    (JPEG's native path); None for codecs without one."""
    return next((m for m in codec.modules() if isinstance(m, LibraryCodec)), None)


def targeting(crops: dict[str, np.ndarray], name: str, swept: dict[str, dict[str, list]], per_crop: int,
              threads: int | None, progress: bool) -> dict[str, Any]:
    """bpp targeting of ``name`` on each crop at ``per_crop`` targets; ``swept`` is its :func:`sweep`."""
    entry = codecs.entry(name)
    opts = _options(name, threads)
    coder = encoder(codecs.get(name, **opts))  # the instance augcomp.compress uses with these options
    calls, lock = [0], threading.Lock()
    if coder is not None:
        original = coder.encode

        def counting(image: np.ndarray, level: float) -> bytes:
            with lock:
                calls[0] += 1
            return original(image, level)

        coder.encode = counting  # on this instance only; removed below
    rng = np.random.default_rng(SEED)
    lo, hi = (math.log(v) for v in BPP_RANGE)
    samples, encodes = [], []
    try:
        for key, a in _progress(crops.items(), progress, desc=f"targets {name}", unit="crop", leave=False):
            t = torch.tensor(np.exp(rng.uniform(lo, hi, per_crop)), dtype=torch.float32)
            bpp = np.array(swept[key]["bpp"])
            ends = bpp[[0, -1]]
            calls[0] = 0
            res = augcomp.compress(_tensor(a)[None].expand(per_crop, -1, -1, -1).contiguous(), name, bpp=t, **opts)
            encodes.append(calls[0])
            for target, got, level in zip(t.tolist(), res.bpp.tolist(), res.level.tolist(), strict=True):
                in_range = bool(ends.min() <= target <= ends.max())
                # Out of range: the nearest end of the level range is the low-rate end for a target below it.
                below = target < ends.min()
                end = entry.level_range[0 if below == entry.rate_increases_with_level else 1]
                samples.append({"crop": key, "target": target, "achieved": got, "level": level,
                                "rel_error": abs(got - target) / target, "in_range": in_range,
                                "reachable": bool(np.min(np.abs(bpp - target)) / target <= TOLERANCE),
                                "at_nearest_end": None if in_range else math.isclose(level, end, abs_tol=1e-4)})
    finally:
        if coder is not None:
            del coder.encode
    in_range = [s for s in samples if s["in_range"]]
    reachable = [s for s in samples if s["reachable"]]
    out_of_range = [s for s in samples if not s["in_range"]]

    def share(group: list[dict[str, Any]]) -> float | None:
        return sum(s["rel_error"] <= TOLERANCE for s in group) / len(group) if group else None

    return {
        "codec": name,
        "targets": len(samples),
        "in_range": len(in_range),
        "share_within_5pct_in_range": share(in_range),
        "reachable": len(reachable),
        "share_within_5pct_reachable": share(reachable),
        "mean_rel_error_in_range": float(np.mean([s["rel_error"] for s in in_range])) if in_range else None,
        "encodes_per_sample": sum(encodes) / len(samples) if coder is not None and samples else None,
        "encodes_per_crop": encodes if coder is not None else None,
        "out_of_range_at_nearest_end": sum(bool(s["at_nearest_end"]) for s in out_of_range),
        "out_of_range": len(out_of_range),
        "samples": samples,
    }


# ---------------------------------------------------------------------------------------------------- speed


def speed(names: Sequence[str], batch: int, repeats: int, threads: int | None, progress: bool) -> list[dict[str, Any]]:
    """Images/s of each codec at its fixed level and at per-sample targets in ``BPP_RANGE``, best of ``repeats``."""
    u8 = natural_crops(batch, SIZE, seed=SEED)
    gen = torch.Generator().manual_seed(SEED)
    lo, hi = (math.log(v) for v in BPP_RANGE)
    targets = torch.empty(batch).uniform_(lo, hi, generator=gen).exp_()
    inputs = Inputs(u8=u8, u8_cpu=u8, f32=u8.float() / 255, device=torch.device("cpu"), quality=50, bpp=0.5,
                    targets=targets)

    def make(name: str, spec: dict[str, Any]) -> Any:
        opts = _options(name, threads)
        return lambda inp: (lambda: augcomp.compress(inp.u8, name, **spec, **opts))

    rows = []
    for name in names:
        level = fixed_level(codecs.entry(name))
        fixed_key, targeted_key = codec_row_keys(name)
        rows += [Row(fixed_key, f"{name} {level:g}", "codec", make(name, {"quality": level}), optional=True),
                 Row(targeted_key, f"{name} at {BPP_RANGE[0]:g}-{BPP_RANGE[1]:g} bpp", "codec",
                     make(name, {"bpp": targets}), optional=True)]
    # An unbounded time budget: exactly ``repeats`` timed runs per row after the warm-up.
    results = {r.key: r for r in run(rows, inputs, repeats=repeats, budget_s=1e9, progress=progress)}
    out = []
    for name in names:
        fixed, targeted = (results[k] for k in codec_row_keys(name))
        best = [min(r.times_ms) / 1000 if r.times_ms else None for r in (fixed, targeted)]
        out.append({
            "codec": name,
            "level": fixed_level(codecs.entry(name)),
            "fixed_images_per_s": batch / best[0] if best[0] else None,
            "targeted_images_per_s": batch / best[1] if best[1] else None,
            "targeted_vs_fixed_cost": best[1] / best[0] if best[0] and best[1] else None,
            "times_ms": {"fixed": fixed.times_ms, "targeted": targeted.times_ms},
            "skipped": fixed.skipped or targeted.skipped,
        })
    return out


# ---------------------------------------------------------------------------------------------------- reporting


def plot(curves: dict[str, dict[str, dict[str, list]]], path: Path) -> None:
    """Median PSNR over the crops against bpp (log axis), one line per codec, over the rates every crop reaches (a
    median over a changing set of crops would jump where one more crop comes into reach)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    grid = np.geomspace(0.02, 4.0, 80)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for name, per_crop in curves.items():
        values = np.array([[psnr_at(c, b) for b in grid] for c in per_crop.values()])
        every = np.isfinite(values).all(0)
        if every.any():
            ax.plot(grid[every], np.median(values[:, every], axis=0), "k-" if name == REFERENCE else "-",
                    lw=2 if name == REFERENCE else 1.4, label=name)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([0.05, 0.1, 0.25, 0.5, 1, 2, 4]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB), median over crops")
    ax.set_title(f"{len(next(iter(curves.values())))} crops of {SIZE}x{SIZE}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _f(value: float | None, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{format(value, spec)}{suffix}"


def markdown(report: dict[str, Any]) -> str:
    """The three sections as Markdown tables."""
    rd, tg, sp = report["rd"], report["targeting"], report["speed"]
    n = len(report["crops"])
    lines = [
        f"## Rate-distortion ({n} crops of {SIZE}x{SIZE}, up to {report['sweep_levels']} levels per codec)",
        "",
        "PSNR in dB: median over the crops that reach the rate (their count in brackets). BD-rate and gain: "
        "median over crops, against JPEG. Lowest bpp: median at the low-rate end of the level range.",
        "",
        "| codec | " + " | ".join(f"PSNR @{b:g} bpp" for b in POINTS)
        + f" | BD-rate vs JPEG | lowest bpp | crops <= 0.1 bpp | gain @{GAIN_AT:g} bpp |",
        "|---|" + "---:|" * (len(POINTS) + 4),
    ]
    for r in rd["rows"]:
        cells = [f"{_f(r['psnr_at'][str(b)]['median'], '.2f')} [{r['psnr_at'][str(b)]['crops']}]" for b in POINTS]
        lines.append(f"| {r['codec']} | " + " | ".join(cells)
                     + f" | {_f(r['bd_rate_vs_jpeg_pct'], '+.1f', ' %')} | {_f(r['lowest_bpp'], '.3f')} | "
                       f"{r['crops_reaching_0.1']}/{r['crops']} | {_f(r[f'gain_vs_jpeg_at_{GAIN_AT}_db'], '+.2f')} |")
    lines += ["", "Lowest bpp per crop (each codec at the low-rate end of its level range):", "",
              "| crop | " + " | ".join(r["codec"] for r in rd["rows"]) + " |",
              "|---|" + "---:|" * len(rd["rows"])]
    for crop in report["crops"]:
        lines.append(f"| {crop} | " + " | ".join(f"{r['lowest_bpp_per_crop'][crop]:.3f}" for r in rd["rows"]) + " |")
    lines += [
        "",
        f"## bpp targeting ({n} crops x {tg['per_crop']} targets, log-uniform in {BPP_RANGE[0]:g}-{BPP_RANGE[1]:g} "
        f"bpp, seed {SEED})",
        "",
        "In range: between the bpp at the two ends of the level range. Reachable: some swept level lands within 5 %. "
        "Mean error over the in-range targets.",
        "",
        "| codec | in range | within 5 % (in range) | reachable | within 5 % (reachable) | mean error | "
        "encodes/sample | out of range at nearest end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in tg["rows"]:
        lines.append(
            f"| {r['codec']} | {r['in_range']}/{r['targets']} | {_f(r['share_within_5pct_in_range'], '.1%')} | "
            f"{r['reachable']}/{r['targets']} | {_f(r['share_within_5pct_reachable'], '.1%')} | "
            f"{_f(r['mean_rel_error_in_range'], '.2%')} | {_f(r['encodes_per_sample'], '.2f')} | "
            f"{r['out_of_range_at_nearest_end']}/{r['out_of_range']} |")
    lines += [
        "",
        f"## Speed ({sp['batch']} natural crops of {SIZE}x{SIZE}, uint8, {sp['threads']} threads, best of "
        f"{sp['repeats']})",
        "",
        "| codec | fixed level | images/s fixed | images/s at "
        f"{BPP_RANGE[0]:g}-{BPP_RANGE[1]:g} bpp | targeted / fixed time |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in sp["rows"]:
        lines.append(f"| {r['codec']} | {r['level']:g} | {_f(r['fixed_images_per_s'], '.1f')} | "
                     f"{_f(r['targeted_images_per_s'], '.1f')} | {_f(r['targeted_vs_fixed_cost'], '.2f', 'x')} |"
                     + (f" {r['skipped']} |" if r["skipped"] else ""))
    if report["skipped"]:
        lines += ["", "Not run here:", ""] + [f"- {k}: {v}" for k, v in report["skipped"].items()]
    caveat = busy_cpu_warning(report["environment"])
    if caveat:
        lines += ["", caveat]
    return "\n".join(lines) + "\n"


# The per-codec figures the docs' results pages read (docs/data/codecs_throughput.json); a rerun with --json replaces
# that file, so its keys stay fixed here.
SUMMARY_KEYS = {
    "rd": ("codec", "psnr_at", "bd_rate_vs_jpeg_pct", "lowest_bpp", "crops_reaching_0.1", "crops"),
    "targeting": ("codec", "share_within_5pct_in_range", "share_within_5pct_reachable", "encodes_per_sample"),
    "speed": ("codec", "level", "fixed_images_per_s", "targeted_images_per_s", "targeted_vs_fixed_cost"),
}


def summary(report: dict[str, Any], command: str) -> dict[str, Any]:
    """The per-codec rows of ``report`` with the keys of :data:`SUMMARY_KEYS`, each section naming ``command``."""
    out: dict[str, Any] = {"source": command}
    for section, keys in SUMMARY_KEYS.items():
        out[section] = {"source": command, "rows": [{k: r.get(k) for k in keys} for r in report[section]["rows"]]}
    out["rd"]["points_bpp"] = report["rd"]["points_bpp"]
    out["speed"].update(batch=report["speed"]["batch"], size=report["speed"]["size"])
    return _jsonable(out)


def _jsonable(value: Any) -> Any:
    # Strict JSON: NaN and infinities (identical images have infinite PSNR) become null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
    """The script's options."""
    p = argparse.ArgumentParser(description="RD, bpp targeting and speed of the library codecs against JPEG.")
    p.add_argument("--codecs", default=None,
                   help="comma-separated codec names (default: jpeg and every library codec usable here)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--threads", type=int, default=None,
                   help="images coded at once per codec call (default: the codecs' own, the cores available)")
    p.add_argument("--quick", action="store_true",
                   help="tiny run for smoke tests: 2 crops, 2 codecs, 6 levels, 2 targets per crop, batch of 4")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="also write the per-codec figures of the three sections to one JSON file (the schema of "
                        "docs/data/codecs_throughput.json, which the docs' results pages read)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the three sections with ``argv`` (default: the command line) and writes their files; returns 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be a positive integer, got {args.threads}")
    wanted = None if args.codecs is None else [c.strip() for c in args.codecs.split(",") if c.strip()]
    for name in wanted or ():
        try:
            codecs.entry(name)  # unknown names fail here, before any work
        except ValueError as err:
            parser.error(str(err))
    start = time.perf_counter()
    progress = not args.no_progress
    names, skipped = choose_codecs(wanted)
    if REFERENCE not in names:
        parser.error(f"the reference codec {REFERENCE!r} is not usable here: {skipped.get(REFERENCE)}")
    crops = acceptance_crops()
    points, per_crop, batch, repeats = SWEEP, PER_CROP, BATCH, REPEATS
    if args.quick:
        names = names[:2] if wanted is None else names
        crops = dict(list(crops.items())[:2])
        points, per_crop, batch, repeats = 6, 2, 4, 1

    curves: dict[str, dict[str, dict[str, list]]] = {}
    for name in names:
        try:
            curves[name] = sweep(crops, name, points, args.threads, progress)
        except Exception as err:  # noqa: BLE001 - a codec still being written must not sink the whole study
            if name == REFERENCE:
                raise
            skipped[name] = f"failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
    names = list(curves)
    targets = [targeting(crops, name, curves[name], per_crop, args.threads, progress) for name in names]
    speeds = speed(names, batch, repeats, args.threads, progress)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "codecs": names,
        "skipped": skipped,
        "crops": {k: list(a.shape[:2]) for k, a in crops.items()},
        "sweep_levels": points,
        "rd": {"points_bpp": list(POINTS), "rows": rd_summary(curves), "curves": curves},
        "targeting": {"per_crop": per_crop, "bpp_range": list(BPP_RANGE), "seed": SEED, "tolerance": TOLERANCE,
                      "rows": targets},
        "speed": {"batch": batch, "size": SIZE, "repeats": repeats, "bpp_range": list(BPP_RANGE),
                  "threads": args.threads or default_threads(), "rows": speeds},
        "environment": environment(torch.device("cpu")),
    }
    plot(curves, out / "rd_codecs.png")
    text = markdown(report)
    report["seconds"] = time.perf_counter() - start
    (out / "codecs.md").write_text(text)
    (out / "codecs.json").write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    if args.json:
        command = "python benchmarks/codecs.py " + " ".join(argv if argv is not None else sys.argv[1:])
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary(report, command.strip()), indent=2) + "\n")
    print(text)
    print(f"wrote codecs.md, codecs.json, rd_codecs.png to {out} in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
