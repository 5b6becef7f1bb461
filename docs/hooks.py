"""Results tables generated from the committed results files under ``docs/data/``, never typed by hand.

A page (or the README) holds a marker such as ``<!-- table: defaults -->``; at build time the MkDocs hook
``on_page_markdown`` replaces it by the Markdown table that :data:`TABLES` makes from the data. The README keeps the
generated table between the marker and ``<!-- end table -->`` so that it reads on GitHub; refresh it with::

    python docs/hooks.py            # rewrite the README's marked tables from docs/data/
    python docs/hooks.py --check    # exit 1 if the README's tables differ from what the data gives

Data files (each written by the command in its ``source`` field, or copied from a recipe's output folder):

- ``defaults/{seg,cls,det}.json``: a default recipe run's ``results.json``, plus ``wall_seconds``;
- ``rd.json``: ``python benchmarks/rd.py --json docs/data/rd.json``;
- ``codecs_throughput.json``: ``python benchmarks/codecs.py --json docs/data/codecs_throughput.json``;
- ``store.json``: ``python benchmarks/store.py --cost`` (its ``results/bench/store.json``);
- ``pipeline.json``: ``python benchmarks/pipeline.py --json docs/data/pipeline.json``: the benchmark's rows
  (``{"table": "modes" | "per_worker", "label": str, "size": int, "images_per_s": float, ...}``, see its docstring)
  under ``rows``;
- ``placement.json``: ``python benchmarks/placement.py --out docs/data`` (its ``placement.json``);
- ``throughput.json``: a table of ``python -m augcomp.bench`` figures (``columns``, ``rows``, ``source``).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
DATA = DOCS / "data"
README = DOCS.parent / "README.md"

MARKER = re.compile(r"<!-- table: ([\w-]+) -->(?:\n(?:(?!<!-- table:).)*?<!-- end table -->)?", re.DOTALL)
END = "<!-- end table -->"

TASKS = {"seg": "segmentation", "cls": "classification", "det": "detection"}
METRIC_NAMES = {"miou": "mIoU %", "top1": "top-1 %", "map_50": "mAP50 %", "map": "mAP %"}


def load(name: str) -> Any:
    """The parsed JSON file ``docs/data/<name>``."""
    return json.loads((DATA / name).read_text())


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: float | None, fmt: str = ".2f", missing: str = "–") -> str:
    return missing if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def _minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s"


# ---------------------------------------------------------------------------------------------------- defaults


def default_runs() -> dict[str, dict[str, Any]]:
    """The default recipe runs present under ``docs/data/defaults/``, in the order seg, cls, det."""
    return {t: load(f"defaults/{t}.json") for t in TASKS if (DATA / "defaults" / f"{t}.json").exists()}


def lowest_rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per codec of a run, its row at the lowest target bitrate of the sweep."""
    out: dict[str, dict[str, Any]] = {}
    for row in result["rows"]:
        if row["codec"] not in out or row["bpp"] < out[row["codec"]]["bpp"]:
            out[row["codec"]] = row
    return out


def _recovery(row: dict[str, Any]) -> str:
    return "–" if row.get("recovery") is None else f"{100 * row['recovery']:.0f}%"


def table_defaults() -> str:
    """Per task: the clean metric before → after finetuning, and per codec at its lowest target the achieved bpp,
    the metric before → after and the share of the drop recovered."""
    runs = default_runs()
    if not runs:
        raise FileNotFoundError(f"no default runs in {DATA / 'defaults'}")
    codec_names: list[str] = []
    for result in runs.values():
        codec_names += [c for c in lowest_rows(result) if c not in codec_names]
    header = ["task (metric, wall time)", "clean before → after"]
    header += codec_names
    rows = []
    for task, result in runs.items():
        metric = METRIC_NAMES.get(result["metric"], result.get("metric_label", result["metric"]))
        wall = f", {_minutes(result['wall_seconds'])}" if "wall_seconds" in result else ""
        cells = [f"{TASKS[task]} ({metric}{wall})", f"{result['clean']:.2f} → {result['clean_after']:.2f}"]
        low = lowest_rows(result)
        for c in codec_names:
            r = low.get(c)
            cells.append("–" if r is None else f"{r['achieved_bpp']:.3f} bpp: {r['before']:.2f} → {r['after']:.2f} "
                                               f"({_recovery(r)})")
        rows.append(cells)
    return _table(header, rows, ["---"] * len(header))


