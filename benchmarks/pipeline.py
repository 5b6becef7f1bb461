"""Images per second of the finetuning input: where compression runs decides whether an accelerator waits for data.

The training input of the segmentation recipe on real photographs (an ADE20K-layout folder written from
scikit-image's sample images): JPEG decode, random scale, crop and flip, then the finetuning mix
(``DEFAULT_CODECS``, bpp log-uniform in 0.1-2, a quarter of the images clean), timed as the host feeds an
accelerator: batches out of the DataLoader, then the library-codec work :class:`augcomp.data.TrainingSamples` left to
the training process. Tensor codecs (the torch JPEG, neural codecs) are not timed: in training they run on the
accelerator. Modes:

- ``none``: no compression (decode and geometry in ``--loader-workers`` workers);
- ``main``: library codecs in the training process, on the batch (the placement before workers did them), loading
  in ``--loader-workers`` workers;
- ``workers-1``, ``workers-2``: library codecs in 1 or 2 DataLoader workers, where the samples are loaded;
- ``store``: finetuning from a store (a recipe's ``--train-store``): ``--variants`` variants of every image coded
  ahead of time (``augcomp precompute --variants K``, into a temporary store, not timed), one decoded per sample
  in 2 workers, tensor codecs included (a stored variant is decoded on the host like any other).

Then what one worker delivers, loading alone and with each library codec alone (no clean share), and so how many CPU
workers a training speed (``--target``, images/s) needs per codec::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/pipeline.py     # 224 and 512, 16 images each, best of 2 passes
    python benchmarks/pipeline.py --images 8 --sizes 224 --batch-size 2 --repeats 1 --out results/bench

The first batch of each pass is not timed (worker start-up). Writes ``pipeline.md`` and ``pipeline.png`` to ``--out``
(default ``results/bench``) and the results as JSON to ``--json`` (default ``<out>/pipeline.json``), with the load
average of the machine before and after.

JSON schema (``"schema": "augcomp-bench-rows/1"``; docs pages are generated from it)::

    {"schema": "augcomp-bench-rows/1", "benchmark": "pipeline",
     "meta": {"codecs": [...], "tensor_codecs": [...], "images": int, "batch_size": int, "loader_workers": int,
              "repeats": int, "variants": int, "bpp": [lo, hi], "clean_share": float, "target": float,
              "machine": str, "load": {"before": float, "after": float}},
     "rows": [{"table": "modes" | "per_worker", "key": str, "label": str, "size": int, "images_per_s": float,
               "workers_for_target": int | null}, ...]}

One row per (table, key, size): ``table`` "modes" has the keys of :data:`MODES`; "per_worker" has ``"loading only"``,
each library codec's name and ``"the mix (from the rows above)"``, with ``workers_for_target``, the workers that
deliver ``meta.target`` images/s (null in "modes").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from augcomp import codecs
from augcomp.data import ADE20K, CodecMix, TrainingSamples, collate
from augcomp.data.train_store import open_variants
from augcomp.experiment.codecs import codec_usable
from augcomp.experiment.loops import compress_drawn
from augcomp.experiment.precompute import precompute_variants
from augcomp.samples import ade20k_folder
from augcomp.tasks.settings import DEFAULT_CODECS

MODES = ("none", "main", "workers-1", "workers-2", "store")
LABELS = {"none": "no compression ({w} loader workers)", "main": "library codecs in the training process ({w} loader "
          "workers)", "workers-1": "library codecs in 1 worker", "workers-2": "library codecs in 2 workers",
          "store": "from the store ({k} variants per image, decoded in 2 workers)"}
SCHEMA = "augcomp-bench-rows/1"
BPP = (0.1, 2.0)
CLEAN_SHARE = 0.25


def _library_only(draw: dict[str, torch.Tensor], mix: CodecMix) -> dict[str, torch.Tensor]:
    # Tensor-codec samples are left out of the timed work: in training they are coded on the accelerator, alongside
    # the step, and cost the host nothing.
    library = torch.tensor([c >= 0 and mix.in_loader[c] for c in draw["codec"].tolist()])
    return {**draw, "codec": torch.where(library, draw["codec"], torch.full_like(draw["codec"], -1))}


def time_pass(samples: TrainingSamples, mix: CodecMix | None, workers: int, batch_size: int) -> float:
    """Images per second of one epoch as the host feeds it: batches from the loader, then the library-codec work
    the training process is left with.

    The clock starts when the first batch is done, so that starting the workers (paid once per epoch, small against
    a real epoch) does not dominate a few images.
    """
    loader = DataLoader(samples, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))
    n, start = 0, 0.0
    for i, batch in enumerate(loader):
        if mix is not None:
            compress_drawn(batch["image"], _library_only(batch["draw"], mix), mix)
        if i == 0:
            start = time.perf_counter()
        else:
            n += len(batch["image"])
    return n / (time.perf_counter() - start)


def stored_samples(dataset: ADE20K, data: Path, size: int, names: list[str], variants: int,
                   store: Path) -> TrainingSamples:
    """Training samples from a store that ``augcomp precompute --variants`` fills first (not timed)."""
    precompute_variants(task="seg", data_root=str(data), split="training", variants=variants, store=str(store),
                        options=["--train-codecs", ",".join(names), "--train-bpp", f"{BPP[0]},{BPP[1]}",
                                 "--image-size", str(size)], workers=2, progress=False)
    mix = CodecMix(names, BPP, CLEAN_SHARE)
    source = open_variants(str(store), mix, 0, hint="")
    return TrainingSamples(dataset, 0, "finetune", mix, source=source, variants=source.variants)


def measure(names: list[str], size: int, images: int, batch_size: int, loader_workers: int, repeats: int,
            root: Path, variants: int = 4) -> dict[str, Any]:
    """The modes with the mix of ``names``, then loading alone and each library codec alone in one worker, at
    ``size``; each the best of ``repeats`` passes."""
    data = ade20k_folder(root / f"ade{size}", train=images, val=1, size=size)
    dataset = ADE20K(data, "training", size, train=True)
    mix = CodecMix(names, BPP, CLEAN_SHARE)

    def best(samples: TrainingSamples, m: CodecMix | None, workers: int) -> float:
        return max(time_pass(samples, m, workers, batch_size) for _ in range(repeats))

    rates: dict[str, float] = {}
    for mode in MODES:
        workers = int(mode.split("-")[1]) if mode.startswith("workers") else 2 if mode == "store" else loader_workers
        m = None if mode == "none" else mix
        if mode == "store":
            samples = stored_samples(dataset, data, size, names, variants, root / f"store{size}")
        else:
            samples = TrainingSamples(dataset, 0, "finetune", m, library_in_workers=mode != "main")
        rates[mode] = best(samples, m, workers)
        print(f"{size}x{size} {mode}: {rates[mode]:.1f} images/s", flush=True)
    # What one worker hands over: loading alone (all a tensor codec asks of it), and loading plus each library codec.
    per_worker = {"loading only": best(TrainingSamples(dataset, 0, "finetune"), None, 1)}
    for name, in_loader in zip(names, mix.in_loader, strict=True):
        if in_loader:
            alone = CodecMix([name], BPP, 0.0)
            per_worker[name] = best(TrainingSamples(dataset, 0, "finetune", alone), alone, 1)
    for name, rate in per_worker.items():
        print(f"{size}x{size} one worker, {name}: {rate:.1f} images/s", flush=True)
    # The mix in one worker, from the rows above: loading, plus each library codec's extra time for its share.
    share = (1 - CLEAN_SHARE) / len(names)
    load = 1 / per_worker["loading only"]
    seconds = load + sum(share * max(0.0, 1 / r - load) for n, r in per_worker.items() if n != "loading only")
    per_worker["the mix (from the rows above)"] = 1 / seconds
    return {"modes": rates, "per_worker": per_worker}


def workers_needed(rate: float, target: float) -> int:
    """Workers that together deliver ``target`` images/s when one delivers ``rate``."""
    return math.ceil(target / rate)


def to_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The measurements of :func:`measure` per size as the JSON's rows (see the module docstring)."""
    rows = []
    for size, measured in result["sizes"].items():
        for mode, rate in measured["modes"].items():
            rows.append({"table": "modes", "key": mode, "label": LABELS[mode].format(
                w=result["loader_workers"], k=result["variants"]), "size": int(size), "images_per_s": rate,
                "workers_for_target": None})
        for name, rate in measured["per_worker"].items():
            label = f"loading + {name}" if name in result["codecs"] else name
            rows.append({"table": "per_worker", "key": name, "label": label, "size": int(size),
                         "images_per_s": rate, "workers_for_target": workers_needed(rate, result["target"])})
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The tables of a report (the JSON's ``meta`` and ``rows``) as Markdown."""
    meta, rows = report["meta"], report["rows"]
    sizes = sorted({r["size"] for r in rows})
    cell = {(r["table"], r["key"], r["size"]): r for r in rows}

    def keys(table: str) -> list[str]:
        return list(dict.fromkeys(r["key"] for r in rows if r["table"] == table))

    head = " | ".join(f"{s}² images/s" for s in sizes)
    lines = [f"| training input, host side ({meta['images']} images, mix {', '.join(meta['codecs'])}) | {head} |",
             "|---|" + "---:|" * len(sizes)]
    for key in keys("modes"):
        first = next(r for r in rows if r["table"] == "modes" and r["key"] == key)
        cells = " | ".join(f"{cell['modes', key, s]['images_per_s']:.1f}" for s in sizes)
        lines.append(f"| {first['label']} | {cells} |")
    lines += ["", "| one worker | " + " | ".join(f"{s}² images/s | workers for {meta['target']:g}/s" for s in sizes)
              + " |", "|---|" + "---:|---:|" * len(sizes)]
    for key in keys("per_worker"):
        first = next(r for r in rows if r["table"] == "per_worker" and r["key"] == key)
        cells = " | ".join(f"{cell['per_worker', key, s]['images_per_s']:.1f} | "
                           f"{cell['per_worker', key, s]['workers_for_target']}" for s in sizes)
        lines.append(f"| {first['label']} | {cells} |")
    load = meta["load"]
    lines += ["", f"Tensor codecs ({', '.join(meta['tensor_codecs']) or 'none'}) are left out of the timing but for "
              "the store's row: in training they run on the accelerator, while a stored variant is decoded on the "
              f"host. Best of {meta['repeats']} passes; {meta['machine']}; load average (1 min) "
              f"{load['before']:.2f} before, {load['after']:.2f} after."]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["table"] == "modes"]
    sizes = sorted({r["size"] for r in rows})
    modes = list(dict.fromkeys(r["key"] for r in rows))
    rate = {(r["key"], r["size"]): r["images_per_s"] for r in rows}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(modes)
    for j, mode in enumerate(modes):
        ax.bar([i + j * width for i in range(len(sizes))], [rate[mode, s] for s in sizes], width, label=mode)
    ax.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(sizes))], [f"{s}²" for s in sizes])
    ax.set_ylabel("images/s")
    ax.set_title(f"training input with {', '.join(report['meta']['codecs'])}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark with ``argv`` (default: the command line); returns the exit status."""
    parser = argparse.ArgumentParser(prog="pipeline.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16, help="training images per size (default: 16)")
    parser.add_argument("--sizes", default="224,512", help="image sides, comma-separated (default: 224,512)")
    parser.add_argument("--codecs", default=DEFAULT_CODECS, help=f"the mix (default: {DEFAULT_CODECS})")
    parser.add_argument("--batch-size", type=int, default=4, help="batch size (default: 4)")
    parser.add_argument("--loader-workers", type=int, default=2, help="DataLoader workers of the modes without "
                        "compression in workers (default: 2)")
    parser.add_argument("--repeats", type=int, default=2, help="passes per measurement, the best kept (default: 2)")
    parser.add_argument("--target", type=float, default=1000.0, help="training speed, images/s, that the "
                        "workers-per-codec column is for (default: 1000)")
    parser.add_argument("--variants", type=int, default=4, help="stored variants per image of the store's row "
                        "(default: 4)")
    parser.add_argument("--out", type=Path, default=Path("results/bench"), help="output folder (Markdown, plot)")
    parser.add_argument("--json", type=Path, default=None, help="the results as JSON (default: <out>/pipeline.json)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.images < 2 * args.batch_size or not args.target > 0:
        parser.error("--batch-size must be >= 1, --images at least two batches (the first is not timed) and "
                     "--target > 0")
    if args.loader_workers < 0 or args.repeats < 1 or args.variants < 1:
        parser.error("--loader-workers must be >= 0, --repeats >= 1 and --variants >= 1")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes takes comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < 16:
        parser.error(f"--sizes takes image sides of at least 16, got {args.sizes!r}")
    names = [n.strip() for n in args.codecs.split(",") if n.strip()]
    for name in names:
        codecs.entry(name)  # an unknown name fails here, naming the known codecs
    usable = [n for n in names if codec_usable(n, allow_download=False)[0]]
    for name in sorted(set(names) - set(usable)):
        print(f"codec {name} skipped: not usable here", file=sys.stderr)
    if not usable:
        parser.error(f"none of the codecs {names} is usable here")
    load_before = os.getloadavg()[0]
    tensor = [n for n in usable if codecs.entry(n).tensor_path]
    result: dict[str, Any] = {"codecs": usable, "tensor_codecs": tensor, "images": args.images,
                              "batch_size": args.batch_size, "loader_workers": args.loader_workers,
                              "repeats": args.repeats, "variants": args.variants,
                              "bpp": list(BPP), "clean_share": CLEAN_SHARE, "target": args.target, "sizes": {},
                              "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch "
                                         f"{torch.__version__}, {torch.get_num_threads()} threads"}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            result["sizes"][str(size)] = measure(usable, size, args.images, args.batch_size, args.loader_workers,
                                                 args.repeats, Path(tmp), args.variants)
    result["load"] = {"before": load_before, "after": os.getloadavg()[0]}
    meta = {k: v for k, v in result.items() if k != "sizes"}
    report = {"schema": SCHEMA, "benchmark": "pipeline", "meta": meta, "rows": to_rows(result)}
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.json if args.json is not None else args.out / "pipeline.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / "pipeline.md").write_text(table)
    plot(report, args.out / "pipeline.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
