"""The ``Codec`` module every registry entry builds."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from augcomp._checks import check_image, from_float01, to_float01
from augcomp.codecs.registry import CodecEntry

__all__ = ["Codec", "GRAD_MODES"]

GRAD_MODES = ("ste", "cubic", "none")


class Codec(nn.Module):
    """A lossy image codec as a batched, stateless-per-call module.

    Subclasses implement :meth:`_compress` (and may override :meth:`_fit_bpp` with something faster than the
    generic search). This class checks inputs, handles unbatched and empty inputs and converts dtypes.

    Shape:
        - x: ``(B, C, H, W)`` or ``(C, H, W)``; float in [0, 1] or uint8 in [0, 255].
        - level: ``(B,)`` (a number is broadcast).
        - output image: same shape, dtype and device as ``x``; bits: ``(B,)`` float32 (``()`` if unbatched).
    """

    channels: tuple[int, ...] = (3,)
    accepts_uint8 = False  # True: _compress/_fit_bpp also take uint8 [0, 255] and then return uint8 images

    def __init__(self, entry: CodecEntry, grad: str = "ste") -> None:
        super().__init__()
        if grad not in GRAD_MODES:
            raise ValueError(f"grad must be one of {GRAD_MODES}, got {grad!r}")
        self.entry = entry
        self.grad = grad

    @property
    def name(self) -> str:
        return self.entry.name

    def check_level(self, level: Tensor | float, batch: int, device: torch.device) -> Tensor:
        from augcomp._checks import per_sample

        lo, hi = self.entry.level_range
        return per_sample(level, batch, device, "level" if self.entry.family != "jpeg" else "quality", lo, hi)

    def forward(self, x: Tensor, level: Tensor | float) -> tuple[Tensor, Tensor]:
        x4, unbatched = check_image(x, "x", self.channels)
        lvl = self.check_level(level, x4.shape[0], x4.device)
        if x4.shape[0] == 0:
            return x.clone(), torch.zeros(0, device=x.device)
        image, bits = self._compress(self.prepare(x4), lvl)
        image = from_float01(image, x.dtype)
        if unbatched:
            return image[0], bits[0]
        return image, bits

    def prepare(self, x: Tensor) -> Tensor:
        """What :meth:`_compress` receives: uint8 as is if the codec takes it, else float32 in [0, 1]."""
        return x if x.dtype == torch.uint8 and self.accepts_uint8 else to_float01(x)

    def fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Compresses each sample at the level whose bpp is closest to its target.

        Args:
            x: ``(B, C, H, W)`` from :meth:`prepare` (already checked).
            bpp: ``(B,)`` float32 targets, > 0.

        Returns:
            ``(image, bits, level)``: image float32 in [0, 1] (uint8 for uint8 input), bits and level ``(B,)``.
        """
        return self._fit_bpp(x, bpp)

    def _compress(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from augcomp.rate import search_levels

        return search_levels(self, x, bpp)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, grad={self.grad!r}"