def table_defaults_full() -> str:
    """Every sweep point of every default run: target, achieved bpp, metric before → after, recovery."""
    parts = []
    for task, result in default_runs().items():
        rows = [[r["codec"], f"{r['bpp']:g}", f"{r['achieved_bpp']:.3f}" + ("" if r.get("at_target", True) else " *"),
                 f"{r['before']:.2f}", f"{r['after']:.2f}", _recovery(r)] for r in result["rows"]]
        rows.insert(0, ["clean", "–", "–", f"{result['clean']:.2f}", f"{result['clean_after']:.2f}", "–"])
        parts.append(f"**{TASKS[task]}** ({result.get('metric_label', result['metric'])}; {result.get('data', '')})"
                     + "\n\n" + _table(["codec", "target bpp", "achieved bpp", "before", "after", "recovered"], rows))
    note = "`*`: the achieved rate is more than 10% off the target (the codec cannot go lower)."
    return "\n\n".join(parts) + "\n\n" + note


# ---------------------------------------------------------------------------------------------------- benchmarks


def _pipeline_rows() -> tuple[list[dict[str, Any]], str | None]:
    data = load("pipeline.json")
    if isinstance(data, dict):
        return data["rows"], data.get("source")
    return data, None


def _pivot(rows: list[dict[str, Any]], section: str) -> tuple[list[int], dict[str, dict[int, float]]]:
    sizes = sorted({r["size"] for r in rows if r["table"] == section})
    by_label: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["table"] == section:
            by_label.setdefault(r["label"], {})[r["size"]] = r["images_per_s"]
    return sizes, by_label


def table_pipeline() -> str:
    """Images/s of the finetuning input as the host feeds an accelerator, per placement of the library codecs."""
    rows, _ = _pipeline_rows()
    sizes, by_label = _pivot(rows, "modes")
    return _table(["training input, host side"] + [f"{s}² images/s" for s in sizes],
                  [[label] + [_num(v.get(s), ".1f") for s in sizes] for label, v in by_label.items()])


def table_pipeline_workers(target: float = 1000.0) -> str:
    """Images/s one DataLoader worker delivers, and the workers a training speed of ``target`` images/s needs."""
    rows, _ = _pipeline_rows()
    sizes, by_label = _pivot(rows, "per_worker")
    header = ["one worker"]
    for s in sizes:
        header += [f"{s}² images/s", f"workers for {target:,.0f} images/s"]
    body = []
    for label, v in by_label.items():
        cells = [label]
        for s in sizes:
            rate = v.get(s)
            cells += [_num(rate, ".1f"), "–" if not rate else str(math.ceil(target / rate))]
        body.append(cells)
    return _table(header, body)


def table_store_cost() -> str:
    """Seconds per image of bpp-targeted coding with the file kept, per codec and image side."""
    cost = load("store.json")["cost"]
    sides = sorted({int(s) for per in cost.values() for s in per})
    return _table(["codec"] + [f"s/image at {s}²" for s in sides],
                  [[c] + [_num(per.get(str(s)), ".3f") for s in sides] for c, per in cost.items()])


def table_store_paper() -> str:
    """CPU-hours of a full sweep of the study's validation sets, without and with the store."""
    paper = load("store.json")["paper"]
    rows = [[name, f"{d['images']:,}", f"{d['side']}", f"{d['cpu_hours_per_sweep']:.0f}",
             f"{d['cpu_hours_run_without_store']:.0f}", f"{d['cpu_hours_once_with_store']:.0f} once, then 0"]
            for name, d in paper["datasets"].items()]
    return _table(["dataset", "images", "side", "CPU-hours per sweep", "per run without the store (2 sweeps)",
                   "with the store"], rows)


def table_store_serial() -> str:
    """Serial ``compress()`` + ``decompress()`` of the autoregressive models against their parallel forward."""
    serial = load("store.json")["serial"]
    rows = [[c, f"{d['forward_s']:.3f}", f"{d['compress_s']:.2f}", f"{d['decompress_s']:.2f}",
             f"{(d['compress_s'] + d['decompress_s']) / d['forward_s']:.1f}×"] for c, d in serial.items()]
    return _table(["codec", "parallel forward (s)", "compress() (s)", "decompress() (s)", "both / forward"], rows)


