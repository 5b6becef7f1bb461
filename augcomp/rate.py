"""Rate control: per-sample levels that hit a target bpp, one engine for every codec.

:func:`search` is a pure algorithm over a ``measure(level, active) -> bits`` function. It starts from a warm guess
(the codec's rate prior), extrapolates with secant steps on ``log(bits)`` until the target is bracketed, then runs
regula falsi with the Illinois safeguard inside the bracket, and stops a sample once its rate is within ``tol`` of
the target. A sample whose bracket closes (or whose target lies beyond a measured end of the range) without getting
within ``tol`` spends its remaining steps on a local pattern search around its best level, so that a rate curve
that is not monotone (JPEG XL near distance 20, WebP between neighbouring qualities) or has plateaus cannot leave it
at a level further from the target than one a step or two away. The level returned is always the best one
measured. On the CPU converged samples leave the search (``measure`` sees them as inactive and the loop ends
when none is left); on accelerators every step runs on the whole batch and the loop has a fixed length, so there
is no host sync. Both follow the same arithmetic, so the same measurements give the same levels on every device.
Targets outside a sample's reachable range end at the level of least rate error found (the nearest end of the range
when the rate is monotone).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["DEFAULT_TOL", "RATE_CONTROL_VERSION", "closeness", "drops_converged", "search", "search_levels",
           "bisect_levels"]

# Bumped whenever the level a search chooses for the same measurements changes: stored entries made for a bpp target
# by another version are then not reused (augcomp.store keys entries by it).
RATE_CONTROL_VERSION = 2
DEFAULT_TOL = 0.04  # a sample stops once its rate is within 4% of the target (the promise is 5%)


def drops_converged(device: torch.device) -> bool:
    """Whether searches on ``device`` drop converged samples and stop early: on the CPU, where reading which samples
    are left costs nothing; elsewhere the loop keeps its fixed length, with no host sync."""
    return device.type == "cpu"


def closeness(bits: Tensor, target_bits: Tensor) -> Tensor:
    """``|log(bits / target)|``: the error measure every search minimises."""
    return (torch.log(bits.clamp_min(1.0)) - torch.log(target_bits.clamp_min(1.0))).abs()


def search(
    measure: Callable[[Tensor, Tensor], Tensor],
    target_bits: Tensor,
    low: float,
    high: float,
    *,
    discrete: bool,
    increasing: bool = True,
    start: Tensor | float | None = None,
    slope: Tensor | float | None = None,
    tol: float = DEFAULT_TOL,
    steps: int | None = None,
    early_stop: bool | None = None,
    step: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Finds per-sample levels whose measured bits are closest to ``target_bits``.

    Args:
        measure: ``measure(level, active)`` returns ``(B,)`` bits at ``(B,)`` levels; entries where ``active`` is
            False are ignored (a codec may skip them).
        target_bits: ``(B,)`` targets in bits, > 0.
        low: the lowest level of the range.
        high: the highest level of the range.
        discrete: search integers only.
        increasing: whether bits grow with the level.
        start: first level tried, per sample or one number (default: the middle of the range).
        slope: prior ``|d log(bits) / d level|`` used to extrapolate from the first point (default: a slope that
            spans a factor of 30 in rate over the range).
        tol: relative rate error at which a sample stops.
        steps: measurements per sample at most, the first included (default 10; discrete: enough to bisect).
        early_stop: drop converged samples and end the loop once none is left. Default: on CPU tensors only (it
            reads values on the host).
        step: candidate levels are ``low + k * step`` (discrete levels: 1). A grid makes the choice robust to
            last-bit differences between devices and bounds the search.

    Returns:
        ``(level, bits)`` of the best candidate measured per sample, both ``(B,)`` float32.
    """
    device, batch = target_bits.device, target_bits.shape[0]
    if early_stop is None:
        early_stop = drops_converged(device)
    span = float(high - low)
    if steps is None:
        steps = max(10, math.ceil(math.log2(span + 1)) + 3) if discrete else 10
    sign = 1.0 if increasing else -1.0
    log_target = torch.log(target_bits.to(torch.float32).clamp_min(1.0))
    stop_err = math.log1p(tol)
    zeros = torch.zeros(batch, device=device)
    falses = torch.zeros(batch, dtype=torch.bool, device=device)

    def full(value: Tensor | float | None, default: float) -> Tensor:
        value = default if value is None else value
        return (value if isinstance(value, Tensor) else torch.tensor(float(value))).to(device, torch.float32).expand(
            batch).clone()

    level = full(start, (low + high) / 2).clamp(low, high)
    prior = full(slope, math.log(30.0) / span).clamp_min(1e-6)
    if discrete:
        step = 1.0
    if step is not None:
        level = _snap(level, low, step)
    lo, hi = zeros + low, zeros + high
    f_lo, f_hi = zeros.clone(), zeros.clone()
    lo_known, hi_known = falses.clone(), falses.clone()
    # The last two measured points (p1 the latest): their secant extrapolates until the target is bracketed.
    p0, f0, p1, f1 = zeros.clone(), zeros.clone(), zeros.clone(), zeros.clone()
    points = zeros.clone()
    side = zeros.clone()  # +1 if hi moved last, -1 if lo moved
    best_level, best_bits, best_err = level.clone(), zeros.clone(), torch.full((batch,), math.inf, device=device)
    best_f = zeros.clone()
    active = torch.ones(batch, dtype=torch.bool, device=device)
    # Local pattern search once the bracketing search is over: probe best + direction * h; a probe that is not
    # better turns the direction, and after both directions failed h halves, down to the grid step.
    seen = torch.full((batch, steps), math.nan, device=device)  # every level measured, per sample
    polish, tried = falses.clone(), falses.clone()
    h, direction = zeros.clone(), zeros.clone()
    min_h = step if step is not None else 1e-3 * span

    for k in range(steps):
        if k > 0:
            level, stuck = _next_level(lo, hi, f_lo, f_hi, lo_known, hi_known, p0, f0, p1, f1, points, prior,
                                       low, high, step)
            begin = active & stuck & ~polish & (best_err > stop_err)
            h = torch.where(begin, _first_stride(best_level, seen, span, min_h), h)
            # Towards lower |f| if the rate were monotone; the pattern search tries the other side as well.
            direction = torch.where(begin, torch.where(best_f > 0, -1.0, 1.0), direction)
            polish = polish | begin
            probe, h, direction, tried, done = _probe(best_level, h, direction, tried, seen, polish, low, high,
                                                      step, min_h)
            level = torch.where(polish, probe, level)
            stuck = torch.where(polish, done, stuck)
            active = active & ~stuck
            if early_stop and not bool(active.any()):
                break
        seen[:, k] = torch.where(active, level, math.nan)
        bits = measure(level, active).to(torch.float32)
        f = sign * (torch.log(bits.clamp_min(1.0)) - log_target)
        better = active & (f.abs() < best_err)
        best_level = torch.where(better, level, best_level)
        best_bits = torch.where(better, bits, best_bits)
        best_err = torch.where(better, f.abs(), best_err)
        best_f = torch.where(better, f, best_f)
        # A probe that did not improve: try the other direction, then a shorter stride.
        failed = active & polish & ~better
        h = torch.where(failed & tried, h / 2, h)
        direction = torch.where(failed & ~tried, -direction, direction)
        tried = torch.where(active & polish, failed & ~tried, tried)
        below = f < 0  # the rate at this level is under the target: the answer lies above it
        # Illinois: when the same end survives twice, halve its value so that the secant moves on.
        f_hi = torch.where(active & below & (side < 0) & hi_known, f_hi / 2, f_hi)
        f_lo = torch.where(active & ~below & (side > 0) & lo_known, f_lo / 2, f_lo)
        move_lo, move_hi = active & below, active & ~below
        lo, f_lo, lo_known = torch.where(move_lo, level, lo), torch.where(move_lo, f, f_lo), lo_known | move_lo
        hi, f_hi, hi_known = torch.where(move_hi, level, hi), torch.where(move_hi, f, f_hi), hi_known | move_hi
        side = torch.where(move_lo, -1.0, torch.where(move_hi, 1.0, side))
        p0, f0 = torch.where(active, p1, p0), torch.where(active, f1, f0)
        p1, f1 = torch.where(active, level, p1), torch.where(active, f, f1)
        points = points + active.to(points.dtype)
        active = active & (best_err > stop_err)
        if early_stop and not bool(active.any()):
            break
    return best_level, best_bits


