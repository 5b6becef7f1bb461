"""Input validation and pixel-range conversion shared by every layer.

Pixel-range convention: floating tensors hold values in [0, 1]; uint8 tensors hold values in [0, 255].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from augcomp._errors import ArgumentError, ArgumentTypeError

__all__ = ["FLOAT_DTYPES", "check_image", "to_float01", "from_float01", "per_sample", "set_value_checks"]

# Value checks (NaN, out-of-range tensors) read tensor contents. On CPU that is free; on an accelerator it
# would force a host sync in every training step, so there they run only when asked for.
_VALUE_CHECKS_ON_DEVICE = False


def set_value_checks(on_device: bool) -> None:
    """Turns value checks (NaN inputs, out-of-range level/bpp tensors) on or off for accelerator tensors.

    CPU tensors are always checked. Accelerator tensors are not by default, because reading their values costs a
    host sync per call.
    """
    global _VALUE_CHECKS_ON_DEVICE
    _VALUE_CHECKS_ON_DEVICE = bool(on_device)


def _check_values(t: Tensor) -> bool:
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or t.numel() == 0:
        return False
    return t.device.type == "cpu" or _VALUE_CHECKS_ON_DEVICE

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


# Floats may stray this far outside [0, 1] from rounding (e.g. after a normalisation round trip) and are clamped.
RANGE_SLACK = 1e-3


def check_image(
    x: Tensor, name: str = "x", channels: Sequence[int] = (1, 3), *, min_size: int = 1, codec: str | None = None
) -> tuple[Tensor, torch.Size]:
    """Checks an image tensor and returns it as one batch.

    Args:
        x: images ``(..., C, H, W)``, float in [0, 1] or uint8 in [0, 255]; leading dimensions are samples.
        name: argument name used in error messages.
        channels: accepted channel counts.
        min_size: smallest accepted height and width.
        codec: the codec name, for error messages.

    Returns:
        ``(x4, lead)``: ``x`` as ``(B, C, H, W)`` with ``B`` the product of the leading dimensions, and those
        leading dimensions (``()`` for a single ``(C, H, W)`` image).

    Raises:
        TypeError: ``x`` is not a tensor or has a dtype other than uint8/float16/bfloat16/float32/float64.
        ValueError: fewer than 3 dimensions, wrong channels, a size under ``min_size``; and, on CPU tensors (and
            on accelerators after :func:`set_value_checks`), non-finite values or floats outside [0, 1].
    """
    if not isinstance(x, Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor of shape (..., C, H, W), got {type(x).__name__}")
    if x.dtype != torch.uint8 and x.dtype not in FLOAT_DTYPES:
        raise ArgumentTypeError(
            f"{name} must be uint8 in [0, 255] or float (float16, bfloat16, float32, float64) in [0, 1], "
            f"got dtype {x.dtype}"
        )
    for_codec = f" for codec {codec!r}" if codec else ""
    if x.ndim < 3:
        raise ArgumentError(
            f"{name} must have shape (..., C, H, W) with C in {tuple(channels)}, got shape {tuple(x.shape)}; "
            "add the channel dimension for a single-channel image"
        )
    if x.shape[-3] not in channels:
        raise ArgumentError(
            f"{name} must have {' or '.join(map(str, channels))} channels (channels-first){for_codec}, "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[-1] < min_size or x.shape[-2] < min_size:
        raise ArgumentError(
            f"{name} must have H >= {min_size} and W >= {min_size}{for_codec}, got shape {tuple(x.shape)}"
        )
    if x.is_floating_point() and _check_values(x):
        values = x.detach()
        if not bool(torch.isfinite(values).all()):
            raise ArgumentError(f"{name} contains NaN or infinite values; expected finite floats in [0, 1]")
        lo, hi = (float(v) for v in torch.aminmax(values))
        if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
            raise ArgumentError(
                f"{name} must hold floats in [0, 1] (uint8 for [0, 255]), got values in [{lo:g}, {hi:g}]; "
                "divide by 255 or convert to uint8"
            )
    lead = x.shape[:-3]
    return x.reshape(-1, *x.shape[-3:]), lead


def to_float01(x: Tensor) -> Tensor:
    """uint8 [0, 255] or any float [0, 1] to float32 [0, 1]."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32) / 255.0
    return x.to(torch.float32)


def from_float01(y: Tensor, dtype: torch.dtype) -> Tensor:
    """float [0, 1] back to ``dtype`` (uint8 is rounded to [0, 255]); a uint8 ``y`` is returned as is."""
    if y.dtype == torch.uint8:
        return y
    if dtype == torch.uint8:
        return (y.detach() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return y.to(dtype)


def per_sample(
    value: float | Sequence[float] | Tensor,
    batch: int,
    device: torch.device,
    name: str,
    low: float,
    high: float,
    *,
    log: bool = False,
    generator: torch.Generator | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    lead: Sequence[int] | None = None,
) -> Tensor:
    """Turns a number, a ``(lo, hi)`` range or a per-sample tensor into a ``(B,)`` float32 tensor on ``device``.

    A range is sampled per sample, uniformly (or log-uniformly with ``log=True``), on the device. Values must lie
    in ``[low, high]`` (open ends with ``low_inclusive=False`` / ``high_inclusive=False``). A tensor may have shape
    ``(B,)``, the input's leading dimensions ``lead``, or ``()``.
    """
    accepted = f"a number in {_interval(low, high, low_inclusive, high_inclusive)}, a (lo, hi) range inside it, " \
               "or a tensor with one value per sample"
    if isinstance(value, Tensor):
        if value.ndim == 0:
            value = value.expand(batch)
        elif lead is not None and tuple(value.shape) == tuple(lead):
            value = value.reshape(batch)
        if value.shape != (batch,):
            raise ArgumentError(f"{name} as a tensor must have shape ({batch},), got {tuple(value.shape)}; {accepted}")
        if value.is_complex() or value.dtype == torch.bool:
            raise ArgumentTypeError(f"{name} as a tensor must be real numbers, got dtype {value.dtype}")
        out = value.to(device=device, dtype=torch.float32)
        if _check_values(out):
            bad = ~torch.isfinite(out) if not high_inclusive else torch.isnan(out)
            bad = bad | ((out > high) if high_inclusive else (out >= high))
            bad = bad | ((out < low) if low_inclusive else (out <= low))
            if bool(bad.any()):
                raise ArgumentError(f"{name} must be {accepted}; got values {out[bad][:4].tolist()}")
        return out
    if _is_number(value):
        _check_number(float(value), name, low, high, low_inclusive, high_inclusive, accepted)
        return torch.full((batch,), float(value), device=device, dtype=torch.float32)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_number(v) for v in value):
        lo, hi = float(value[0]), float(value[1])
        for v in (lo, hi):
            _check_number(v, name, low, high, low_inclusive, high_inclusive, accepted)
        if lo > hi:
            raise ArgumentError(f"{name} range must have lo <= hi, got ({lo:g}, {hi:g})")
        u = torch.rand(batch, device=device if generator is None else generator.device, generator=generator)
        u = u.to(device)
        if log:
            return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        return lo + u * (hi - lo)
    raise ArgumentError(f"{name} must be {accepted}; got {value!r}")


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _interval(low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> str:
    return f"{'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"


def _check_number(v: float, name: str, low: float, high: float, low_inclusive: bool, high_inclusive: bool,
                  accepted: str) -> None:
    ok = (v >= low if low_inclusive else v > low) and (v <= high if high_inclusive else v < high)
    if not ok or v != v:
        raise ArgumentError(f"{name} must be {accepted}; got {v:g}")
