"""JFIF colour conversion, exactly as libjpeg-turbo computes it (jccolor.c, jdcolor.c), and its float twin.

Integer functions take and return integer-valued tensors (any integer or float dtype) in [0, 255]; they
reproduce libjpeg's 16-bit fixed-point tables bit for bit. Float functions are the smooth versions used for
gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rgb_to_ycbcr_int", "ycbcr_to_rgb_int", "rgb_to_ycbcr_float", "ycbcr_to_rgb_float"]

_SCALE = 1 << 16
_HALF = 1 << 15


def _fix(v: float) -> int:
    return int(v * _SCALE + 0.5)


# Encoder constants (jccolor.c).
_R_Y, _G_Y, _B_Y = _fix(0.29900), _fix(0.58700), _fix(0.11400)
_R_CB, _G_CB, _B_CB = -_fix(0.16874), -_fix(0.33126), _fix(0.5)
_R_CR, _G_CR, _B_CR = _fix(0.5), -_fix(0.41869), -_fix(0.08131)
_CBCR_OFFSET = 128 << 16
# Decoder constants (jdcolor.c).
_CR_R, _CB_B = _fix(1.40200), _fix(1.77200)
_CR_G, _CB_G = -_fix(0.71414), -_fix(0.34414)


def rgb_to_ycbcr_int(rgb: Tensor) -> Tensor:
    """RGB to JFIF YCbCr with libjpeg's fixed-point arithmetic.

    Shape:
        - rgb: ``(..., 3, H, W)``, integer-valued in [0, 255].
        - returns: ``(..., 3, H, W)`` int32 in [0, 255].
    """
    r, g, b = rgb.to(torch.int32).unbind(-3)
    y = (_R_Y * r + _G_Y * g + _B_Y * b + _HALF) >> 16
    cb = (_R_CB * r + _G_CB * g + _B_CB * b + (_CBCR_OFFSET + _HALF - 1)) >> 16
    cr = (_R_CR * r + _G_CR * g + _B_CR * b + (_CBCR_OFFSET + _HALF - 1)) >> 16
    return torch.stack((y, cb, cr), dim=-3)


def ycbcr_to_rgb_int(ycc: Tensor) -> Tensor:
    """JFIF YCbCr to RGB with libjpeg's tables and range limiting.

    Shape:
        - ycc: ``(..., 3, H, W)``, integer-valued in [0, 255].
        - returns: ``(..., 3, H, W)`` int32 in [0, 255].
    """
    y, cb, cr = ycc.to(torch.int32).unbind(-3)
    cb = cb - 128
    cr = cr - 128
    r = y + ((_CR_R * cr + _HALF) >> 16)
    g = y + ((_CB_G * cb + _HALF + _CR_G * cr) >> 16)
    b = y + ((_CB_B * cb + _HALF) >> 16)
    return torch.stack((r, g, b), dim=-3).clamp_(0, 255)


_RGB2YCC = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def _inverse(m: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, ...], ...]:
    inv = torch.linalg.inv(torch.tensor(m, dtype=torch.float64))
    return tuple(tuple(float(v) for v in row) for row in inv)


_YCC2RGB = _inverse(_RGB2YCC)
_OFFSET = (0.0, 128.0, 128.0)


def _mix(x: Tensor, m: tuple[tuple[float, ...], ...], before: tuple[float, ...], after: tuple[float, ...]) -> Tensor:
    # Elementwise channel mixing with Python constants: no device constants to copy, and faster on CPU than
    # einsum's batched matmul or a 1x1 convolution.
    a, b, c = (x[:, i] - before[i] if before[i] else x[:, i] for i in range(3))
    return torch.stack([row[0] * a + row[1] * b + row[2] * c + after[i] for i, row in enumerate(m)], dim=1)


def rgb_to_ycbcr_float(rgb: Tensor) -> Tensor:
    """Smooth RGB to YCbCr on the [0, 255] scale (chroma centred on 128).

    Shape:
        - rgb: ``(B, 3, H, W)`` float; returns the same shape.
    """
    return _mix(rgb, _RGB2YCC, (0.0, 0.0, 0.0), _OFFSET)


def ycbcr_to_rgb_float(ycc: Tensor) -> Tensor:
    """Smooth inverse of :func:`rgb_to_ycbcr_float`.

    Shape:
        - ycc: ``(B, 3, H, W)`` float; returns the same shape.
    """
    return _mix(ycc, _YCC2RGB, _OFFSET, (0.0, 0.0, 0.0))
