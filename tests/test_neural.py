"""Neural codecs: the CompressAI zoo and the shipped ``augcomp-tiny`` codec behind the codec contract.

References: CompressAI's own eval-mode forward (images), CompressAI's ``compress()`` bitstreams (bits), PIL (JPEG).
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augcomp import codecs, functional
from augcomp.codecs import neural
from augcomp.codecs import weights as w
from augcomp.codecs.jpeg import scan_length
from augcomp.codecs.neural import NeuralCodec
from augcomp.rate import DEFAULT_TOL

# Registry queries, not lists: every neural codec, the CompressAI zoo's per-quality and variable-rate models, and the
# zoo models whose compress() is not serial (their coded files are CompressAI's strings).
NEURAL = codecs.list(kind="neural")
ZOO_DISCRETE = codecs.list(weights="compressai", where=lambda e: e.discrete)
ZOO_VBR = codecs.list(weights="compressai", where=lambda e: not e.discrete)
ZOO_PARALLEL = codecs.list(weights="compressai", file_kind="strings")


def skimage_image(name: str) -> torch.Tensor:
    from skimage import data

    img = data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)()
    return torch.from_numpy(np.ascontiguousarray(img[..., :3])).permute(2, 0, 1).float() / 255.0


@pytest.fixture(scope="module")
def natural() -> torch.Tensor:
    """Two held-out natural crops, (2, 3, 128, 160)."""
    moto = skimage_image("motorcycle_left")
    cat = skimage_image("chelsea")
    return torch.stack([moto[:, 150:278, 300:460], cat[:, 60:188, 140:300]])


def levels_of(name: str) -> list[float]:
    lo, hi = codecs.entry(name).level_range
    return [lo, hi] if codecs.entry(name).discrete else [lo, (lo + hi) / 2, hi]


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w_ = x.shape[-2:]
    return F.pad(x, (0, (-w_) % multiple, 0, (-h) % multiple), mode="replicate")


def real_bits(model, x: torch.Tensor, gain: float | None = None) -> torch.Tensor:
    """The oracle: bits of the strings CompressAI's compress() writes, per sample (on a private copy)."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        if gain is None:
            model.update(force=True)
            enc = model.compress(x)
        else:
            model.update(force=True, scale=torch.tensor(gain))
            enc = model.compress(x, inputscale=torch.tensor(gain))
    return torch.tensor([sum(len(s[i]) * 8 for s in enc["strings"]) for i in range(x.shape[0])], dtype=torch.float32)


# --------------------------------------------------------------------------------------------------------- registry


