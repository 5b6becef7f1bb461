"""``JPEGCodec``: libjpeg-turbo's baseline JPEG in torch, exact, differentiable and bit-counting."""

from __future__ import annotations

import functools
import io
import warnings

import torch
from torch import Tensor
from torchvision.io import decode_jpeg, encode_jpeg

from augcomp.codecs.base import Codec
from augcomp.codecs.registry import CodecEntry, register
from augcomp.functional.entropy import jfif_header_bits
from augcomp.functional.jpeg import (
    SUBSAMPLINGS,
    jpeg_analysis,
    jpeg_layout,
    jpeg_roundtrip,
    jpeg_smooth,
    jpeg_stream,
    jpeg_stream_rate,
    straight_through,
)
from augcomp.functional.quant import cubic_round, quant_tables
from augcomp.rate import bisect_levels

__all__ = ["JPEGCodec", "BACKENDS", "scan_length"]

BACKENDS = ("auto", "torch", "native")


class JPEGCodec(Codec):
    """Baseline JPEG exactly as libjpeg-turbo writes and decodes it by default.

    IJG tables scaled by quality (fractional qualities interpolate the scale), 4:2:0 (or 4:4:4) chroma,
    islow DCT, standard Huffman tables, fancy upsampling on decode. The forward pass is the real JPEG; the
    backward pass goes straight through the rounding (``grad="ste"``) or through Shin & Song's cubic surrogate
    (``grad="cubic"``). Bits are those of the entropy-coded scan, plus the JFIF header with
    ``include_header=True``.

    Args:
        entry: the registry entry.
        grad: ``"ste"``, ``"cubic"`` or ``"none"``.
        subsampling: ``"420"`` (libjpeg's default) or ``"444"``; grayscale input has one component.
        include_header: add the bits of the headers libjpeg writes (file-size semantics).
        backend: ``"torch"`` runs the tensor kernels everywhere; ``"native"`` computes the forward values with
            libjpeg-turbo through Pillow (CPU tensors only); ``"auto"`` uses native on CPU (outside
            ``torch.compile``) and torch elsewhere. Both give the same pixels and bits (tested); gradients
            always come from the tensor path.
        compile: run the tensor path through ``torch.compile`` (fuses its many small kernels; the first call per
            image size compiles).

    Shape:
        - x: ``(B, C, H, W)`` or ``(C, H, W)`` with C = 1 or 3; float in [0, 1] or uint8 in [0, 255].
        - level (quality): ``(B,)`` in [1, 100].
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    channels = (1, 3)
    accepts_uint8 = True  # uint8 stays uint8 on the native path: no float round trip around libjpeg

    def __init__(
        self,
        entry: CodecEntry,
        grad: str = "ste",
        subsampling: str = "420",
        include_header: bool = False,
        backend: str = "auto",
        compile: bool = False,
    ) -> None:
        super().__init__(entry, grad)
        if subsampling not in SUBSAMPLINGS:
            raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.subsampling = subsampling
        self.include_header = include_header
        self.backend = backend
        # torch.compile fuses the hundreds of small elementwise kernels of the tensor path (one graph per shape).
        self._roundtrip = _compiled(jpeg_roundtrip) if compile else jpeg_roundtrip
        self._stream_rate = _compiled(jpeg_stream_rate) if compile else jpeg_stream_rate

    def _use_native(self, x: Tensor) -> bool:
        # The native coder only computes the forward values, which are identical to the tensor path's;
        # gradients always come from the smooth tensor path, so it serves differentiable CPU calls too.
        if self.backend == "torch" or torch.compiler.is_compiling():
            return False
        if x.device.type != "cpu":
            if self.backend == "native":
                raise ValueError(f"backend='native' runs on CPU tensors, got a tensor on {x.device}")
            return False
        return True

    def _header(self, channels: int) -> float:
        return float(jfif_header_bits(channels)) if self.include_header else 0.0

    def _compress(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        header = self._header(x.shape[1])
        if x.dtype == torch.uint8:
            if self._use_native(x):
                image, bits = _native_roundtrip(x, level, self.subsampling)
                return image, bits + header
            x = x.to(torch.float32) / 255.0
        with torch.autocast(device_type=x.device.type, enabled=False):
            x255 = x.to(torch.float32) * 255.0
            samples = x255.detach().clamp(0, 255).round()
            layout = jpeg_layout(x.shape[1], x.shape[2], x.shape[3], self.subsampling)
            tables = quant_tables(level)
            if self._use_native(x):
                image, bits = _native_roundtrip(samples.to(torch.uint8), level, self.subsampling)
                image = image.to(torch.float32)
            else:
                image, bits = self._roundtrip(samples, tables, layout)
            image = self._attach_grad(image, x255, tables, layout)
            return image / 255.0, bits + header

    def _attach_grad(self, image: Tensor, x255: Tensor, tables: Tensor, layout) -> Tensor:
        if self.grad == "none" or not (torch.is_grad_enabled() and x255.requires_grad):
            return image
        if self.grad == "ste":
            return straight_through(x255, image, layout)
        smooth = jpeg_smooth(x255, tables.to(torch.float32), layout, cubic_round)
        return image + (smooth - smooth.detach())

    def _fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rate control: the DCT runs once; each search step only quantizes and counts bits."""
        layout = jpeg_layout(x.shape[1], x.shape[2], x.shape[3], self.subsampling)
        target = (bpp * float(layout.height * layout.width) - self._header(x.shape[1])).clamp_min(1.0)
        if self._use_native(x):
            samples = x if x.dtype == torch.uint8 else (x.detach() * 255.0).clamp(0, 255).round().to(torch.uint8)

            def measure(quality: Tensor) -> Tensor:
                return _native_bits(samples, quality, self.subsampling)

            quality, _ = bisect_levels(measure, target, 1.0, 100.0, discrete=False)
            if x.dtype == torch.uint8:
                return (*self._compress(x, quality), quality)
        else:
            if x.dtype == torch.uint8:
                x = x.to(torch.float32) / 255.0
            samples = (x.detach().to(torch.float32) * 255.0).clamp(0, 255).round()
            with torch.autocast(device_type=x.device.type, enabled=False):
                # islow coefficients are integers below 2**15, exact in float32.
                stream = jpeg_stream(jpeg_analysis(samples, layout), layout).to(torch.float32)

                def measure(quality: Tensor) -> Tensor:
                    # Unstuffed bits: stuffing adds well under 1%, and the final count below is exact.
                    return self._stream_rate(stream, quality, layout)

                quality, _ = bisect_levels(measure, target, 1.0, 100.0, discrete=False)
        return (*self._compress(x, quality), quality)


