"""The throughput report: the environment it ran in, the Markdown table, and the cost of rate control per codec."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

import torch

from augcomp.bench.rows import BASELINE, BASELINE_CODEC, BPP_RANGE, codec_row_keys

__all__ = ["busy_cpu_warning", "environment", "markdown", "rate_control"]

# Packages whose versions the report records when installed (read from their metadata, never imported).
_OPTIONAL = ("kornia", "simplejpeg", "imagecodecs", "compressai", "torchmetrics")


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, threads and hardware, for the JSON report."""
    import numpy as np
    import PIL
    import torchvision

    import augcomp

    versions = {"augcomp": augcomp.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                "pillow": PIL.__version__, "numpy": np.__version__}
    for name in _OPTIONAL:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    env = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        # OpenMP's spinning workers slow torch ops erratically on a busy CPU; these say how it was configured.
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_cpu_warning(env: dict[str, Any]) -> str | None:
    """A caveat when the CPU was busy and OpenMP's workers spin (the default), else None."""
    load, cores = env.get("load_average"), env.get("cpu_count") or 1
    policy = (env.get("env") or {}).get("OMP_WAIT_POLICY") or ""
    if not load or load[0] <= 0.5 * cores or policy.upper() == "PASSIVE":
        return None
    return (f"Caveat: the CPU was busy (load {load[0]:.1f} on {cores} cores) and OMP_WAIT_POLICY is not PASSIVE; "
            "spinning OpenMP workers can slow torch operations (torchvision's JPEG encoder included) by large, "
            "erratic factors. Rerun with OMP_WAIT_POLICY=PASSIVE on a shared machine.")


def rate_control(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per codec whose rows ran: images/s at a fixed level and at per-sample bpp targets, and their ratio.

    ``targeted_vs_fixed`` is ``images/s targeted / images/s fixed`` (below 1: what rate control costs);
    ``targeted_vs_baseline`` is the targeted row's speed against torchvision v2.JPEG.
    """
    by_key = {r["key"]: r for r in rows}
    out = []
    for r in rows:
        if r["group"] != "codec" or not r["key"].startswith("codec:") or r["key"].endswith(":bpp"):
            continue
        name = r["key"][len("codec:"):]
        fixed, targeted = by_key.get(codec_row_keys(name)[0]), by_key.get(codec_row_keys(name)[1])
        if targeted is None or (fixed["images_per_s"] is None and targeted["images_per_s"] is None):
            continue
        ratio = (targeted["images_per_s"] / fixed["images_per_s"]
                 if fixed["images_per_s"] and targeted["images_per_s"] else None)
        out.append({"codec": name, "fixed": fixed["label"], "fixed_images_per_s": fixed["images_per_s"],
                    "targeted_images_per_s": targeted["images_per_s"], "targeted_vs_fixed": ratio,
                    "targeted_vs_baseline": targeted["speed_vs_baseline"]})
    return out


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the table of rows, the rows not run, and the cost of rate control per codec."""
    env = report["environment"]
    lines = [
        f"Batch {report['batch']} x 3 x {report['size']} x {report['size']} (uint8 natural-image crops), "
        f"device {env['device']} ({env['device_name']}), {env['threads']} torch threads, "
        f"median of up to {report['repeats']} repeats after a warm-up. "
        f"Speed ratio = time of torchvision v2.JPEG / time of the row.",
    ]
    caveat = busy_cpu_warning(env)
    if caveat:
        lines += ["", caveat]
    lines += [
        "",
        "| row | ms/batch | images/s | speed vs v2.JPEG | runs on | input | note |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    skipped = []
    by_key = {r["key"]: r for r in report["rows"]}
    for r in report["rows"]:
        if r["ms_per_batch"] is None:
            if r["group"] == "codec" and r["key"].startswith("codec:"):
                # A codec's two rows are usually skipped for the same reason: one line says it for both.
                name = r["key"][len("codec:"):].removesuffix(":bpp")
                fixed, targeted = (by_key.get(k) for k in codec_row_keys(name))
                if fixed is not None and targeted is not None and fixed["skipped"] == targeted["skipped"]:
                    if r is fixed:
                        skipped.append(f"- {name} (both rows): {r['skipped']}")
                    continue
            skipped.append(f"- {r['label']}: {r['skipped']}")
            continue
        lines.append(f"| {r['label']} | {r['ms_per_batch']:.1f} | {r['images_per_s']:.1f} | "
                     f"{_x(r['speed_vs_baseline'])} | {r['device']} | {r['dtype']} | {r['note']} |")
    if skipped:
        lines += ["", "Not run here:", "", *skipped]
    costs = report.get("rate_control") or []
    if costs:
        lo, hi = report.get("bpp_range", BPP_RANGE)
        lines += ["", f"Rate control: per-sample targets drawn log-uniformly in {lo:g}-{hi:g} bpp against one fixed "
                  "level (targeted / fixed < 1 is the cost of hitting the targets).", "",
                  "| codec | fixed level | images/s fixed | images/s targeted | targeted / fixed | "
                  "targeted vs v2.JPEG |", "|---|---|---:|---:|---:|---:|"]
        for c in costs:
            lines.append(f"| {c['codec']} | {c['fixed']} | {_n(c['fixed_images_per_s'])} | "
                         f"{_n(c['targeted_images_per_s'])} | {_x(c['targeted_vs_fixed'])} | "
                         f"{_x(c['targeted_vs_baseline'])} |")
        base = next((r for r in report["rows"] if r["key"] == BASELINE and r["images_per_s"]), None)
        ours = next((c for c in costs if c["codec"] == BASELINE_CODEC and c["targeted_images_per_s"]), None)
        if base is not None and ours is not None:
            lines += ["", f"{BASELINE_CODEC} at {lo:g}-{hi:g} bpp per sample: {ours['targeted_images_per_s']:.1f} "
                      f"images/s, {_x(ours['targeted_vs_baseline'])} {base['label']} "
                      f"({base['images_per_s']:.1f} images/s at one fixed quality)."]
    return "\n".join(lines) + "\n"