def test_import_does_not_import_compressai():
    code = (
        "import sys, augcomp\n"
        "from augcomp import codecs\n"
        "names = codecs.list()\n"
        "assert 'mbt2018-mean' in names and 'augcomp-tiny' in names, names\n"
        "codecs.get('bmshj2018-hyperprior', pretrained=False)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('compressai', 'torch_geometric'))\n"
        "print('LOADED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout, out.stdout


def test_zoo_entries_match_compressai_tables():
    from compressai.zoo import image, image_vbr

    assert ZOO_DISCRETE and ZOO_VBR and "mbt2018-mean" in ZOO_DISCRETE and "mbt2018-mean-vbr" in ZOO_VBR
    for name in ZOO_DISCRETE:
        e = codecs.entry(name)
        arch = e.builder.arch
        qualities = sorted(image.cfgs[name])
        assert e.discrete and e.level_range == (1, qualities[-1]) and e.weights == "compressai"
        assert arch.cls_name == image.model_architectures[name].__name__
        assert [arch.widths[q - 1] for q in qualities] == [tuple(image.cfgs[name][q]) for q in qualities]
        for metric in ("mse", "ms-ssim"):
            assert sorted(image.model_urls[name][metric]) == qualities
    for name in ZOO_VBR:
        e = codecs.entry(name)
        assert not e.discrete and e.weights == "compressai"
        assert e.builder.arch.cls_name == image_vbr.model_architectures[name].__name__
        assert e.builder.arch.widths == (tuple(image_vbr.cfgs[name]),)
        # The level is the gain the model quantizes with; its range is that of the trained gains.
        gains = codecs.get(name, pretrained=False).model(1).Gain
        assert e.level_range == pytest.approx((float(gains.min()), float(gains.max())))


def test_pad_multiples_are_the_models_downsampling():
    for name in NEURAL:
        e = codecs.entry(name)
        model = codecs.get(name, pretrained=False).model(int(e.level_range[0]) if e.discrete else 1)
        x = torch.rand(1, 3, e.pad_multiple, e.pad_multiple)
        with torch.no_grad():
            y = model.g_a(x)
            z = model.h_a(y) if hasattr(model, "h_a") else y
        assert z.shape[-1] == 1, name  # exactly one hyper-latent (or latent) per padded block
        # Coded files keep pixels exactly for the models whose compress() decodes one position at a time.
        assert hasattr(model, "context_prediction") == (e.file_kind == "pixels"), name


@pytest.mark.parametrize("name", NEURAL)
def test_every_entry_builds_and_matches_compressai_forward(name):
    """Random init on the CPU; the image is CompressAI's eval forward on the edge-padded input, cropped and clamped."""
    e = codecs.entry(name)
    codec = codecs.get(name, pretrained=False)
    assert isinstance(codec, NeuralCodec)
    x = torch.rand(2, 3, 40, 72, generator=torch.Generator().manual_seed(1))
    for level in levels_of(name):
        img, bits = codec(x, torch.full((2,), level))
        assert img.shape == x.shape and img.dtype == x.dtype
        assert float(img.min()) >= 0 and float(img.max()) <= 1
        assert bits.shape == (2,) and bits.dtype == torch.float32 and bool((bits > 0).all())
        if name == "mbt2018-vbr":
            continue  # CompressAI's forward is sequential there; ours is the parallel approximation
        model = codec.model(int(level) if e.discrete else 1)
        xp = pad_to(x, e.pad_multiple)
        with torch.no_grad():
            ref = model(xp) if e.discrete else model(xp, stage=2, inputscale=torch.tensor(level))
        ref_img = ref["x_hat"][..., :40, :72].clamp(0, 1)
        torch.testing.assert_close(img, ref_img, rtol=0, atol=1e-6)
        if e.discrete:
            ref_bits = sum(-torch.log2(v).flatten(1).sum(1) for v in ref["likelihoods"].values())
            torch.testing.assert_close(bits, ref_bits, rtol=1e-5, atol=1e-2)


def test_models_are_frozen_cached_and_shared():
    a = codecs.get("augcomp-tiny")
    b = NeuralCodec(codecs.entry("augcomp-tiny"), codecs.entry("augcomp-tiny").builder.arch)
    m = a.model(2)
    assert m is b.model(2) and m is not a.model(3)
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert list(a.parameters()) == []  # the codec module owns no weights; inputs decide the device


# -------------------------------------------------------------------------------------------------- bits vs oracle


@pytest.mark.parametrize("name", ZOO_PARALLEL)
def test_bpp_estimate_matches_bitstream_random_init(name, natural):
    e = codecs.entry(name)
    codec = codecs.get(name, pretrained=False, grad="none")
    x = F.interpolate(natural, size=(256, 320), mode="bilinear", align_corners=False).clamp(0, 1)
    for level in codecs.entry(name).level_range:
        _, bits = codec(x, torch.full((2,), level))
        model = codec.model(int(level) if e.discrete else 1)
        oracle = real_bits(model, pad_to(x, e.pad_multiple), None if e.discrete else level)
        rel = (bits - oracle).abs() / oracle
        assert bool((rel < 0.05).all()), (name, level, bits.tolist(), oracle.tolist())


def test_bpp_estimate_matches_bitstream_shipped(natural):
    codec = codecs.get("augcomp-tiny", grad="none")
    moto = skimage_image("motorcycle_left")[:, :197, :263]  # odd size: padding is part of what is checked
    for x in (natural, moto[None]):
        for level in range(1, 5):
            res = functional.compress(x, codec="augcomp-tiny", quality=level, grad="none")
            oracle = real_bits(codec.model(level), pad_to(x, 64))
            rel = (res.bits - oracle).abs() / oracle
            assert bool((rel < 0.05).all()), (level, res.bits.tolist(), oracle.tolist())
            torch.testing.assert_close(res.bpp, res.bits / (x.shape[-2] * x.shape[-1]))


def test_shipped_codec_decodes_its_own_bitstream(natural):
    """compress()/decompress() of the loaded model reproduce the augmentation's image."""
    codec = codecs.get("augcomp-tiny", grad="none")
    x = natural
    model = codec.model(2)
    with torch.no_grad():
        enc = model.compress(pad_to(x, 64))
        dec = model.decompress(enc["strings"], enc["shape"])["x_hat"][..., : x.shape[-2], : x.shape[-1]]
    img, _ = codec(x, torch.full((2,), 2.0))
    assert float((img - dec).abs().max()) < 1e-4


# ------------------------------------------------------------------------------------------------ padding, dtypes


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 2), (17, 33), (64, 64), (65, 130)])
def test_padding_and_cropping(size):
    codec = codecs.get("augcomp-tiny", grad="none")
    h, w_ = size
    x = torch.rand(2, 3, h, w_, generator=torch.Generator().manual_seed(h * 1000 + w_))
    img, bits = codec(x, torch.tensor([1.0, 4.0]))
    assert img.shape == x.shape
    for i, level in enumerate((1, 4)):
        with torch.no_grad():
            ref = codec.model(level)(pad_to(x[i : i + 1], 64))
        torch.testing.assert_close(img[i : i + 1], ref["x_hat"][..., :h, :w_].clamp(0, 1), rtol=0, atol=1e-6)
        ref_bits = sum(-torch.log2(v).sum() for v in ref["likelihoods"].values())
        torch.testing.assert_close(bits[i], ref_bits, rtol=1e-5, atol=1e-2)


