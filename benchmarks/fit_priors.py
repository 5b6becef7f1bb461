"""Refits the rate priors that start every bpp search, and compares them with the tables the codecs ship.

Rate control (:mod:`augcomp.rate`) starts each sample from a prediction of its rate; the better the prediction, the
fewer encodes a sample needs. The predictions are fitted tables:

- JPEG: ``log(scan bpp) ~ T[q] + B[q] * (activity - mean activity)`` at 23 qualities, on 156 crops of 48 to 320 pixels
  a side (12 per photograph, seed 0), with :func:`augcomp.codecs.jpeg.activity` as the texture measure.
- Codecs whose registry entry has a ``rate_curve`` (WebP, AVIF, HEIC, JPEG XL):
  ``log(bpp) ~ a + b * fine + c * coarse`` at each level of the codec's grid, on
  ``augcomp.samples.natural_crops(48, 224)``, with :func:`augcomp.codecs._containers.texture` as the texture measures.

For each codec this prints the refitted table as Python, its largest difference from the shipped one, and the
median error of both predictions on the fitting crops and on held-out crops (the same recipe with seed 1);
``--out`` also gets ``priors.json`` and ``priors.md``.

    python benchmarks/fit_priors.py                       # every codec with a fitted prior usable here
    python benchmarks/fit_priors.py --codecs webp,jpeg
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from augcomp import codecs  # noqa: E402
from augcomp._api import compress  # noqa: E402
from augcomp.availability import codec_available  # noqa: E402

# The photographs and crops the JPEG prior was fitted on.
JPEG_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "immunohistochemistry",
               "hubble_deep_field", "retina", "colorwheel", "cat", "logo", "motorcycle_right", "stereo_motorcycle")


def curve_codecs() -> list[str]:
    """The codecs whose entry has a fitted ``rate_curve``: a query over the registry, not a list."""
    return codecs.list(where=lambda e: e.rate_curve is not None)


def jpeg_crops(per_image: int = 12, seed: int = 0) -> list[torch.Tensor]:
    """Crops of 48 to 320 pixels a side, ``per_image`` of each photograph that this scikit-image has."""
    from skimage import data

    rng = np.random.default_rng(seed)
    crops = []
    for name in JPEG_IMAGES:
        try:
            image = getattr(data, name)()
        except Exception:  # noqa: BLE001 - missing or not a loader in this scikit-image version
            continue
        image = np.asarray(image[0] if isinstance(image, tuple) else image)
        image = np.repeat(image[..., None], 3, 2) if image.ndim == 2 else image[..., :3]
        for _ in range(per_image):
            h = int(rng.integers(48, min(image.shape[0], 320) + 1))
            w = int(rng.integers(48, min(image.shape[1], 320) + 1))
            y, x = int(rng.integers(0, image.shape[0] - h + 1)), int(rng.integers(0, image.shape[1] - w + 1))
            crops.append(torch.from_numpy(np.ascontiguousarray(image[y : y + h, x : x + w])).permute(2, 0, 1))
    return crops


def _jpeg_data(seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from augcomp.codecs import jpeg

    qualities = torch.tensor(jpeg._PRIOR_QUALITY, dtype=torch.float32)
    rates, texture = [], []
    for crop in tqdm(jpeg_crops(seed=seed), desc=f"jpeg, seed {seed}", disable=not progress, file=sys.stderr):
        out = compress(crop[None].expand(len(qualities), -1, -1, -1).contiguous(), "jpeg", quality=qualities)
        rates.append(torch.log(out.bpp).double().numpy())
        texture.append(float(jpeg.activity(crop[None])[0]))
    return np.array(texture), np.array(rates)


def fit_jpeg(progress: bool = True) -> dict:
    from augcomp.codecs import jpeg

    texture, rates = _jpeg_data(0, progress)
    mean = float(texture.mean())
    slope, intercept = np.polyfit(texture - mean, rates, 1)  # one line per quality
    fitted = np.array([intercept, slope])
    shipped = np.array([jpeg._PRIOR_LOG_BPP, jpeg._PRIOR_SLOPE])
    held_texture, held_rates = _jpeg_data(1, progress)

    def error(table: np.ndarray, centre: float, held: bool) -> float:
        t, r = (held_texture, held_rates) if held else (texture, rates)
        return float(np.median(np.abs(table[0][None] + table[1][None] * (t - centre)[:, None] - r)))

    return _summary("jpeg", len(texture), jpeg._PRIOR_QUALITY, fitted, shipped,
                    [error(shipped, jpeg._PRIOR_ACTIVITY, h) for h in (False, True)],
                    [error(fitted, mean, h) for h in (False, True)], mean_activity=round(mean, 3))


def _curve_data(name: str, batch: int, size: int, seed: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from augcomp.codecs._containers import texture
    from augcomp.samples import natural_crops

    levels = codecs.entry(name).rate_curve[0]
    crops = natural_crops(batch, size, seed=seed)
    features = np.array([texture(image) for image in crops.permute(0, 2, 3, 1).numpy()])
    rates = [np.log(compress(crops, name, quality=float(level)).bpp.double().numpy())
             for level in tqdm(levels, desc=f"{name}, seed {seed}", disable=not progress, file=sys.stderr)]
    return np.column_stack([np.ones(len(features)), features]), np.array(rates).T  # (crops, 3), (crops, levels)


def fit_curve(name: str, batch: int, size: int, progress: bool = True) -> dict:
    levels, shipped = codecs.entry(name).rate_curve
    shipped = np.array(shipped)
    design, rates = _curve_data(name, batch, size, 0, progress)
    fitted, *_ = np.linalg.lstsq(design, rates, rcond=None)  # (3, levels)
    held_design, held_rates = _curve_data(name, batch, size, 1, progress)

    def error(table: np.ndarray, held: bool) -> float:
        d, r = (held_design, held_rates) if held else (design, rates)
        return float(np.median(np.abs(d @ table - r)))

    return _summary(name, len(design), levels, fitted, shipped, [error(shipped, h) for h in (False, True)],
                    [error(fitted, h) for h in (False, True)])


def _summary(name: str, crops: int, levels, fitted: np.ndarray, shipped: np.ndarray, shipped_error: list[float],
             refit_error: list[float], **extra) -> dict:
    table = np.round(fitted, 3)
    return {"codec": name, "crops": crops, "levels": [float(v) for v in levels], "table": table.tolist(),
            "max_abs_difference": float(np.abs(table - shipped).max()),
            "median_log_error_shipped": shipped_error[0], "median_log_error_refit": refit_error[0],
            "heldout_median_log_error_shipped": shipped_error[1], "heldout_median_log_error_refit": refit_error[1],
            **extra}


def as_python(table: list[list[float]]) -> str:
    rows = ["    (" + ", ".join(f"{v:.3f}" for v in row) + ")," for row in table]
    return "(\n" + "\n".join(rows) + "\n)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    fitted = ("jpeg", *curve_codecs())  # JPEG's prior is its module's own table (fit_jpeg); the others are curves
    parser.add_argument("--codecs", default=",".join(fitted),
                        help=f"comma-separated: jpeg and the codecs with a rate_curve (default: all usable here: "
                             f"{','.join(fitted)})")
    parser.add_argument("--batch", type=int, default=48, help="crops for the curve codecs (default 48)")
    parser.add_argument("--size", type=int, default=224, help="crop side for the curve codecs (default 224)")
    parser.add_argument("--out", default="results/priors", help="output folder (default results/priors)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.codecs.split(",") if n.strip()]
    unknown = [n for n in names if n not in fitted]
    if unknown:
        parser.error(f"--codecs: {unknown} have no fitted prior; choose from {fitted}")
    results = []
    for name in names:
        usable, why = codec_available(name)
        if not usable:
            print(f"{name}: skipped ({why})")
            continue
        fit = fit_jpeg(not args.no_progress) if name == "jpeg" else fit_curve(name, args.batch, args.size,
                                                                             not args.no_progress)
        results.append(fit)
        print(f"{name}: {fit['crops']} crops, largest difference from the shipped table "
              f"{fit['max_abs_difference']:.3f}; median |log(bpp) error| on the fitting crops: shipped "
              f"{fit['median_log_error_shipped']:.3f}, refit {fit['median_log_error_refit']:.3f}; on held-out crops "
              f"(seed 1): shipped {fit['heldout_median_log_error_shipped']:.3f}, "
              f"refit {fit['heldout_median_log_error_refit']:.3f}")
        print(as_python(fit["table"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "priors.json").write_text(json.dumps(results, indent=1))
    lines = ["Median |log(bpp) error| of the prior, on the fitting crops (seed 0) and on held-out crops (seed 1).", "",
             "| codec | crops | largest difference | shipped | refit | held out: shipped | held out: refit |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['codec']} | {r['crops']} | {r['max_abs_difference']:.3f} | {r['median_log_error_shipped']:.3f} | "
              f"{r['median_log_error_refit']:.3f} | {r['heldout_median_log_error_shipped']:.3f} | "
              f"{r['heldout_median_log_error_refit']:.3f} |" for r in results]
    (out / "priors.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'priors.json'} and {out / 'priors.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
