"""Throughput benchmark: augcomp's codecs against the JPEG implementations people already use.

Every row compresses and decodes the same batch of natural images (random crops of the photographs scikit-image
ships, :mod:`augcomp.samples`) in the same process, after a warm-up; a row's time is the median of its timed
repeats. On a GPU each call ends with ``torch.cuda.synchronize()``. Rows that only exist on the CPU (Pillow,
simplejpeg, torchvision's CPU coder, the library codecs) run on a CPU copy of the batch even when the benchmark runs on
a GPU; the table says where each row ran.

Every registered codec gets two rows, generated from its registry entry: ``codec:<name>`` at the middle of its
level range and ``codec:<name>:bpp`` at per-sample targets drawn in 0.3-2 bpp; the report gives their ratio (the
cost of rate control) and the targeted rows' speed against torchvision v2.JPEG.

Run it as ``augcomp bench``, ``python -m augcomp.bench`` or ``python benchmarks/throughput.py`` (same options; the
last one adds the project's performance goals)::

    augcomp bench                         # the default: batch 64 of 224x224 crops, on CUDA if present
    augcomp bench --rows 'augcomp-*,kornia-*' --repeats 7
    augcomp bench --rows 'codec:*'        # every codec at a fixed level and at bpp targets
    augcomp bench --quick --out bench-smoke   # seconds, for smoke tests

Speed ratios are ``time of the reference / time of the row``: above 1 means the row is faster.

On a CPU shared with other work, run with ``OMP_WAIT_POLICY=PASSIVE``: OpenMP's workers otherwise spin while waiting
for busy cores, which slows every torch operation (torchvision's JPEG coder included) by erratic factors.

Modules: :mod:`~augcomp.bench.rows` (what each row times), :mod:`~augcomp.bench.timing` (warm-up and repeats),
:mod:`~augcomp.bench.report` (environment and Markdown), :mod:`~augcomp.bench.command` (options and files).
"""

from __future__ import annotations

from typing import Any

from augcomp.bench.command import DEFAULT_OUT, Section, benchmark, build_parser, main, resolve_device
from augcomp.bench.report import busy_cpu_warning, environment, markdown, rate_control
from augcomp.bench.rows import (
    BASELINE,
    BASELINE_CODEC,
    BPP_RANGE,
    Inputs,
    Prepared,
    Row,
    Skip,
    all_rows,
    codec_row_keys,
    codec_rows,
    fixed_level,
    select_rows,
)
from augcomp.bench.timing import RowResult, run

__all__ = [
    "BASELINE",
    "BASELINE_CODEC",
    "BPP_RANGE",
    "DEFAULT_OUT",
    "Inputs",
    "Prepared",
    "Row",
    "RowResult",
    "Section",
    "Skip",
    "all_rows",
    "benchmark",
    "build_parser",
    "busy_cpu_warning",
    "codec_row_keys",
    "codec_rows",
    "environment",
    "fixed_level",
    "main",
    "markdown",
    "rate_control",
    "resolve_device",
    "run",
    "select_rows",
]

# Names that lived in the old single-module ``augcomp.bench``, kept importable from here for code not yet updated.
_MOVED = {
    "NATURAL_IMAGES": ("augcomp.samples", "NATURAL_IMAGES"),
    "natural_images": ("augcomp.samples", "natural_images"),
    "natural_crops": ("augcomp.samples", "natural_crops"),
    "codec_weights_status": ("augcomp.availability", "codec_available"),
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        module, attr = _MOVED[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'augcomp.bench' has no attribute {name!r}")
