"""IJG quantization tables, libjpeg's quantizer, and rounding surrogates for gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from augcomp.functional._cache import constant_cache

__all__ = [
    "LUMA_TABLE",
    "CHROMA_TABLE",
    "ZIGZAG",
    "quality_scale",
    "quant_tables",
    "quantize_islow",
    "ste_round",
    "cubic_round",
]

# Annex K tables in natural (row-major) order, as libjpeg's jcparam.c stores them.
LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
) + (99,) * 32  # fmt: skip

# ZIGZAG[k] is the natural index of the k-th coefficient in scan order.
ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip


def quality_scale(quality: Tensor) -> Tensor:
    """libjpeg's ``jpeg_quality_scaling`` in percent, interpolated linearly between integer qualities.

    At integer qualities this equals libjpeg exactly (including its integer division ``5000 / q``); between
    them the scale moves continuously, which gives rate control finer steps than integer qualities.

    Shape:
        - quality: ``(B,)`` in [1, 100]; returns ``(B,)`` float64.
    """
    q = quality.to(torch.float64).clamp(1, 100)
    lo = torch.floor(q)
    hi = torch.clamp(lo + 1, max=100)

    def ijg(v: Tensor) -> Tensor:
        return torch.where(v < 50, torch.floor(5000.0 / v), 200.0 - 2.0 * v)

    frac = q - lo
    return ijg(lo) + frac * (ijg(hi) - ijg(lo))


@constant_cache
def _base_tables(device: torch.device) -> Tensor:
    return torch.tensor([LUMA_TABLE, CHROMA_TABLE], dtype=torch.float64).reshape(1, 2, 8, 8).to(device)


def quant_tables(quality: Tensor, device: torch.device | None = None) -> Tensor:
    """Baseline quantization tables for each sample, as ``jpeg_set_quality(force_baseline=TRUE)`` builds them.

    Shape:
        - quality: ``(B,)`` in [1, 100].
        - returns: ``(B, 2, 8, 8)`` float64 (luma, chroma), integer-valued in [1, 255], natural order.
    """
    device = device or quality.device
    base = _base_tables(device)
    scale = quality_scale(quality.to(device)).reshape(-1, 1, 1, 1)
    return torch.floor((base * scale + 50.0) / 100.0).clamp(1, 255)


def quantize_islow(coefficients: Tensor, table: Tensor) -> Tensor:
    """libjpeg's quantizer for islow coefficients: round half away from zero of ``c / (8 q)``.

    Args:
        coefficients: integer-valued islow coefficients (8x orthonormal scaling).
        table: matching quantization table entries, broadcastable.

    Shape:
        - coefficients and table broadcast together; returns their broadcast shape (float64, integer-valued).
    """
    divisor = table * 8.0
    mag = torch.floor((coefficients.abs() + divisor * 0.5) / divisor)
    return torch.where(coefficients < 0, -mag, mag)


def ste_round(x: Tensor) -> Tensor:
    """Rounds in the forward pass; the gradient passes straight through."""
    return x + (torch.round(x) - x).detach()


def cubic_round(x: Tensor) -> Tensor:
    """Shin & Song's surrogate ``round(x) + (x - round(x)) ** 3``; its gradient is ``3 (x - round(x)) ** 2``."""
    r = torch.round(x).detach()
    return r + (x - r) ** 3
