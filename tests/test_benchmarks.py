"""The benchmark scripts in their tiny modes: they run, and write the files and fields they promise.

Speed itself is never asserted here; it belongs to the benchmarks' own reports.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from augcomp import cli, codecs, functional, samples
from augcomp.availability import codec_available
from augcomp.bench import (
    BASELINE,
    BPP_RANGE,
    Inputs,
    all_rows,
    busy_cpu_warning,
    codec_row_keys,
    codec_rows,
    rate_control,
    run,
    select_rows,
)

ROOT = Path(__file__).resolve().parent.parent

# torchvision 0.29 deprecates its JPEG coder, which the benchmark times as a peer.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def script(name: str) -> ModuleType:
    """A module of the ``benchmarks`` folder, loaded by path (the folder is not a package).

    The folder goes on ``sys.path``, as it is when a script in it runs, so that its scripts import each other.
    """
    folder = str(ROOT / "benchmarks")
    if folder not in sys.path:
        sys.path.append(folder)
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_natural_crops():
    x = samples.natural_crops(5, (33, 47), seed=1)
    assert x.shape == (5, 3, 33, 47) and x.dtype == torch.uint8
    assert torch.equal(x, samples.natural_crops(5, (33, 47), seed=1))
    assert x.float().std() > 10  # photographs, not blank
    big = samples.natural_crops(2, 900)  # larger than every bundled photograph: upscaled first
    assert big.shape == (2, 3, 900, 900)
    assert {"astronaut", "coffee", "chelsea"} <= set(samples.natural_images())


def test_samples_name_the_missing_package(monkeypatch):
    samples._load_natural.cache_clear()
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(ImportError, match=r"scikit-image.*augcomp\[dev\]"):
        samples.natural_images()
    samples._load_natural.cache_clear()


def test_old_names_still_import_from_bench():
    from augcomp import availability, bench

    assert bench.natural_crops is samples.natural_crops and bench.natural_images is samples.natural_images
    assert bench.NATURAL_IMAGES == samples.NATURAL_IMAGES
    assert bench.codec_weights_status is availability.codec_available


def test_psnr_is_torchmetrics_per_sample():
    from torchmetrics.functional import peak_signal_noise_ratio

    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 3, 3, 17, 9, generator=gen)
    img = (ref + 0.05 * torch.randn(ref.shape, generator=gen)).clamp(0, 1)
    ours = functional.psnr(ref, img)
    assert ours.shape == (2, 3) and ours.dtype == torch.float32
    theirs = torch.stack([peak_signal_noise_ratio(img[i, j], ref[i, j], data_range=1.0)
                          for i in range(2) for j in range(3)]).reshape(2, 3)
    torch.testing.assert_close(ours, theirs.float(), rtol=1e-5, atol=1e-4)
    u8_ref, u8_img = (ref[0] * 255).round().to(torch.uint8), (img[0] * 255).round().to(torch.uint8)
    theirs = torch.stack([peak_signal_noise_ratio(u8_img[j].double(), u8_ref[j].double(), data_range=255.0)
                          for j in range(3)])
    torch.testing.assert_close(functional.psnr(u8_ref, u8_img), theirs.float(), rtol=1e-5, atol=1e-4)
    assert functional.psnr(u8_ref, u8_ref).isinf().all()


def test_row_selection():
    rows = all_rows(50, 0.5)
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))
    for key in ("augcomp-jpeg", "augcomp-bpp", "augcomp-ste", "augcomp-torch", BASELINE, "tv-io-cpu",
                "tv-io-nvjpeg", "kornia-random-jpeg", "kornia-random-jpeg-fwdbwd", "kornia-jpeg-diff",
                "kornia-jpeg-diff-fwdbwd", "pil", "simplejpeg"):
        assert key in keys
    for name in codecs.list():  # a fixed-level row and a bpp-targeted row per registered codec
        assert set(codec_row_keys(name)) <= set(keys), name
    picked = [r.key for r in select_rows(rows, "augcomp-j*, pil")]
    assert picked == ["augcomp-jpeg", BASELINE, "pil"]
    assert [r.key for r in select_rows(rows, "codec:jpeg*")] == [
        *(k for n in codecs.list() if n.startswith("jpeg") for k in codec_row_keys(n)), BASELINE]
    with pytest.raises(ValueError, match="matches no row"):
        select_rows(rows, "augcomp-*,nothing")


def test_codec_rows_come_from_the_registry(registered):
    # A new codec gets its rows with no benchmark code: a working one runs both, one whose build raises is skipped.
    jpeg = codecs.entry("jpeg")
    registered(codecs.CodecEntry(name="test-copy", builder=jpeg.builder, level_range=(1.0, 100.0), discrete=False,
                                 level_name="quality", channels=(3,), grad_modes=("ste", "none")))

    def broken(entry, **options):
        raise NotImplementedError("not written yet")

    registered(codecs.CodecEntry(name="test-broken", builder=broken, level_range=(0.0, 1.0), discrete=False))
    rows = [r for r in codec_rows() if r.key.startswith(("codec:test-copy", "codec:test-broken"))]
    assert [r.key for r in rows] == [*codec_row_keys("test-copy"), *codec_row_keys("test-broken")]
    assert rows[0].label == "test-copy quality 50"
    u8 = samples.natural_crops(3, 32)
    targets = torch.tensor([0.3, 1.0, 2.0])
    inputs = Inputs(u8=u8, u8_cpu=u8, f32=u8.float() / 255, device=torch.device("cpu"), quality=50, bpp=0.5,
                    targets=targets)
    results = {r.key: r for r in run(rows, inputs, repeats=1, budget_s=1.0, progress=False)}
    fixed, targeted = (results[k] for k in codec_row_keys("test-copy"))
    assert fixed.ms_per_batch > 0 and targeted.ms_per_batch > 0, (fixed.skipped, targeted.skipped)
    for key in codec_row_keys("test-broken"):
        assert results[key].ms_per_batch is None
        assert "cannot be built here" in results[key].skipped and "not written yet" in results[key].skipped
    costs = rate_control([vars(r) for r in results.values()])
    assert [c["codec"] for c in costs] == ["test-copy"]
    assert costs[0]["targeted_vs_fixed"] == pytest.approx(targeted.images_per_s / fixed.images_per_s)


ROW_FIELDS = {"key", "label", "group", "device", "dtype", "ms_per_batch", "images_per_s", "speed_vs_baseline",
              "times_ms", "note", "skipped"}


def test_throughput_quick(tmp_path, capsys):
    throughput = script("throughput")
    # The rows every goal needs, one of each kind of peer, and JPEG's registry rows (neural rows load a model and
    # may lack weights; test_codec_rows_come_from_the_registry covers the generic rows).
    rows = ("augcomp-jpeg,augcomp-bpp,augcomp-ste,augcomp-torch,augcomp-*compiled,tv-io-*,kornia-random-jpeg-fwdbwd,"
            "pil,codec:jpeg,codec:jpeg:bpp,codec:webp*")
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
    webp = codec_row_keys("webp") if codec_available("webp")[0] else ()
    assert {"augcomp-jpeg", "augcomp-bpp", "augcomp-ste", "augcomp-torch", BASELINE, "kornia-random-jpeg-fwdbwd",
            "pil", *codec_row_keys("jpeg"), *webp} <= {r["key"] for r in ran}
    if not webp:  # not usable here (or still being written): reported with the reason, not timed
        assert all(rows[k]["skipped"] for k in codec_row_keys("webp"))
    for r in ran:
        assert r["ms_per_batch"] > 0 and len(r["times_ms"]) >= 1
        assert r["images_per_s"] == pytest.approx(4 / (r["ms_per_batch"] / 1000), rel=1e-6)
    assert rows[BASELINE]["speed_vs_baseline"] == pytest.approx(1.0)
    assert report["bpp_range"] == list(BPP_RANGE)
    costs = {c["codec"]: c for c in report["rate_control"]}
    assert {"jpeg", *(["webp"] if webp else [])} == set(costs)
    fixed, targeted = (rows[k] for k in codec_row_keys("jpeg"))
    assert costs["jpeg"]["targeted_vs_fixed"] == pytest.approx(targeted["images_per_s"] / fixed["images_per_s"])
    assert costs["jpeg"]["targeted_vs_baseline"] == targeted["speed_vs_baseline"]
    bars = report["bars"]
    assert len(bars) == 3  # the CUDA goal appears only on a GPU
    for b in bars:
        assert b["ratio"] > 0 and b["passed"] == (b["ratio"] >= b["goal"])
    md = (tmp_path / "throughput.md").read_text()
    assert "| row | ms/batch | images/s |" in md and md in printed
    assert md.count("| PASS |") + md.count("| MISS |") == 3
    assert "| codec | fixed level | images/s fixed | images/s targeted | targeted / fixed |" in md
    assert f"jpeg at 0.3-2 bpp per sample: {targeted['images_per_s']:.1f} images/s" in md
    if not webp:
        assert f"- webp (both rows): {rows[codec_row_keys('webp')[0]]['skipped']}" in md


def test_busy_cpu_caveat():
    quiet = {"load_average": [0.5, 0.5, 0.5], "cpu_count": 2, "env": {"OMP_WAIT_POLICY": None}}
    assert busy_cpu_warning(quiet) is None
    busy = {**quiet, "load_average": [5.0, 4.0, 3.0]}
    assert "OMP_WAIT_POLICY=PASSIVE" in busy_cpu_warning(busy)
    assert busy_cpu_warning({**busy, "env": {"OMP_WAIT_POLICY": "passive"}}) is None


def test_bench_command_selects_rows(tmp_path, capsys):
    argv = ["bench", "--quick", "--device", "cpu", "--rows", "augcomp-jpeg", "--out", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "throughput.json").read_text())
    assert [r["key"] for r in report["rows"]] == ["augcomp-jpeg", BASELINE]
    assert "bars" not in report  # the project's goals are benchmarks/goals.py's, added by throughput.py
    bars = script("goals").evaluate_bars(report["rows"], "cpu")
    assert [b.passed is not None for b in bars] == [True, False, False]


def test_goals_on_a_gpu_add_the_cuda_goals():
    goals = script("goals")
    rows = [{"key": k, "ms_per_batch": t} for k, t in
            (("augcomp-ste", 1.0), ("kornia-random-jpeg-fwdbwd", 20.0), ("tv-io-nvjpeg", 4.0),
             ("augcomp-jpeg", 0.7), ("augcomp-bpp", 1.2))]
    bars = {b.name: b for b in goals.evaluate_bars(rows, "cuda")}
    assert len(bars) == len(goals.GOALS) + len(goals.CUDA_GOALS)
    assert bars["differentiable fwd+bwd >= 10x kornia RandomJPEG fwd+bwd"].passed is True
    assert bars["differentiable fwd+bwd >= 5x nvJPEG round trip"].passed is False
    assert bars["fixed quality, default options >= 5x nvJPEG round trip"].passed is True  # 4.0 / 0.7
    assert bars["bpp-targeted <= 1.5x the fixed-quality pass"].passed is False  # 1.2 / 0.7 = 1.7x
    assert bars["augcomp JPEG >= 1.0x torchvision v2.JPEG"].ratio is None


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


def test_codecs_quick(tmp_path, capsys):
    bench = script("codecs")
    assert bench.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert Image.open(tmp_path / "rd_codecs.png").size[0] > 100
    md = (tmp_path / "codecs.md").read_text()
    assert md in printed
    for heading in ("## Rate-distortion", "## bpp targeting", "## Speed"):
        assert heading in md
    report = json.loads((tmp_path / "codecs.json").read_text())
    names = report["codecs"]
    assert names[0] == "jpeg" and 1 <= len(names) <= 2  # the reference, and the first library codec usable here
    assert len(report["crops"]) == 2

    rd = {r["codec"]: r for r in report["rd"]["rows"]}
    assert list(rd) == names
    assert rd["jpeg"]["bd_rate_vs_jpeg_pct"] == 0 and rd["jpeg"]["gain_vs_jpeg_at_0.5_db"] == 0
    for r in rd.values():
        assert r["crops"] == 2 and 0 <= r["crops_reaching_0.1"] <= 2 and r["lowest_bpp"] > 0
        for point in r["psnr_at"].values():
            assert 0 <= point["crops"] <= 2
            assert (point["median"] is None) == (point["crops"] == 0)
            assert point["median"] is None or 15 < point["median"] < 60
        assert math.isfinite(r["bd_rate_vs_jpeg_pct"]) and math.isfinite(r["gain_vs_jpeg_at_0.5_db"])
        curve = report["rd"]["curves"][r["codec"]]["astronaut/crop"]
        assert len(curve["level"]) == len(curve["bpp"]) == len(curve["psnr"]) >= 2

    targeting = report["targeting"]
    assert [r["codec"] for r in targeting["rows"]] == names
    for r in targeting["rows"]:
        assert r["targets"] == len(r["samples"]) == 2 * targeting["per_crop"]
        assert 0 <= r["in_range"] <= r["targets"] and 0 <= r["reachable"] <= r["targets"]
        for key in ("share_within_5pct_in_range", "share_within_5pct_reachable"):
            assert r[key] is None or 0 <= r[key] <= 1
        assert r["mean_rel_error_in_range"] is None or 0 <= r["mean_rel_error_in_range"] < 1
        assert r["encodes_per_sample"] >= 1  # counted on the codec instance (JPEG: its libjpeg-turbo coder)
        assert all(0.3 <= s["target"] <= 2.0 for s in r["samples"])

    speed = report["speed"]
    assert speed["batch"] == 4 and [r["codec"] for r in speed["rows"]] == names
    for r in speed["rows"]:
        assert not r["skipped"] and r["fixed_images_per_s"] > 0 and r["targeted_images_per_s"] > 0
        assert r["targeted_vs_fixed_cost"] == pytest.approx(r["fixed_images_per_s"] / r["targeted_images_per_s"])


def test_fit_priors_reproduces_the_shipped_jpeg_prior(tmp_path, capsys):
    # The JPEG rate prior is fitted on libjpeg-turbo's own rates; the script must derive the shipped table from them.
    fit_priors = script("fit_priors")
    assert fit_priors.main(["--codecs", "jpeg", "--out", str(tmp_path), "--no-progress"]) == 0
    capsys.readouterr()
    (fit,) = json.loads((tmp_path / "priors.json").read_text())
    assert fit["codec"] == "jpeg" and fit["max_abs_difference"] == 0.0
    assert fit["heldout_median_log_error_shipped"] < 0.1  # about 7% on crops it was not fitted on
    assert "| jpeg |" in (tmp_path / "priors.md").read_text()


def test_fit_priors_fits_a_library_codec_curve(tmp_path, capsys):
    fit_priors = script("fit_priors")
    # The curve codecs are the entries that declare a rate curve, and each one's rate control starts from it.
    curves = fit_priors.curve_codecs()
    assert "webp" in curves and all(codecs.entry(n).rate_curve is not None for n in curves)
    fit = fit_priors.fit_curve("webp", 6, 48, progress=False)
    levels, shipped = codecs.entry("webp").rate_curve
    assert np.array(fit["table"]).shape == np.array(shipped).shape == (3, len(levels))
    assert fit["median_log_error_refit"] <= fit["median_log_error_shipped"] + 0.05
    without = codecs.list(kind="library", where=lambda e: e.rate_curve is None)[0]  # JPEG 2000 today
    with pytest.raises(SystemExit):
        fit_priors.main(["--codecs", without, "--out", str(tmp_path)])
    assert "have no fitted prior" in capsys.readouterr().err


def test_pipeline_quick(tmp_path, capsys):
    bench = script("pipeline")
    argv = ["--images", "4", "--sizes", "32", "--batch-size", "2", "--codecs", "jpeg,webp", "--repeats", "1",
            "--loader-workers", "0", "--variants", "2", "--out", str(tmp_path),
            "--json", str(tmp_path / "j" / "p.json")]
    assert bench.main(argv) == 0
    md = (tmp_path / "pipeline.md").read_text()
    assert md in capsys.readouterr().out
    assert "| library codecs in the training process (0 loader workers) |" in md
    assert "| library codecs in 2 workers |" in md
    assert "| from the store (2 variants per image, decoded in 2 workers) |" in md
    assert "load average (1 min)" in md
    assert Image.open(tmp_path / "pipeline.png").size[0] > 100
    report = json.loads((tmp_path / "j" / "p.json").read_text())
    assert not (tmp_path / "pipeline.json").exists()
    meta, rows = report["meta"], report["rows"]
    assert report["schema"] == "augcomp-bench-rows/1" and report["benchmark"] == "pipeline"
    assert meta["codecs"] == ["jpeg", "webp"] and meta["variants"] == 2
    assert all(set(r) == {"table", "key", "label", "size", "images_per_s", "workers_for_target"} for r in rows)
    assert {r["size"] for r in rows} == {32} and all(r["images_per_s"] > 0 for r in rows)
    modes = {r["key"]: r for r in rows if r["table"] == "modes"}
    assert list(modes) == ["none", "main", "workers-1", "workers-2", "store"]
    assert all(r["workers_for_target"] is None for r in modes.values())
    # Every row of the JSON is a line of the Markdown, with its rate: the docs pages and the table agree.
    for r in rows:
        assert f"| {r['label']} | {r['images_per_s']:.1f} |" in md
    # Placement comes from the registry: JPEG has a tensor path (timed on the device, not here), WebP only a library.
    per_worker = {r["key"]: r["images_per_s"] for r in rows if r["table"] == "per_worker"}
    assert meta["tensor_codecs"] == ["jpeg"]
    assert list(per_worker) == ["loading only", "webp", "the mix (from the rows above)"]
    # Half of the 3/4 compressed images are WebP: the mix costs loading plus half a WebP's extra time.
    load, webp = 1 / per_worker["loading only"], 1 / per_worker["webp"]
    mix = 1 / per_worker["the mix (from the rows above)"]
    assert mix == pytest.approx(load + 0.375 * max(0.0, webp - load))
    assert "| loading + webp |" in md
    assert bench.workers_needed(250.0, 1000.0) == 4 and bench.workers_needed(300.0, 1000.0) == 4
    with pytest.raises(SystemExit):
        bench.main(["--images", "3", "--batch-size", "2", "--out", str(tmp_path)])  # fewer than two batches


def test_store_benchmark_neural_rate_gap(tmp_path, capsys):
    # The real bitstream is never shorter than the likelihood estimate by more than rounding, and the report says so.
    bench = script("store")
    assert bench.main(["--gap", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "store.json").read_text())["neural_rate_gap"]
    assert len(report) == 4 and all(r["max"] >= r["mean"] > -0.01 for r in report.values())
    assert "real bits over likelihood bits" in (tmp_path / "store.md").read_text()
    assert "| 224px, level 4 |" in capsys.readouterr().out
    # The paper-scale arithmetic: two sweeps per run without the store, one with it.
    paper = bench.paper_scale({"jpeg": {224: 0.01, 512: 0.04}, "bmshj2018-factorized": {224: 1.0, 512: 1.0}})
    assert paper["codecs"] == ["jpeg"]  # a zoo model (weights downloaded first) is not in the paper-scale mix
    imagenet = paper["datasets"]["ImageNet val"]
    assert imagenet["cpu_hours_per_sweep"] == pytest.approx(50_000 * 0.01 * len(bench.PAPER_GRID) / 3600)
    assert imagenet["cpu_hours_run_without_store"] == 2 * imagenet["cpu_hours_once_with_store"]
