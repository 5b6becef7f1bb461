"""The report of a run: ``results.json``, ``results.md``, ``robustness.png`` (metric against achieved bpp, a line
per codec) and ``matched_bpp.png`` (at each target bitrate, which codec hurts least, before and after finetuning)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from augcomp.experiment.io import atomic_savefig, atomic_write_json, atomic_write_text
from augcomp.experiment.runfiles import REPORT_FILES

__all__ = [
    "MATCH_TOL",
    "at_target",
    "build_results",
    "matched_bpp",
    "plot_matched_bpp",
    "plot_robustness",
    "point_key",
    "recovery",
    "results_markdown",
    "results_table",
    "write_report",
]

# A codec takes part in the matched-bitrate comparison at a target only where its mean achieved rate is within this
# share of the target. Rate control meets a reachable target within 5% per image, so a larger gap means the codec
# cannot code these images at that rate (JPEG below about 0.16 bpp, for instance), and its
# metric there belongs to another bitrate.
MATCH_TOL = 0.1

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


def at_target(row: dict[str, Any], tol: float = MATCH_TOL) -> bool:
    """Whether a result row's mean achieved bpp is within ``tol`` (relative) of its target; a row without an
    achieved rate counts as on target."""
    achieved = row.get("achieved_bpp")
    if achieved is None:
        return True
    return abs(achieved - row["bpp"]) <= tol * row["bpp"]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def matched_bpp(rows: list[dict[str, Any]], tol: float = MATCH_TOL) -> list[dict[str, Any]]:
    """The matched-bitrate view: at each target, which codec hurts the metric least, before and after finetuning.

    Only codecs on target (:func:`at_target`) are compared; the metric is higher-is-better, so the least hurt codec
    is the one with the highest value (every codec that ties for it).

    Args:
        rows: the ``rows`` of :func:`build_results`.
        tol: see :func:`at_target`.

    Returns:
        One entry per target, in increasing order: ``{"bpp", "compared": [codecs on target], "off_target":
        {codec: achieved bpp}, "least_hurt_before": [codecs], "before": best value or None, "least_hurt_after",
        "after"}``.
    """
    out = []
    for bpp in sorted({r["bpp"] for r in rows}):
        here = [r for r in rows if r["bpp"] == bpp]
        compared = [r for r in here if at_target(r, tol)]
        entry: dict[str, Any] = {
            "bpp": bpp,
            "compared": [r["codec"] for r in compared],
            "off_target": {r["codec"]: r["achieved_bpp"] for r in here if not at_target(r, tol)},
        }
        for when in ("before", "after"):
            values = [r[when] for r in compared if _finite(r[when])]
            best = max(values) if values else None
            entry[f"least_hurt_{when}"] = [r["codec"] for r in compared if best is not None and r[when] == best]
            entry[when] = best
        out.append(entry)
    return out


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
        sweep_before: sweep points by :func:`point_key`, each ``{"metrics": {...}, "achieved_bpp": float | None}``.
        sweep_after: the same after finetuning.
        codecs: codecs of the sweep, in order.
        grid: target bitrates.
        min_drop: see :func:`recovery`.
        extra: further top-level fields (model, data, timings, ...).

    Returns:
        ``{"task", "metric", "metric_label", "clean", "clean_after", "rows": [...], "matched_bpp": [...], ...}``;
        one row per codec and target: ``{"codec", "bpp", "achieved_bpp", "at_target", "before", "after",
        "recovery", "before_metrics", "after_metrics"}``; ``matched_bpp`` as :func:`matched_bpp` gives it.
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
                "at_target": at_target({"bpp": bpp, "achieved_bpp": b.get("achieved_bpp")}),
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
        "matched_bpp_tol": MATCH_TOL,
        "matched_bpp": matched_bpp(rows),
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
    if results.get("train_codecs"):
        mix = f"- Finetuning mix: per image one of {', '.join(results['train_codecs'])}"
        if "clean_share" in results:
            mix += f"; {100 * results['clean_share']:.0f}% of images left clean"
        draws = results.get("finetune_draws") or {}
        if draws:
            mix += " (drawn: " + ", ".join(f"{k} {n}" for k, n in draws.items()) + ")"
        lines.append(mix)
    lines += [
        f"- Metric: {label}",
        f"- Clean images: {_fmt(results['clean'])} before finetuning, {_fmt(results['clean_after'])} after",
        "- Recovery = (after - before) / (clean - before); n/a where the drop is at most "
        f"{results.get('recovery_min_drop', 0):g} points",
    ]
    bad = results.get("bad_files") or []
    if bad:
        lines.append(f"- Left out (--skip-bad-files): {len(bad)} unusable file(s), listed in results.json")
    lines += ["", *results_table(results), "", *_matched_markdown(results)]
    return "\n".join(lines) + "\n"


def results_table(results: dict[str, Any]) -> list[str]:
    """The main table of ``results.md`` as lines: clean, then per codec and target the achieved bpp, the metric
    before and after finetuning, and the recovery (the recipes also print it when a run ends)."""
    lines = [
        "| codec | target bpp | achieved bpp | before | after | recovery |",
        "|---|---:|---:|---:|---:|---:|",
        f"| clean | - | - | {_fmt(results['clean'])} | {_fmt(results['clean_after'])} | - |",
    ]
    for r in results["rows"]:
        ach = _fmt_bpp(r["achieved_bpp"])
        lines.append(
            f"| {r['codec']} | {r['bpp']:g} | {ach} | {_fmt(r['before'])} | {_fmt(r['after'])} | "
            f"{_fmt(r['recovery'], pct=True)} |"
        )
    return lines


def _matched_markdown(results: dict[str, Any]) -> list[str]:
    # Recomputed from the rows (not read from results["matched_bpp"]), so the table always agrees with them.
    rows = results["rows"]
    tol = results.get("matched_bpp_tol", MATCH_TOL)
    codecs = list(dict.fromkeys(r["codec"] for r in rows))
    by_key = {(r["codec"], r["bpp"]): r for r in rows}
    lines = [
        "## Matched bitrate: which codec hurts least",
        "",
        f"Each codec at each target, before → after finetuning. A codec whose mean achieved bitrate is more than "
        f"{100 * tol:.0f}% off the target cannot code these images at that rate: it is shown in brackets with the "
        "rate it reached, and left out of the comparison.",
        "",
        "| target bpp | " + " | ".join(codecs) + " | least hurt before | least hurt after |",
        "|---:|" + "---|" * (len(codecs) + 2),
    ]

    def best(names: list[str], value: float | None) -> str:
        return f"{', '.join(names)} ({_fmt(value)})" if names else "n/a (no codec at this rate)"

    for m in matched_bpp(rows, tol):
        cells = []
        for codec in codecs:
            r = by_key.get((codec, m["bpp"]))
            if r is None:
                cells.append("-")
                continue
            cell = f"{_fmt(r['before'])} → {_fmt(r['after'])}"
            cells.append(cell if codec in m["compared"] else f"[{_fmt_bpp(r['achieved_bpp'])} bpp: {cell}]")
        lines.append(f"| {m['bpp']:g} | " + " | ".join(cells) +
                     f" | {best(m['least_hurt_before'], m['before'])} | {best(m['least_hurt_after'], m['after'])} |")
    return lines


def _fmt_bpp(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def plot_robustness(results: dict[str, Any], path: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """Metric versus achieved bpp (log x), before (dashed, open markers) and after (solid, filled) finetuning, one
    colour and marker per codec; the clean metric before and after as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.6, 4.4), dpi=120)
    markers = "os^Dvp"
    try:
        codecs = list(dict.fromkeys(r["codec"] for r in results["rows"]))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, codec in enumerate(codecs):
            rows = sorted((r for r in results["rows"] if r["codec"] == codec),
                          key=lambda r: r["achieved_bpp"] if r["achieved_bpp"] is not None else r["bpp"])
            x = [r["achieved_bpp"] if r["achieved_bpp"] is not None else r["bpp"] for r in rows]
            c = colours[i % len(colours)]
            # A marker per codec too, so lines that coincide stay apart; open markers before, filled after.
            m = markers[i % len(markers)]
            ax.plot(x, [r["before"] for r in rows], f"{m}--", color=c, mfc="white", label=f"{codec}, before finetuning")
            ax.plot(x, [r["after"] for r in rows], f"{m}-", color=c, label=f"{codec}, after finetuning")
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
        # Beside the axes: with several codecs an inside legend would cover the lines.
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        fig.tight_layout()
        atomic_savefig(fig, path, root, bbox_inches="tight")
    finally:
        plt.close(fig)


