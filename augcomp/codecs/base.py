"""The ``Codec`` module every registry entry builds."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from augcomp._checks import from_float01, to_float01
from augcomp._errors import ArgumentError
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
    # Builder options that change how fast a codec runs but never what it writes: left out of its identity.
    runtime_options: tuple[str, ...] = ("threads", "grad")

    def __init__(self, entry: CodecEntry, grad: str = "ste") -> None:
        super().__init__()
        if grad not in entry.grad_modes:
            raise ArgumentError(f"grad must be one of {entry.grad_modes} for codec {entry.name!r}, got {grad!r}")
        self.entry = entry
        self.grad = grad
        self.build_options: dict = {}  # set by CodecEntry.build

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

    def compress_files(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor, list[bytes]]:
        """:meth:`forward`, plus the coded file of each sample (see ``entry.file_kind``).

        Decoding a file with :meth:`decode_file` gives the returned image's pixels (as uint8), and the returned bits
        are that file's payload (the whole file with ``include_header=True``).

        Returns:
            ``(image, bits, files)``: as :meth:`forward`, and ``B`` ``bytes`` objects.
        """
        image, bits, files = self._compress_files(self.prepare(x), level)
        return from_float01(image, x.dtype), bits.to(torch.float32), files

    def fit_bpp_files(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor, list[bytes]]:
        """:meth:`fit_bpp`, plus the coded file of each sample, as :meth:`compress_files`.

        Returns:
            ``(image, bits, level, files)``.
        """
        image, bits, level, files = self._fit_bpp_files(self.prepare(x), bpp)
        return from_float01(image, x.dtype), bits.to(torch.float32), level.to(torch.float32), files

    def decode_file(self, data: bytes, channels: int = 3) -> Tensor:
        """Decodes one coded file of :meth:`compress_files` with the codec's own decoder.

        Args:
            data: the file.
            channels: the channel count of the image that was coded (1 or 3).

        Returns:
            The image, uint8 in [0, 255] on the CPU.

        Shape:
            - output: ``(channels, H, W)``.
        """
        raise NotImplementedError(f"codec {self.name!r} does not decode files")

    def file_for(self, data: bytes, suffix: str) -> bytes:
        """The file to save under a name ending in ``suffix`` (one of ``entry.suffixes``) for a coded file."""
        return data

    def identity(self) -> dict:
        """What decides the bytes this codec writes: its name, its options (but :attr:`runtime_options`), the
        coding library's version and the rate control's version. Stores key their entries by it."""
        from augcomp.rate import RATE_CONTROL_VERSION

        options = {k: repr(v) for k, v in sorted(self.build_options.items()) if k not in self.runtime_options}
        return {"codec": self.name, "options": options, "library": self.library_version(),
                "rate_control": RATE_CONTROL_VERSION}

    def library_version(self) -> str:
        """The version of the library (or model code) that codes, as one string."""
        return ""

    def prepare(self, x: Tensor) -> Tensor:
        """What :meth:`_compress` receives: uint8 as is if the codec takes it, else float32 in [0, 1]."""
        return x if x.dtype == torch.uint8 and self.accepts_uint8 else to_float01(x)

    def _compress(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from augcomp.rate import search_levels

        return search_levels(self, x, bpp)

    def _compress_files(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor, list[bytes]]:
        raise NotImplementedError(f"codec {self.name!r} does not write files")

    def _fit_bpp_files(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor, list[bytes]]:
        # Codecs whose search keeps no bytes: the files of the chosen levels.
        _, _, level = self._fit_bpp(x, bpp)
        image, bits, files = self._compress_files(x, level)
        return image, bits, level, files

    def extra_repr(self) -> str:
        return f"name={self.name!r}, grad={self.grad!r}"
