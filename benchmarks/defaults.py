"""The three default recipes, one after another, timed: the figures of the docs' "Default recipes" page.

Runs ``accelerate launch --cpu recipes/{seg,cls,det}.py`` with no other argument (the embedded default: synthetic
scenes, the default codec mix), each into ``--out/<task>`` (default ``results/defaults``), and measures each
command's wall time. With ``--docs`` it then copies each run's ``results.json`` (plus ``wall_seconds``) to
``docs/data/defaults/<task>.json``, its ``robustness.png`` to ``docs/robustness_<task>.png`` (and segmentation's
``matched_bpp.png`` to ``docs/matched_bpp_seg.png``), and refreshes the README's generated tables
(``python docs/hooks.py``). Run it from the repository root on a machine with nothing else running, since the wall
times are part of the result: ``python benchmarks/defaults.py --docs``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

TASKS = ("seg", "cls", "det")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/defaults"), help="where the runs write")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}")
    parser.add_argument("--docs", action="store_true", help="copy the results into docs/ and refresh the README")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    if not tasks or any(t not in TASKS for t in tasks):
        parser.error(f"--tasks takes a comma-separated subset of {','.join(TASKS)}, got {args.tasks!r}")
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
    for task in tasks:
        out = args.out / task
        start = time.perf_counter()
        # --overwrite: a rerun replaces the previous run instead of refusing the used folder.
        cmd = [accelerate, "launch", "--cpu", f"recipes/{task}.py", "--output-dir", str(out), "--overwrite"]
        proc = subprocess.run(cmd)
        seconds = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}")
        results = json.loads((out / "results.json").read_text())
        print(f"{task}: {seconds:.0f} s wall; clean {results['clean']:.2f} -> {results['clean_after']:.2f}")
        if args.docs:
            Path("docs/data/defaults").mkdir(parents=True, exist_ok=True)
            data = {**results, "wall_seconds": round(seconds, 1)}
            Path(f"docs/data/defaults/{task}.json").write_text(json.dumps(data, indent=1) + "\n")
            shutil.copyfile(out / "robustness.png", f"docs/robustness_{task}.png")
            if task == "seg" and (out / "matched_bpp.png").is_file():
                shutil.copyfile(out / "matched_bpp.png", "docs/matched_bpp_seg.png")
    if args.docs:
        subprocess.run([sys.executable, "docs/hooks.py"], check=True)


if __name__ == "__main__":
    main()
