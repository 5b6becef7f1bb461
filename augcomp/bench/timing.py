"""Timing the benchmark rows: warm-up, then the median of timed repeats, each ended by a device sync."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from augcomp.bench.rows import BASELINE, Inputs, Prepared, Row, Skip

__all__ = ["RowResult", "run"]


@dataclass
class RowResult:
    """The timing of one row (``ms_per_batch`` is None for a skipped row)."""

    key: str
    label: str
    group: str
    device: str
    dtype: str
    ms_per_batch: float | None = None
    images_per_s: float | None = None
    speed_vs_baseline: float | None = None
    times_ms: list[float] = field(default_factory=list)
    note: str = ""
    skipped: str = ""


def run(rows: list[Row], inputs: Inputs, repeats: int, budget_s: float, progress: bool = True) -> list[RowResult]:
    """Times each row on ``inputs`` (rows that cannot run are returned with ``skipped`` set).

    ``speed_vs_baseline`` is ``time of the baseline row / time of the row`` when the baseline ran.
    """
    from tqdm.auto import tqdm

    device = inputs.device
    cuda_sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results = []
    bar = tqdm(total=len(rows) * (1 + repeats), desc="bench", unit="run", disable=not progress, file=sys.stderr)
    for row in rows:
        bar.set_postfix_str(row.key)
        on = torch.device("cpu") if row.cpu_only else device
        res = RowResult(row.key, row.label, row.group, str(on), row.dtype, note=row.note)
        try:
            if row.cuda_only and device.type != "cuda":
                raise Skip("needs a CUDA device")
            fn = row.make(inputs)
            if isinstance(fn, Prepared):
                on, res.device, res.note = torch.device(fn.device), fn.device, f"{res.note}; {fn.note}"
                fn = fn.fn
            sync = (lambda: None) if on.type == "cpu" else cuda_sync
            times = _time(fn, sync, repeats, budget_s, row.warmup, bar.update)
        except Skip as why:
            res.skipped = str(why)
            bar.update(1 + repeats)
        except Exception as err:  # noqa: BLE001 - a peer library's API change must not sink the whole run
            if not (row.optional or row.group == "peer"):
                raise
            res.skipped = f"failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
            bar.update(1 + repeats)
        else:
            median = statistics.median(times)
            res.times_ms = [round(1000 * t, 3) for t in times]
            res.ms_per_batch = 1000 * median
            res.images_per_s = inputs.u8.shape[0] / median
        results.append(res)
    bar.close()
    base = next((r for r in results if r.key == BASELINE and r.ms_per_batch), None)
    for r in results:
        if base is not None and r.ms_per_batch:
            r.speed_vs_baseline = base.ms_per_batch / r.ms_per_batch
    return results


def _time(fn: Callable[[], Any], sync: Callable[[], None], repeats: int, budget_s: float, warmup: int,
          tick: Callable[[], None]) -> list[float]:
    # Warm-up first (lazy builds, compilation, thread pools, caching allocators): ``warmup`` calls, and up to
    # three while they are cheap, since small inputs take a few calls to settle. A slow row then gets fewer timed
    # repeats, but never fewer than three, so the median always rejects one outlier.
    last, calls = 0.0, 0
    while calls < warmup or (calls < 3 and last < 1.0):
        start = time.perf_counter()
        fn()
        sync()
        last = time.perf_counter() - start
        calls += 1
    tick()
    count = repeats if last <= 0 else max(min(3, repeats), min(repeats, int(budget_s / last)))
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        tick()
    for _ in range(repeats - count):
        tick()
    return times
