"""The store of coded files at work: the issue's acceptance run, the cost of encoding per codec, and what a paper-scale
sweep costs with and without the store.

Three sections, written to ``--out`` (default ``results/bench/``) as ``store.md`` and ``store.json``:

1. **Acceptance** (``--acceptance``) on a 12-image ADE20K-layout folder of 512-pixel photographs
   (:func:`augcomp.samples.ade20k_folder`), ``--codecs jpeg,webp,avif --bpp-grid 0.2,1 --image-size 256``:
   a recipe run with ``--store`` (entries encoded and reused), a second run from the first run's clean model (encodes
   0, same metrics before finetuning), ``precompute`` with 2 local workers and with 2 Ray workers into two empty
   stores (same entries, same digest), a recipe on the Ray-filled store (encodes 0), and one byte flipped in a stored
   payload (``store verify`` fails and names it, ``precompute`` encodes exactly that entry, ``verify`` passes with the
   original digest). Every step runs the project's own commands (``recipes/seg.py``, ``augcomp precompute``,
   ``augcomp store``).
2. **Encode cost** (``--cost``): seconds per image of bpp-targeted coding (targets 0.1-2 bpp, log-uniform) for each
   codec usable here at 224 and 512 pixels, one process, one thread; and the speed-up of ``precompute`` with 2 local
   workers over 1 for AVIF at 512 pixels.
3. **Paper scale**: from the costs, the CPU-hours of a full sweep (ImageNet val, COCO val, ADE20K val) with the
   paper-scale codec mix and grid: without the store (every sweep of every run encodes: 2 sweeps per run) and with it
   (encoded once by ``precompute``).

Run::

    .venv/bin/python benchmarks/store.py                    # all sections: about 15 minutes on 2 cores
    .venv/bin/python benchmarks/store.py --cost --quick     # the cost table on fewer images: a minute
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = "results/bench"
# The study's datasets at the sizes a sweep codes them (images, side), and the paper-scale grid of the README.
DATASETS = {"ImageNet val": (50_000, 224), "COCO val": (5_000, 512), "ADE20K val": (2_000, 512)}
PAPER_GRID = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUGCOMP_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, **kw)
    return proc


def _cli(*args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "augcomp.cli", *args])


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def _recipe(data: Path, out: Path, store: Path, *extra: str) -> dict:
    cmd = [sys.executable, "recipes/seg.py", "--cpu", "--data-root", str(data), "--model", "resnet10t",
           "--image-size", "256", "--batch-size", "4", "--eval-batch-size", "6", "--head-channels", "16",
           "--codecs", "jpeg,webp,avif", "--bpp-grid", "0.2,1", "--store", str(store), "--output-dir", str(out),
           *extra]
    proc = _run(cmd)
    if proc.returncode:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return json.loads((out / "results.json").read_text())


def _before(results: dict) -> dict:
    return {"clean": results["clean"], **{f"{r['codec']}@{r['bpp']}": r["before"] for r in results["rows"]}}


def acceptance(work: Path) -> dict:
    from augcomp.samples import ade20k_folder

    data = ade20k_folder(work / "ade", train=4, val=12, size=512)
    out: dict = {}
    t0 = time.time()
    first = _recipe(data, work / "run1", work / "store", "--clean-epochs", "1", "--epochs", "1")
    second = _recipe(data, work / "run2", work / "store", "--checkpoint", str(work / "run1" / "clean_model.pt"),
                     "--epochs", "1")
    out["first_run"] = first["codec_work"]
    out["second_run"] = second["codec_work"]
    out["same_metrics_before"] = _before(first) == _before(second)
    stores = {}
    for engine in ("local", "ray"):
        proc = _cli("precompute", "--task", "seg", "--data-root", str(data), "--split", "validation", "--codecs",
                    "jpeg,webp,avif", "--bpp-grid", "0.2,1", "--image-size", "256", "--store",
                    str(work / f"store-{engine}"), "--engine", engine, "--workers", "2", "--json")
        if proc.returncode:
            raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
        stores[engine] = _last_json(proc.stdout)
    out["precompute"] = stores
    out["same_digest"] = stores["local"]["digest"] == stores["ray"]["digest"]
    third = _recipe(data, work / "run3", work / "store-ray", "--checkpoint", str(work / "run1" / "clean_model.pt"),
                    "--epochs", "0")
    out["run_on_ray_store"] = third["codec_work"]
    # One byte flipped inside a stored payload.
    from augcomp.store import Store

    store = Store(str(work / "store-local"))
    key = sorted(store.keys())[0]
    part = store.locations(key)[0]
    entry = store.read([key])[key]
    raw = bytearray(Path(part).read_bytes())
    assert raw.count(entry.data) == 1, "the coded file should be stored once in its part"
    at = raw.find(entry.data) + len(entry.data) // 2
    raw[at] ^= 0x01
    Path(part).write_bytes(bytes(raw))
    verify = _cli("store", "verify", str(work / "store-local"), "--json")
    report = _last_json(verify.stdout)
    repair = _cli("precompute", "--task", "seg", "--data-root", str(data), "--split", "validation", "--codecs",
                  "jpeg,webp,avif", "--bpp-grid", "0.2,1", "--image-size", "256", "--store",
                  str(work / "store-local"), "--workers", "2", "--json")
    again = _cli("store", "verify", str(work / "store-local"), "--json")
    out["flip"] = {"verify_exit": verify.returncode, "bad": report["bad"],
                   "bad_keys": [b["key"] for b in report["bad_entries"]], "flipped_key": entry.key,
                   "reencoded": _last_json(repair.stdout)["encoded"], "verify_after_exit": again.returncode,
                   "digest_restored": _last_json(again.stdout)["digest"] == stores["local"]["digest"]}
    out["seconds"] = round(time.time() - t0, 1)
    return out


def encode_cost(quick: bool) -> dict:
    import torch

    from augcomp import codecs, compress
    from augcomp.availability import codec_available
    from augcomp.samples import natural_crops

    os.environ["AUGCOMP_THREADS"] = "1"
    torch.set_num_threads(1)
    n = 4 if quick else 12
    gen = torch.Generator().manual_seed(0)
    rows = {}
    for name in codecs.list():
        if not codec_available(name)[0]:
            continue
        rows[name] = {}
        for size in (224, 512):
            x = natural_crops(n, size, seed=1)
            targets = torch.exp(torch.empty(n).uniform_(math.log(0.1), math.log(2.0), generator=gen))
            compress(x[:1], name, bpp=0.5)  # warm-up: libraries, models
            t0 = time.perf_counter()
            for i in range(n):  # one image at a time, as a store's engines code them
                compress(x[i:i + 1], name, bpp=targets[i:i + 1], files=True)
            rows[name][size] = (time.perf_counter() - t0) / n
    return rows


def serial_compress() -> dict:
    """Seconds of CompressAI's ``compress()`` against augcomp's parallel forward for one 256 x 256 image, for the
    codecs whose store entries keep pixels (``file_kind == "pixels"``). Speed does not depend on the weights, so
    seeded random weights stand in where the zoo's are not on disk."""
    import torch

    from augcomp import codecs
    from augcomp.availability import codec_available

    torch.set_num_threads(1)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))  # a multiple of 64: no padding
    rows = {}
    for name in codecs.list():
        entry = codecs.entry(name)
        if entry.file_kind != "pixels" or entry.missing():
            continue
        pretrained = codec_available(name)[0]
        codec = codecs.get(name, pretrained=pretrained)
        level = torch.tensor([entry.level_range[0]])
        codec(x, level)  # warm-up
        t0 = time.perf_counter()
        codec(x, level)
        forward = time.perf_counter() - t0
        model = codec.model(1)
        kwargs = {"inputscale": torch.tensor([0.5])} if entry.level_name == "gain" else {}
        t0 = time.perf_counter()
        with torch.no_grad():
            coded = model.compress(x, **kwargs)
        compress_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            model.decompress(coded["strings"], coded["shape"], **kwargs)
        rows[name] = {"forward_s": forward, "compress_s": compress_s, "decompress_s": time.perf_counter() - t0}
    return rows


