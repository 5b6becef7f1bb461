"""``compress``: one call that compresses a batch with any registered codec at a quality or a target bpp."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from augcomp._checks import check_image, from_float01, per_sample

__all__ = ["CompressResult", "compress"]

Spec = float | Sequence[float] | Tensor


@dataclass
class CompressResult:
    """What :func:`compress` returns.

    Attributes:
        image: the decoded image, same shape, dtype and device as the input.
        bpp: ``(B,)`` float32, coded bits divided by ``H * W`` of the original size (``()`` if unbatched).
        level: ``(B,)`` float32, the level used: JPEG quality, neural quality index or VBR scale.
        bits: ``(B,)`` float32, the coded bits themselves.
    """

    image: Tensor
    bpp: Tensor
    level: Tensor
    bits: Tensor


def compress(
    x: Tensor,
    codec: str = "jpeg",
    *,
    quality: Spec | None = None,
    bpp: Spec | None = None,
    grad: str = "ste",
    generator: torch.Generator | None = None,
    **codec_options: Any,
) -> CompressResult:
    """Compresses and decodes ``x`` with a registered codec.

    Args:
        x: image batch. Floats in [0, 1] or uint8 in [0, 255], channels-first RGB (or grayscale for JPEG).
        codec: a name from :func:`augcomp.codecs.list`.
        quality: the codec level (JPEG quality in [1, 100], neural quality index, VBR scale): a number, a
            ``(lo, hi)`` range sampled uniformly per sample, or a ``(B,)`` tensor.
        bpp: target bits per pixel, > 0: a number, a ``(lo, hi)`` range sampled log-uniformly per sample, or a
            ``(B,)`` tensor. Each sample gets the level whose coded bpp is closest to its target.
        grad: ``"ste"`` (straight-through), ``"cubic"`` (JPEG only: the cubic rounding surrogate) or ``"none"``.
        generator: random generator for ranges.
        **codec_options: passed to the codec builder (``subsampling="444"``, ``include_header=True``, ...).

    Returns:
        A :class:`CompressResult`.

    Shape:
        - x: ``(B, C, H, W)`` or ``(C, H, W)``.
        - image: as ``x``; bpp, level, bits: ``(B,)`` (scalars if ``x`` is unbatched).

    Raises:
        ValueError: neither or both of ``quality`` and ``bpp``; out-of-range values; unknown codec.
        TypeError: unsupported dtype.
    """
    from augcomp import codecs

    if (quality is None) == (bpp is None):
        raise ValueError("give exactly one of quality= and bpp= (a number, a (lo, hi) range or a (B,) tensor)")
    module = codecs.get(codec, grad=grad, **codec_options)
    x4, unbatched = check_image(x, "x", module.channels)
    batch, device = x4.shape[0], x4.device
    height, width = x4.shape[-2:]
    if quality is not None:
        lo, hi = module.entry.level_range
        level = per_sample(quality, batch, device, "quality", lo, hi, generator=generator)
        if module.entry.discrete:
            level = torch.round(level)  # the level actually used, e.g. when drawn from a range
        if batch == 0:
            image, bits = x4.clone(), torch.zeros(0, device=device)
        else:
            image, bits = module._compress(module.prepare(x4), level)
    else:
        target = per_sample(bpp, batch, device, "bpp", 0.0, float("inf"), log=True, generator=generator,
                            low_inclusive=False)
        if batch == 0:
            image, bits, level = x4.clone(), torch.zeros(0, device=device), torch.zeros(0, device=device)
        else:
            image, bits, level = module.fit_bpp(module.prepare(x4), target)
    if batch > 0:
        image = from_float01(image, x.dtype)
    bits = bits.to(torch.float32)
    result = CompressResult(image=image, bpp=bits / float(height * width), level=level.to(torch.float32), bits=bits)
    if unbatched:
        result = CompressResult(result.image[0], result.bpp[0], result.level[0], result.bits[0])
    return result
