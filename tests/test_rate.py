"""Rate control: per-sample bpp targets on natural images of odd sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from augcomp import functional, rate
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


# A rate curve that is not monotone, with plateaus, on levels 0..25 (bits fall as the level rises, like a JPEG XL
# distance): a dip at 19.5 below the rate at the range end, a plateau from 8 to 11, and a step at 13.
def _jagged(level: torch.Tensor) -> torch.Tensor:
    smooth = 4000.0 * torch.exp(-0.12 * level)
    plateau = torch.where((level >= 8) & (level <= 11), 4000.0 * math.exp(-0.12 * 8), smooth)
    step = torch.where(level >= 13, plateau * 0.8, plateau)
    dip = 1.0 - 0.35 * torch.exp(-(((level - 19.5) / 1.2) ** 2))
    return torch.where(level > 21, step * 1.8, step * dip)


def _recorded(curve):
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def measure(level: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        calls.append((level.clone(), active.clone()))
        return curve(level)

    return measure, calls


@pytest.mark.parametrize("early_stop", [True, False])
@pytest.mark.parametrize("step", [None, 0.25])
def test_search_never_returns_a_level_worse_than_one_it_measured(early_stop, step):
    grid = torch.linspace(0.0, 25.0, 2501)
    rates = _jagged(grid)
    # Unreachable below, inside the dip, on the plateau, across the step, at the top and unreachable above.
    target = torch.tensor([1.0, 420.0, 330.0, float(rates.min()) * 1.5, 1500.0, 1700.0, 3900.0, 1e6])
    measure, calls = _recorded(_jagged)
    level, bits = rate.search(measure, target, 0.0, 25.0, discrete=False, increasing=False, step=step,
                              early_stop=early_stop)
    assert torch.equal(bits, _jagged(level))
    err = rate.closeness(bits, target)
    for levels, active in calls:
        measured = rate.closeness(_jagged(levels), target)
        assert bool((err <= measured + 1e-6)[active].all()), (levels, level)
    # Below the reachable range, the level of least rate, not the end of the range (whose rate is 40% higher).
    cheapest = float(rates.min())
    assert float(bits[0]) <= 1.02 * cheapest and 17.0 < float(level[0]) < 22.0, (level[0], bits[0], cheapest)
    # Above it, the level of most rate.
    assert float(level[-1]) == 0.0
    # Reachable targets get within the tolerance.
    assert bool((err[1:-1] <= math.log1p(rate.DEFAULT_TOL)).all()), (err, level)


def test_search_gives_the_same_levels_with_and_without_early_stop():
    target = torch.tensor([1.0, 420.0, 330.0, 1500.0, 1700.0, 3900.0, 1e6])
    a = rate.search(lambda level, active: _jagged(level), target, 0.0, 25.0, discrete=False, increasing=False,
                    step=0.25, early_stop=True)
    b = rate.search(lambda level, active: _jagged(level), target, 0.0, 25.0, discrete=False, increasing=False,
                    step=0.25, early_stop=False)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_discrete_search_over_plateaus_and_a_dip_finds_the_nearest_level():
    # Bits rise with the level, but levels 4-6 share one rate and level 9 falls below level 8.
    rates = torch.tensor([10.0, 14.0, 20.0, 31.0, 31.0, 31.0, 50.0, 90.0, 70.0, 160.0, 330.0, 600.0])

    def measure(level: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return rates[(level - 1).long()]

    target = torch.tensor([3.0, 26.0, 31.0, 68.0, 75.0, 5000.0])
    level, bits = rate.search(measure, target, 1, 12, discrete=True)
    best = (torch.log(rates)[None] - torch.log(target)[:, None]).abs().amin(1)
    assert torch.allclose(rate.closeness(bits, target), best), (level, bits)


def test_missed_targets_are_reported_per_sample():
    image = to_tensor(natural("rocket")[:120, :90])
    batch = image[None].expand(3, -1, -1, -1)
    out = functional.compress(batch, bpp=torch.tensor([1e-4, 1.0, 100.0]))
    assert out.missed.tolist() == [True, False, True] and out.missed.shape == (3,)
    assert out.reason.dtype == torch.int8 and out.reasons == ["below", None, "above"]
    one = functional.compress(image, bpp=1e-4)
    assert one.missed.shape == () and bool(one.missed) and one.reasons == "below"
    # The flag agrees with the rate reached: a miss is a rate error beyond the tolerance.
    error = (out.bpp / torch.tensor([1e-4, 1.0, 100.0])).log().abs()
    assert torch.equal(out.missed, error > math.log1p(rate.DEFAULT_TOL))
    fixed = functional.compress(batch, quality=50)
    assert fixed.missed is None and fixed.reasons is None