def _first_stride(best: Tensor, seen: Tensor, span: float, min_h: float) -> Tensor:
    """Half the distance from the best level to the nearest other level measured (a quarter of the range if none)."""
    gap = (seen - best[:, None]).abs()
    gap = torch.where(torch.isnan(gap) | (gap <= 1e-9 * max(span, 1.0)), math.inf, gap).amin(1)
    return torch.where(torch.isfinite(gap), gap / 2, span / 4).clamp_min(min_h)


def _probe(best, h, direction, tried, seen, polish, low, high, step, min_h):
    """The pattern search's next level per sample, skipping levels measured already (their rate is known to be no
    better than the best), and whether a sample has nothing left to try."""
    for _ in range(4):
        probe = (best + direction * h).clamp(low, high)
        if step is not None:
            probe = _snap(probe, low, step).clamp(low, high)
        known = ((seen - probe[:, None]).abs() <= 1e-6 * (1.0 + probe.abs()[:, None])).any(1)
        skip = polish & known & (h >= min_h * (1 - 1e-6))
        h = torch.where(skip & tried, h / 2, h)
        direction = torch.where(skip & ~tried, -direction, direction)
        tried = torch.where(skip, ~tried, tried)
    done = known | (h < min_h * (1 - 1e-6))
    return probe, h, direction, tried, done


