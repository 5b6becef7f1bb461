"""Engines that code work items into store entries: a local process pool, or Ray Data on one machine or a cluster.

A work item is one image at one (codec, target): ``{"pixels": bytes, "shape": [C, H, W], "image": hash, "codec":
name, "options": JSON, "target_kind": "bpp" or "level", "target": float, "source": str}``. Engines only decide where
items are coded; coding is deterministic per item (:func:`~augcomp.store.encode_entries` codes batch-dependent
codecs one image at a time), so every engine and worker count writes the same entries. The caller writes what an
engine yields, in chunks, so a killed run keeps every chunk already written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from augcomp._errors import ArgumentError
from augcomp.codecs.registry import MissingExtraError
from augcomp.store._format import Entry

__all__ = ["ENGINES", "code_items", "run_local", "run_ray"]

ENGINES = ("local", "ray")


def code_items(items: Sequence[dict[str, Any]]) -> list[Entry]:
    """Codes a list of work items (in any process) and returns their entries, grouped by (codec, options, target
    kind) so that each group is one call."""
    from augcomp.store._coded import encode_entries

    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault((item["codec"], item["options"], item["target_kind"]), []).append(i)
    out: list[Entry | None] = [None] * len(items)
    for (codec, options, kind), idx in groups.items():
        images = [torch.from_numpy(np.frombuffer(items[i]["pixels"], dtype=np.uint8).copy()).reshape(
            [int(s) for s in items[i]["shape"]]) for i in idx]
        entries, _ = encode_entries(images, codec, kind, [float(items[i]["target"]) for i in idx],
                                    options=json.loads(options) or None,
                                    sources=[items[i]["source"] for i in idx],
                                    image_ids=[items[i]["image"] for i in idx])
        for i, entry in zip(idx, entries, strict=True):
            out[i] = entry
    return out  # type: ignore[return-value]


def _chunks(items: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _init_worker() -> None:
    # One thread per worker process: the pool is the parallelism, and oversubscribed cores run slower.
    os.environ["AUGCOMP_THREADS"] = "1"
    torch.set_num_threads(1)


def _chunk_size(items: int, workers: int, chunk: int | None) -> int:
    # Small chunks keep the workers evenly busy (one item costs 10 ms to seconds, far above the per-chunk overhead);
    # large ones amortise the transfer when there are many items.
    return chunk if chunk is not None else max(1, min(16, items // (8 * workers)))


def run_local(items: Sequence[dict[str, Any]], workers: int, chunk: int | None = None) -> Iterator[list[Entry]]:
    """Codes ``items`` in a pool of ``workers`` processes (in this process when ``workers`` is 1); yields the entries
    of each finished chunk as it finishes."""
    if workers < 1:
        raise ArgumentError(f"workers must be >= 1, got {workers}")
    chunks = _chunks(items, _chunk_size(len(items), workers, chunk))
    if workers == 1:
        previous = os.environ.get("AUGCOMP_THREADS")
        os.environ["AUGCOMP_THREADS"] = "1"
        try:
            for part in chunks:
                yield code_items(part)
        finally:
            if previous is None:
                os.environ.pop("AUGCOMP_THREADS", None)
            else:
                os.environ["AUGCOMP_THREADS"] = previous
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # fork where there is one, as DataLoader workers do: the workers start at once, with torch and the codecs
    # imported (each sets one thread before coding); spawn elsewhere.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init_worker) as pool:
        pending = {pool.submit(code_items, part) for part in chunks[: 2 * workers]}
        queued = chunks[2 * workers:]
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                if queued:
                    pending.add(pool.submit(code_items, queued.pop(0)))
                yield future.result()


class _RayCoder:
    """Ray Data's callable class: one per actor, coding a batch of work items (a pyarrow table) into entry rows."""

    def __init__(self) -> None:
        _init_worker()

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from augcomp.store._format import schema

        entries = code_items(batch.to_pylist())
        return pa.Table.from_pylist([e.row() for e in entries], schema=schema())


def run_ray(items: Sequence[dict[str, Any]], workers: int, address: str | None = None,
            chunk: int | None = None) -> Iterator[list[Entry]]:
    """Codes ``items`` with Ray Data: ``map_batches`` over a pool of ``workers`` actors. Starts a local Ray when no
    ``address`` is given (and none is running); joins the cluster at ``address`` otherwise."""
    try:
        import ray
    except ImportError as e:
        raise MissingExtraError("--engine ray needs Ray Data: pip install 'augcomp[ray]'") from e
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False}
        if address is None:
            kwargs["num_cpus"] = workers
        ray.init(**kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    chunk = _chunk_size(len(items), workers, chunk)
    dataset = ray.data.from_items(list(items), override_num_blocks=max(1, len(items) // chunk))
    coded = dataset.map_batches(_RayCoder, batch_size=chunk, batch_format="pyarrow", concurrency=workers, num_cpus=1)
    for table in coded.iter_batches(batch_size=chunk, batch_format="pyarrow"):
        yield [Entry(**row) for row in table.to_pylist()]
