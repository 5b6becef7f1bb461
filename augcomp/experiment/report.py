"""The report of a run: ``results.json``, ``results.md`` and ``robustness.png``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from augcomp.experiment.io import atomic_savefig, atomic_write_json, atomic_write_text

__all__ = ["recovery", "build_results", "results_markdown", "plot_robustness", "write_report", "point_key"]

METRIC_LABELS = {
    "top1": "top-1 accuracy (%)",
    "top5": "top-5 accuracy (%)",
    "miou": "mIoU (%)",
    "pixel_acc": "pixel accuracy (%)",
    "map": "mAP@[.5:.95] (%)",
    "map_50": "mAP50 (%)",
}


def point_key(codec: str | None, bpp: float | None) -> str:
    """The name of a sweep point: ``"clean"`` or ``"<codec>@<bpp>"``."""
    return "clean" if codec is None else f"{codec}@{bpp:g}"


def recovery(clean: float, before: float, after: float, min_drop: float = 0.0) -> float | None:
    """Share of the compression drop that finetuning recovers: ``(after - before) / (clean - before)``.

    ``None`` when the drop ``clean - before`` is not above ``min_drop`` (nor above 1e-9): there is nothing to recover,
    and the ratio would be noise.
    """
    drop = clean - before
    if not all(math.isfinite(v) for v in (clean, before, after)) or drop <= max(min_drop, 1e-9):
        return None
    return (after - before) / drop


def build_results(
    *,
    task: str,
    title: str,
    metric: str,
    sweep_before: dict[str, dict[str, Any]],
    sweep_after: dict[str, dict[str, Any]],
    codecs: list[str],
    grid: list[float],
    min_drop: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assembles ``results.json`` from the two sweeps.

    Args:
        task: ``"cls"``, ``"det"`` or ``"seg"``.
        title: human name of the task.
        metric: the headline metric key.
        sweep_before, sweep_after: sweep points by :func:`point_key`, each ``{"metrics": {...},
            "achieved_bpp": float | None}``.
        codecs: codecs of the sweep, in order.
        grid: target bitrates.
        min_drop: see :func:`recovery`.
        extra: further top-level fields (model, data, timings, ...).

    Returns:
        ``{"task", "metric", "metric_label", "clean", "clean_after", "rows": [...], ...}``; each row is
        ``{"codec", "bpp", "achieved_bpp", "before", "after", "recovery", "before_metrics", "after_metrics"}``.
    """
    clean = sweep_before["clean"]["metrics"][metric]
    clean_after = sweep_after["clean"]["metrics"][metric]
    rows = []
    for codec in codecs:
        for bpp in grid:
            key = point_key(codec, bpp)
            b, a = sweep_before[key], sweep_after[key]
            before, after = b["metrics"][metric], a["metrics"][metric]
            rows.append({
                "codec": codec,
                "bpp": bpp,
                "achieved_bpp": b.get("achieved_bpp"),
                "before": before,
                "after": after,
                "recovery": recovery(clean, before, after, min_drop),
                "before_metrics": b["metrics"],
                "after_metrics": a["metrics"],
            })
    out = {
        "task": task,
        "title": title,
        "metric": metric,
        "metric_label": METRIC_LABELS.get(metric, metric),
        "clean": clean,
        "clean_after": clean_after,
        "clean_metrics": sweep_before["clean"]["metrics"],
        "clean_after_metrics": sweep_after["clean"]["metrics"],
        "recovery_min_drop": min_drop,
        "rows": rows,
    }
    out.update(extra or {})
    return out


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{100 * v:.0f}%" if pct else f"{v:.2f}"


def results_markdown(results: dict[str, Any]) -> str:
    """``results.json`` as a Markdown table."""
    label = results.get("metric_label", results["metric"])
    lines = [
        f"# Compression robustness: {results.get('title', results['task'])}",
        "",
    ]
    for key, name in (("model", "Model"), ("data", "Data"), ("train_bpp", "Finetuning bpp")):
        if key in results:
            lines.append(f"- {name}: {results[key]}")
    lines += [
        f"- Metric: {label}",
        f"- Clean images: {_fmt(results['clean'])} before finetuning, {_fmt(results['clean_after'])} after",
        "- Recovery = (after - before) / (clean - before); n/a where the drop is at most "
        f"{results.get('recovery_min_drop', 0):g} points",
        "",
        "| codec | target bpp | achieved bpp | before | after | recovery |",
        "|---|---:|---:|---:|---:|---:|",
        f"| clean | - | - | {_fmt(results['clean'])} | {_fmt(results['clean_after'])} | - |",
    ]
    for r in results["rows"]:
        ach = "n/a" if r["achieved_bpp"] is None else f"{r['achieved_bpp']:.3f}"
        lines.append(
            f"| {r['codec']} | {r['bpp']:g} | {ach} | {_fmt(r['before'])} | {_fmt(r['after'])} | "
            f"{_fmt(r['recovery'], pct=True)} |"
        )
    return "\n".join(lines) + "\n"


def plot_robustness(results: dict[str, Any], path: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """Metric versus achieved bpp (log x), before (dashed) and after (solid) finetuning, one colour per codec;
    the clean metric before and after as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    try:
        codecs = list(dict.fromkeys(r["codec"] for r in results["rows"]))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, codec in enumerate(codecs):
            rows = sorted((r for r in results["rows"] if r["codec"] == codec),
                          key=lambda r: r["achieved_bpp"] if r["achieved_bpp"] is not None else r["bpp"])
            x = [r["achieved_bpp"] if r["achieved_bpp"] is not None else r["bpp"] for r in rows]
            c = colours[i % len(colours)]
            ax.plot(x, [r["before"] for r in rows], "o--", color=c, label=f"{codec}, before finetuning")
            ax.plot(x, [r["after"] for r in rows], "s-", color=c, label=f"{codec}, after finetuning")
        ax.axhline(results["clean"], color="0.45", ls="--", lw=1, label="clean images, before")
        ax.axhline(results["clean_after"], color="0.1", ls="-", lw=1, label="clean images, after")
        ax.set_xscale("log")
        # Plain numbers at the grid's bitrates read better than powers of ten.
        from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

        ax.xaxis.set_major_locator(FixedLocator(sorted({float(r["bpp"]) for r in results["rows"]})))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("achieved bits per pixel")
        ax.set_ylabel(results.get("metric_label", results["metric"]))
        ax.set_title(f"{results.get('title', results['task'])}: {results.get('model', '')}".rstrip(": "))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        atomic_savefig(fig, path, root)
    finally:
        plt.close(fig)


def write_report(results: dict[str, Any], output_dir: str | os.PathLike) -> dict[str, Path]:
    """Writes ``results.json``, ``results.md`` and ``robustness.png`` into ``output_dir`` (each atomically, none
    through a symbolic link)."""
    out = Path(output_dir)
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "robustness.png"}
    atomic_write_json(paths["json"], results, root=out)
    atomic_write_text(paths["md"], results_markdown(results), root=out)
    plot_robustness(results, paths["png"], root=out)
    return paths
