"""The recipes end to end, in tiny mode: the whole protocol, the report files, resuming after an interruption, the
plan of ``--dry-run``, and runs on the real dataset layouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from augcomp.tasks.settings import DEFAULT_CODECS

ROOT = Path(__file__).resolve().parents[1]
# The default --codecs: codec families at matched bitrates.
CODECS = DEFAULT_CODECS.split(",")


def run_recipe(name: str, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "AUGCOMP_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "recipes" / f"{name}.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"recipe {name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def check_results(out: Path, task: str, metric: str, grid: list[float], codecs: list[str] = CODECS) -> dict:
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == task and results["metric"] == metric
    for key in ("clean", "clean_after"):
        assert 0.0 <= results[key] <= 100.0
    rows = results["rows"]
    assert [(r["codec"], r["bpp"]) for r in rows] == [(c, b) for c in codecs for b in grid]
    for r in rows:
        assert 0.0 <= r["before"] <= 100.0 and 0.0 <= r["after"] <= 100.0
        assert r["achieved_bpp"] > 0.0
        drop = results["clean"] - r["before"]
        if r["recovery"] is None:
            assert drop <= results["recovery_min_drop"]
        else:
            assert r["recovery"] == pytest.approx((r["after"] - r["before"]) / drop)
    # Rate control hits a reachable target closely (1 bpp is reachable with JPEG for any of these images).
    assert rows[len(grid) - 1]["achieved_bpp"] == pytest.approx(grid[-1], rel=0.1)
    md = (out / "results.md").read_text()
    assert "| codec | target bpp | achieved bpp | before | after | recovery |" in md
    assert all(sum(line.startswith(f"| {c} | ") for line in md.splitlines()) == len(grid) for c in codecs)
    for name in ("robustness.png", "matched_bpp.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = json.loads((out / "state.json").read_text())
    assert all(p["status"] == "done" for p in state["phases"].values())
    assert (out / "clean_model.pt").is_file() and (out / "finetuned_model.pt").is_file()
    assert not list(out.glob(".*.tmp"))  # atomic writes leave nothing behind
    return results


@pytest.mark.parametrize(("task", "metric"), [("cls", "top1"), ("det", "map_50"), ("seg", "miou")])
def test_recipe_tiny_end_to_end(tmp_path, task, metric):
    out = tmp_path / task
    proc = run_recipe(task, "--tiny", "--output-dir", str(out))
    results = check_results(out, task, metric, [0.2, 1.0])
    assert results["clean_epochs"] == 1 and results["finetune_epochs"] == 1
    assert "report:" in proc.stdout


def test_resume_continues_mid_training_and_skips_finished_work(tmp_path):
    out = tmp_path / "run"
    common = ["--tiny", "--clean-epochs", "2", "--output-dir", str(out)]
    first = run_recipe("cls", *common, "--stop-after", "clean:1")
    assert "stopped after clean epoch 1" in first.stdout
    state = json.loads((out / "state.json").read_text())
    assert state["phases"]["clean"] == {"status": "running", "epochs_done": 1}
    assert (out / "ckpt" / "clean" / "progress.json").is_file() and not (out / "results.json").exists()

    second = run_recipe("cls", *common, "--resume", "--stop-after", "sweep_before")
    assert "clean: resuming after epoch 1" in second.stdout
    state = json.loads((out / "state.json").read_text())
    ran = state["invocations"][1]["ran"]
    assert ran[:2] == ["clean:2", "clean"] and "clean:1" not in ran  # epoch 1 was not trained again
    assert state["phases"]["sweep_before"]["status"] == "done" and state["phases"]["finetune"]["status"] == "pending"

    third = run_recipe("cls", *common, "--resume")
    state = json.loads((out / "state.json").read_text())
    ran = state["invocations"][2]["ran"]
    assert not any(r.startswith(("clean", "sweep_before")) for r in ran)  # finished phases are skipped
    assert ran[0] == "finetune:1" and ran[-1] == "report"
    assert "clean model: done" in third.stdout
    check_results(out, "cls", "top1", [0.2, 1.0])

    # Resuming with settings that change what the saved state means is refused.
    bad = run_recipe("cls", *common, "--resume", "--seed", "3", check=False)
    assert bad.returncode != 0 and "different settings" in bad.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    out = tmp_path / "plan"
    proc = run_recipe("seg", "--dry-run", "--output-dir", str(out), "--bpp-grid", "0.1,0.3")
    assert "bpp grid        0.1, 0.3" in proc.stdout and f"codecs          {', '.join(CODECS)}" in proc.stdout
    assert "train 2000 images, val 300 images" in proc.stdout
    assert not (out / "state.json").exists() and not (out / "results.json").exists()


def test_clean_model_must_come_from_somewhere(imagefolder_root, tmp_path):
    proc = run_recipe("cls", "--data-root", str(imagefolder_root), "--model", "resnet10t", "--clean-epochs", "0",
                      "--output-dir", str(tmp_path / "x"), check=False)
    assert proc.returncode != 0
    assert "--checkpoint" in proc.stderr and "--clean-epochs" in proc.stderr


def test_cls_on_imagefolder_with_a_checkpoint(imagefolder_root, tmp_path):
    # A clean model trained elsewhere (here: by a previous run) is loaded with --checkpoint.
    small = ["--model", "resnet10t", "--model-kwargs", '{"channels": [16, 32, 64, 128], "stem_width": 16}',
             "--image-size", "32", "--batch-size", "2", "--eval-batch-size", "4", "--bpp-grid", "0.5",
             "--epochs", "1"]
    first = tmp_path / "first"
    run_recipe("cls", "--data-root", str(imagefolder_root), *small, "--clean-epochs", "1", "--output-dir", str(first))
    out = tmp_path / "second"
    run_recipe("cls", "--data-root", str(imagefolder_root), *small, "--checkpoint", str(first / "clean_model.pt"),
               "--output-dir", str(out))
    results = json.loads((out / "results.json").read_text())
    assert results["clean_model"].startswith("checkpoint") and results["val_size"] == 4
    assert results["clean"] == json.loads((first / "results.json").read_text())["clean"]


def test_det_on_coco_layout(coco_root, tmp_path):
    out = tmp_path / "coco"
    run_recipe("det", "--data-root", str(coco_root), "--model", "resnet10t", "--clean-epochs", "1", "--epochs", "1",
               "--image-size", "64", "--batch-size", "2", "--eval-batch-size", "3", "--bpp-grid", "0.5",
               "--fpn-channels", "32", "--output-dir", str(out))
    results = json.loads((out / "results.json").read_text())
    assert results["metric"] == "map" and results["val_size"] == 3
    # Finetuning sees one batch of two sizes (48x64, 64x48), compressed one size at a time by the default mix.
    assert [r["codec"] for r in results["rows"]] == CODECS
    assert sum(results["finetune_draws"].values()) == results["train_size"] == 2


def test_seg_on_ade20k_layout(ade20k_root, tmp_path):
    out = tmp_path / "ade"
    run_recipe("seg", "--data-root", str(ade20k_root), "--model", "resnet10t", "--clean-epochs", "1", "--epochs", "1",
               "--image-size", "32", "--batch-size", "2", "--eval-batch-size", "2", "--bpp-grid", "0.5",
               "--head-channels", "16", "--output-dir", str(out))
    results = json.loads((out / "results.json").read_text())
    assert results["metric"] == "miou" and results["val_size"] == 2
    assert "ADE20K" in results["data"]


def test_two_processes_count_every_image_once(tmp_path):
    # 25 validation images over 2 processes: the sampler pads one duplicate, which gather_for_metrics must drop.
    # The metrics must then equal a single-process evaluation of the same clean model.
    ddp = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "AUGCOMP_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    # torchrun is what `accelerate launch --multi_gpu` runs; on a CPU the processes talk through gloo.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(ROOT / "recipes" / "seg.py"),
           "--cpu", "--tiny", "--val-size", "25", "--epochs", "0", "--output-dir", str(ddp)]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    single = tmp_path / "single"
    run_recipe("seg", "--tiny", "--val-size", "25", "--epochs", "0", "--checkpoint", str(ddp / "clean_model.pt"),
               "--output-dir", str(single))
    a = json.loads((ddp / "results.json").read_text())
    b = json.loads((single / "results.json").read_text())
    assert a["num_processes"] == 2 and b["num_processes"] == 1
    pixels = 25 * 48 * 48  # --tiny scenes are 48x48
    points = [a["clean_metrics"]] + [r["before_metrics"] for r in a["rows"]]
    for metrics in points:
        # Pixel accuracy is correct pixels over all pixels of exactly 25 images (a duplicate would add 2304).
        correct = metrics["pixel_acc"] / 100 * pixels
        assert correct == pytest.approx(round(correct), abs=0.02)
    # Batch composition differs between the runs, so a rare pixel may flip; the metrics agree closely.
    assert a["clean_metrics"] == pytest.approx(b["clean_metrics"], abs=0.01)
    for ra, rb in zip(a["rows"], b["rows"], strict=True):
        assert ra["before_metrics"] == pytest.approx(rb["before_metrics"], abs=0.01)
        assert ra["achieved_bpp"] == pytest.approx(rb["achieved_bpp"], rel=1e-6)


def test_recipe_sweeps_and_finetunes_with_several_codecs(tmp_path):
    from augcomp.experiment import codec_usable

    if not codec_usable("augcomp-tiny", allow_download=False)[0]:
        pytest.skip("the shipped neural codec's weights are not in this checkout")
    out = tmp_path / "codecs"
    run_recipe("cls", "--tiny", "--codecs", "jpeg,augcomp-tiny", "--bpp-grid", "0.5", "--output-dir", str(out))
    results = json.loads((out / "results.json").read_text())
    assert results["codecs"] == ["jpeg", "augcomp-tiny"]
    assert [(r["codec"], r["bpp"]) for r in results["rows"]] == [("jpeg", 0.5), ("augcomp-tiny", 0.5)]
    assert all(r["achieved_bpp"] > 0 for r in results["rows"])
