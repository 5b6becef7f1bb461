"""Overhead of the neural-codec wrapper over a bare CompressAI forward pass, on the same batch and model.

Compares, for ``augcomp-tiny`` at one level:

- ``compressai``: the model's own ``model(x)`` in eval mode under ``torch.no_grad()`` (no padding, no clamping);
- ``augcomp grad=none``: ``functional.compress(x, codec="augcomp-tiny", quality=k, grad="none")``;
- ``augcomp grad=ste``: the same with straight-through rounding and an input that requires grad (forward only);
- ``augcomp bpp=``: rate control, ``functional.compress(x, codec="augcomp-tiny", bpp=t, grad="none")``.

Run::

    python benchmarks/neural_overhead.py --batch 16 --size 256 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from augcomp import codecs, functional


def timeit(fn, repeats: int, sync) -> float:
    fn()  # warm-up (also builds and caches the model)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--level", type=int, default=2)
    p.add_argument("--bpp", type=float, default=0.3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    codec = codecs.get("augcomp-tiny", grad="none")
    model = codec.model(args.level, device)

    def bare():
        with torch.no_grad():
            return model(x)

    xg = x.clone().requires_grad_(True)
    runs = {
        "compressai model(x)": bare,
        "augcomp grad=none": lambda: functional.compress(x, codec="augcomp-tiny", quality=args.level, grad="none"),
        "augcomp grad=ste": lambda: functional.compress(xg, codec="augcomp-tiny", quality=args.level, grad="ste"),
        f"augcomp bpp={args.bpp:g}": lambda: functional.compress(x, codec="augcomp-tiny", bpp=args.bpp, grad="none"),
    }
    print(f"batch {tuple(x.shape)} on {device}, torch threads {torch.get_num_threads()}, median of {args.repeats}")
    base = None
    for name, fn in runs.items():
        t = timeit(fn, args.repeats, sync)
        base = base or t
        print(f"{name:24s} {t * 1000:9.1f} ms  {args.batch / t:8.1f} img/s  {100 * (t / base - 1):+7.1f} %")


if __name__ == "__main__":
    main()
