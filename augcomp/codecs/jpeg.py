"""``JPEGCodec``: libjpeg-turbo's baseline JPEG in torch, exact, differentiable and bit-counting."""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
import torch
from torch import Tensor

from augcomp._errors import ArgumentError
from augcomp.codecs.base import Codec
from augcomp.codecs.library import LibraryCodec
from augcomp.codecs.registry import ANY_DEVICE, CodecEntry, register
from augcomp.functional.entropy import jfif_header_bits
from augcomp.functional.jpeg import (
    CHUNK_PIXELS,
    SUBSAMPLINGS,
    jpeg_analysis,
    jpeg_bands,
    jpeg_decode_banded,
    jpeg_layout,
    jpeg_layout_of,
    jpeg_roundtrip_any_size,
    jpeg_smooth,
    jpeg_stream,
    jpeg_stream_banded,
    jpeg_stream_rate,
    straight_through,
)
from augcomp.functional.quant import cubic_round, quant_tables
from augcomp.rate import DEFAULT_TOL, search

__all__ = ["JPEGCodec", "NativeJPEG", "BACKENDS", "COMPILE_MODES", "activity", "rate_prior", "scan_length"]

BACKENDS = ("auto", "torch", "native")
COMPILE_MODES = ("auto", True, False)
LEVEL_STEP = 0.01  # rate control tries qualities on this grid, so a last-bit difference between devices cannot matter


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
        compile: run the tensor path through ``torch.compile(dynamic=True)``, which fuses its hundreds of small
            kernels into a few; one graph serves every image size (the first call compiles, for about a minute).
            ``"auto"`` compiles on CUDA, where the eager path is bound by kernel launches, and falls back to eager
            (with a warning) if compilation fails; ``True`` compiles on every device and raises on failure.
        threads: images coded at once on the native path (default: the cores available, 1 in DataLoader workers).
        tol: relative rate error at which bpp targeting stops for a sample.

    Shape:
        - x: ``(B, C, H, W)`` or ``(C, H, W)`` with C = 1 or 3; float in [0, 1] or uint8 in [0, 255].
        - level (quality): ``(B,)`` in [1, 100].
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    accepts_uint8 = True  # uint8 stays uint8 on the native path: no float round trip around libjpeg
    # Both backends and the compiled path write the same bytes (tested), so none of them changes a stored entry.
    runtime_options = ("threads", "grad", "backend", "compile")

    def __init__(
        self,
        entry: CodecEntry,
        grad: str = "ste",
        subsampling: str = "420",
        include_header: bool = False,
        backend: str = "auto",
        compile: bool | str = "auto",
        threads: int | None = None,
        tol: float = DEFAULT_TOL,
    ) -> None:
        super().__init__(entry, grad)
        if subsampling not in SUBSAMPLINGS:
            raise ArgumentError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")
        if backend not in BACKENDS:
            raise ArgumentError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.subsampling = subsampling
        self.include_header = include_header
        self.backend = backend
        if compile not in COMPILE_MODES or not isinstance(compile, (bool, str)):
            raise ArgumentError(f"compile must be one of {COMPILE_MODES}, got {compile!r}")
        self.compile = compile
        self._native = NativeJPEG(entry, subsampling=subsampling, threads=threads, tol=tol)
        self.tol = self._native.tol

    def _use_native(self, x: Tensor) -> bool:
        # The native coder only computes the forward values, which are identical to the tensor path's;
        # gradients always come from the smooth tensor path, so it serves differentiable CPU calls too.
        if self.backend == "torch" or torch.compiler.is_compiling():
            return False
        if x.device.type != "cpu":
            if self.backend == "native":
                raise ArgumentError(f"backend='native' runs on CPU tensors, got a tensor on {x.device}")
            return False
        return True

    def _compiles_on(self, device: torch.device) -> bool:
        return self.compile is True or (self.compile == "auto" and device.type == "cuda")

    def _tensor_call(self, fn, *args, **kwargs):
        """``fn(*args)`` on the tensor path, compiled once for all image sizes where ``compile`` asks for it."""
        # Gradients never flow through these values (they are attached afterwards), and without grad mode one
        # compiled graph serves training and evaluation alike.
        with torch.no_grad():
            if not self._compiles_on(args[0].device) or torch.compiler.is_compiling():
                return fn(*args, **kwargs)  # inside a caller's compiled region, the caller's compiler fuses this
            try:
                return _compiled(fn)(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as error:  # failed to compile, not failed to run
                if self.compile is True or isinstance(error, torch._dynamo.exc.RecompileError):
                    raise
                warnings.warn(f"JPEG: torch.compile failed ({type(error).__name__}: {error}); running the tensor "
                              "path eagerly (pass compile=False to skip compiling)", RuntimeWarning, stacklevel=3)
                self.compile = False
                return fn(*args, **kwargs)

    def _header(self, channels: int) -> float:
        return float(jfif_header_bits(channels)) if self.include_header else 0.0

    def _compress(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        header = self._header(x.shape[1])
        if x.dtype == torch.uint8:
            if self._use_native(x):
                image, bits = self._native._compress(x, level)
                return image, bits + header
            x = x.to(torch.float32) / 255.0
        with torch.autocast(device_type=x.device.type, enabled=False):
            x255 = x.to(torch.float32) * 255.0
            samples = x255.detach().clamp(0, 255).round()
            layout = jpeg_layout(x.shape[1], x.shape[2], x.shape[3], self.subsampling)
            tables = quant_tables(level)
            if self._use_native(x):
                image, bits = self._native._compress(samples.to(torch.uint8), level)
                image = image.to(torch.float32)
            else:
                image, bits = self._tensor_roundtrip(samples, level, tables, layout)
            image = self._attach_grad(image, x255, tables, layout)
            return image / 255.0, bits + header

    def _tensor_roundtrip(self, samples: Tensor, level: Tensor, tables: Tensor, layout) -> tuple[Tensor, Tensor]:
        """Image and scan bits on the tensor path; a large batch runs in bands of whole MCU rows (see
        :func:`~augcomp.functional.jpeg.jpeg_bands`), with the same pixels and bits."""
        bands = jpeg_bands(samples, self.subsampling)
        if len(bands) == 1:
            return self._tensor_call(jpeg_roundtrip_any_size, samples, tables, self.subsampling)
        image = jpeg_decode_banded(samples, tables, self.subsampling, self._roundtrip_call, bands)
        stream = self._banded_stream(samples, bands)
        return image, self._stream_rate(stream, level, layout, stuffing=True)

    def _roundtrip_call(self, samples: Tensor, tables: Tensor, subsampling: str) -> tuple[Tensor, Tensor]:
        return self._tensor_call(jpeg_roundtrip_any_size, samples, tables, subsampling)

    def _banded_stream(self, samples: Tensor, bands: list[tuple[int, int]]) -> Tensor:
        return jpeg_stream_banded(samples, self.subsampling,
                                  lambda band, sub: self._tensor_call(_float_stream, band, sub), bands)

    def _stream_rate(self, stream: Tensor, level: Tensor, layout, *, stuffing: bool) -> Tensor:
        # A stream of more blocks than a band holds is quantized and counted a band's worth of blocks at a time.
        chunk = max(1, CHUNK_PIXELS // 64)
        if stream.shape[0] * stream.shape[1] <= chunk:
            return self._tensor_call(jpeg_stream_rate, stream, level, layout, stuffing=stuffing)
        with torch.no_grad():
            return jpeg_stream_rate(stream, level, layout, stuffing=stuffing, chunk=max(1, chunk // stream.shape[0]))

    def _attach_grad(self, image: Tensor, x255: Tensor, tables: Tensor, layout) -> Tensor:
        if self.grad == "none" or not (torch.is_grad_enabled() and x255.requires_grad):
            return image
        if self.grad == "ste":
            return straight_through(x255, image, layout)
        smooth = jpeg_smooth(x255, tables.to(torch.float32), layout, cubic_round)
        return image + (smooth - smooth.detach())

    # ------------------------------------------------------------------ coded files
    # The file is libjpeg-turbo's own, at the quality chosen: the tensor path is bit-exact to it, so the file decodes
    # to the pixels either path returns, and its scan is the bits either path counts.

    def _samples_u8(self, x: Tensor) -> Tensor:
        return x if x.dtype == torch.uint8 else (x.detach() * 255.0).clamp(0, 255).round().to(torch.uint8)

    def _with_grad(self, x: Tensor, image_u8: Tensor, quality: Tensor) -> Tensor:
        """The coded uint8 image as ``x``'s dtype, carrying the configured gradient for float inputs."""
        if x.dtype == torch.uint8:
            return image_u8
        with torch.autocast(device_type=x.device.type, enabled=False):
            x255 = x.to(torch.float32) * 255.0
            layout = jpeg_layout(x.shape[1], x.shape[2], x.shape[3], self.subsampling)
            image = self._attach_grad(image_u8.to(torch.float32), x255, quant_tables(quality), layout)
        return image / 255.0

    def _compress_files(self, x: Tensor, level: Tensor) -> tuple[Tensor, Tensor, list[bytes]]:
        image, bits, files = self._native._compress_files(self._samples_u8(x).cpu(), level.cpu())
        image = self._with_grad(x, image.to(x.device), level)
        return image, bits.to(x.device) + self._header(x.shape[1]), files

    def _fit_bpp_files(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor, list[bytes]]:
        if not self._use_native(x):
            return super()._fit_bpp_files(x, bpp)
        header = self._header(x.shape[1])
        target = (bpp * float(x.shape[-2] * x.shape[-1]) - header).clamp_min(1.0)
        image, bits, quality, files = self._native.search_files(self._samples_u8(x), target)
        return self._with_grad(x, image, quality), bits + header, quality, files

    def decode_file(self, data: bytes, channels: int = 3) -> Tensor:
        return self._native.decode_file(data, channels)

    def payload_bits(self, data: bytes) -> int:
        """Bits of the entropy-coded scan of a JPEG file."""
        return self._native.payload_bits(data)

    def library_version(self) -> str:
        import PIL
        import torchvision
        from PIL import features

        return (f"libjpeg-turbo {features.version('jpg')} (Pillow {PIL.__version__}, "
                f"torchvision {torchvision.__version__})")

    def _fit_bpp(self, x: Tensor, bpp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rate control through :func:`augcomp.rate.search`, with the same warm start and the same exact bit counts
        on both paths, so the native (CPU) and tensor (GPU) paths choose the same quality for the same input.

        Native: one image at a time in a thread pool, each sample stops once within ``tol`` of its target and its
        best encoding is decoded once. Tensor: the DCT runs once; each step only quantizes and counts bits.
        """
        layout = jpeg_layout(x.shape[1], x.shape[2], x.shape[3], self.subsampling)
        header = self._header(x.shape[1])
        pixels = float(layout.height * layout.width)
        target = (bpp * pixels - header).clamp_min(1.0)
        if self._use_native(x):
            samples = x if x.dtype == torch.uint8 else (x.detach() * 255.0).clamp(0, 255).round().to(torch.uint8)
            image, bits, quality = self._native.search_bits(samples, target)
            if x.dtype == torch.uint8:
                return image, bits + header, quality
            with torch.autocast(device_type=x.device.type, enabled=False):
                x255 = x.to(torch.float32) * 255.0
                image = self._attach_grad(image.to(torch.float32), x255, quant_tables(quality), layout)
            return image / 255.0, bits + header, quality
        xf = x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x
        samples = (xf.detach().to(torch.float32) * 255.0).clamp(0, 255).round()
        with torch.autocast(device_type=x.device.type, enabled=False):
            stream = self._banded_stream(samples, jpeg_bands(samples, self.subsampling))
            start, slope = rate_prior(target / pixels, activity(samples))
            del samples  # the final pass below makes its own

            def rate(q: Tensor, active) -> Tensor:
                return self._stream_rate(stream, q, layout, stuffing=True)

            quality, _ = search(rate, target, 1.0, 100.0, discrete=False, start=start, slope=slope, tol=self.tol,
                                step=LEVEL_STEP)
            stream = None  # freed before the final pass
        return (*self._compress(x, quality), quality)


class NativeJPEG(LibraryCodec):
    """libjpeg-turbo itself, one image at a time: the forward values of :class:`JPEGCodec` on CPU tensors.

    Integer qualities at 4:2:0 (and grayscale) go through torchvision's libjpeg-turbo coder; fractional qualities
    and 4:4:4 go through Pillow with explicit tables. Both are libjpeg-turbo with its defaults (checked against each
    other in the tests). Bits are those of the entropy-coded scan.
    """

    level_step = LEVEL_STEP

    def __init__(self, entry: CodecEntry, subsampling: str = "420", **options) -> None:
        super().__init__(entry, grad="none", **options)
        self.subsampling = subsampling

    def encode(self, image, level: float) -> bytes:
        return _encode(image, level, self.subsampling)

    def decode(self, data: bytes):
        from torchvision.io import decode_jpeg  # imported here: torchvision.io pulls in torch._dynamo (seconds)

        array = np.frombuffer(data, dtype=np.uint8)
        return _quietly(decode_jpeg, torch.from_numpy(array.copy())).permute(1, 2, 0).numpy()

    def payload_bits(self, data: bytes) -> int:
        return 8 * scan_length(data)

    def rate_priors(self, images, target_bpp: Tensor) -> tuple[Tensor, Tensor]:
        samples = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        return rate_prior(target_bpp, activity(samples))


# Rate prior: log(scan bpp) of natural images at 4:2:0 ~ _PRIOR_LOG_BPP + _PRIOR_SLOPE * (activity - _PRIOR_ACTIVITY)
# at each quality of _PRIOR_QUALITY, fitted by least squares on 132 crops (12 per photograph, 48 to 320 pixels a side)
# of scikit-image's photographs; `python benchmarks/fit_priors.py --codecs jpeg` refits it (to the last digit). The
# activity term brings the prior's error from about 50% to about 10%.
_PRIOR_QUALITY = (1, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 93, 95, 97, 98, 99, 100)
_PRIOR_LOG_BPP = (-1.786, -1.742, -1.588, -1.393, -1.276, -1.059, -0.905, -0.775, -0.67, -0.508, -0.373, -0.246,
                  -0.071, 0.027, 0.167, 0.337, 0.585, 0.776, 0.976, 1.22, 1.346, 1.571, 1.731)
_PRIOR_SLOPE = (0.141, 0.183, 0.303, 0.423, 0.473, 0.554, 0.614, 0.657, 0.685, 0.725, 0.757, 0.778, 0.788, 0.785,
                0.777, 0.769, 0.742, 0.718, 0.691, 0.665, 0.664, 0.605, 0.536)
_PRIOR_ACTIVITY = 2.065


def activity(samples: Tensor) -> Tensor:
    """``log(1 + mean |difference of neighbouring samples|)`` per image: a texture measure for the rate prior.

    Measured on the green (or only) channel at every other row and column, which costs a few percent of a fixed
    JPEG pass and predicts the rate as well as the full measure. Integer sums, so every device computes the same
    value (a float sum would differ in its last bits).

    Shape:
        - samples: ``(B, C, H, W)`` integer-valued in [0, 255] (uint8 or float); returns ``(B,)`` float64.
    """
    x = samples[:, min(1, samples.shape[1] - 1), ::2, ::2].to(torch.int16)
    dx = (x[:, :, 1:] - x[:, :, :-1]).abs_().sum(dim=(1, 2), dtype=torch.int32)
    dy = (x[:, 1:, :] - x[:, :-1, :]).abs_().sum(dim=(1, 2), dtype=torch.int32)
    h, w = x.shape[1], x.shape[2]
    pairs = max(h * (w - 1) + (h - 1) * w, 1)
    return torch.log1p((dx + dy).to(torch.float64) / pairs)


def rate_prior(target_bpp: Tensor, texture: Tensor) -> tuple[Tensor, Tensor]:
    """``(start quality, |d log(bits) / d quality|)`` per sample, from the fitted curve above, on the device.

    Args:
        target_bpp: ``(B,)`` targets.
        texture: ``(B,)`` :func:`activity` of each image.
    """
    device = target_bpp.device
    quality = torch.tensor(_PRIOR_QUALITY, dtype=torch.float32, device=device)
    curve = torch.tensor(_PRIOR_LOG_BPP, device=device) + torch.tensor(_PRIOR_SLOPE, device=device) * (
        texture - _PRIOR_ACTIVITY).to(torch.float32)[:, None]
    curve = torch.cummax(curve, dim=1).values  # rate never falls as quality rises
    t = torch.log(target_bpp.to(torch.float32).clamp_min(1e-6))
    t = torch.minimum(torch.maximum(t, curve[:, 0]), curve[:, -1])
    i = (curve < t[:, None]).sum(dim=1).clamp(1, len(_PRIOR_QUALITY) - 1)[:, None]
    c0, c1 = curve.gather(1, i - 1)[:, 0], curve.gather(1, i)[:, 0]
    q0, q1 = quality[i[:, 0] - 1], quality[i[:, 0]]
    rise = (c1 - c0).clamp_min(1e-4)
    start = q0 + (t - c0).clamp_min(0) / rise * (q1 - q0)
    return (start / LEVEL_STEP).round() * LEVEL_STEP, rise / (q1 - q0)


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


def _encode(image: np.ndarray, quality: float, subsampling: str) -> bytes:
    """libjpeg-turbo's encoding of one ``(H, W, C)`` uint8 image."""
    gray = image.shape[2] == 1
    if float(quality).is_integer() and (gray or subsampling == "420"):
        from torchvision.io import encode_jpeg  # imported here: torchvision.io pulls in torch._dynamo (seconds)

        return bytes(_quietly(encode_jpeg, torch.from_numpy(image).permute(2, 0, 1), int(quality)).numpy())
    from PIL import Image

    # frombuffer wraps the array's memory; fromarray would copy every candidate of the search.
    mode = "L" if gray else "RGB"
    pixels = np.ascontiguousarray(image[..., 0] if gray else image)
    pil = Image.frombuffer(mode, (pixels.shape[1], pixels.shape[0]), pixels, "raw", mode, 0, 1)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", qtables=_qtables(float(quality), image.shape[2]),
             subsampling=2 if subsampling == "420" else 0)
    return buf.getvalue()


def _quietly(fn, *args):
    # torchvision 0.29 deprecates its JPEG coder in favour of TorchCodec; the coder itself is unchanged.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return fn(*args)


_COMPILED: dict = {}


def _compiled(fn):
    # dynamic=True: image sizes (and the layout's grid sizes) stay symbolic, so a new size does not recompile.
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=True)
    return _COMPILED[fn]


def _float_stream(samples: Tensor, subsampling: str) -> Tensor:
    # The layout is read off the shape so that it stays symbolic when compiled; islow coefficients are integers
    # below 2**15, exact in float32.
    layout = jpeg_layout_of(samples, subsampling)
    return jpeg_stream(jpeg_analysis(samples, layout), layout).to(torch.float32)


JPEG = register(
    CodecEntry(
        name="jpeg",
        builder=JPEGCodec,
        level_range=(1.0, 100.0),
        discrete=False,
        level_name="quality",
        channels=(1, 3),
        devices=ANY_DEVICE,
        grad_modes=("ste", "cubic", "none"),
        reference="libjpeg-turbo (torchvision, Pillow)",
        family="traditional",
        suffixes=(".jpg", ".jpeg"),
        accepted=("grad", "subsampling", "include_header", "backend", "compile", "threads", "tol"),
        description="baseline JPEG as libjpeg-turbo writes it (IJG tables, 4:2:0, fancy upsampling)",
    )
)