def test_dtypes_unbatched_and_empty(natural):
    x = natural[:1]
    ref = functional.compress(x, codec="augcomp-tiny", quality=3, grad="none")
    u8 = functional.compress((x * 255).round().to(torch.uint8), codec="augcomp-tiny", quality=3, grad="none")
    assert u8.image.dtype == torch.uint8 and u8.image.shape == x.shape
    half = functional.compress(x.half(), codec="augcomp-tiny", quality=3, grad="none")
    assert half.image.dtype == torch.float16
    assert float((half.image.float() - ref.image).abs().mean()) < 2e-3
    single = functional.compress(x[0], codec="augcomp-tiny", quality=3, grad="none")
    assert single.image.shape == x.shape[1:] and single.bpp.shape == ()
    torch.testing.assert_close(single.bits, ref.bits[0])
    empty = functional.compress(x[:0], codec="augcomp-tiny", quality=3)
    assert empty.image.shape == (0, *x.shape[1:]) and empty.bpp.shape == (0,)


def test_grouping_chunking_and_autocast_do_not_change_results(natural):
    x = torch.cat([natural, natural.flip(-1)])
    levels = torch.tensor([1.0, 3.0, 1.0, 2.0])
    grouped = functional.compress(x, codec="augcomp-tiny", quality=levels, grad="none")
    for i in range(4):
        alone = functional.compress(x[i : i + 1], codec="augcomp-tiny", quality=float(levels[i]), grad="none")
        torch.testing.assert_close(grouped.image[i : i + 1], alone.image, rtol=0, atol=1e-5)
        torch.testing.assert_close(grouped.bits[i : i + 1], alone.bits, rtol=1e-5, atol=1e-2)
    chunked = functional.compress(x, codec="augcomp-tiny", quality=levels, grad="none", max_batch=1)
    torch.testing.assert_close(chunked.image, grouped.image, rtol=0, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_amp = functional.compress(x, codec="augcomp-tiny", quality=levels, grad="none")
    torch.testing.assert_close(under_amp.image, grouped.image, rtol=0, atol=1e-5)
    torch.testing.assert_close(under_amp.bits, grouped.bits)
    assert under_amp.bits.dtype == torch.float32


def test_discrete_levels_are_rounded():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    a = functional.compress(x, codec="augcomp-tiny", quality=2.4, grad="none")
    b = functional.compress(x, codec="augcomp-tiny", quality=2, grad="none")
    torch.testing.assert_close(a.image, b.image)
    torch.testing.assert_close(a.bits, b.bits)


# ---------------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", ["augcomp-tiny", "bmshj2018-factorized", "mbt2018-mean", "mbt2018",
                                  "bmshj2018-hyperprior-vbr"])