def table_store_speedup() -> str:
    """``precompute`` with 2 local workers against 1."""
    s = load("store.json")["speedup"]
    return _table(["workers", "seconds"], [["1", f"{s['seconds_1']:.1f}"], ["2", f"{s['seconds_2']:.1f}"],
                                           ["speedup", f"{s['speedup']:.2f}×"]])


def table_codecs_rd() -> str:
    """PSNR at fixed rates, BD-rate against JPEG and the lowest reachable rate of each codec."""
    rd = load("codecs_throughput.json")["rd"]
    points = rd["points_bpp"]  # psnr_at is keyed by str(point), as benchmarks/codecs.py writes it
    body = []
    for r in rd["rows"]:
        cells = [f"`{r['codec']}`"]
        for p in points:
            at = r["psnr_at"][str(p)]
            count = "" if at["crops"] == r["crops"] or at["median"] is None else f" [{at['crops']}]"
            cells.append(_num(at["median"]) + count)
        cells += [_num(r["bd_rate_vs_jpeg_pct"], "+.1f") + "%" if r["bd_rate_vs_jpeg_pct"] else "0",
                  _num(r["lowest_bpp"], ".3f"), f"{r['crops_reaching_0.1']}/{r['crops']}"]
        body.append(cells)
    return _table(["codec"] + [f"PSNR @{p:g} bpp" for p in points]
                  + ["BD-rate vs JPEG", "lowest bpp (median)", "crops reaching 0.1 bpp"], body)


def table_codecs_targeting() -> str:
    """Share of bpp targets hit within 5% and encodes per sample, per codec."""
    rows = load("codecs_throughput.json")["targeting"]["rows"]
    return _table(["codec", "within 5% (targets in range)", "within 5% (reachable targets)", "encodes/sample"],
                  [[f"`{r['codec']}`", _num(r["share_within_5pct_in_range"], ".1%"),
                    _num(r["share_within_5pct_reachable"], ".1%"), _num(r["encodes_per_sample"])] for r in rows])


def table_codecs_speed() -> str:
    """Images/s of each codec at a fixed level and at per-sample bpp targets, and the cost of targeting."""
    speed = load("codecs_throughput.json")["speed"]
    return _table([f"{speed['batch']}×{speed['size']}² uint8", "level", "images/s fixed", "images/s at targets",
                   "targeted / fixed time"],
                  [[f"`{r['codec']}`", f"{r['level']:g}", _num(r["fixed_images_per_s"], ".1f"),
                    _num(r["targeted_images_per_s"], ".1f"), _num(r["targeted_vs_fixed_cost"], ".2f") + "×"]
                   for r in speed["rows"]])


def table_rd_agreement() -> str:
    """How far augcomp's tensor JPEG is from libjpeg-turbo over every (image, quality) pair."""
    a = load("rd.json")["rd"]["agreement"]
    return _table(["largest ΔPSNR (dB)", "largest Δbpp", "largest Δbits", "identical decodes"],
                  [[_num(a["max_abs_dpsnr_db"], ".4f"), _num(a["max_abs_dbpp"], ".6f"), _num(a["max_abs_dbits"], ".0f"),
                    f"{a['identical_images']}/{a['pairs']}"]])


def table_bpp_accuracy() -> str:
    """bpp targeting of JPEG: reachable targets hit within tolerance, median and worst error."""
    acc = load("rd.json")["bpp_accuracy"]
    s = acc["summary"]
    return _table(["JPEG backend", "reachable targets within 5%", "median error", "worst error",
                   "unreachable targets ending at the nearest end"],
                  [[acc["backend"],
                    f"{s['within_tolerance']}/{s['reachable']} ({_num(s['share_within_tolerance'], '.1%')})",
                    _num(s["median_abs_rel_error"], ".2%"), _num(s["worst_abs_rel_error"], ".2%"),
                    f"{s['unreachable_at_nearest_end']}/{s['total'] - s['reachable']}"]])


