"""8x8 block DCTs as matrix products.

Two families:

- ``islow``: libjpeg's default integer DCT (jfdctint.c / jidctint.c). Each of its two passes is an integer linear
  map followed by one rounding shift, so each pass is an exact float64 matrix product plus a rounding step. This
  reproduces libjpeg's coefficients and pixels bit for bit.
- ``ortho``: the orthonormal DCT-II basis (``torch_dct.dct_2d(norm="ortho")`` per block), for smooth gradients.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from augcomp.functional._cache import constant_cache

__all__ = [
    "blockify",
    "unblockify",
    "dct_matrix",
    "block_dct",
    "block_idct",
    "fdct_islow",
    "idct_islow",
    "range_limit_idct",
]

_CONST_BITS = 13
_PASS1_BITS = 2


def _fix(v: float) -> int:
    return int(v * (1 << _CONST_BITS) + 0.5)


_F0298, _F0390, _F0541, _F0765 = _fix(0.298631336), _fix(0.390180644), _fix(0.541196100), _fix(0.765366865)
_F0899, _F1175, _F1501, _F1847 = _fix(0.899976223), _fix(1.175875602), _fix(1.501321110), _fix(1.847759065)
_F1961, _F2053, _F2562, _F3072 = _fix(1.961570560), _fix(2.053119869), _fix(2.562915447), _fix(3.072711026)


def _fdct_1d(d: list[int]) -> list[int]:
    """One pass of jfdctint.c before its final rounding; even outputs 0 and 4 are not yet shifted."""
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    out = [0] * 8
    out[0] = tmp10 + tmp11
    out[4] = tmp10 - tmp11
    z1 = (tmp12 + tmp13) * _F0541
    out[2] = z1 + tmp13 * _F0765
    out[6] = z1 - tmp12 * _F1847
    z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
    z5 = (z3 + z4) * _F1175
    tmp4, tmp5, tmp6, tmp7 = tmp4 * _F0298, tmp5 * _F2053, tmp6 * _F3072, tmp7 * _F1501
    z1, z2, z3, z4 = -z1 * _F0899, -z2 * _F2562, -z3 * _F1961 + z5, -z4 * _F0390 + z5
    out[7] = tmp4 + z1 + z3
    out[5] = tmp5 + z2 + z4
    out[3] = tmp6 + z2 + z3
    out[1] = tmp7 + z1 + z4
    return out


def _idct_1d(c: list[int]) -> list[int]:
    """One pass of jidctint.c before its final rounding."""
    z2, z3 = c[2], c[6]
    z1 = (z2 + z3) * _F0541
    tmp2 = z1 - z3 * _F1847
    tmp3 = z1 + z2 * _F0765
    tmp0 = (c[0] + c[4]) << _CONST_BITS
    tmp1 = (c[0] - c[4]) << _CONST_BITS
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    t0, t1, t2, t3 = c[7], c[5], c[3], c[1]
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * _F1175
    t0, t1, t2, t3 = t0 * _F0298, t1 * _F2053, t2 * _F3072, t3 * _F1501
    z1, z2, z3, z4 = -z1 * _F0899, -z2 * _F2562, -z3 * _F1961 + z5, -z4 * _F0390 + z5
    t0, t1, t2, t3 = t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4
    return [tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0, tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3]


def _matrix_of(fn) -> list[list[int]]:
    cols = [fn([int(i == j) for i in range(8)]) for j in range(8)]
    return [[cols[j][i] for j in range(8)] for i in range(8)]


@constant_cache
def _islow_tables(device: torch.device) -> dict[str, Tensor]:
    fwd = torch.tensor(_matrix_of(_fdct_1d), dtype=torch.float64)
    inv = torch.tensor(_matrix_of(_idct_1d), dtype=torch.float64)
    # Pass 1 of the forward DCT shifts outputs 0 and 4 left by PASS1_BITS and rounds the others by
    # CONST_BITS - PASS1_BITS; express both as "multiply, then round-shift by s".
    even = torch.tensor([1, 0, 0, 0, 1, 0, 0, 0], dtype=torch.bool)
    fwd1 = torch.where(even[:, None], fwd * (1 << _PASS1_BITS) * (1 << (_CONST_BITS - _PASS1_BITS)), fwd)
    fwd2 = torch.where(even[:, None], fwd * (1 << _CONST_BITS), fwd)
    return {
        "fwd1": fwd1.to(device),  # rows pass, round-shift by CONST_BITS - PASS1_BITS
        "fwd2": fwd2.to(device),  # columns pass, round-shift by CONST_BITS + PASS1_BITS
        "inv": inv.to(device),  # both passes, shifts CONST_BITS - PASS1_BITS then CONST_BITS + PASS1_BITS + 3
    }


def _descale(x: Tensor, n: int) -> Tensor:
    # libjpeg's DESCALE: add half, arithmetic shift right (floor division by a power of two).
    return torch.floor((x + float(1 << (n - 1))) * (1.0 / (1 << n)))


def _left_mm(m: Tensor, x: Tensor) -> Tensor:
    """``m @ x`` for a fixed 8x8 ``m`` as one large matrix product (batched 8x8 products are slow on CPU)."""
    return (x.transpose(-1, -2) @ m.T).transpose(-1, -2)


def fdct_islow(blocks: Tensor) -> Tensor:
    """libjpeg's islow forward DCT, bit-exact.

    Args:
        blocks: level-shifted samples (sample - 128), integer-valued.

    Returns:
        float64 coefficients in libjpeg's scaling (8x the orthonormal DCT), integer-valued.

    Shape:
        - blocks: ``(..., 8, 8)``; returns the same shape, indexed ``[..., v, u]`` (row frequency, column frequency).
    """
    t = _islow_tables(blocks.device)
    x = blocks.to(torch.float64)
    rows = _descale(x @ t["fwd1"].T, _CONST_BITS - _PASS1_BITS)
    return _descale(_left_mm(t["fwd2"], rows), _CONST_BITS + _PASS1_BITS)


def range_limit_idct(x: Tensor) -> Tensor:
    """libjpeg's post-IDCT range limit (``range_limit[x & RANGE_MASK]`` with the +128 centring), exactly."""
    idx = torch.remainder(x, 1024.0)
    return torch.where(idx < 128, idx + 128, torch.where(idx < 512, 255.0, torch.where(idx < 896, 0.0, idx - 896)))