def test_ste_gradients(name, natural):
    e = codecs.entry(name)
    x = natural[:, :, :64, :64].clone().requires_grad_(True)
    level = e.level_range[1] if e.discrete else 0.5
    kw = {} if name == "augcomp-tiny" else {"pretrained": False}
    out = functional.compress(x, codec=name, quality=level, grad="ste", **kw)
    target = torch.rand_like(x)
    ((out.image - target) ** 2).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0
    # Straight-through rounding changes gradients only: the values are those of the gradient-free pass.
    plain = functional.compress(x.detach(), codec=name, quality=level, grad="none", **kw)
    assert not plain.image.requires_grad
    torch.testing.assert_close(out.image.detach(), plain.image, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.bits.detach(), plain.bits)


def test_ste_gradient_through_rate_control(natural):
    x = natural.clone().requires_grad_(True)
    out = functional.compress(x, codec="augcomp-tiny", bpp=0.4, grad="ste")
    assert out.image.requires_grad
    out.image.mean().backward()
    assert bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0


# ------------------------------------------------------------------------------------------------- rate control


def test_level_selection_is_nearest_by_brute_force(natural, monkeypatch):
    x = torch.cat([natural, F.avg_pool2d(natural, 3, 1, 1)])
    table = torch.stack([functional.compress(x, codec="augcomp-tiny", quality=q, grad="none").bpp
                         for q in range(1, 5)], dim=1)  # (B, levels)
    codec = codecs.get("augcomp-tiny", grad="none")
    passes = []
    run = NeuralCodec._run
    monkeypatch.setattr(NeuralCodec, "_run", lambda self, xs, *a: passes.append(xs.shape[0]) or run(self, xs, *a))
    for target in (0.05, 0.15, 0.25, 0.4, 0.7, 1.5, 4.0):
        passes.clear()
        res = functional.compress(x, codec="augcomp-tiny", bpp=target, grad="none")
        err = (table.log() - math.log(target)).abs()
        nearest = err.argmin(dim=1) + 1
        chosen = res.level.long()
        # ties (equal error) may resolve either way
        assert bool((err.gather(1, (chosen - 1)[:, None]) <= err.gather(1, (nearest - 1)[:, None]) + 1e-6).all())
        torch.testing.assert_close(res.bpp, table.gather(1, (chosen - 1)[:, None]).squeeze(1), rtol=1e-5, atol=1e-6)
        # each model ran at most once per search step, on no more samples than a bisection over 4 levels needs
        assert sum(passes) <= x.shape[0] * (math.ceil(math.log2(4)) + 1) < x.shape[0] * 4
        assert len(passes) <= 1 + 2 * 2
    assert codec.entry.discrete


