"""Progress of a loop over batches: a bar on a terminal, and in a log (output not a terminal) a line every half
minute, so that a log never stays silent through a long epoch or sweep point."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["LOG_EVERY_S", "progress"]

T = TypeVar("T")

# Seconds between two progress lines in a log.
LOG_EVERY_S = 30.0


def progress(items: Iterable[T], desc: str, accelerator: Any, every_s: float = LOG_EVERY_S) -> Iterator[T]:
    """Iterates over ``items`` and shows how far it got, on the local main process only.

    Args:
        items: the batches (a sized loader gives ``i/n`` counts).
        desc: what the loop does, e.g. ``"clean 1/8"``.
        accelerator: the run's ``Accelerator``.
        every_s: seconds between two lines when the output is not a terminal.
    """
    if not accelerator.is_local_main_process:
        yield from items
        return
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, leave=False, dynamic_ncols=True)
        return
    total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
    start = last = time.monotonic()
    for i, item in enumerate(items, start=1):
        yield item
        now = time.monotonic()
        if now - last >= every_s and (total is None or i < total):
            last = now
            of = f"/{total}" if total is not None else ""
            print(f"{desc}: batch {i}{of} ({now - start:.0f} s)", flush=True)
