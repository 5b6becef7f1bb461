"""The benchmark scripts in their tiny modes: they run, and write the files and fields they promise.

Speed itself is never asserted here; it belongs to the benchmarks' own reports.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest
import torch
from PIL import Image

from augcomp import bench, cli

ROOT = Path(__file__).resolve().parent.parent

# torchvision 0.29 deprecates its JPEG coder, which the benchmark times as a peer.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def script(name: str) -> ModuleType:
    """A module of the ``benchmarks`` folder, loaded by path (the folder is not a package)."""
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_natural_crops():
    x = bench.natural_crops(5, (33, 47), seed=1)
    assert x.shape == (5, 3, 33, 47) and x.dtype == torch.uint8
    assert torch.equal(x, bench.natural_crops(5, (33, 47), seed=1))
    assert x.float().std() > 10  # photographs, not blank
    big = bench.natural_crops(2, 900)  # larger than every bundled photograph: upscaled first
    assert big.shape == (2, 3, 900, 900)
    assert {"astronaut", "coffee", "chelsea"} <= set(bench.natural_images())


def test_row_selection():
    rows = bench.all_rows(50, 0.5)
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))
    for key in ("augcomp-jpeg", "augcomp-bpp", "augcomp-ste", "augcomp-torch", bench.BASELINE, "tv-io-cpu",
                "tv-io-nvjpeg", "kornia-random-jpeg", "kornia-random-jpeg-fwdbwd", "kornia-jpeg-diff",
                "kornia-jpeg-diff-fwdbwd", "pil", "simplejpeg"):
        assert key in keys
    picked = [r.key for r in bench.select_rows(rows, "augcomp-j*, pil")]
    assert picked == ["augcomp-jpeg", bench.BASELINE, "pil"]
    with pytest.raises(ValueError, match="matches no row"):
        bench.select_rows(rows, "augcomp-*,nothing")


ROW_FIELDS = {"key", "label", "group", "device", "dtype", "ms_per_batch", "images_per_s", "speed_vs_baseline",
              "times_ms", "note", "skipped"}


def test_throughput_quick(tmp_path, capsys):
    throughput = script("throughput")
    # The rows every goal needs and one of each kind of peer; neural rows load a model and may lack weights.
    rows = "augcomp-jpeg,augcomp-bpp,augcomp-ste,augcomp-torch,augcomp-*compiled,tv-io-*,kornia-random-jpeg-fwdbwd,pil"
    argv = ["--quick", "--repeats", "1", "--device", "cpu", "--rows", rows, "--out", str(tmp_path), "--no-progress"]
    assert throughput.main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "throughput.json").read_text())
    assert (report["batch"], report["size"], report["dtype"]) == (4, 64, "uint8")
    env = report["environment"]
    assert env["device"] == "cpu" and env["threads"] >= 1 and env["cpu"]
    assert {"torch", "torchvision", "kornia"} <= set(env["versions"])
    rows = {r["key"]: r for r in report["rows"]}
    for r in rows.values():
        assert set(r) == ROW_FIELDS
        assert (r["ms_per_batch"] is None) == bool(r["skipped"])
    assert rows["tv-io-nvjpeg"]["skipped"] and rows["augcomp-ste-compiled"]["skipped"]  # CUDA only
    ran = [r for r in rows.values() if r["ms_per_batch"] is not None]
    assert {"augcomp-jpeg", "augcomp-bpp", "augcomp-ste", "augcomp-torch", bench.BASELINE,
            "kornia-random-jpeg-fwdbwd", "pil"} <= {r["key"] for r in ran}
    for r in ran:
        assert r["ms_per_batch"] > 0 and len(r["times_ms"]) >= 1
        assert r["images_per_s"] == pytest.approx(4 / (r["ms_per_batch"] / 1000), rel=1e-6)
    assert rows[bench.BASELINE]["speed_vs_baseline"] == pytest.approx(1.0)
    bars = report["bars"]
    assert len(bars) == 3  # the CUDA goal appears only on a GPU
    for b in bars:
        assert b["ratio"] > 0 and b["passed"] == (b["ratio"] >= b["goal"])
    md = (tmp_path / "throughput.md").read_text()
    assert "| row | ms/batch | images/s |" in md and md in printed
    assert md.count("| PASS |") + md.count("| MISS |") == 3


def test_busy_cpu_caveat():
    quiet = {"load_average": [0.5, 0.5, 0.5], "cpu_count": 2, "env": {"OMP_WAIT_POLICY": None}}
    assert bench.busy_cpu_warning(quiet) is None
    busy = {**quiet, "load_average": [5.0, 4.0, 3.0]}
    assert "OMP_WAIT_POLICY=PASSIVE" in bench.busy_cpu_warning(busy)
    assert bench.busy_cpu_warning({**busy, "env": {"OMP_WAIT_POLICY": "passive"}}) is None


def test_bench_command_selects_rows(tmp_path, capsys):
    argv = ["bench", "--quick", "--device", "cpu", "--rows", "augcomp-jpeg", "--out", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "throughput.json").read_text())
    assert [r["key"] for r in report["rows"]] == ["augcomp-jpeg", bench.BASELINE]
    assert [b["passed"] is not None for b in report["bars"]] == [True, False, False]


def test_rd_quick(tmp_path, capsys):
    rd = script("rd")
    assert rd.main(["--quick", "--codecs", "jpeg", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    for name in ("rd.md", "rd.json", "rd_psnr.png", "rd_msssim.png", "bpp_accuracy.md", "bpp_accuracy.json",
                 "bpp_accuracy.png"):
        assert (tmp_path / name).is_file(), name
    for name in ("rd_psnr.png", "rd_msssim.png", "bpp_accuracy.png"):
        assert Image.open(tmp_path / name).size[0] > 100

    report = json.loads((tmp_path / "rd.json").read_text())
    assert set(report["curves"]) == {rd.AUGCOMP_JPEG, rd.PIL_JPEG}
    assert report["jpeg_backend"] == "torch"
    for curve in report["curves"].values():
        assert curve["level"] == [float(q) for q in report["qualities"]]
        assert all(b > 0 for b in curve["bpp"]) and curve["bpp"] == sorted(curve["bpp"])
        assert all(0 < m <= 1 for m in curve["ms_ssim"])
    assert set(report["per_image"][rd.PIL_JPEG]) == set(report["images"])
    # The tensor path is libjpeg-turbo to the bit: the curves coincide exactly.
    agree = report["agreement"]
    assert agree["max_abs_dbits"] == 0 and agree["max_abs_dpsnr_db"] == 0
    assert agree["max_abs_dbpp"] < 1e-6 and agree["identical_images"] == agree["pairs"] > 0
    assert "max |ΔPSNR|" in (tmp_path / "rd.md").read_text()

    acc = json.loads((tmp_path / "bpp_accuracy.json").read_text())
    s = acc["summary"]
    assert s["total"] == len(acc["samples"]) == len(acc["targets"]) * len(acc["crops"])
    assert 0 < s["reachable"] <= s["total"]
    assert 0 <= s["share_within_tolerance"] <= 1 and s["tolerance"] == 0.05
    assert s["worst_abs_rel_error"] == max(abs(x["rel_error"]) for x in acc["samples"] if x["reachable"])
    for crop in acc["crops"]:
        assert crop["height"] % 2 == 1 and crop["width"] % 2 == 1
        assert 0 < crop["bpp_q1"] < crop["bpp_q100"]
    for x in acc["samples"]:
        crop = acc["crops"][x["crop"]]
        assert x["reachable"] == (crop["bpp_q1"] <= x["target"] <= crop["bpp_q100"])
        assert math.isclose(x["rel_error"], x["achieved"] / x["target"] - 1)
    assert "within 5 %" in (tmp_path / "bpp_accuracy.md").read_text()
