"""Peak host memory of one ``compress`` call on a large image, in bytes per pixel of the input.

Each measurement runs in a fresh subprocess: ``ru_maxrss`` (the resident high-water mark) is read after importing
augcomp and allocating the input, and again after ``compress``; the difference is what the call itself needed at
its peak.

    python benchmarks/memory.py                          # 4000 x 6000, jpeg, bpp 0.3, backend torch
    python benchmarks/memory.py --height 2000 --width 3000 --quality 75
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def _child(args: argparse.Namespace) -> dict:
    import resource

    import torch

    import augcomp

    g = torch.Generator().manual_seed(0)
    # A smooth image with a little texture: natural-looking rates, unlike noise (no target reachable at 0.3 bpp).
    coarse = torch.rand(1, 3, args.height // 16 + 1, args.width // 16 + 1, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(args.height, args.width), mode="bilinear", align_corners=False)
    x = (x + 0.02 * torch.rand(x.shape, generator=g)).clamp_(0, 1)
    del coarse
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    spec = {"bpp": args.bpp} if args.quality is None else {"quality": args.quality}
    out = augcomp.compress(x, args.codec, backend=args.backend, **spec)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    pixels = args.height * args.width
    return {"codec": args.codec, "backend": args.backend, "height": args.height, "width": args.width, **spec,
            "bpp_reached": round(float(out.bpp), 4), "level": round(float(out.level), 2),
            "peak_mib": round((peak - base) / 2**20, 1), "bytes_per_pixel": round((peak - base) / pixels, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--codec", default="jpeg")
    parser.add_argument("--backend", default="torch")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--bpp", type=float, default=0.3)
    group.add_argument("--quality", type=float, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return 0
    # A fresh process, so that nothing measured before (imports, caches) counts.
    child = subprocess.run([sys.executable, __file__, "--child", *(argv if argv is not None else sys.argv[1:])],
                           capture_output=True, text=True, check=False)
    if child.returncode != 0:
        sys.stderr.write(child.stderr)
        return child.returncode
    print(child.stdout.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
