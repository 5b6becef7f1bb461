"""``compress``: the one public call that validates an input and compresses it with any registered codec.

Every entry point (``Compress``, the CLI, the recipes) goes through here, so shapes, dtypes, values and levels are
checked in one place; codecs receive a checked ``(B, C, H, W)`` batch and per-sample levels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from augcomp import codecs
from augcomp._checks import check_image, per_sample
from augcomp._errors import ArgumentError, ArgumentTypeError
from augcomp.rate import DEFAULT_TOL, closeness

__all__ = ["ABOVE", "BELOW", "CompressResult", "compress", "decompress"]

BELOW, ABOVE = 1, 2  # CompressResult.reason: the target is below (above) the rate reached

Spec = float | Sequence[float] | Tensor


@dataclass
class CompressResult:
    """What :func:`compress` returns.

    Attributes:
        image: the decoded image, same shape, dtype and device as the input.
        bpp: coded bits divided by ``H * W`` of the original size, float32, one per sample (the input's leading
            dimensions: ``(B,)`` for ``(B, C, H, W)``, ``()`` for ``(C, H, W)``).
        level: the level used (JPEG quality, WebP quality, neural quality index, VBR gain, ...), float32, per sample.
        bits: the coded bits themselves, float32, per sample.
        missed: with ``bpp=``, bool per sample: the rate reached is further from the target than the codec's
            tolerance (``tol``, default :data:`augcomp.rate.DEFAULT_TOL`). None with ``quality=``.
        reason: with ``bpp=``, int8 per sample: 0 where the target was met, :data:`BELOW` where the rate reached is
            above the target (the target lies below the rates the codec reaches for this image, or, for a codec
            whose levels are coarse, between two neighbouring levels' rates), :data:`ABOVE` the other way. None with
            ``quality=``. :attr:`reasons` gives them as words.
        files: with ``files=True``, the coded file of each sample (``bytes``, samples in row-major order of the
            leading dimensions): the codec's own file where ``codecs.entry(codec).file_kind == "file"``. Decoding one
            with :func:`decompress` gives that sample's pixels (as uint8), and its payload is ``bits``. ``None``
            otherwise.
    """

    image: Tensor
    bpp: Tensor
    level: Tensor
    bits: Tensor
    missed: Tensor | None = None
    reason: Tensor | None = None
    files: list[bytes] | None = None

    @property
    def reasons(self) -> list | str | None:
        """:attr:`reason` as words (``None``, ``"below"`` or ``"above"``), nested like the samples; reads the values
        on the host, so ask only when they are needed."""
        if self.reason is None:
            return None
        words = {0: None, BELOW: "below", ABOVE: "above"}

        def word(values: Any) -> Any:
            return [word(v) for v in values] if isinstance(values, list) else words[int(values)]

        return word(self.reason.tolist())


def compress(
    x: Tensor,
    codec: str = "jpeg",
    *,
    quality: Spec | None = None,
    bpp: Spec | None = None,
    grad: str = "ste",
    generator: torch.Generator | None = None,
    files: bool = False,
    **codec_options: Any,
) -> CompressResult:
    """Compresses and decodes ``x`` with a registered codec, at a level or at a target bitrate per sample.

    Args:
        x: images ``(..., C, H, W)``: leading dimensions are samples. Floats in [0, 1] or uint8 in [0, 255];
            channels-first RGB, or grayscale (C = 1) where the codec's entry lists it.
        codec: a name from :func:`augcomp.codecs.list`.
        quality: the codec's level (``codecs.entry(codec).level_name`` and ``.level_range``): a number, a
            ``(lo, hi)`` range drawn uniformly per sample, or a tensor with one value per sample.
        bpp: target bits per pixel, finite and > 0: a number, a ``(lo, hi)`` range drawn log-uniformly per sample,
            or a tensor with one value per sample. Each sample gets the level whose coded bpp is closest to its
            target; a target outside a sample's reachable range gets the level of least (most) rate found, and
            the result's ``missed`` and ``reason`` say so.
        grad: one of the codec's ``grad_modes``: ``"ste"`` (straight-through), ``"cubic"`` (JPEG only: the cubic
            rounding surrogate) or ``"none"``.
        generator: random generator for ranges.
        files: also return each sample's coded file (:attr:`CompressResult.files`). The file is made on the
            host (one sample at a time for codecs whose ``batch_invariant`` is False), so this is for storing coded
            images, not for a training step.
        **codec_options: passed to the codec builder (``subsampling="444"``, ``include_header=True``, ...).

    Returns:
        A :class:`CompressResult`.

    Shape:
        - x: ``(..., C, H, W)`` with at least 3 dimensions; ``(C, H, W)`` is one sample.
        - image: as ``x``; bpp, level, bits, missed, reason: ``x.shape[:-3]``.

    Raises:
        ValueError: neither or both of ``quality`` and ``bpp``; out-of-range levels or targets; non-finite pixels
            or floats outside [0, 1] (checked on CPU tensors); unknown codec or bad option.
        TypeError: unsupported dtype or a non-tensor input.
        augcomp.codecs.MissingExtraError: the codec's optional package is not installed.
    """
    if (quality is None) == (bpp is None):
        raise ArgumentError("give exactly one of quality= and bpp= (a number, a (lo, hi) range or a tensor)")
    module = codecs.get(codec, grad=grad, **codec_options)
    entry = module.entry
    x4, lead = check_image(x, "x", entry.channels, min_size=entry.min_size, codec=entry.name)
    batch, device = x4.shape[0], x4.device
    pixels = float(x4.shape[-2] * x4.shape[-1])
    if quality is not None:
        lo, hi = entry.level_range
        level = per_sample(quality, batch, device, entry.level_name, lo, hi, generator=generator, lead=lead)
        if entry.discrete:
            level = torch.round(level)  # the level actually used, e.g. when drawn from a range
        if batch == 0:
            image, bits, coded = x4.clone(), torch.zeros(0, device=device), []
        elif files:
            image, bits, coded = module.compress_files(x4, level)
        else:
            image, bits = module(x4, level)
    else:
        target = per_sample(bpp, batch, device, "bpp", 0.0, float("inf"), log=True, generator=generator,
                            low_inclusive=False, high_inclusive=False, lead=lead)
        if batch == 0:
            image, bits, level = x4.clone(), torch.zeros(0, device=device), torch.zeros(0, device=device)
            coded = []
        elif files:
            image, bits, level, coded = module.fit_bpp_files(x4, target)
        else:
            image, bits, level = module.fit_bpp(x4, target)
    bits = bits.to(torch.float32)
    bpp_out = bits / pixels
    missed = reason = None
    if bpp is not None:
        # Tensor arithmetic only: no host sync on accelerators.
        tol = float(getattr(module, "tol", DEFAULT_TOL))
        error = closeness(bpp_out * pixels, target * pixels)
        missed = error > math.log1p(tol) + 1e-6
        reason = torch.where(missed, torch.where(bpp_out > target, BELOW, ABOVE), 0).to(torch.int8).reshape(lead)
        missed = missed.reshape(lead)
    return CompressResult(image=image.reshape(x.shape), bpp=bpp_out.reshape(lead),
                          level=level.to(torch.float32).reshape(lead), bits=bits.reshape(lead), missed=missed,
                          reason=reason, files=list(coded) if files else None)


def decompress(data: bytes, codec: str = "jpeg", *, channels: int = 3, **codec_options: Any) -> Tensor:
    """Decodes one coded file of :func:`compress` (``files=True``) with the codec's own decoder.

    Args:
        data: the file's bytes.
        codec: the codec that wrote it.
        channels: channels of the image that was coded (1 or 3; codecs that code grayscale as RGB need it).
        **codec_options: the options the file was coded with, where decoding needs them (neural ``weights=``).

    Returns:
        The image, uint8 in [0, 255] on the CPU.

    Shape:
        - output: ``(channels, H, W)``.

    Raises:
        ValueError: unknown codec, bad option, or ``channels`` the codec does not take.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ArgumentTypeError(f"data must be bytes (a coded file), got {type(data).__name__}")
    module = codecs.get(codec, **codec_options)
    if channels not in module.entry.channels:
        raise ArgumentError(f"channels must be one of {module.entry.channels} for codec {codec!r}, got {channels!r}")
    return module.decode_file(bytes(data), channels)
