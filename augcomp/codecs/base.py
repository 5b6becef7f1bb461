"""The ``Codec`` module every registry entry builds."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from augcomp._checks import from_float01, to_float01
from augcomp.codecs.registry import CodecEntry

__all__ = ["Codec", "GRAD_MODES"]

GRAD_MODES = ("ste", "cubic", "none")


class Codec(nn.Module):
    """A lossy image codec as a batched module that holds no per-call state.

    Inputs reach a codec already checked by :func:`augcomp.compress`, the one place that validates shapes, values
    and levels; a codec only converts dtypes (uint8 stays uint8 where :attr:`accepts_uint8`, any float becomes
    float32 in [0, 1]) and compresses. Subclasses implement :meth:`_compress` and may override :meth:`_fit_bpp`
    with something faster than the shared rate-control engine.

    Args:
        entry: the registry entry (its ``grad_modes`` lists the accepted ``grad``).
        grad: ``"ste"`` (straight-through), ``"cubic"`` (JPEG) or ``"none"``.

    Shape:
        - x: ``(B, C, H, W)``, ``C`` in ``entry.channels``; float in [0, 1] or uint8 in [0, 255].
        - level: ``(B,)`` float32 in ``entry.level_range`` (integers for discrete codecs).
        - output: image like ``x`` (shape, dtype, device); bits ``(B,)`` float32.
    """

    accepts_uint8 = False  # True: _compress/_fit_bpp take uint8 [0, 255] as is and return uint8 images

    def __init__(self, entry: CodecEntry, grad: str = "ste") -> None:
        super().__init__()
        if grad not in entry.grad_modes:
            raise ValueError(f"grad must be one of {entry.grad_modes} for codec {entry.name!r}, got {grad!r}")
        self.entry = entry
        self.grad = grad

    @property
    def name(self) -> str:
        return self.entry.name

    def forward(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        """Compresses each sample of a checked batch at its level; returns ``(image, bits)``."""
        image, bits = self._compress(self.prepare(x), level)
        return from_float01(image, x.dtype), bits.to(torch.float32)

    def fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Compresses each sample at the level whose bpp is closest to its target.

        Args:
            x: ``(B, C, H, W)`` checked batch.
            bpp: ``(B,)`` float32 targets, finite and > 0.

        Returns:
            ``(image, bits, level)``: image like ``x``, bits and level ``(B,)`` float32.
        """
        image, bits, level = self._fit_bpp(self.prepare(x), bpp)
        return from_float01(image, x.dtype), bits.to(torch.float32), level.to(torch.float32)

    def prepare(self, x: Tensor) -> Tensor:
        """What :meth:`_compress` receives: uint8 as is if the codec takes it, else float32 in [0, 1]."""
        return x if x.dtype == torch.uint8 and self.accepts_uint8 else to_float01(x)

    def _compress(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from augcomp.rate import search_levels

        return search_levels(self, x, bpp)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, grad={self.grad!r}"
