"""Rate control: per-sample levels that hit a target bpp, batched on the device without host syncs.

Every search here runs a fixed number of steps chosen from static facts (the level range), keeps the candidate
whose coded bpp is closest to the target (in log ratio), and returns the achieved bits. Targets outside a
sample's reachable range end at the nearest end of the range.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["search_levels", "bisect_levels", "closeness"]


def closeness(bits: Tensor, target_bits: Tensor) -> Tensor:
    """``|log(bits / target)|``: the error measure every search minimises."""
    return (torch.log(bits.clamp_min(1.0)) - torch.log(target_bits.clamp_min(1.0))).abs()


def bisect_levels(
    measure: Callable[[Tensor], Tensor],
    target_bits: Tensor,
    low: float,
    high: float,
    *,
    discrete: bool,
    increasing: bool = True,
    steps: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Finds per-sample levels whose measured bits are closest to ``target_bits``.

    Discrete levels use bisection. Continuous levels use regula falsi on ``log(bits)`` with the Illinois
    safeguard (falling back to bisection when the secant leaves the bracket), which needs far fewer
    evaluations than bisection because log-rate is smooth in the level. Both run a fixed number of steps and
    keep the best candidate seen, so a non-monotone rate curve cannot make things worse.

    Args:
        measure: maps a ``(B,)`` level tensor to ``(B,)`` bits.
        target_bits: ``(B,)`` targets in bits.
        low, high: the level range.
        discrete: search integers only.
        increasing: whether bits grow with the level.
        steps: steps after the two end points; by default enough to resolve the integers, or 8.

    Returns:
        ``(level, bits)`` of the best candidate per sample, both ``(B,)``.
    """
    device = target_bits.device
    batch = target_bits.shape[0]
    lo = torch.full((batch,), float(low), device=device)
    hi = torch.full((batch,), float(high), device=device)
    log_target = torch.log(target_bits.clamp_min(1.0))
    sign = 1.0 if increasing else -1.0
    bits_lo, bits_hi = measure(lo), measure(hi)
    f_lo = sign * (torch.log(bits_lo.clamp_min(1.0)) - log_target)
    f_hi = sign * (torch.log(bits_hi.clamp_min(1.0)) - log_target)
    lo_better = f_lo.abs() <= f_hi.abs()
    best_level = torch.where(lo_better, lo, hi)
    best_bits = torch.where(lo_better, bits_lo, bits_hi)
    best_err = torch.minimum(f_lo.abs(), f_hi.abs())
    if steps is None:
        steps = max(1, math.ceil(math.log2(high - low + 1))) if discrete else 8
    side = torch.zeros(batch, device=device)  # +1 if hi moved last step, -1 if lo moved
    for _ in range(steps):
        if discrete:
            mid = torch.floor((lo + hi) / 2)
        else:
            secant = hi - f_hi * (hi - lo) / (f_hi - f_lo)
            span = hi - lo
            inside = (secant > lo + 1e-3 * span) & (secant < hi - 1e-3 * span) & torch.isfinite(secant)
            mid = torch.where(inside, secant, (lo + hi) / 2)
        bits = measure(mid)
        f = sign * (torch.log(bits.clamp_min(1.0)) - log_target)
        better = f.abs() < best_err
        best_level = torch.where(better, mid, best_level)
        best_bits = torch.where(better, bits, best_bits)
        best_err = torch.where(better, f.abs(), best_err)
        below = f < 0  # the rate at mid is under the target: the answer lies above mid
        if discrete:
            lo = torch.where(below, torch.minimum(mid + 1, hi), lo)
            hi = torch.where(below, hi, mid)
            continue
        # Illinois: when the same end survives twice, halve its function value so the secant moves on.
        f_hi = torch.where(below & (side < 0), f_hi / 2, f_hi)
        f_lo = torch.where(~below & (side > 0), f_lo / 2, f_lo)
        lo, f_lo = torch.where(below, mid, lo), torch.where(below, f, f_lo)
        hi, f_hi = torch.where(below, hi, mid), torch.where(below, f_hi, f)
        side = torch.where(below, -torch.ones_like(side), torch.ones_like(side))
    return best_level, best_bits


def search_levels(codec, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Generic rate control for any :class:`~augcomp.codecs.Codec`: bisection over its level range.

    Each step runs the whole codec; codecs with a cheaper rate model override ``Codec._fit_bpp``.

    Shape:
        - x: ``(B, C, H, W)`` float32 in [0, 1].
        - bpp: ``(B,)`` float32 targets.
        - returns image ``(B, C, H, W)``, bits ``(B,)``, level ``(B,)``.
    """
    pixels = float(x.shape[-2] * x.shape[-1])
    target_bits = bpp * pixels
    entry = codec.entry

    def measure(level: Tensor) -> Tensor:
        with torch.no_grad():
            _, bits = codec._compress(x, level)
        return bits

    level, _ = bisect_levels(
        measure, target_bits, *entry.level_range, discrete=entry.discrete, increasing=entry.rate_increases_with_level
    )
    image, bits = codec._compress(x, level)
    return image, bits, level
