"""Finetuning from the store: each dataset's load/augment seam, ``augcomp precompute --variants K`` on the training
images before their geometry, the stored variants decoded where samples are loaded, and a recipe run with
``--train-store`` whose metrics do not depend on the number of workers."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from augcomp import compress
from augcomp._random import keyed_seed
from augcomp.data import (
    ADE20K,
    CocoDetection,
    CodecMix,
    ImageFolderClassification,
    SyntheticScenes,
    TrainingSamples,
    collate,
)
from augcomp.data.train_store import (
    MissingVariantError,
    StoredVariants,
    open_variants,
    variant_choice,
    variant_draw,
    variant_sets,
)
from augcomp.data.training import SampleKey
from augcomp.experiment.errors import one_line
from augcomp.experiment.loops import compress_drawn
from augcomp.experiment.precompute import precompute_variants
from augcomp.samples import ade20k_folder
from augcomp.store import Store
from tests.test_recipes import run_recipe

MIX = ["jpeg", "webp"]
BPP = "0.3,1.5"


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("kind", ["ade", "imagefolder", "coco", "synthetic"])
def test_load_then_augment_is_the_sample(kind, ade20k_root, imagefolder_root, coco_root):
    dataset = {"ade": lambda: ADE20K(ade20k_root, "training", 32, train=True),
               "imagefolder": lambda: ImageFolderClassification(imagefolder_root, "train", 24, train=True),
               "coco": lambda: CocoDetection(coco_root, "train2017", train=True, max_size=40),
               "synthetic": lambda: SyntheticScenes("seg", 3, seed=1)}[kind]()
    for i in range(len(dataset)):
        torch.manual_seed(i)
        whole = dataset[i]
        torch.manual_seed(i)
        parts = dataset.augment(dataset.load(i))
        _same(whole, parts)
        # Loading draws nothing: it is the same whatever the global generator holds.
        torch.manual_seed(100 + i)
        _same(dataset.load(i), dataset.load(i))
    if kind == "coco":  # the deterministic resize is part of loading: what is stored is the scaled-down image
        assert max(dataset.load(0)["image"].shape[-2:]) == 40


def test_variant_choice_keeps_the_clean_share_and_spreads_over_the_variants():
    picks = torch.tensor([variant_choice(SampleKey(0, "finetune", e, i), 3, 0.25) for e in range(4)
                          for i in range(1000)])
    assert float((picks == -1).float().mean()) == pytest.approx(0.25, abs=0.03)
    shares = torch.bincount(picks[picks >= 0], minlength=3).float() / (picks >= 0).sum()
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.03)
    # Keyed: the same sample and epoch always picks the same; the variants' own draws never pick clean.
    assert variant_choice(SampleKey(0, "finetune", 1, 5), 3, 0.25) == variant_choice(SampleKey(0, "finetune", 1, 5),
                                                                                       3, 0.25)
    mix = CodecMix(MIX, (0.3, 1.5), 0.9)
    draws = [variant_draw(mix, 0, k, i) for k in range(2) for i in range(200)]
    assert all(c >= 0 and 0.3 <= t <= 1.5 for c, t in draws) and len(set(draws)) == len(draws)


@pytest.fixture
def filled(tmp_path):
    """An ADE20K-layout folder of 4 training images (64 px) and a store holding 2 variants of each."""
    root = ade20k_folder(tmp_path / "data", train=4, val=1, size=64)
    url = str(tmp_path / "store")
    summary = precompute_variants(task="seg", data_root=str(root), split="training", variants=2, store=url,
                                  options=["--train-codecs", ",".join(MIX), "--train-bpp", BPP, "--seed", "3",
                                           "--image-size", "48"], progress=False)
    return root, url, summary


def test_precompute_codes_each_training_image_before_its_geometry(filled):
    root, url, summary = filled
    assert summary["encoded"] == 8 and summary["reused"] == 0 and summary["entries"] == 8
    assert summary["codecs"] == MIX and summary["bpp"] == [0.3, 1.5] and summary["seed"] == 3
    [record] = variant_sets(Store(url))
    assert record["variants"] == 2 and record["images"] == 4 and record["split"] == "training"
    dataset = ADE20K(root, "training", 48, train=True)
    mix = CodecMix(MIX, (0.3, 1.5), 0.0)
    store = Store(url)
    library_checked = 0
    for index in range(4):
        image = dataset.load(index)["image"]  # full size: the store holds what comes before the random crop
        for k in range(2):
            codec, target = variant_draw(mix, 3, k, index)
            source = StoredVariants(store)
            decoded, bpp = source(image, MIX[codec], target, SampleKey(3, "finetune", 0, index))
            ref = compress(image[None], codec=MIX[codec], bpp=torch.tensor([target]), grad="none", files=True)
            assert torch.equal(decoded, ref.image[0]) and bpp == pytest.approx(float(ref.bpp[0]))
            if MIX[codec] == "webp":  # and the library's own decoder reads the stored file as the same pixels
                entry = [e for e in store.read(store.keys()).values() if e.image == _hash(image)
                         and e.target == target][0]
                pixels = torch.from_numpy(np.array(Image.open(io.BytesIO(entry.data)).convert("RGB")))
                assert torch.equal(pixels.permute(2, 0, 1), decoded)
                library_checked += 1
    assert library_checked > 0
    again = precompute_variants(task="seg", data_root=str(root), split="training", variants=2, store=url,
                                options=["--train-codecs", ",".join(MIX), "--train-bpp", BPP, "--seed", "3",
                                         "--image-size", "48"], progress=False)
    assert again["encoded"] == 0 and again["reused"] == 8 and again["digest"] == summary["digest"]


def _hash(image):
    from augcomp.store import image_hash

    return image_hash(image)


def _batches(samples: TrainingSamples, workers: int, epoch: int) -> list[dict]:
    samples.set_epoch(epoch)
    return list(DataLoader(samples, batch_size=2, shuffle=False, num_workers=workers, collate_fn=collate))


def test_stored_variants_are_decoded_then_augmented_wherever_samples_load(filled):
    root, url, _ = filled
    dataset = Subset(ADE20K(root, "training", 48, train=True), [0, 1, 2, 3])
    mix = CodecMix(MIX, (0.3, 1.5), 0.25)
    source = open_variants(url, mix, 3, hint="augcomp precompute ... --variants K")
    assert source.variants == 2 and "--variants 2" in source.hint
    samples = TrainingSamples(dataset, 3, "finetune", mix, source=source, variants=source.variants)
    runs = {w: [_batches(samples, w, e) for e in range(3)] for w in (0, 2)}
    seen = set()
    for epoch in range(3):
        for main, worker in zip(runs[0][epoch], runs[2][epoch], strict=True):
            _same({k: v for k, v in main.items() if k != "draw"}, {k: v for k, v in worker.items() if k != "draw"})
            for k in main["draw"]:
                torch.testing.assert_close(main["draw"][k], worker["draw"][k], rtol=0, atol=0, equal_nan=True)
            # Stored samples are done where they are loaded, tensor codecs included; the training process codes none.
            assert torch.equal(main["draw"]["stored"], main["draw"]["codec"] >= 0)
            out, bpp, work = compress_drawn(main["image"], main["draw"], mix)
            assert torch.equal(out, main["image"]) and work["train_from_store"] == int(main["draw"]["stored"].sum())
            assert work["train_library_in_workers"] == work["train_library_in_main"] == 0
            assert work["train_tensor_on_device"] == 0
    for epoch in range(3):
        samples.set_epoch(epoch)
        for index in range(4):
            key = SampleKey(3, "finetune", epoch, index)
            got = samples[index]
            k = variant_choice(key, 2, 0.25)
            loaded = dataset.dataset.load(index)
            if k >= 0:
                codec, target = variant_draw(mix, 3, k, index)
                assert (got["draw"]["codec"], got["draw"]["target"]) == (codec, target)
                ref = compress(loaded["image"][None], codec=MIX[codec], bpp=torch.tensor([target]), grad="none")
                loaded["image"] = ref.image[0]
                assert got["draw"]["bpp"] == pytest.approx(float(ref.bpp[0]))
                seen.add(k)
            # The variant gets the crop and flip the clean image would have had in this epoch.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(keyed_seed(*key, "geometry"))
                want = dataset.dataset.augment(loaded)
            _same({k: v for k, v in got.items() if k != "draw"}, want)
    assert seen == {0, 1}
    # A clean sample is exactly the sample a run without the store gets.
    clean = TrainingSamples(dataset, 3, "finetune", CodecMix(MIX, (0.3, 1.5), 1.0), source=source, variants=2)
    plain = TrainingSamples(dataset, 3, "finetune", CodecMix(MIX, (0.3, 1.5), 1.0))
    _same({k: v for k, v in clean[1].items() if k != "draw"}, {k: v for k, v in plain[1].items() if k != "draw"})


def test_a_missing_variant_is_an_error_that_says_how_to_fill_the_store(filled, tmp_path):
    root, url, _ = filled
    mix = CodecMix(MIX, (0.3, 1.5), 0.0)
    with pytest.raises(MissingVariantError, match=r"holds no variants of the finetuning mix .* seed 4.*fill it"):
        open_variants(url, mix, 4, hint="augcomp precompute --split training --variants K")
    # The mix is recorded, but these images (another size) were never coded: never encoded, never trained clean.
    source = open_variants(url, mix, 3, hint="augcomp precompute --split training --variants K")
    small = ade20k_folder(tmp_path / "other", train=2, val=1, size=40)
    samples = TrainingSamples(ADE20K(small, "training", 32, train=True), 3, "finetune", mix, source=source,
                              variants=2)
    with pytest.raises(MissingVariantError, match=r"--train-store .* has no (jpeg|webp) variant.*--variants 2"):
        samples[0]
    with pytest.raises(MissingVariantError) as raised:
        next(iter(DataLoader(samples, batch_size=1, num_workers=1, collate_fn=collate)))
    # From a worker the message is the worker's traceback; the recipe's line is the original message alone.
    line = one_line(raised.value)
    assert line.startswith("--train-store ") and "augcomp precompute" in line and "\n" not in line


def test_recipe_trains_from_the_store_alike_with_0_and_2_workers(tmp_path):
    store = str(tmp_path / "store")
    proc = run_recipe("seg", "--tiny", "--train-codecs", ",".join(MIX), "--train-bpp", BPP, "--train-store", store,
                      "--dry-run", check=False)
    assert "holds no variants of this mix" in proc.stdout
    from augcomp.cli import main as cli

    assert cli(["precompute", "--task", "seg", "--split", "train", "--variants", "2", "--train-codecs",
                ",".join(MIX), "--train-bpp", BPP, "--image-size", "48", "--train-size", "48", "--store", store]) == 0
    common = ["--tiny", "--train-codecs", ",".join(MIX), "--train-bpp", BPP, "--codecs", "webp", "--bpp-grid", "0.5",
              "--clean-share", "0.25", "--train-store", store]
    plan = " ".join(run_recipe("seg", *common, "--dry-run").stdout.split())
    assert f"train store {store}: 2 stored variants per training image" in plan
    results = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        run_recipe("seg", *common, "--num-workers", str(workers), "--output-dir", str(out))
        results[workers] = json.loads((out / "results.json").read_text())
    a, b = results[0], results[2]
    work, draws = b["codec_work"], b["finetune_draws"]
    assert work["train_store"] == store and work["train_from_store"] == draws["jpeg"] + draws["webp"] > 0
    assert work["train_library_in_workers"] == work["train_library_in_main"] == work["train_tensor_on_device"] == 0
    assert a["codec_work"]["train_from_store"] == work["train_from_store"] and a["finetune_draws"] == draws
    assert a["clean_after_metrics"] == b["clean_after_metrics"] and a["rows"] == b["rows"]
    # Another seed draws other variants, which the store does not hold: the run stops before any work.
    proc = run_recipe("seg", *common, "--seed", "1", "--output-dir", str(tmp_path / "s1"), check=False)
    assert proc.returncode == 1
    assert "holds no variants of the finetuning mix" in proc.stderr and "--seed 1" in proc.stderr
    assert not (tmp_path / "s1" / "clean_model.pt").exists()


def test_precompute_options_belong_to_one_kind_of_split(tmp_path, capsys):
    from augcomp.cli import main as cli

    store = str(tmp_path / "store")
    assert cli(["precompute", "--task", "seg", "--variants", "2", "--bpp-grid", "0.5", "--store", store]) != 0
    assert "--bpp-grid is for a sweep split" in capsys.readouterr().err
    assert cli(["precompute", "--task", "seg", "--codecs", "jpeg", "--store", store]) != 0
    assert "--bpp-grid is required for a sweep split (or give --variants K" in capsys.readouterr().err
    assert cli(["precompute", "--task", "seg", "--codecs", "jpeg", "--bpp-grid", "0.5", "--seed", "1",
                "--store", store]) != 0
    assert "--seed is for a training split with --variants K" in capsys.readouterr().err
    assert cli(["precompute", "--task", "seg", "--split", "val", "--variants", "2", "--store", store]) != 0
    assert "the synthetic scenes' training split is 'train'" in capsys.readouterr().err
    assert cli(["precompute", "--task", "seg", "--variants", "2", "--train-bpp", "2,1", "--store", store]) != 0
    assert "--train-bpp" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()