def test_vbr_rate_control_returns_achieved_bpp(natural):
    name = "bmshj2018-hyperprior-vbr"
    x = natural[:, :, :64, :64]
    lo, hi = codecs.entry(name).level_range
    ends = [functional.compress(x, codec=name, quality=q, grad="none", pretrained=False).bpp for q in (lo, hi)]
    target = float((ends[0] * ends[1]).sqrt().mean())
    res = functional.compress(x, codec=name, bpp=target, grad="none", pretrained=False)
    again = functional.compress(x, codec=name, quality=res.level, grad="none", pretrained=False)
    torch.testing.assert_close(res.bpp, again.bpp, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res.image, again.image)  # the kept candidate is the chosen level's image
    assert bool(((res.level >= lo) & (res.level <= hi)).all())
    # The search stops once within its tolerance; it never ends further off than that or than the better range end.
    err = (res.bpp.log() - math.log(target)).abs()
    best_end = torch.minimum(*[(end.log() - math.log(target)).abs() for end in ends])
    assert bool((err <= torch.clamp(best_end, min=math.log1p(DEFAULT_TOL)) + 1e-6).all())


def test_vbr_search_runs_on_log_gain_and_drops_converged_samples(natural, monkeypatch):
    """The shared engine over log(gain): on the CPU each step runs only the samples still searching, and no pass is
    repeated at the end when no gradient is wanted."""
    name = "mbt2018-mean-vbr"
    x = torch.cat([natural, natural.flip(-1), F.avg_pool2d(natural, 5, 1, 2)])[..., :64, :64]
    sizes = []
    run = NeuralCodec._run
    monkeypatch.setattr(NeuralCodec, "_run", lambda self, xs, *a: sizes.append(xs.shape[0]) or run(self, xs, *a))
    lo, hi = codecs.entry(name).level_range
    mid = functional.compress(x, codec=name, quality=(lo * hi) ** 0.5, grad="none", pretrained=False).bpp
    sizes.clear()
    res = functional.compress(x, codec=name, bpp=mid * torch.linspace(0.7, 1.4, x.shape[0]), grad="none",
                              pretrained=False)
    assert 1 < len(sizes) <= 10 and sizes[0] == x.shape[0] and sizes == sorted(sizes, reverse=True), sizes
    # the chosen gains lie on the log-gain grid, or at an end of the range (targets beyond it)
    steps = (res.level.log() - math.log(lo)) / neural.GAIN_LOG_STEP
    on_grid = (steps - steps.round()).abs() < 1e-3
    at_end = (res.level - lo).abs().lt(1e-6) | (res.level - hi).abs().lt(1e-6)
    assert bool((on_grid | at_end).all()), res.level.tolist()


@pytest.mark.parametrize(("name", "pretrained"), [("augcomp-tiny", True), ("mbt2018-mean-vbr", False)])
def test_full_batch_search_gives_the_cpu_result(name, pretrained, natural, monkeypatch):
    """Off the CPU a search runs every step on the whole batch with no host sync; it must choose what the CPU's
    search, which drops converged samples, chooses. Forced here on the CPU by turning the dropping off."""
    x = torch.cat([natural, natural.flip(-1), F.avg_pool2d(natural, 5, 1, 2)])[..., :64, :64]
    bpp = torch.linspace(0.2, 1.2, x.shape[0])
    cpu = functional.compress(x, codec=name, bpp=bpp, grad="none", pretrained=pretrained)
    sizes = []
    run = NeuralCodec._run
    monkeypatch.setattr(NeuralCodec, "_run", lambda self, xs, *a: sizes.append(xs.shape[0]) or run(self, xs, *a))
    monkeypatch.setattr(neural, "drops_converged", lambda device: False)
    full = functional.compress(x, codec=name, bpp=bpp, grad="none", pretrained=pretrained)
    if codecs.entry(name).discrete:  # each level is its own network: a pass runs each model on its samples
        assert sum(sizes) % x.shape[0] == 0 and sum(sizes) > x.shape[0]
    else:
        assert set(sizes) == {x.shape[0]} and len(sizes) > 1  # every pass on the whole batch
    assert torch.equal(full.level, cpu.level) and torch.equal(full.bits, cpu.bits)
    assert torch.equal(full.image, cpu.image)