def scan_length(data: bytes) -> int:
    """Bytes of the entropy-coded scan in a baseline JPEG file: from the end of the SOS header to EOI."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("not a JPEG marker stream")
        marker = data[pos + 1]
        length = (data[pos + 2] << 8) | data[pos + 3]
        if marker == 0xDA:
            return len(data) - (pos + 2 + length) - 2
        pos += 2 + length
    raise ValueError("no SOS marker found")


@functools.lru_cache(maxsize=4096)
def _qtables(quality: float, components: int) -> list[list[int]]:
    tables = quant_tables(torch.tensor([quality]))[0].to(torch.int64)
    return [t.reshape(-1).tolist() for t in tables[: min(components, 2)]]


def _encode(image: Tensor, quality: float, subsampling: str) -> Tensor:
    """libjpeg-turbo's encoding of one ``(C, H, W)`` uint8 image, as a 1-D uint8 tensor."""
    gray = image.shape[0] == 1
    if float(quality).is_integer() and (gray or subsampling == "420"):
        return encode_jpeg(image, quality=int(quality))
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[..., 0] if gray else array, mode="L" if gray else "RGB")
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", qtables=_qtables(float(quality), image.shape[0]),
             subsampling=2 if subsampling == "420" else 0)
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def _quietly(fn, *args):
    # torchvision 0.29 deprecates its JPEG coder in favour of TorchCodec; the coder itself is unchanged.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args)


def _encode_all(images: Tensor, quality: Tensor, subsampling: str) -> list[Tensor]:
    return [_encode(img, q, subsampling) for img, q in zip(images, quality.tolist(), strict=True)]


def _native_bits(images: Tensor, quality: Tensor, subsampling: str) -> Tensor:
    """Scan bits of libjpeg-turbo's encoding of each ``(C, H, W)`` uint8 image (encode only)."""
    data = _quietly(_encode_all, images, quality, subsampling)
    return torch.tensor([8.0 * scan_length(bytes(d.numpy())) for d in data], dtype=torch.float32)


def _native_roundtrip(images: Tensor, quality: Tensor, subsampling: str) -> tuple[Tensor, Tensor]:
    """libjpeg-turbo encode and decode of a uint8 CPU batch: Pillow for explicit tables, torchvision otherwise
    (both are libjpeg-turbo with its defaults, checked against each other in the tests)."""
    data = _quietly(_encode_all, images, quality, subsampling)
    out = torch.stack(_quietly(decode_jpeg, data)).reshape(images.shape)
    bits = torch.tensor([8.0 * scan_length(bytes(d.numpy())) for d in data], dtype=torch.float32)
    return out, bits


_COMPILED: dict = {}


def _compiled(fn):
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=False)
    return _COMPILED[fn]


def _build(entry: CodecEntry, **options) -> JPEGCodec:
    return JPEGCodec(entry, **options)


JPEG = register(
    CodecEntry(
        name="jpeg",
        builder=_build,
        level_range=(1.0, 100.0),
        discrete=False,
        pad_multiple=1,
        weights="none",
        family="jpeg",
        description="baseline JPEG as libjpeg-turbo writes it (IJG tables, 4:2:0, fancy upsampling)",
    )
)