def idct_islow(coefficients: Tensor) -> Tensor:
    """libjpeg's islow inverse DCT with range limiting, bit-exact.

    Args:
        coefficients: dequantized coefficients (quantized value times table entry), integer-valued.

    Returns:
        float64 samples in [0, 255], integer-valued.

    Shape:
        - coefficients: ``(..., 8, 8)`` indexed ``[..., v, u]``; returns the same shape.
    """
    t = _islow_tables(coefficients.device)
    c = coefficients.to(torch.float64)
    cols = _descale(_left_mm(t["inv"], c), _CONST_BITS - _PASS1_BITS)
    out = _descale(cols @ t["inv"].T, _CONST_BITS + _PASS1_BITS + 3)
    return range_limit_idct(out)


@constant_cache
def _ortho(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis.to(device=device, dtype=dtype)


def dct_matrix(n: int = 8, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The orthonormal DCT-II matrix ``D`` (``D @ v`` transforms a length-``n`` vector).

    Shape:
        - returns ``(n, n)``.
    """
    return _ortho(n, torch.device(device or "cpu"), dtype)


def block_dct(blocks: Tensor) -> Tensor:
    """Orthonormal 2-D DCT of each 8x8 block, equal to ``torch_dct.dct_2d(blocks, norm="ortho")``.

    Shape:
        - blocks: ``(..., 8, 8)`` float; returns the same shape.
    """
    d = dct_matrix(8, blocks.device, blocks.dtype)
    return _left_mm(d, blocks) @ d.T


def block_idct(coefficients: Tensor) -> Tensor:
    """Inverse of :func:`block_dct`.

    Shape:
        - coefficients: ``(..., 8, 8)`` float; returns the same shape.
    """
    d = dct_matrix(8, coefficients.device, coefficients.dtype)
    return _left_mm(d.T, coefficients) @ d


def blockify(plane: Tensor) -> Tensor:
    """Splits planes into 8x8 blocks.

    Shape:
        - plane: ``(B, H, W)`` with H and W multiples of 8.
        - returns: ``(B, H // 8, W // 8, 8, 8)``.
    """
    b, h, w = plane.shape
    return plane.reshape(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)


def unblockify(blocks: Tensor) -> Tensor:
    """Inverse of :func:`blockify`.

    Shape:
        - blocks: ``(B, Hb, Wb, 8, 8)``; returns ``(B, Hb * 8, Wb * 8)``.
    """
    b, hb, wb = blocks.shape[:3]
    return blocks.permute(0, 1, 3, 2, 4).reshape(b, hb * 8, wb * 8)