def _recorded(name: str) -> str:
    # A table recorded as columns and rows with the command that measured it (``source``).
    data = load(name)
    return _table(data["columns"], [[str(c) for c in row] for row in data["rows"]])


def table_throughput() -> str:
    """The throughput table of ``python -m augcomp.bench``, as recorded in ``throughput.json``."""
    return _recorded("throughput.json")


def table_fidelity() -> str:
    """``python benchmarks/fidelity.py``: the tensor JPEG against libjpeg-turbo, per quality."""
    return _recorded("fidelity.json")


def table_tiny_rd() -> str:
    """augcomp-tiny's held-out rate-distortion points against JPEG, WebP and AVIF at the same bpp, from the record
    that ``recipes/train_codec.py`` writes beside the shipped weights."""
    record = json.loads((DOCS.parent / "augcomp" / "weights" / "augcomp-tiny.json").read_text())
    rows = []
    for image, per in record["rd_heldout"]["images"].items():
        for p in per["neural"]:
            m = p["matched_psnr"]
            rows.append([image, str(p["level"]), f"{p['bpp']:.3f}", f"{p['psnr']:.2f}", _num(m.get("jpeg")),
                         _num(m.get("webp")), _num(m.get("avif"))])
    return _table(["image", "level", "bpp", "augcomp-tiny", "JPEG", "WebP", "AVIF"], rows)


def table_placement() -> str:
    """Where finetuning compressed (``codec_work``) per placement, and whether metrics and weights agree."""
    data = load("placement.json")
    keys = ["train_library_in_main", "train_library_in_workers", "train_tensor_on_device", "train_from_store"]
    rows = [[name, str(r["num_processes"]), *(str(r[k]) for k in keys),
             "{:.2f} → {:.2f}".format(*r["metrics"]["clean"])] for name, r in data["runs"].items()]
    table = _table(["run", "processes", *keys, "clean before → after"], rows)
    same = {True: "yes", False: "**no**"}
    return (table + "\n\nMetrics identical with 0 and 2 workers: " + same[data["identical_workers_0_2"]]
            + ", finetuned weights identical: " + same[data["same_weights_workers_0_2"]]
            + "; from the store: " + same[data["identical_store_workers_0_2"]] + " and "
            + same[data["same_weights_store_workers_0_2"]] + ".")


TABLES: dict[str, Callable[[], str]] = {
    "defaults": table_defaults,
    "defaults-full": table_defaults_full,
    "pipeline": table_pipeline,
    "pipeline-workers": table_pipeline_workers,
    "placement": table_placement,
    "store-cost": table_store_cost,
    "store-paper": table_store_paper,
    "store-serial": table_store_serial,
    "store-speedup": table_store_speedup,
    "codecs-rd": table_codecs_rd,
    "codecs-targeting": table_codecs_targeting,
    "codecs-speed": table_codecs_speed,
    "rd-agreement": table_rd_agreement,
    "bpp-accuracy": table_bpp_accuracy,
    "throughput": table_throughput,
    "fidelity": table_fidelity,
    "tiny-rd": table_tiny_rd,
}


def render(name: str) -> str:
    """The Markdown table called ``name``; an unknown name is an error naming the known ones."""
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; known tables: {', '.join(TABLES)}")
    return TABLES[name]()


def fill(text: str, keep_markers: bool) -> str:
    """``text`` with every ``<!-- table: NAME -->`` marker (and the table after it, up to ``<!-- end table -->``)
    replaced by the generated table; with ``keep_markers`` the markers stay around it (for the README)."""

    def replace(match: re.Match[str]) -> str:
        table = render(match.group(1))
        return f"<!-- table: {match.group(1)} -->\n{table}\n{END}" if keep_markers else table

    return MARKER.sub(replace, text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: the page's table markers become tables."""
    return fill(markdown, keep_markers=False)


def main(argv: list[str] | None = None) -> int:
    """Rewrites the README's marked tables from ``docs/data/`` (``--check``: only reports whether they differ)."""
    args = sys.argv[1:] if argv is None else argv
    text = README.read_text()
    new = fill(text, keep_markers=True)
    if "--check" in args:
        if new != text:
            print("README.md's generated tables differ from docs/data/; run: python docs/hooks.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