def plot_matched_bpp(results: dict[str, Any], path: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """The matched-bitrate view as bars: one panel before finetuning, one after; at each target bitrate a bar per
    codec, faded and hatched where the codec is off target, a star over the codec that hurts least, the clean metric
    as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = results["rows"]
    tol = results.get("matched_bpp_tol", MATCH_TOL)
    codecs = list(dict.fromkeys(r["codec"] for r in rows))
    matched = matched_bpp(rows, tol)
    by_key = {(r["codec"], r["bpp"]): r for r in rows}
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / max(1, len(codecs))
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.4), dpi=120, sharey=True)
    try:
        for ax, when, clean_key in ((axes[0], "before", "clean"), (axes[1], "after", "clean_after")):
            for i, codec in enumerate(codecs):
                colour = colours[i % len(colours)]
                for j, m in enumerate(matched):
                    r = by_key.get((codec, m["bpp"]))
                    if r is None or not _finite(r[when]):
                        continue
                    x = j + (i - (len(codecs) - 1) / 2) * width
                    on = codec in m["compared"]
                    ax.bar(x, r[when], width * 0.9, color=colour, alpha=1.0 if on else 0.3,
                           hatch=None if on else "//", edgecolor=colour)
                    if codec in m[f"least_hurt_{when}"]:
                        ax.plot(x, r[when], marker="*", color="black", markersize=9, ls="none")
            ax.axhline(results[clean_key], color="0.3", ls="--", lw=1)
            ax.set_xticks(range(len(matched)), [f"{m['bpp']:g}" for m in matched])
            ax.set_xlabel("target bits per pixel")
            ax.set_title(f"{when} finetuning")
            ax.grid(True, axis="y", alpha=0.3)
        axes[0].set_ylabel(results.get("metric_label", results["metric"]))
        handles = [Patch(color=colours[i % len(colours)], label=c) for i, c in enumerate(codecs)]
        handles += [Patch(facecolor="white", edgecolor="0.4", hatch="//", label=f"off target (>{100 * tol:.0f}%)"),
                    Line2D([], [], marker="*", color="black", ls="none", label="least hurt"),
                    Line2D([], [], color="0.3", ls="--", label="clean images")]
        # Below the panels, where it hides no bar.
        fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=min(len(handles), 7), frameon=False)
        title = f"{results.get('title', results['task'])}: {results.get('model', '')}".rstrip(": ")
        fig.suptitle(f"{title}, codecs at matched bitrates", fontsize=10)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        atomic_savefig(fig, path, root)
    finally:
        plt.close(fig)


def _write_json(results: dict[str, Any], path: Path, root: Path) -> None:
    atomic_write_json(path, results, root=root)


def _write_md(results: dict[str, Any], path: Path, root: Path) -> None:
    atomic_write_text(path, results_markdown(results), root=root)


# How each report file of the run-file table (augcomp.experiment.runfiles) is written, by its key.
WRITERS: dict[str, Callable[[dict[str, Any], Path, Path], None]] = {
    "json": _write_json,
    "md": _write_md,
    "png": plot_robustness,
    "matched_png": plot_matched_bpp,
}


def write_report(results: dict[str, Any], output_dir: str | os.PathLike) -> dict[str, Path]:
    """Writes the report files of the run-file table (``results.json``, ``results.md``, ``robustness.png`` and
    ``matched_bpp.png``) into ``output_dir``, each atomically, none through a symbolic link.

    Returns:
        The paths, by their key in the table: ``"json"``, ``"md"``, ``"png"`` (robustness) and ``"matched_png"``.
    """
    out = Path(output_dir)
    missing = sorted(set(REPORT_FILES) ^ set(WRITERS))
    if missing:
        raise RuntimeError(f"report files without a writer, or writers without a file: {missing}")
    paths = {key: out / f.name for key, f in REPORT_FILES.items()}
    for key, path in paths.items():
        WRITERS[key](results, path, out)
    return paths