# --------------------------------------------------------------------------------------------------------- weights


def _zoo_file(name: str, quality: int, metric: str = "mse") -> str:
    from compressai.zoo.image import model_urls

    return model_urls[name][metric][quality].rsplit("/", 1)[-1]


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty AUGCOMP_WEIGHTS folder and an empty torch hub cache."""
    monkeypatch.setenv(w.ENV_VAR, str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "weights").mkdir()
    neural.clear_models()
    yield tmp_path
    neural.clear_models()


def test_offline_without_weights_fails_fast_and_names_the_file(no_weights, monkeypatch):
    monkeypatch.setenv(w.OFFLINE_ENV_VAR, "1")
    x = torch.rand(1, 3, 32, 32)
    w.zoo_url("bmshj2018-hyperprior", "mse", 1)  # imports compressai (seconds on a busy machine) before the clock
    start = time.monotonic()
    with pytest.raises(w.WeightsNotFoundError) as info:
        functional.compress(x, codec="bmshj2018-hyperprior", quality=3, metric="ms-ssim")
    assert time.monotonic() - start < 5
    msg = str(info.value)
    assert _zoo_file("bmshj2018-hyperprior", 3, "ms-ssim") in msg and w.ENV_VAR in msg
    assert str(no_weights / "weights") in msg


def test_unreachable_network_fails_within_seconds(no_weights, monkeypatch):
    monkeypatch.delenv(w.OFFLINE_ENV_VAR, raising=False)
    # A proxy at a reserved, unroutable address: the connection attempt can only time out.
    monkeypatch.setattr(w.urllib.request, "getproxies", lambda: {"https": "http://192.0.2.1:9"})
    start = time.monotonic()
    with pytest.raises(w.WeightsNotFoundError) as info:
        functional.compress(torch.rand(1, 3, 16, 16), codec="mbt2018-mean", quality=1)
    assert time.monotonic() - start < 10
    assert _zoo_file("mbt2018-mean", 1) in str(info.value)


def test_weights_from_env_folder_file_and_mismatch(no_weights, monkeypatch):
    monkeypatch.setenv(w.OFFLINE_ENV_VAR, "1")
    name, quality = "bmshj2018-factorized", 2
    reference = copy.deepcopy(codecs.get(name, pretrained=False).model(quality))
    with torch.no_grad():
        for p in reference.parameters():
            p.mul_(1.01)  # distinct from the seeded random init
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}  # as a DataParallel checkpoint
    torch.save(state, no_weights / "weights" / _zoo_file(name, quality))
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(5))
    from_env = functional.compress(x, codec=name, quality=quality, grad="none")
    with torch.no_grad():
        expected = reference(pad_to(x, 16))["x_hat"][..., :48, :48].clamp(0, 1)
    torch.testing.assert_close(from_env.image, expected, rtol=0, atol=1e-6)
    random = functional.compress(x, codec=name, quality=quality, grad="none", pretrained=False)
    assert float((random.image - from_env.image).abs().max()) > 1e-3
    # weights= as a file (used for the requested level) and as a folder
    ckpt = no_weights / "my.pth"
    torch.save({"state_dict": reference.state_dict(), "epoch": 3}, ckpt)
    for given in (ckpt, no_weights / "weights"):
        out = functional.compress(x, codec=name, quality=quality, grad="none", weights=given)
        torch.testing.assert_close(out.image, expected, rtol=0, atol=1e-6)
    with pytest.raises(w.WeightsNotFoundError, match=_zoo_file(name, 3)):
        functional.compress(x, codec=name, quality=3, weights=no_weights / "weights")
    # a checkpoint of another architecture is refused, naming the model
    torch.save(reference.state_dict(), no_weights / "weights" / _zoo_file("bmshj2018-hyperprior", 1))
    with pytest.raises(ValueError, match="bmshj2018-hyperprior quality 1"):
        functional.compress(x, codec="bmshj2018-hyperprior", quality=1)


def test_shipped_weights_and_metadata():
    meta = json.loads((w.package_dir() / "augcomp-tiny.json").read_text())
    files = list(w.package_dir().iterdir())
    assert sum(f.stat().st_size for f in files) <= 8 * 1024 * 1024
    arch = codecs.entry("augcomp-tiny").builder.arch
    assert meta["architecture"] == arch.cls_name and meta["levels"] == arch.num_models
    assert (meta["N"], meta["M"]) == arch.widths[0] and codecs.entry("augcomp-tiny").level_range == (1, meta["levels"])
    for key in ("seed", "train_wall_time_s", "command", "lambdas", "base_steps", "steps_per_level"):
        assert key in meta
    assert len(meta["lambdas"]) == meta["levels"] >= 4
    # trained weights, not random: rate and quality grow with lambda, and the reconstruction is close
    x = skimage_image("chelsea")[None, :, :128, :128]
    results = [functional.compress(x, codec="augcomp-tiny", quality=q, grad="none") for q in range(1, 5)]
    bpp = [float(r.bpp) for r in results]
    psnr = [float(-10 * torch.log10(((r.image - x) ** 2).mean())) for r in results]
    assert bpp == sorted(bpp) and psnr == sorted(psnr) and bpp[-1] > 1.5 * bpp[0]
    assert psnr[0] > 25


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    # Over all of two arrays on the [0, 255] scale; augcomp.functional.psnr takes (..., C, H, W) on [0, 1].
    flat = [torch.as_tensor(np.asarray(v, dtype=np.float64)).reshape(1, 1, -1) / 255.0 for v in (a, b)]
    return float(functional.psnr(*flat))


def _interp(points: list[tuple[float, float]], bpp: float) -> float:
    points = sorted(points)
    for (b0, p0), (b1, p1) in zip(points, points[1:], strict=False):
        if b0 <= bpp <= b1:
            return p0 + (math.log(bpp) - math.log(b0)) / (math.log(b1) - math.log(b0)) * (p1 - p0)
    raise AssertionError(f"{bpp} bpp is outside the measured range {points[0][0]:.3f}..{points[-1][0]:.3f}")


@pytest.mark.parametrize("image", ["motorcycle_left", "chelsea"])
def test_shipped_codec_beats_jpeg_at_quarter_bpp(image):
    """Held-out images; JPEG by PIL (4:2:0, Huffman-optimised, scan bits only, which favours JPEG)."""
    from PIL import Image

    x = skimage_image(image)
    u8 = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    pixels = u8.shape[0] * u8.shape[1]
    neural_points = []
    for q in range(1, 5):
        res = functional.compress(x, codec="augcomp-tiny", quality=q, grad="none")
        dec = (res.image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        neural_points.append((float(res.bpp), _psnr(u8, dec)))
    jpeg_points = []
    for q in range(2, 60, 2):
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=q, subsampling="4:2:0", optimize=True)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        jpeg_points.append((8 * scan_length(buf.getvalue()) / pixels, _psnr(u8, dec)))
        if jpeg_points[-1][0] > 0.3:
            break
    assert _interp(neural_points, 0.25) > _interp(jpeg_points, 0.25)


# ------------------------------------------------------------------------------------------------------ bad input


def test_bad_inputs_name_the_problem():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="mbt2018-mean") as info:
        functional.compress(x, codec="mbt2019-mean", quality=1)
    assert "augcomp-tiny" in str(info.value)
    for name in ("bmshj2018-hyperprior", "cheng2020-anchor", "augcomp-tiny"):
        lo, hi = codecs.entry(name).level_range
        with pytest.raises(ValueError, match=rf"\[{lo:g}, {hi:g}\]"):
            functional.compress(x, codec=name, quality=hi + 1, pretrained=name == "augcomp-tiny")
    lo, hi = codecs.entry("mbt2018-mean-vbr").level_range
    with pytest.raises(ValueError, match=rf"\[{lo:g}, {hi:g}\]"):
        functional.compress(x, codec="mbt2018-mean-vbr", quality=2.0, pretrained=False)
    with pytest.raises(ValueError, match="metric"):
        codecs.get("mbt2018-mean", metric="psnr")
    with pytest.raises(ValueError, match="metric"):
        codecs.get("bmshj2018-hyperprior-vbr", metric="ms-ssim")
    with pytest.raises(ValueError, match="cubic"):
        functional.compress(x, codec="augcomp-tiny", quality=1, grad="cubic")
    with pytest.raises(ValueError, match="3 channels"):
        functional.compress(torch.rand(1, 1, 16, 16), codec="augcomp-tiny", quality=1)
    with pytest.raises(ValueError, match="max_batch"):
        codecs.get("augcomp-tiny", max_batch=0)


# ---------------------------------------------------------------------------------------------------------- device


def test_codec_to_is_free_and_inputs_decide_the_device():
    codec = codecs.get("augcomp-tiny", grad="none")
    assert codec.to("cpu") is codec and codec.to(torch.float64) is codec
    x = torch.rand(1, 3, 32, 32)
    img, _ = codec(x, torch.ones(1))
    assert img.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda(natural):
    x = natural
    cpu = functional.compress(x, codec="augcomp-tiny", quality=torch.tensor([1.0, 3.0]), grad="none")
    codec = codecs.get("augcomp-tiny", grad="none").to("cuda")
    img, bits = codec(x.cuda(), torch.tensor([1.0, 3.0], device="cuda"))
    assert img.device.type == "cuda" and bits.device.type == "cuda"
    assert codec.model(1, "cuda") is not codec.model(1, "cpu")
    assert next(codec.model(1, "cuda").parameters()).device.type == "cuda"
    # GPU convolutions round differently (TF32 etc.); a few latents may flip
    torch.testing.assert_close(bits.cpu(), cpu.bits, rtol=0.02, atol=1.0)
    assert _psnr((img.cpu().numpy() * 255), (cpu.image.numpy() * 255)) > 35
    for name in ("mbt2018-mean", "bmshj2018-hyperprior-vbr"):
        out = functional.compress(x.cuda().requires_grad_(True), codec=name, bpp=0.5, pretrained=False)
        assert out.image.device.type == "cuda" and out.bpp.device.type == "cuda"
    xg = x.cuda().requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = functional.compress(xg, codec="augcomp-tiny", bpp=0.3, autocast=True)
    out.image.float().mean().backward()
    assert out.bpp.dtype == torch.float32 and bool(torch.isfinite(xg.grad).all())
    if os.environ.get("AUGCOMP_TEST_VERBOSE"):
        print(bits.tolist(), cpu.bits.tolist())


def test_a_file_that_is_not_a_checkpoint_gets_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a checkpoint augcomp can read safely") as info:
        functional.compress(torch.rand(1, 3, 16, 16), codec="mbt2018-mean", quality=1, weights=bad)
    assert "weights_only=False" not in str(info.value) and "torch.save" in str(info.value)


def test_offline_bpp_targeting_names_every_missing_level(no_weights, monkeypatch):
    monkeypatch.setenv(w.OFFLINE_ENV_VAR, "1")
    with pytest.raises(w.WeightsNotFoundError) as info:
        functional.compress(torch.rand(1, 3, 64, 64), codec="mbt2018-mean", bpp=0.3)
    assert all(_zoo_file("mbt2018-mean", q) in str(info.value) for q in range(1, 9))


def test_first_neural_use_shows_no_torch_jit_warning():
    code = ("import torch, augcomp; "
            "augcomp.compress(torch.rand(1, 3, 64, 64), 'mbt2018-mean', quality=1, pretrained=False)")
    done = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