def neural_rate_gap() -> dict:
    """Real bits (CompressAI's compress() strings) over the likelihood bits a sweep without a store reports, for the
    shipped augcomp-tiny on natural crops: mean and largest relative excess per (size, level)."""
    from augcomp import compress
    from augcomp.samples import natural_crops

    rows = {}
    for size in (64, 224):
        x = natural_crops(8, size, seed=2)
        for level in (1.0, 4.0):
            likelihood = compress(x, "augcomp-tiny", quality=level).bits
            real = compress(x, "augcomp-tiny", quality=level, files=True).bits
            gap = real / likelihood - 1
            rows[f"{size}px, level {level:g}"] = {"mean": float(gap.mean()), "max": float(gap.max())}
    return rows


def pool_speedup(work: Path, quick: bool) -> dict:
    from augcomp.samples import ade20k_folder

    data = ade20k_folder(work / "ade-speed", train=1, val=4 if quick else 12, size=512, seed=3)
    seconds = {}
    for workers in (1, 2):
        proc = _cli("precompute", "--task", "seg", "--data-root", str(data), "--split", "validation", "--codecs",
                    "avif", "--bpp-grid", "0.1,0.3,1", "--image-size", "512", "--store",
                    str(work / f"speed-{workers}"), "--workers", str(workers), "--json")
        if proc.returncode:
            raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
        seconds[workers] = _last_json(proc.stdout)["encode_seconds"]
    return {"seconds_1": seconds[1], "seconds_2": seconds[2], "speedup": seconds[1] / seconds[2]}


