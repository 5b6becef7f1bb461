"""``JPEGCodec``: libjpeg-turbo's baseline JPEG in torch, exact, differentiable and bit-counting."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

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
        threads: worker threads of the native backend (default: ``torch.get_num_threads()``).
        compile: run the tensor path through ``torch.compile`` (fuses its many small kernels; the first call per
            image size compiles).

    Shape:
        - x: ``(B, C, H, W)`` or ``(C, H, W)`` with C = 1 or 3; float in [0, 1] or uint8 in [0, 255].
        - level (quality): ``(B,)`` in [1, 100].
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    channels = (1, 3)

    def __init__(
        self,
        entry: CodecEntry,
        grad: str = "ste",
        subsampling: str = "420",
        include_header: bool = False,
        backend: str = "auto",
        threads: int | None = None,
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
        self.threads = threads
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
        with torch.autocast(device_type=x.device.type, enabled=False):
            x255 = x.to(torch.float32) * 255.0
            samples = x255.detach().clamp(0, 255).round()
            layout = jpeg_layout(x.shape[1], x.shape[2], x.shape[3], self.subsampling)
            tables = quant_tables(level)
            if self._use_native(x):
                image, bits = _native_roundtrip(samples, level, self.subsampling, self.threads)
            else:
                image, bits = self._roundtrip(samples, tables, layout)
            image = self._attach_grad(image, x255, tables, layout)
            return image / 255.0, bits + self._header(x.shape[1])

    def _attach_grad(self, image: Tensor, x255: Tensor, tables: Tensor, layout) -> Tensor:
        if self.grad == "none" or not (torch.is_grad_enabled() and x255.requires_grad):
            return image
        if self.grad == "ste":
            return straight_through(x255, image, layout)
        smooth = jpeg_smooth(x255, tables.to(torch.float32), layout, cubic_round)
        return image + (smooth - smooth.detach())

    def _fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rate control: the DCT runs once; each search step only quantizes and counts bits."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x255 = x.to(torch.float32) * 255.0
            samples = x255.detach().clamp(0, 255).round()
            layout = jpeg_layout(x.shape[1], x.shape[2], x.shape[3], self.subsampling)
            target = bpp * float(layout.height * layout.width) - self._header(x.shape[1])
            native = self._use_native(x)
            if native:
                images = _to_numpy_images(samples)

                def measure(quality: Tensor) -> Tensor:
                    return _native_bits(images, quality, self.subsampling, self.threads)

            else:
                # The DCT runs once; islow coefficients are integers below 2**15, exact in float32.
                stream = jpeg_stream(jpeg_analysis(samples, layout), layout).to(torch.float32)

                def measure(quality: Tensor) -> Tensor:
                    # Unstuffed bits: stuffing adds well under 1%, and the final count below is exact.
                    return self._stream_rate(stream, quality, layout)

            quality, _ = bisect_levels(measure, target.clamp_min(1.0), 1.0, 100.0, discrete=False)
            tables = quant_tables(quality)
            if native:
                image, bits = _native_roundtrip(samples, quality, self.subsampling, self.threads)
            else:
                image, bits = self._roundtrip(samples, tables, layout)
            image = self._attach_grad(image, x255, tables, layout)
            return image / 255.0, bits + self._header(x.shape[1]), quality


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


def _encode(image: np.ndarray, quality: float, subsampling: str) -> bytes:
    from PIL import Image

    gray = image.shape[2] == 1
    pil = Image.fromarray(image[..., 0] if gray else image, mode="L" if gray else "RGB")
    buf = io.BytesIO()
    if float(quality).is_integer():
        pil.save(buf, format="JPEG", quality=int(quality), subsampling=2 if subsampling == "420" else 0)
    else:
        tables = quant_tables(torch.tensor([quality]))[0].to(torch.int64)
        qtables = [t.reshape(-1).tolist() for t in tables[: 1 if gray else 2]]
        pil.save(buf, format="JPEG", qtables=qtables, subsampling=2 if subsampling == "420" else 0)
    return buf.getvalue()


def _encode_decode(image: np.ndarray, quality: float, subsampling: str) -> tuple[np.ndarray, int]:
    from PIL import Image

    data = _encode(image, quality, subsampling)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("L" if image.shape[2] == 1 else "RGB"))
    return decoded.reshape(image.shape), scan_length(data)


def _scan_bits_of(image: np.ndarray, quality: float, subsampling: str) -> int:
    return 8 * scan_length(_encode(image, quality, subsampling))


_POOL: ThreadPoolExecutor | None = None


def _pool(threads: int | None) -> ThreadPoolExecutor:
    global _POOL
    workers = threads or torch.get_num_threads()
    if _POOL is None or _POOL._max_workers != workers:
        _POOL = ThreadPoolExecutor(max_workers=workers)
    return _POOL


def _to_numpy_images(samples: Tensor) -> np.ndarray:
    return samples.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _native_bits(images: np.ndarray, quality: Tensor, subsampling: str, threads: int | None) -> Tensor:
    """Scan bits of libjpeg-turbo's encoding of each image (encode only); Pillow releases the GIL."""
    n = len(images)
    bits = _pool(threads).map(_scan_bits_of, images, quality.tolist(), [subsampling] * n)
    return torch.tensor(list(bits), dtype=torch.float32)


def _native_roundtrip(
    samples: Tensor, quality: Tensor, subsampling: str, threads: int | None
) -> tuple[Tensor, Tensor]:
    """libjpeg-turbo through Pillow, one image per task."""
    images = _to_numpy_images(samples)
    results = list(_pool(threads).map(_encode_decode, images, quality.tolist(), [subsampling] * len(images)))
    out = torch.from_numpy(np.stack([r[0] for r in results])).permute(0, 3, 1, 2).to(torch.float32)
    bits = torch.tensor([8.0 * r[1] for r in results], dtype=torch.float32)
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
