"""The finetuning input pipeline: draws keyed by (seed, phase, epoch, index), library codecs compressed in the
DataLoader workers and tensor codecs on the device batch (placed by the registry's capabilities), and the counts of
where the work went, down to a recipe run whose metrics do not depend on the number of workers."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader

from augcomp import codecs, compress
from augcomp._random import keyed_generator, keyed_seed
from augcomp.codecs import ANY_DEVICE
from augcomp.data import ADE20K, CodecMix, TrainingSamples, collate
from augcomp.experiment.loops import WORK_KEYS, compress_drawn
from augcomp.samples import ade20k_folder
from tests.test_recipes import ROOT, run_recipe

# Every codec augcomp ships that a core install runs (no extra, no weights): the torch JPEG and the library codecs
# Pillow brings. Test codecs registered by other test modules (the contract's toy codec) are not part of it.
MIX = codecs.list(weights="none",
                  where=lambda e: e.extra is None and e.builder.__module__.startswith("augcomp.codecs."))


def test_keyed_seeds_depend_on_the_key_alone():
    assert keyed_seed(0, "finetune", 1, 7) == keyed_seed(0, "finetune", 1, 7)
    seeds = {keyed_seed(0, "finetune", e, i) for e in range(3) for i in range(100)}
    assert len(seeds) == 300 and all(0 <= s < 2**63 for s in seeds)
    assert keyed_seed(0, "clean", 0, 0) != keyed_seed(0, "finetune", 0, 0) != keyed_seed(1, "finetune", 0, 0)
    a, b = keyed_generator(3, "x"), keyed_generator(3, "x")
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    for bad in [(), (1.5,), (True,), (None,)]:
        with pytest.raises(ValueError, match="a key is one or more ints and strings"):
            keyed_seed(*bad)


def test_the_mix_places_codecs_by_capability_not_by_name(registered):
    mix = CodecMix(MIX, (0.1, 2.0), 0.25)
    assert mix.in_loader == tuple(not codecs.entry(n).tensor_path for n in MIX) == tuple(
        n in codecs.list(kind="library") for n in MIX)
    assert False in mix.in_loader and True in mix.in_loader
    # The same library under another name, registered as computing on any device, goes to the device batch.
    registered(dataclasses.replace(codecs.entry("webp"), name="webp-as-tensor", devices=ANY_DEVICE))
    assert CodecMix(["webp-as-tensor", "webp"], 0.5, 0.0).in_loader == (False, True)
    with pytest.raises(ValueError, match="unknown codec 'nope'"):
        CodecMix(["nope"], 0.5, 0.0)
    with pytest.raises(ValueError, match="bpp must be"):
        CodecMix(MIX, (2.0, 0.1), 0.0)
    with pytest.raises(ValueError, match="clean_share must be"):
        CodecMix(MIX, 0.5, 1.5)


def test_the_mix_draws_codecs_uniformly_and_keeps_the_clean_share():
    mix = CodecMix(MIX, (0.1, 2.0), 0.25)
    draws = [mix.draw(keyed_generator(0, "finetune", 0, i)) for i in range(4000)]
    codec = torch.tensor([c for c, _ in draws])
    assert float((codec == -1).float().mean()) == pytest.approx(0.25, abs=0.03)
    shares = torch.bincount(codec[codec >= 0], minlength=4).float() / (codec >= 0).sum()
    assert torch.allclose(shares, torch.full((4,), 0.25), atol=0.03)
    targets = torch.tensor([t for c, t in draws if c >= 0])
    assert float(targets.min()) >= 0.1 and float(targets.max()) <= 2.0
    # Log-uniform: the geometric midpoint splits the draws in half.
    assert float((targets < (0.1 * 2.0) ** 0.5).float().mean()) == pytest.approx(0.5, abs=0.04)
    assert all(t != t for c, t in draws if c == -1)  # NaN target when clean


def _batches(samples: TrainingSamples, workers: int, epoch: int) -> list[dict]:
    samples.set_epoch(epoch)
    loader = DataLoader(samples, batch_size=3, shuffle=False, num_workers=workers, collate_fn=collate)
    return list(loader)


def test_samples_are_the_same_whoever_loads_and_compresses_them(tmp_path):
    root = ade20k_folder(tmp_path, train=6, val=1, size=64)
    mix = CodecMix(MIX, (0.2, 1.0), 0.25)
    samples = TrainingSamples(ADE20K(root, "training", 48, train=True), seed=5, phase="finetune", mix=mix)
    state = torch.get_rng_state()
    first = samples[0]
    assert torch.equal(torch.get_rng_state(), state)  # keyed draws leave the global generator alone
    runs = {w: [_batches(samples, w, e) for e in (0, 1)] for w in (0, 2)}
    assert torch.equal(runs[0][0][0]["image"][0], first["image"])
    for epoch in (0, 1):
        work = {w: dict.fromkeys(WORK_KEYS, 0) for w in (0, 2)}
        for main, worker in zip(runs[0][epoch], runs[2][epoch], strict=True):
            for k in ("codec", "target"):
                torch.testing.assert_close(main["draw"][k], worker["draw"][k], rtol=0, atol=0, equal_nan=True)
            assert torch.equal(main["mask"], worker["mask"])
            library = torch.tensor([c >= 0 and mix.in_loader[c] for c in main["draw"]["codec"].tolist()])
            # Workers code exactly the library samples; the training process's loader codes nothing.
            assert torch.equal(worker["draw"]["coded"], library) and not main["draw"]["coded"].any()
            # Uncoded samples are the same augmented crop in both.
            assert torch.equal(main["image"][~library], worker["image"][~library])
            out = {}
            for w, batch in ((0, main), (2, worker)):
                out[w], bpp, done = compress_drawn(batch["image"], batch["draw"], mix)
                for k, n in done.items():
                    work[w][k] += n
                assert torch.isfinite(bpp).tolist() == (batch["draw"]["codec"] >= 0).tolist()
            assert torch.equal(out[0], out[2])
            # A library sample coded in a worker is the codec's own output for that crop at its target.
            for i in torch.nonzero(library)[:, 0].tolist():
                ref = compress(main["image"][i : i + 1], codec=MIX[int(main["draw"]["codec"][i])],
                               bpp=main["draw"]["target"][i : i + 1], grad="none")
                assert torch.equal(worker["image"][i], ref.image[0])
                assert float(worker["draw"]["bpp"][i]) == pytest.approx(float(ref.bpp[0]))
        n_library = work[2]["train_library_in_workers"]
        assert n_library > 0 and work[0]["train_library_in_main"] == n_library
        assert work[2]["train_library_in_main"] == work[0]["train_library_in_workers"] == 0
        assert work[0]["train_tensor_on_device"] == work[2]["train_tensor_on_device"] > 0
    # A resumed run builds its samples anew and starts at a later epoch: it draws what the first run drew there.
    resumed = TrainingSamples(ADE20K(root, "training", 48, train=True), seed=5, phase="finetune", mix=mix)
    resumed.set_epoch(1)
    again = collate([resumed[i] for i in range(3)])
    assert torch.equal(again["image"], runs[0][1][0]["image"]) and torch.equal(again["mask"], runs[0][1][0]["mask"])
    assert torch.equal(again["draw"]["codec"], runs[0][1][0]["draw"]["codec"])
    # Another epoch draws another crop and other codecs.
    assert not torch.equal(torch.cat([b["image"] for b in runs[0][0]]), torch.cat([b["image"] for b in runs[0][1]]))
    # Clean training gets the same keyed geometry, and no draws.
    clean = TrainingSamples(ADE20K(root, "training", 48, train=True), seed=5, phase="clean")
    assert "draw" not in clean[0] and torch.equal(clean[0]["image"], clean[0]["image"])


def test_recipe_results_do_not_depend_on_the_number_of_workers(tmp_path):
    root = ade20k_folder(tmp_path / "data", train=8, val=4, size=96)
    common = ["--cpu", "--data-root", str(root), "--model", "resnet10t", "--head-channels", "16", "--image-size", "64",
              "--codecs", "jpeg,webp,avif", "--bpp-grid", "0.3", "--train-codecs", ",".join(MIX),
              "--clean-share", "0.25", "--clean-epochs", "1", "--epochs", "1", "--batch-size", "4",
              "--eval-batch-size", "4"]
    results = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        run_recipe("seg", *common, "--num-workers", str(workers), "--output-dir", str(out))
        results[workers] = json.loads((out / "results.json").read_text())
    a, b = results[0], results[2]
    work = b["codec_work"]
    assert work["train_library_in_main"] == 0 and work["train_library_in_workers"] > 0
    assert work["train_tensor_on_device"] > 0 and work["train_data_wait_seconds"] >= 0
    assert a["codec_work"]["train_library_in_workers"] == 0
    assert a["codec_work"]["train_library_in_main"] == work["train_library_in_workers"]
    draws = b["finetune_draws"]
    assert work["train_tensor_on_device"] == sum(draws[n] for n in MIX if n in codecs.list(kind="tensor"))
    assert work["train_library_in_workers"] == sum(draws[n] for n in MIX if n in codecs.list(kind="library"))
    # Identical, not close: clean (before and after finetuning) and every compressed point.
    assert a["finetune_draws"] == draws
    assert a["clean_metrics"] == b["clean_metrics"] and a["clean_after_metrics"] == b["clean_after_metrics"]
    assert [(r["before_metrics"], r["after_metrics"], r["achieved_bpp"]) for r in a["rows"]] == [
        (r["before_metrics"], r["after_metrics"], r["achieved_bpp"]) for r in b["rows"]]


def test_a_resumed_finetuning_trains_on_what_an_uninterrupted_one_does(tmp_path):
    common = ["--tiny", "--train-codecs", "jpeg,webp", "--codecs", "webp", "--bpp-grid", "0.5", "--clean-share",
              "0.25", "--epochs", "2"]
    run_recipe("seg", *common, "--output-dir", str(tmp_path / "whole"))
    parts = [*common, "--num-workers", "2", "--output-dir", str(tmp_path / "parts")]
    first = run_recipe("seg", *parts, "--stop-after", "finetune:1")
    assert "stopped after finetune epoch 1" in first.stdout
    second = run_recipe("seg", *parts, "--resume")
    assert "finetune: resuming after epoch 1" in second.stdout
    a, b = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("whole", "parts"))
    assert a["finetune_draws"] == b["finetune_draws"] and sum(a["finetune_draws"].values()) == 2 * 48
    assert a["clean_after_metrics"] == b["clean_after_metrics"] and a["rows"] == b["rows"]
    work = b["codec_work"]  # summed over both invocations
    assert work["train_library_in_workers"] == a["codec_work"]["train_library_in_main"] == a["finetune_draws"]["webp"]


def _accelerate(*args: str) -> subprocess.CompletedProcess:
    launcher = os.path.join(os.path.dirname(sys.executable), "accelerate")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "AUGCOMP_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    cmd = [launcher if os.path.exists(launcher) else "accelerate", "launch", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("accelerate") is None and not os.path.exists(os.path.join(
    os.path.dirname(sys.executable), "accelerate")), reason="the accelerate launcher is not installed")
def test_two_cpu_processes_with_accelerate_launch(tmp_path):
    out = tmp_path / "ddp"
    recipe = [str(ROOT / "recipes" / "seg.py"), "--cpu", "--tiny", "--train-codecs", "jpeg,webp", "--codecs", "jpeg",
              "--bpp-grid", "0.5", "--num-workers", "1", "--batch-size", "8", "--output-dir", str(out)]
    # accelerate's own --cpu launch starts one process without mpirun; the run says so instead of running alone.
    proc = _accelerate("--cpu", "--num_processes", "2", *recipe)
    # Non-zero (143 under accelerate launch: the recipe ends the launcher so that it adds no traceback).
    assert proc.returncode != 0 and "--multi_gpu --num_processes N" in proc.stderr, proc.stderr[-2000:]
    assert "`torchrun --nproc_per_node N recipes/<task>.py --cpu ...`" in proc.stderr
    assert not out.exists()
    proc = _accelerate("--multi_gpu", "--num_processes", "2", *recipe)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["num_processes"] == 2
    work, draws = results["codec_work"], results["finetune_draws"]
    assert sum(draws.values()) == 48  # every training image once over both processes (3 global batches of 16)
    assert work["train_library_in_workers"] == draws["webp"] > 0 and work["train_library_in_main"] == 0
    assert work["train_tensor_on_device"] == draws["jpeg"] > 0
