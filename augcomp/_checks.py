"""Input validation and pixel-range conversion shared by every layer.

Pixel-range convention: floating tensors hold values in [0, 1]; uint8 tensors hold values in [0, 255].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

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


def check_image(x: Tensor, name: str = "x", channels: Sequence[int] = (1, 3)) -> tuple[Tensor, bool]:
    """Checks an image tensor and returns it batched.

    Args:
        x: image, ``(B, C, H, W)`` or ``(C, H, W)``, float in [0, 1] or uint8 in [0, 255].
        name: argument name used in error messages.
        channels: accepted channel counts.

    Returns:
        ``(x4, unbatched)``: ``x`` with a batch dimension, and whether one was added.

    Raises:
        TypeError: ``x`` is not a tensor or has a dtype other than uint8/float16/bfloat16/float32/float64.
        ValueError: wrong number of dimensions or channels, an empty spatial size, or NaN values.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W) or (C, H, W), got {type(x).__name__}")
    if x.dtype != torch.uint8 and x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be uint8 in [0, 255] or float (float16, bfloat16, float32, float64) in [0, 1], "
            f"got dtype {x.dtype}"
        )
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    unbatched = x.ndim == 3
    x4 = x.unsqueeze(0) if unbatched else x
    if x4.shape[1] not in channels:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, channels))} channels (channels-first), got shape {tuple(x.shape)}"
        )
    if x4.shape[-1] == 0 or x4.shape[-2] == 0:
        raise ValueError(f"{name} must have H >= 1 and W >= 1, got shape {tuple(x.shape)}")
    if x4.is_floating_point() and _check_values(x4) and bool(torch.isnan(x4).any()):
        raise ValueError(f"{name} contains NaN; expected finite values in [0, 1]")
    return x4, unbatched


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
) -> Tensor:
    """Turns a number, a ``(lo, hi)`` range or a ``(B,)`` tensor into a ``(B,)`` float32 tensor on ``device``.

    A range is sampled per sample, uniformly (or log-uniformly with ``log=True``), on the device.
    Values must lie in ``[low, high]`` (``(low, high]`` with ``low_inclusive=False``).
    """
    lo_txt = "[" if low_inclusive else "("
    accepted = f"a number in {lo_txt}{low:g}, {high:g}], a (lo, hi) range inside it, or a (B,) tensor"
    if isinstance(value, Tensor):
        if value.ndim == 0:
            value = value.expand(batch)
        if value.shape != (batch,):
            raise ValueError(f"{name} as a tensor must have shape ({batch},), got {tuple(value.shape)}; {accepted}")
        out = value.to(device=device, dtype=torch.float32)
        if _check_values(out):
            bad = torch.isnan(out) | (out > high) | ((out < low) if low_inclusive else (out <= low))
            if bool(bad.any()):
                raise ValueError(f"{name} must be {accepted}; got values {out[bad][:4].tolist()}")
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_number(float(value), name, low, high, low_inclusive, accepted)
        return torch.full((batch,), float(value), device=device, dtype=torch.float32)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        lo, hi = float(value[0]), float(value[1])
        for v in (lo, hi):
            _check_number(v, name, low, high, low_inclusive, accepted)
        if lo > hi:
            raise ValueError(f"{name} range must have lo <= hi, got ({lo:g}, {hi:g})")
        u = torch.rand(batch, device=device if generator is None else generator.device, generator=generator)
        u = u.to(device)
        if log:
            return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        return lo + u * (hi - lo)
    raise ValueError(f"{name} must be {accepted}; got {value!r}")


def _check_number(v: float, name: str, low: float, high: float, low_inclusive: bool, accepted: str) -> None:
    ok = (v >= low if low_inclusive else v > low) and v <= high
    if not ok or v != v:
        raise ValueError(f"{name} must be {accepted}; got {v:g}")
