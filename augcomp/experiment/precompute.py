"""``augcomp precompute``: fill a store with every (image, codec, target) of a sweep, or K coded variants of every
training image, on one machine or a Ray cluster.

Sweep split: the images are a task's split after the sweep's own preprocessing (the recipes' evaluation transform at
``--image-size``), so a recipe run with ``--store`` finds every entry and encodes nothing.

Training split with ``--variants K``: the images are the recipe's training set as its dataset loads them, before the
random geometry, and variant ``k`` of image ``index`` is coded at the ``(codec, target)`` of
:func:`augcomp.data.train_store.variant_draw`; a recipe run with ``--train-store`` and the same mix, bpp range and
seed finds every variant (see :mod:`augcomp.data.train_store`).

Bad rows found by the last ``augcomp store verify`` are removed first, so exactly those are encoded again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import torch

from augcomp._errors import ArgumentError
from augcomp.store import ENGINES, CodecWork, Store, image_hash, key_for, run_local, run_ray

__all__ = ["TASKS", "precompute", "precompute_variants", "split_dataset", "train_dataset", "train_store_hint"]

# Entries per Parquet row group of the training variants: finetuning reads one random entry at a time.
VARIANT_ROW_GROUP = 8

TASKS = ("cls", "det", "seg")


def _task(name: str) -> Any:
    from augcomp import tasks

    return {"cls": tasks.ClassificationTask, "det": tasks.DetectionTask, "seg": tasks.SegmentationTask}[name]()


def split_dataset(task: str, data_root: str | None, split: str, image_size: int | None, seed: int = 0) -> Any:
    """The dataset of ``split`` as a recipe's sweep sees it: the task's evaluation transform at ``image_size``
    (``data_root`` None: the synthetic scenes of the recipe's default run, ``split`` "val" or "train")."""
    t = _task(task)
    if data_root is None and split != "val":
        raise ArgumentError(f"--split {split!r}: without --data-root the synthetic scenes have one sweep split, 'val'")
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

    _check_engine(task, engine, workers, flush_every)
    if not codecs or not bpp_grid:
        raise ArgumentError("--codecs and --bpp-grid must each name at least one value")
    start = time.perf_counter()
    built = {name: registry.get(name) for name in codecs}  # fails here, before any work, on a bad codec
    dataset = split_dataset(task, data_root, split, image_size)
    st = Store(store)
    repaired = st.repair()
    work = CodecWork()
    total = len(dataset) * len(codecs) * len(bpp_grid)
    bar = tqdm(total=total, desc="precompute", unit="entry", disable=not progress, dynamic_ncols=True)
    filler = _Filler(st, engine, workers, ray_address, flush_every, bar, chunk_images)
    for index, image in _images(dataset):
        ident = image_hash(image)
        for name in codecs:
            for bpp in bpp_grid:
                filler.add(key_for(ident, built[name], "bpp", bpp), image, ident, name, bpp, f"{split}[{index}]")
        filler.image_done()
    filler.close()
    bar.close()
    work.encoded, work.reused, work.encode_seconds = filler.encoded, filler.reused, filler.seconds
    return {"encoded": work.encoded, "reused": work.reused, "repaired": len(repaired), "entries": len(st),
            "digest": st.digest(), "engine": engine, "workers": workers, "images": len(dataset),
            "encode_seconds": round(work.encode_seconds, 3), "seconds": round(time.perf_counter() - start, 3)}


def _check_engine(task: str, engine: str, workers: int, flush_every: int) -> None:
    if engine not in ENGINES:
        raise ArgumentError(f"--engine must be one of {ENGINES}, got {engine!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ArgumentError(f"--workers must be a positive integer, got {workers!r}")
    if not isinstance(flush_every, int) or flush_every < 1:
        raise ArgumentError(f"--flush-every must be a positive integer, got {flush_every!r}")
    if task not in TASKS:
        raise ArgumentError(f"--task must be one of {TASKS}, got {task!r}")


def _recipe_args(task: str, argv: list[str]) -> tuple[Any, Any]:
    from augcomp.experiment.args import UsageError, make_parser, parse_args

    t = _task(task)
    try:
        return t, parse_args(make_parser(t, description="precompute"), t, argv)
    except UsageError as e:  # a SystemExit, which the command line would take for --help
        raise ArgumentError(str(e.code).removeprefix("error: ").removesuffix(" (see --help)")) from None


def train_dataset(task: str, data_root: str | None, split: str, options: Sequence[str] = ()) -> tuple[Any, Any]:
    """The training set of ``split`` as a recipe builds it, and the recipe's settings.

    Args:
        task: ``"cls"``, ``"det"`` or ``"seg"``.
        data_root: the dataset (None: the synthetic scenes, whose training split is ``"train"``).
        split: the training split's name (the recipe's ``--train-split``).
        options: more recipe options (``--image-size``, ``--train-size``, ``--seed``, ``--train-bpp``, ...).
    """
    if data_root is None and split != "train":
        raise ArgumentError(f"--split {split!r}: without --data-root the synthetic scenes' training split is 'train'")
    argv = [*(["--data-root", data_root, "--train-split", split] if data_root is not None else []), *options]
    t, (settings, run_options) = _recipe_args(task, argv)
    return t.build_data(settings, run_options.data_root).train, settings


def train_store_hint(settings: Any, options: Any, mix: Any) -> str:
    """The ``augcomp precompute`` command that fills a ``--train-store`` for a recipe run's settings, options and
    mix."""
    from augcomp.data.train_store import precompute_command

    extra = ["--image-size", str(settings.image_size),
             *(["--train-size", str(settings.train_size)] if settings.train_size else [])]
    split = settings.train_split if options.data_root is not None else "train"
    return precompute_command(options.task, split, mix.names, mix.bpp, settings.seed, "K", options.train_store,
                              data_root=options.data_root, extra=extra)


class _Filler:
    """Queues the entries a store lacks, codes them with an engine every ``chunk_images`` images, and writes them in
    parts of ``flush_every``."""

    def __init__(self, st: Store, engine: str, workers: int, ray_address: str | None, flush_every: int, bar: Any,
                 chunk_images: int, row_group_size: int | None = None) -> None:
        self.st, self.engine, self.workers, self.ray_address = st, engine, workers, ray_address
        self.flush_every, self.bar, self.row_group_size = flush_every, bar, row_group_size
        self.chunk_images, self.pending_images = chunk_images, 0
        self.known = st.keys()
        self.items: list[dict[str, Any]] = []
        self.done: list = []
        self.encoded, self.reused, self.seconds = 0, 0, 0.0
        self._pixels: tuple[str, bytes] | None = None

    def add(self, key: str, image: Any, ident: str, codec: str, target: float, source: str) -> None:
        """Queues one entry of ``image`` (uint8 ``(C, H, W)``, content hash ``ident``), unless the store or this run
        already has ``key``: an image or a draw that comes twice is coded once."""
        if key in self.known:
            self.reused += 1
            self.bar.update(1)
            return
        self.known.add(key)
        if self._pixels is None or self._pixels[0] != ident:
            self._pixels = (ident, image.contiguous().numpy().tobytes())
        self.items.append({"pixels": self._pixels[1], "shape": list(image.shape), "image": ident, "codec": codec,
                           "options": json.dumps({}), "target_kind": "bpp", "target": float(target), "source": source})

    def image_done(self) -> None:
        """Codes what is queued once ``chunk_images`` images are (bounds the driver's memory)."""
        self.pending_images += 1
        if self.pending_images >= self.chunk_images:
            self.flush()
            self.pending_images = 0

    def flush(self) -> None:
        if not self.items:
            return
        t0 = time.perf_counter()
        items = self.items
        runner = run_ray(items, self.workers, self.ray_address) if self.engine == "ray" else run_local(
            items, self.workers)
        for entries in runner:
            self.done.extend(entries)
            self.encoded += len(entries)
            self.bar.update(len(entries))
            if len(self.done) >= self.flush_every:  # in the store before more is coded
                self.st.write(self.done, row_group_size=self.row_group_size)
                self.done = []
        self.seconds += time.perf_counter() - t0
        self.items = []

    def close(self) -> None:
        self.flush()
        self.st.write(self.done, row_group_size=self.row_group_size)
        self.done = []


def precompute_variants(*, task: str, data_root: str | None, split: str, variants: int, store: str,
                        options: Sequence[str] = (), engine: str = "local", workers: int = 1,
                        ray_address: str | None = None, chunk_images: int = 64, flush_every: int = 512,
                        progress: bool = True) -> dict[str, Any]:
    """Adds every missing variant of ``variants`` per training image to ``store`` and records the set.

    Args:
        task, data_root, split: the training set (see :func:`train_dataset`).
        variants: K, coded variants per image.
        store: the store's URL.
        options: the recipe options that decide the training set and the mix, as a recipe takes them
            (``--train-codecs`` or ``--codecs``, ``--train-bpp``, ``--seed``, ``--image-size``, ``--train-size``);
            what is not given is the recipe's default.
        engine, workers, ray_address, chunk_images, flush_every, progress: as :func:`precompute`.

    Returns:
        ``{"encoded", "reused", "repaired", "entries", "digest", "variants", "codecs", "bpp", "seed", ...}``.
    """
    from tqdm.auto import tqdm

    from augcomp import codecs as registry
    from augcomp.data import CodecMix
    from augcomp.data.train_store import load_sample, record_variants, variant_draw
    from augcomp.experiment.codecs import resolve_codecs

    if isinstance(variants, bool) or not isinstance(variants, int) or variants < 1:
        raise ArgumentError(f"--variants must be a positive integer, got {variants!r}")
    _check_engine(task, engine, workers, flush_every)
    start = time.perf_counter()
    dataset, settings = train_dataset(task, data_root, split, options)
    # The mix exactly as the recipe resolves it: --train-codecs, else --codecs, codecs unusable here left out.
    names, _ = resolve_codecs(settings.train_codecs or settings.codecs,
                              option="--train-codecs" if settings.train_codecs else "--codecs")
    if not names:
        raise ArgumentError(f"--train-codecs {settings.train_codecs or settings.codecs!r} leaves no usable codec")
    mix = CodecMix(names, settings.train_bpp, 0.0)
    built = {name: registry.get(name) for name in names}
    st = Store(store)
    repaired = st.repair()
    bar = tqdm(total=len(dataset) * variants, desc="precompute", unit="entry", disable=not progress,
               dynamic_ncols=True)
    filler = _Filler(st, engine, workers, ray_address, flush_every, bar, chunk_images,
                     row_group_size=VARIANT_ROW_GROUP)
    for index in range(len(dataset)):
        image = load_sample(dataset, index)["image"]
        ident = image_hash(image)
        for k in range(variants):
            codec, target = variant_draw(mix, settings.seed, k, index)
            filler.add(key_for(ident, built[names[codec]], "bpp", target), image, ident, names[codec], target,
                       f"{split}[{index}] variant {k}")
        filler.image_done()
    filler.close()
    bar.close()
    record_variants(st, names=names, bpp=mix.bpp, seed=settings.seed, variants=variants, task=task, split=split,
                    images=len(dataset), image_size=settings.image_size, data_root=data_root)
    return {"encoded": filler.encoded, "reused": filler.reused, "repaired": len(repaired), "entries": len(st),
            "digest": st.digest(), "engine": engine, "workers": workers, "images": len(dataset),
            "variants": variants, "codecs": names, "bpp": list(mix.bpp), "seed": settings.seed,
            "encode_seconds": round(filler.seconds, 3), "seconds": round(time.perf_counter() - start, 3)}
