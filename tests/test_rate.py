"""Rate control: per-sample bpp targets on natural images of odd sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augcomp import functional
from augcomp.rate import bisect_levels
from tests._oracle import NATURAL, natural, to_tensor

TARGETS = torch.logspace(np.log10(0.1), np.log10(4.0), 12)
CROPS = [(301, 203), (157, 233), (97, 131)]


def _accuracy(backend: str, names, crops) -> tuple[np.ndarray, int]:
    errors, unreachable = [], 0
    for name, (h, w) in zip(names, crops, strict=True):
        image = to_tensor(natural(name)[:h, :w])
        batch = image[None].expand(len(TARGETS), -1, -1, -1).contiguous()
        out = functional.compress(batch, bpp=TARGETS, backend=backend)
        low = float(functional.compress(image, quality=1).bpp)
        high = float(functional.compress(image, quality=100).bpp)
        reach = (TARGETS >= low) & (TARGETS <= high)
        unreachable += int((~reach).sum())
        errors.extend(((out.bpp - TARGETS).abs() / TARGETS)[reach].tolist())
        # The returned bpp is the one the returned level really gives.
        again = functional.compress(batch, quality=out.level, backend=backend)
        assert torch.equal(again.bpp, out.bpp) and torch.equal(again.image, out.image)
    return np.array(errors), unreachable


def test_bpp_accuracy_native():
    errors, _ = _accuracy("native", NATURAL[:6], CROPS * 2)
    assert len(errors) >= 50
    assert (errors <= 0.05).mean() >= 0.95, np.sort(errors)[-5:]


def test_bpp_accuracy_tensor_path():
    errors, _ = _accuracy("torch", ["astronaut", "coffee"], [(97, 131), (64, 75)])
    assert (errors <= 0.05).mean() >= 0.95, np.sort(errors)[-5:]


def test_unreachable_targets_clamp_to_the_range():
    image = to_tensor(natural("rocket")[:120, :90])
    batch = image[None].expand(2, -1, -1, -1)
    out = functional.compress(batch, bpp=torch.tensor([1e-4, 100.0]))
    assert out.level.tolist() == [1.0, 100.0]
    ref = functional.compress(batch, quality=torch.tensor([1.0, 100.0]))
    assert torch.equal(out.bpp, ref.bpp)


def test_every_target_form():
    x = to_tensor(natural("chelsea")[:64, :96])[None].expand(3, -1, -1, -1)
    for spec in (0.8, (0.3, 2.0), torch.tensor([0.5, 1.0, 2.0])):
        out = functional.compress(x, bpp=spec, generator=torch.Generator().manual_seed(0))
        assert out.bpp.shape == (3,) and out.level.shape == (3,)
    lo_hi = functional.compress(x, bpp=(0.3, 2.0), generator=torch.Generator().manual_seed(0))
    assert ((lo_hi.level >= 1) & (lo_hi.level <= 100)).all()


def test_bisect_levels_discrete_finds_nearest():
    rates = torch.tensor([10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0])

    def measure(level: torch.Tensor) -> torch.Tensor:
        return rates[(level - 1).long()]

    target = torch.tensor([5.0, 21.0, 35.0, 100.0, 2000.0, 600.0])
    level, bits = bisect_levels(measure, target, 1, 8, discrete=True)
    brute = (torch.log(rates)[None] - torch.log(target)[:, None]).abs().argmin(1) + 1
    assert torch.equal(level.long(), brute) and torch.equal(bits, measure(level))


def test_bisect_levels_decreasing_rate():
    def measure(level: torch.Tensor) -> torch.Tensor:
        return 1000.0 * torch.exp(-level)

    target = torch.tensor([500.0, 50.0, 5.0])
    level, bits = bisect_levels(measure, target, 0.0, 8.0, discrete=False, increasing=False)
    assert torch.allclose(bits, target, rtol=0.01)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_host_sync_on_cuda():
    x = to_tensor(natural("coffee")[:96, :128])[None].expand(4, -1, -1, -1).contiguous().cuda()
    target = torch.tensor([0.2, 0.5, 1.0, 2.0], device="cuda")
    functional.compress(x, bpp=target)  # warm-up: caches and lazy initialisation may sync once
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = functional.compress(x, bpp=target)
        q = functional.compress(x, quality=target * 40)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.bpp.device.type == "cuda" and q.bpp.device.type == "cuda"
    assert ((out.bpp - target).abs() / target < 0.05).all()
