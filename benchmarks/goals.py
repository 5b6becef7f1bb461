"""The project's performance goals, each a speed ratio between two rows of one throughput run.

Used by ``benchmarks/throughput.py``, which adds them to the report (``report["bars"]``) and marks each PASS or
MISS; the package's benchmark (``augcomp bench``) reports speeds only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from augcomp.bench import BASELINE

__all__ = ["CUDA_GOALS", "GOALS", "BarResult", "evaluate_bars", "goals_markdown", "section"]

# (name, row, reference row, goal): ``time(reference) / time(row)`` must reach ``goal``.
GOALS = (
    ("augcomp JPEG >= 1.0x torchvision v2.JPEG", "augcomp-jpeg", BASELINE, 1.0),
    ("bpp-targeted >= 0.5x torchvision v2.JPEG", "augcomp-bpp", BASELINE, 0.5),
    ("differentiable fwd+bwd >= 10x kornia RandomJPEG fwd+bwd", "augcomp-ste", "kornia-random-jpeg-fwdbwd", 10.0),
)
# Goals that only mean something on a GPU.
CUDA_GOALS = (
    ("fixed quality, default options >= 5x nvJPEG round trip", "augcomp-jpeg", "tv-io-nvjpeg", 5.0),
    ("bpp-targeted <= 1.5x the fixed-quality pass", "augcomp-bpp", "augcomp-jpeg", 1 / 1.5),
    ("differentiable fwd+bwd >= 5x nvJPEG round trip", "augcomp-ste", "tv-io-nvjpeg", 5.0),
    ("compiled fwd+bwd >= 10x kornia RandomJPEG fwd+bwd", "augcomp-ste-compiled", "kornia-random-jpeg-fwdbwd", 10.0),
    ("compiled fwd+bwd >= 5x nvJPEG round trip", "augcomp-ste-compiled", "tv-io-nvjpeg", 5.0),
)


@dataclass
class BarResult:
    """A performance goal: ``ratio = time(reference) / time(row)`` must reach ``goal`` (None: a row did not run)."""

    name: str
    row: str
    reference: str
    goal: float
    ratio: float | None
    passed: bool | None


def evaluate_bars(rows: Sequence[Mapping[str, Any]], device_type: str) -> list[BarResult]:
    """The goals for a run on ``device_type`` (``"cpu"`` or ``"cuda"``), from the report's rows."""
    goals = GOALS + (CUDA_GOALS if device_type == "cuda" else ())
    times = {r["key"]: r["ms_per_batch"] for r in rows if r["ms_per_batch"]}
    bars = []
    for name, row, ref, goal in goals:
        if row in times and ref in times:
            ratio = times[ref] / times[row]
            bars.append(BarResult(name, row, ref, goal, ratio, ratio >= goal))
        else:
            bars.append(BarResult(name, row, ref, goal, None, None))
    return bars


def goals_markdown(bars: Sequence[BarResult]) -> str:
    """The goals as a Markdown table: ratio and PASS, MISS or n/a."""
    lines = ["| goal | ratio | result |", "|---|---:|---|"]
    for b in bars:
        ratio = "–" if b.ratio is None else f"{b.ratio:.2f}x"
        verdict = "n/a" if b.passed is None else ("PASS" if b.passed else "MISS")
        lines.append(f"| {b.name} | {ratio} | {verdict} |")
    return "\n".join(lines) + "\n"


def section(report: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str]:
    """The goals as a section of the throughput report (see ``augcomp.bench.Section``)."""
    bars = evaluate_bars(report["rows"], report["environment"]["device"].split(":")[0])
    return "bars", [asdict(b) for b in bars], goals_markdown(bars)
