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

    Args:
        measure: maps a ``(B,)`` level tensor to ``(B,)`` bits.
        target_bits: ``(B,)`` targets in bits.
        low, high: the level range.
        discrete: search integers only.
        increasing: whether bits grow with the level.
        steps: bisection steps; by default enough to resolve integers, or 12 for continuous levels.

    Returns:
        ``(level, bits)`` of the best candidate per sample, both ``(B,)``.
    """
    device = target_bits.device
    batch = target_bits.shape[0]
    lo = torch.full((batch,), float(low), device=device)
    hi = torch.full((batch,), float(high), device=device)
    if steps is None:
        steps = max(1, math.ceil(math.log2(high - low + 1))) + 1 if discrete else 12
    best_level = hi.clone()
    best_bits = measure(best_level)
    best_err = closeness(best_bits, target_bits)
    for _ in range(steps):
        mid = (lo + hi) / 2
        if discrete:
            mid = torch.floor(mid)
        bits = measure(mid)
        err = closeness(bits, target_bits)
        better = err < best_err
        best_level = torch.where(better, mid, best_level)
        best_bits = torch.where(better, bits, best_bits)
        best_err = torch.where(better, err, best_err)
        go_up = (bits < target_bits) if increasing else (bits > target_bits)
        step_up = mid + 1 if discrete else mid
        lo = torch.where(go_up, step_up, lo)
        hi = torch.where(go_up, hi, mid)
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