def paper_codecs() -> list[str]:
    """The paper-scale mix of the README: every codec that ships whole, that is all but the CompressAI zoo models
    (whose weights a machine downloads first). A query over the registry, not a list."""
    from augcomp import codecs

    return codecs.list(where=lambda e: e.weights != "compressai")


def paper_scale(cost: dict) -> dict:
    mix = [c for c in paper_codecs() if c in cost]
    table = {}
    for dataset, (images, side) in DATASETS.items():
        per_image = sum(cost[c][side] for c in mix) * len(PAPER_GRID)
        hours = images * per_image / 3600
        table[dataset] = {"images": images, "side": side, "cpu_hours_per_sweep": hours,
                          "cpu_hours_run_without_store": 2 * hours, "cpu_hours_once_with_store": hours}
    return {"codecs": mix, "grid": list(PAPER_GRID), "datasets": table}


def markdown(result: dict) -> str:
    lines = ["# Store of coded files", ""]
    if "cost" in result:
        lines += ["## Encode cost (bpp-targeted, one image at a time, 1 thread)", "",
                  "| codec | s/image at 224² | s/image at 512² |", "|---|---:|---:|"]
        for name, sizes in result["cost"].items():
            lines.append(f"| {name} | {sizes[224]:.3f} | {sizes[512]:.3f} |")
        sp = result.get("speedup")
        if sp:
            lines += ["", f"`precompute` AVIF at 512 px: {sp['seconds_1']:.1f} s with 1 worker, "
                          f"{sp['seconds_2']:.1f} s with 2: **{sp['speedup']:.2f}x**."]
        ps = result["paper"]
        lines += ["", f"## Paper scale: {len(ps['codecs'])} codecs ({', '.join(ps['codecs'])}) x "
                      f"{len(ps['grid'])} bitrates", "",
                  "| dataset | images | side | CPU-hours per sweep | per run without the store (2 sweeps) | "
                  "with the store (once, then 0) |", "|---|---:|---:|---:|---:|---:|"]
        for name, d in ps["datasets"].items():
            lines.append(f"| {name} | {d['images']:,} | {d['side']} | {d['cpu_hours_per_sweep']:.0f} | "
                         f"{d['cpu_hours_run_without_store']:.0f} | {d['cpu_hours_once_with_store']:.0f} |")
    if result.get("serial"):
        lines += ["", "## Serial compress() of the autoregressive models (256², 1 thread)", "",
                  "| codec | parallel forward (s) | compress() (s) | decompress() (s) | both / forward |",
                  "|---|---:|---:|---:|---:|"]
        for name, r in result["serial"].items():
            both = r["compress_s"] + r["decompress_s"]
            lines.append(f"| {name} | {r['forward_s']:.3f} | {r['compress_s']:.2f} | {r['decompress_s']:.2f} | "
                         f"{both / r['forward_s']:.1f}x |")
    if result.get("neural_rate_gap"):
        lines += ["", "## augcomp-tiny: real bits over likelihood bits", "", "| crops | mean | largest |",
                  "|---|---:|---:|"]
        for key, r in result["neural_rate_gap"].items():
            lines.append(f"| {key} | {r['mean']:+.2%} | {r['max']:+.2%} |")
    if "acceptance" in result:
        lines += ["", "## Acceptance", "", "```json", json.dumps(result["acceptance"], indent=1), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--acceptance", action="store_true", help="only the acceptance run")
    p.add_argument("--cost", action="store_true", help="only the encode cost and the paper-scale table")
    p.add_argument("--quick", action="store_true", help="fewer images in the cost section")
    p.add_argument("--gap", action="store_true", help="only augcomp-tiny's real bits against its likelihood bits")
    args = p.parse_args(argv)
    both = not (args.acceptance or args.cost or args.gap)
    result: dict = {}
    if args.gap:
        result["neural_rate_gap"] = neural_rate_gap()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.cost or both:
            result["cost"] = encode_cost(args.quick)
            result["speedup"] = pool_speedup(work, args.quick)
            result["paper"] = paper_scale(result["cost"])
            result["serial"] = serial_compress()
            result["neural_rate_gap"] = neural_rate_gap()
        if args.acceptance or both:
            result["acceptance"] = acceptance(work)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "store.json").write_text(json.dumps(result, indent=1))
    text = markdown(result)
    (out / "store.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
