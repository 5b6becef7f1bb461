"""``augcomp precompute``: fill a store with every (image, codec, target) of a sweep, on one machine or a Ray cluster.

The images are a task's split after the sweep's own preprocessing (the recipes' evaluation transform at
``--image-size``), so a recipe run with ``--store`` finds every entry and encodes nothing. Bad rows found by the last
``augcomp store verify`` are removed first, so exactly those are encoded again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import torch

from augcomp.store import ENGINES, CodecWork, Store, image_hash, key_for, run_local, run_ray

__all__ = ["TASKS", "precompute", "split_dataset"]

TASKS = ("cls", "det", "seg")


def _task(name: str) -> Any:
    from augcomp import tasks

    return {"cls": tasks.ClassificationTask, "det": tasks.DetectionTask, "seg": tasks.SegmentationTask}[name]()


def split_dataset(task: str, data_root: str | None, split: str, image_size: int | None, seed: int = 0) -> Any:
    """The dataset of ``split`` as a recipe's sweep sees it: the task's evaluation transform at ``image_size``
    (``data_root`` None: the synthetic scenes of the recipe's default run, ``split`` "val" or "train")."""
    t = _task(task)
    if data_root is None and split != "val":
        raise ValueError(f"--split {split!r}: without --data-root the synthetic scenes have one sweep split, 'val'")
    # The preset a recipe run on this data starts from, with what precompute was given on top.
    settings = t.settings(data_root is None).merged(val_split=split, seed=seed, image_size=image_size)
    return t.build_data(settings, data_root).val


def _images(dataset: Any) -> Any:
    """(index, uint8 image) of every sample. Loaded in this process: decoding and resizing cost a few percent of
    coding, and the engine's workers are forked from here."""
    for index in range(len(dataset)):
        image = dataset[index]["image"]
        if image.dtype != torch.uint8:
            image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
        yield index, image


def precompute(*, task: str, data_root: str | None, split: str, codecs: Sequence[str], bpp_grid: Sequence[float],
               image_size: int | None, store: str, engine: str = "local", workers: int = 1,
               ray_address: str | None = None, chunk_images: int = 256, flush_every: int = 512,
               progress: bool = True) -> dict[str, Any]:
    """Adds every missing entry of a sweep to ``store``.

    Args:
        task: ``"cls"``, ``"det"`` or ``"seg"``.
        data_root: the dataset (None: the recipe's synthetic scenes).
        split: the split's name.
        codecs: codec names.
        bpp_grid: target bitrates.
        image_size: the sweep's image size (None: the task's default).
        store: the store's URL.
        engine: ``"local"`` (a process pool) or ``"ray"`` (Ray Data).
        workers: processes (local) or actors (Ray).
        ray_address: a Ray cluster to join (default: start a local Ray).
        chunk_images: images handled at once (bounds the driver's memory).
        flush_every: entries per part file written: a killed run loses at most this many, and larger parts keep
            the file count of a paper-scale store (millions of entries) in the thousands.
        progress: show progress bars.

    Returns:
        ``{"encoded", "reused", "repaired", "entries", "digest", "seconds", ...}``.
    """
    from tqdm.auto import tqdm

    from augcomp import codecs as registry

    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {ENGINES}, got {engine!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {workers!r}")
    if not isinstance(flush_every, int) or flush_every < 1:
        raise ValueError(f"--flush-every must be a positive integer, got {flush_every!r}")
    if task not in TASKS:
        raise ValueError(f"--task must be one of {TASKS}, got {task!r}")
    if not codecs or not bpp_grid:
        raise ValueError("--codecs and --bpp-grid must each name at least one value")
    start = time.perf_counter()
    built = {name: registry.get(name) for name in codecs}  # fails here, before any work, on a bad codec
    dataset = split_dataset(task, data_root, split, image_size)
    st = Store(store)
    repaired = st.repair()
    known = st.keys()
    work = CodecWork()
    total = len(dataset) * len(codecs) * len(bpp_grid)
    bar = tqdm(total=total, desc="precompute", unit="entry", disable=not progress, dynamic_ncols=True)
    items: list[dict[str, Any]] = []
    t_encode = 0.0

    done: list = []

    def flush() -> None:
        nonlocal t_encode
        if not items:
            return
        t0 = time.perf_counter()
        runner = run_ray(items, workers, ray_address) if engine == "ray" else run_local(items, workers)
        for entries in runner:
            done.extend(entries)
            work.encoded += len(entries)
            bar.update(len(entries))
            if len(done) >= flush_every:  # in the store before more is coded: a kill loses at most flush_every
                st.write(done)
                done.clear()
        t_encode += time.perf_counter() - t0
        items.clear()

    pending_images = 0
    for index, image in _images(dataset):
        ident = image_hash(image)
        pixels = None
        for name in codecs:
            for bpp in bpp_grid:
                if key_for(ident, built[name], "bpp", bpp) in known:
                    work.reused += 1
                    bar.update(1)
                    continue
                pixels = pixels if pixels is not None else image.contiguous().numpy().tobytes()
                items.append({"pixels": pixels, "shape": list(image.shape), "image": ident, "codec": name,
                              "options": json.dumps({}), "target_kind": "bpp", "target": float(bpp),
                              "source": f"{split}[{index}]"})
        pending_images += 1
        if pending_images >= chunk_images:
            flush()
            pending_images = 0
    flush()
    st.write(done)
    bar.close()
    work.encode_seconds = t_encode
    return {"encoded": work.encoded, "reused": work.reused, "repaired": len(repaired), "entries": len(st),
            "digest": st.digest(), "engine": engine, "workers": workers, "images": len(dataset),
            "encode_seconds": round(t_encode, 3), "seconds": round(time.perf_counter() - start, 3)}
