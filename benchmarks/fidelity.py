"""Fidelity of augcomp's tensor JPEG to libjpeg-turbo: PSNR of the decoded images and scan-bits error.

Runs the pure-tensor path (``backend="torch"``) on the natural images that scikit-image ships, at full size and
at odd crops, and compares each result with Pillow's libjpeg-turbo at the same quality.

    python benchmarks/fidelity.py                 # Markdown table to stdout, JSON to results/bench/
    python benchmarks/fidelity.py --quick         # a smaller grid
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
from oracles import libjpeg_reference  # this folder is on sys.path when a script in it runs
from tqdm import tqdm

from augcomp import functional

IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera")
CROPS = (None, (301, 203), (97, 131), (33, 17), (1, 1))
QUALITIES = (1, 5, 10, 20, 35, 50, 65, 75, 85, 90, 95, 100)


def _chw(image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.array(image))  # a writable copy: decoded arrays are read-only
    return x[None] if x.ndim == 2 else x.permute(2, 0, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="three images, three crops, six qualities")
    parser.add_argument("--out", default="results/bench", help="folder for fidelity.json and fidelity.md")
    args = parser.parse_args(argv)
    import skimage.data

    images = IMAGES[:3] if args.quick else IMAGES
    crops = CROPS[:3] if args.quick else CROPS
    qualities = (1, 10, 50, 75, 95, 100) if args.quick else QUALITIES
    per_quality: dict[int, list[tuple[float, float, int]]] = {q: [] for q in qualities}
    start = time.perf_counter()
    for name in tqdm(images, desc="images"):
        full = np.ascontiguousarray(getattr(skimage.data, name)())
        for crop in crops:
            image = full if crop is None else np.ascontiguousarray(full[: crop[0], : crop[1]])
            x = _chw(image)[None].expand(len(qualities), -1, -1, -1)
            out = functional.compress(x.contiguous(), quality=torch.tensor(qualities, dtype=torch.float32),
                                      backend="torch")
            for i, q in enumerate(qualities):
                ref, ref_bits, _ = libjpeg_reference(image, q)
                score = float(functional.psnr(_chw(ref), out.image[i]))
                per_quality[q].append((score, abs(float(out.bits[i]) - ref_bits) / ref_bits,
                                       image.shape[0] * image.shape[1]))
    rows = []
    for q in qualities:
        psnrs = [p for p, _, _ in per_quality[q]]
        errors = [e for _, e, n in per_quality[q] if n >= 64 * 64]
        rows.append({"quality": q, "cases": len(psnrs), "psnr_min": min(psnrs), "psnr_median": float(np.median(psnrs)),
                     "identical": sum(math.isinf(p) for p in psnrs), "bits_err_median": float(np.median(errors)),
                     "bits_err_max": max(errors)})
    lines = ["| quality | cases | PSNR vs libjpeg, worst (dB) | median (dB) | pixel-identical | bits error median "
             "| bits error worst |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['quality']} | {r['cases']} | {r['psnr_min']:.2f} | {r['psnr_median']:.2f} | "
                     f"{r['identical']}/{r['cases']} | {100 * r['bits_err_median']:.3f}% | "
                     f"{100 * r['bits_err_max']:.3f}% |")
    table = "\n".join(lines)
    elapsed = time.perf_counter() - start
    print(table)
    print(f"\n{len(images)} images x {len(crops)} sizes x {len(qualities)} qualities in {elapsed:.1f} s "
          "(bits error over images of at least 64x64; inf dB means pixel-identical)")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fidelity.json"), "w") as f:
        json.dump({"rows": rows, "images": list(images), "crops": [str(c) for c in crops], "seconds": elapsed}, f,
                  indent=2, default=str)
    with open(os.path.join(args.out, "fidelity.md"), "w") as f:
        f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