def _snap(level: Tensor, low: float, step: float) -> Tensor:
    return low + torch.round((level - low) / step) * step


def _next_level(lo, hi, f_lo, f_hi, lo_known, hi_known, p0, f0, p1, f1, points, prior, low, high, step):
    """The next candidate per sample, and whether a sample has nothing left to try."""
    bracketed = lo_known & hi_known
    width = hi - lo
    secant = hi - f_hi * width / (f_hi - f_lo)
    inside = (secant > lo + 1e-3 * width) & (secant < hi - 1e-3 * width) & torch.isfinite(secant)
    in_bracket = torch.where(inside, secant, (lo + hi) / 2)
    # Not bracketed: every point so far is on one side; extrapolate from the last one with the slope of the last
    # two points (the prior's slope for the first step), overshooting a little so that the next point brackets.
    measured = (f1 - f0) / (p1 - p0)
    slope = torch.where((points >= 2) & torch.isfinite(measured) & (measured > 1e-6), measured, prior)
    outward = p1 - 1.15 * f1 / slope
    outward = torch.minimum(torch.maximum(outward, lo), hi)
    level = torch.where(bracketed, in_bracket, outward)
    # The target lies beyond a range end that was measured already: nothing better is reachable.
    stuck = (lo_known & (lo >= high)) | (hi_known & (hi <= low))
    if step is not None:
        level = _snap(level, low, step)
        level = torch.where(lo_known, torch.maximum(level, lo + step), level)
        level = torch.where(hi_known, torch.minimum(level, hi - step), level)
        stuck = stuck | (bracketed & (width <= step * 1.0001))
    return level.clamp(low, high), stuck


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
    """:func:`search` for a ``measure(level)`` that always runs the whole batch (no warm start)."""
    return search(lambda level, active: measure(level), target_bits, low, high, discrete=discrete,
                  increasing=increasing, steps=steps)


def search_levels(codec, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Generic rate control for any :class:`~augcomp.codecs.Codec`: :func:`search` over its level range.

    Each step runs the whole codec on the active samples; codecs with a cheaper rate model override
    ``Codec._fit_bpp``.

    Shape:
        - x: ``(B, C, H, W)`` as the codec's ``_compress`` takes it.
        - bpp: ``(B,)`` float32 targets.
        - returns image ``(B, C, H, W)``, bits ``(B,)``, level ``(B,)``.
    """
    target_bits = bpp * float(x.shape[-2] * x.shape[-1])
    entry = codec.entry

    def measure(level: Tensor, active: Tensor) -> Tensor:
        with torch.no_grad():
            return codec._compress(x, level)[1]

    level, _ = search(measure, target_bits, *entry.level_range, discrete=entry.discrete,
                      increasing=entry.rate_increases_with_level)
    image, bits = codec._compress(x, level)
    return image, bits, level
