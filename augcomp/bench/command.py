"""The benchmark command: options, one run, and the files it writes (``throughput.md``, ``throughput.json``)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from augcomp._errors import ArgumentError
from augcomp.bench.report import environment, markdown, rate_control
from augcomp.bench.rows import BPP_RANGE, Inputs, all_rows, select_rows
from augcomp.bench.timing import run

__all__ = ["DEFAULT_OUT", "Section", "benchmark", "build_parser", "main", "resolve_device"]

DEFAULT_OUT = "results/bench"

# An addition to the report, called with the finished report: returns ``(key, value, markdown)``; the report gets
# ``report[key] = value`` and the Markdown ends with ``markdown`` (``benchmarks/goals.py`` adds the project's goals).
Section = Callable[[dict[str, Any]], tuple[str, Any, str]]


def build_parser(prog: str | None = None,
                 parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options shared by ``augcomp bench``, ``python -m augcomp.bench`` and ``benchmarks/throughput.py``."""
    p = parser_class(prog=prog, description="Images/s of augcomp's codecs and of other JPEG "
                                "implementations, on the same batch of natural images.")
    p.add_argument("--batch", type=_positive_int, default=64, help="images per batch (default 64)")
    p.add_argument("--size", type=_positive_int, default=224, help="crop side in pixels (default 224)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available, else cpu)")
    p.add_argument("--repeats", type=_positive_int, default=5, help="timed repeats per row (default 5)")
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds a slow row may spend on timed repeats before stopping at three (default 20)")
    p.add_argument("--rows", default=None,
                   help="comma-separated row keys or globs, e.g. 'augcomp-*,codec:*' (the baseline always runs)")
    p.add_argument("--quality", type=_quality, default=50, help="JPEG quality of the fixed-quality rows (default 50)")
    p.add_argument("--bpp", type=_positive_float, default=0.5, help="target of the augcomp-bpp row (default 0.5)")
    p.add_argument("--bpp-range", type=_bpp_range, default=BPP_RANGE, metavar="LO,HI",
                   help="range of the per-sample targets of the codec:*:bpp rows "
                        f"(default {BPP_RANGE[0]:g},{BPP_RANGE[1]:g})")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests: batch 4, 64x64, 2 repeats")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0, help="seed of the crops and the bpp targets (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list the row keys and exit")
    return p


def _checked(parse, ok, expected: str):
    """An argparse type: ``parse`` the text, then require ``ok(value)``; errors name what was expected."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return convert


def _pair(text: str) -> tuple[float, float]:
    lo, hi = (float(t) for t in text.split(","))
    return lo, hi


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_positive_float = _checked(float, lambda v: v > 0 and math.isfinite(v), "a number > 0")
_quality = _checked(int, lambda v: 1 <= v <= 100, "an integer quality in [1, 100]")
_bpp_range = _checked(_pair, lambda v: 0 < v[0] <= v[1] and math.isfinite(v[1]), "LO,HI with 0 < LO <= HI")


def resolve_device(name: str | None) -> torch.device:
    """The benchmark device; ``ValueError`` for CUDA without a GPU or an unknown name."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ArgumentError(f"unknown --device {name!r} ({err})") from None
    if device.type not in ("cpu", "cuda"):
        raise ArgumentError(f"--device must be cpu or cuda, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("--device cuda was asked for, but no CUDA device is available")
    return device


def _targets(batch: int, bpp_range: tuple[float, float], seed: int) -> torch.Tensor:
    # Log-uniform per-sample targets, as Compress(bpp=(lo, hi)) draws them; drawn once so every call codes the same.
    lo, hi = bpp_range
    u = torch.rand(batch, generator=torch.Generator().manual_seed(seed))
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def benchmark(args: argparse.Namespace, sections: Sequence[Section] = ()) -> dict[str, Any]:
    """Runs the benchmark for parsed ``args``, writes ``throughput.md`` and ``throughput.json``, returns the report.

    Raises:
        ValueError: an unusable ``--device`` or a ``--rows`` pattern that matches nothing (before any timing).
    """
    from augcomp.samples import natural_crops, natural_images

    if args.quick:
        args.batch, args.size, args.repeats = min(args.batch, 4), min(args.size, 64), min(args.repeats, 2)
    device = resolve_device(args.device)
    rows = select_rows(all_rows(args.quality, args.bpp), args.rows)
    if args.threads:
        torch.set_num_threads(args.threads)
    u8_cpu = natural_crops(args.batch, args.size, args.seed)
    u8 = u8_cpu.to(device)
    inputs = Inputs(u8=u8, u8_cpu=u8_cpu, f32=u8.to(torch.float32) / 255.0, device=device, quality=args.quality,
                    bpp=args.bpp, targets=_targets(args.batch, args.bpp_range, args.seed))
    results = run(rows, inputs, args.repeats, args.budget, progress=not args.no_progress)
    # The load is read after the run: it then covers the minutes the timings were taken in.
    report: dict[str, Any] = {
        "batch": args.batch,
        "size": args.size,
        "dtype": "uint8",
        "quality": args.quality,
        "bpp": args.bpp,
        "bpp_range": list(args.bpp_range),
        "repeats": args.repeats,
        "images": list(natural_images()),
        "environment": environment(device),
        "rows": [asdict(r) for r in results],
    }
    report["rate_control"] = rate_control(report["rows"])
    text = markdown(report)
    for section in sections:
        key, value, extra = section(report)
        report[key] = value
        text += "\n" + extra
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.md").write_text(text)
    (out / "throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text, end="")
    print(f"wrote {out / 'throughput.md'} and {out / 'throughput.json'}")
    return report


def main(argv: Sequence[str] | None = None, prog: str | None = None,
         parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
         sections: Sequence[Section] = ()) -> int:
    """Command-line entry point; returns the exit status. Usage errors go through ``parser.error``."""
    parser = build_parser(prog, parser_class)
    args = parser.parse_args(argv)
    if args.list:
        rows = all_rows(args.quality, args.bpp)
        width = max(len(r.key) for r in rows)
        for r in rows:
            print(f"{r.key:{width}s}  {r.label}")
        return 0
    try:
        resolve_device(args.device)
        select_rows(all_rows(args.quality, args.bpp), args.rows)
    except ValueError as err:
        parser.error(str(err))
    benchmark(args, sections)
    return 0
