"""Where finetuning compresses, and that it does not matter: the placement acceptance run.

On an ADE20K-layout folder of 16 training and 8 validation photographs at 512 px (made by
:func:`augcomp.samples.ade20k_folder`), the segmentation recipe runs one clean epoch and one finetuning epoch at
``--image-size 256 --codecs jpeg,webp,avif --bpp-grid 0.3 --train-codecs jpeg,webp,avif,jpeg2000 --clean-share 0.25``
(batch 2, learning rates 0.01 and 0.003, resnet10t):

1. with ``--num-workers 0`` (library codecs coded by the training process's thread pool);
2. with ``--num-workers 2`` (library codecs coded in the DataLoader workers, tensor codecs on the device batch);
3. with 2 processes (``torchrun --nproc_per_node 2 recipes/seg.py --cpu``), 1 worker each;
4. and 5. from a store of 2 variants per training image (``augcomp precompute --variants 2``, then
   ``--train-store``) with ``--num-workers 0`` and ``2``.

It prints and writes (``--out``, default ``results/bench``: ``placement.json``, ``placement.md``) each run's
``codec_work``, ``num_processes``, and whether runs 1 and 2 (and 4 and 5) give identical metrics before and after
finetuning, clean included, and the same finetuned weights. Run it from the repository root:
``python benchmarks/placement.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# Batch 2 and larger learning rates than the defaults, so that one epoch of 16 images moves the model off its
# initialization and metrics that agree say something (at batch 4 every mIoU stays 0).
COMMON = ["--cpu", "--model", "resnet10t", "--head-channels", "16", "--image-size", "256", "--batch-size", "2",
          "--eval-batch-size", "8", "--clean-lr", "0.01", "--lr", "0.003", "--codecs", "jpeg,webp,avif",
          "--bpp-grid", "0.3",
          "--train-codecs", "jpeg,webp,avif,jpeg2000", "--clean-share", "0.25", "--clean-epochs", "1", "--epochs", "1"]
WORK_KEYS = ("train_library_in_main", "train_library_in_workers", "train_tensor_on_device", "train_from_store",
             "train_data_wait_seconds")


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def _recipe(data: Path, out: Path, *extra: str, processes: int = 1) -> dict:
    launch = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)] if processes > 1
              else [sys.executable])
    _run([*launch, "recipes/seg.py", "--data-root", str(data), *COMMON, "--output-dir", str(out), *extra])
    results = json.loads((out / "results.json").read_text())
    results["weights_sha256"] = _weights_hash(out / "finetuned_model.pt")
    return results


def _weights_hash(path: Path) -> str:
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(torch.load(path, map_location="cpu", weights_only=True).items()):
        digest.update(name.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _metrics(results: dict) -> dict:
    rows = {f"{r['codec']}@{r['bpp']}": (r["before"], r["after"]) for r in results["rows"]}
    return {"clean": (results["clean"], results["clean_after"]), **rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/bench"), help="output folder")
    out = parser.parse_args().out
    from augcomp.samples import ade20k_folder

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = ade20k_folder(work / "ade", train=16, val=8, size=512, seed=0)
        runs = {
            "workers 0": _recipe(data, work / "w0", "--num-workers", "0"),
            "workers 2": _recipe(data, work / "w2", "--num-workers", "2"),
            "2 processes, 1 worker each": _recipe(data, work / "p2", "--num-workers", "1", processes=2),
        }
        _run([sys.executable, "-m", "augcomp.cli", "precompute", "--task", "seg", "--data-root", str(data),
              "--split", "training", "--variants", "2", "--image-size", "256", "--train-codecs",
              "jpeg,webp,avif,jpeg2000", "--store", str(work / "store")])
        for workers in (0, 2):
            runs[f"train store, workers {workers}"] = _recipe(data, work / f"s{workers}", "--num-workers", str(workers),
                                                              "--train-store", str(work / "store"))
    summary = {
        "command": "python benchmarks/placement.py",
        "runs": {name: {"num_processes": r["num_processes"], **{k: r["codec_work"].get(k) for k in WORK_KEYS},
                        "metrics": _metrics(r), "weights_sha256": r["weights_sha256"]} for name, r in runs.items()},
        "identical_workers_0_2": _metrics(runs["workers 0"]) == _metrics(runs["workers 2"]),
        "identical_store_workers_0_2": (_metrics(runs["train store, workers 0"])
                                        == _metrics(runs["train store, workers 2"])),
        "same_weights_workers_0_2": runs["workers 0"]["weights_sha256"] == runs["workers 2"]["weights_sha256"],
        "same_weights_store_workers_0_2": (runs["train store, workers 0"]["weights_sha256"]
                                           == runs["train store, workers 2"]["weights_sha256"]),
    }
    lines = ["| run | processes | " + " | ".join(WORK_KEYS) + " | clean before → after |",
             "|---|---:|" + "---:|" * len(WORK_KEYS) + "---|"]
    for name, r in summary["runs"].items():
        before, after = r["metrics"]["clean"]
        lines.append(f"| {name} | {r['num_processes']} | " + " | ".join(str(r[k]) for k in WORK_KEYS)
                     + f" | {before:.2f} → {after:.2f} |")
    lines += ["", f"identical metrics, workers 0 and 2: {summary['identical_workers_0_2']} (finetuned weights "
                  f"identical: {summary['same_weights_workers_0_2']}); from the store: "
                  f"{summary['identical_store_workers_0_2']} (weights: {summary['same_weights_store_workers_0_2']})"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "placement.json").write_text(json.dumps(summary, indent=1))
    (out / "placement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
