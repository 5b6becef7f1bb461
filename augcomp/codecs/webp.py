"""``WebPCodec``: lossy WebP (libwebp's VP8 intra coder, through Pillow) as a library codec."""

from __future__ import annotations

import io

import numpy as np

from augcomp._errors import ArgumentError
from augcomp.codecs._containers import webp_vp8_payload_bytes
from augcomp.codecs.library import LIBRARY_OPTIONS, LibraryCodec
from augcomp.codecs.registry import CodecEntry, MissingExtraError, register
from augcomp.rate import DEFAULT_TOL

__all__ = ["WebPCodec", "METHODS"]

METHODS = tuple(range(7))

# Rate prior: log(bpp) ~ a + b * fine + c * coarse at each quality of the grid (method 4), fitted on 48 resized
# scikit-image crops of 224 x 224 (fine and coarse: augcomp.codecs._containers.texture). The refit on
# natural_crops(48, 224) by `python benchmarks/fit_priors.py --codecs webp` predicts held-out crops no better (median
# log error 0.065 against this table's 0.060), so this table stays.
_LEVELS = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0,
           90.0, 95.0, 100.0)
_TABLE = (
    (-3.837, -3.464, -3.274, -3.095, -2.914, -2.780, -2.657, -2.524, -2.437, -2.320, -2.232, -2.132, -2.057, -1.974,
     -1.879, -1.794, -1.502, -1.206, -0.752, -0.106, 0.305),
    (-0.184, 0.161, 0.284, 0.378, 0.451, 0.512, 0.556, 0.614, 0.629, 0.659, 0.680, 0.704, 0.725, 0.741, 0.786, 0.801,
     0.881, 0.920, 0.990, 1.048, 0.882),
    (0.904, 0.759, 0.666, 0.580, 0.501, 0.445, 0.401, 0.340, 0.327, 0.285, 0.260, 0.227, 0.205, 0.185, 0.135, 0.115,
     0.015, -0.052, -0.183, -0.354, -0.265),
)


class WebPCodec(LibraryCodec):
    """Lossy WebP as libwebp writes it through Pillow: VP8 intra frames, 4:2:0 YUV (the only lossy layout).

    The level is libwebp's quality, a float in [0, 100]: Pillow passes it on unrounded, and libwebp maps it to
    per-segment quantizers, so fractional qualities give intermediate rates (about 300 distinct sizes on a 224 x 224
    crop). Grayscale has no lossy WebP layout: a one-channel image is coded as RGB with equal channels (its chroma
    is flat and costs a few bits) and the decoded RGB is turned back into one channel with Pillow's
    ``convert("L")`` (ITU-R 601 luma).

    Bits: the VP8 frame data after its fixed 10-byte key-frame header (3-byte frame tag, start code, scaled width
    and height), that is the bool-coded first partition (segment, filter and quantizer headers, modes) and the DCT
    token partitions. Left out: the 12-byte RIFF header, the 8-byte ``VP8 `` chunk header and its pad byte.
    ``include_header=True`` counts the whole file.

    Args:
        entry: the registry entry.
        grad: ``"ste"`` (identity through the codec) or ``"none"``.
        method: libwebp's effort, 0 (fastest) to 6 (smallest files); 4 is libwebp's and Pillow's default, about
            8 ms of CPU for a 224 x 224 crop. At the same PSNR (BD-rate on 224 x 224 crops) 0 costs 32% more bits
            and 2 costs 11%, both at about 0.6x the time; 6 saves 2.5% and takes 1.8x as long.
        include_header: count the whole file instead of the coded payload.
        threads: images coded at once (default: the cores this process may use; 1 in a DataLoader worker).
        tol: relative rate error at which bpp targeting stops for a sample.

    Shape:
        - x: ``(B, C, H, W)`` with C = 1 or 3; float in [0, 1] or uint8 in [0, 255]; any device (copied to the host).
        - level (quality): ``(B,)`` in [0, 100].
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    def __init__(self, entry: CodecEntry, grad: str = "ste", method: int = 4, include_header: bool = False,
                 threads: int | None = None, tol: float = DEFAULT_TOL) -> None:
        super().__init__(entry, grad, include_header, threads, tol)
        if isinstance(method, bool) or method not in METHODS:
            raise ArgumentError(f"method must be an int in 0..6 (libwebp's effort, 4 is its default), got {method!r}")
        from PIL import features

        if not features.check("webp"):
            raise MissingExtraError("codec 'webp' needs Pillow built with libwebp (every Pillow wheel has it): "
                                    "pip install -U pillow")
        self.method = int(method)

    def encode(self, image: np.ndarray, level: float) -> bytes:
        from PIL import Image

        rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, "WEBP", quality=float(level), method=self.method)
        return out.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))

    def payload_bits(self, data: bytes) -> int:
        return 8 * webp_vp8_payload_bytes(data)

    def library_version(self) -> str:
        return _pillow_library("webp", "libwebp")

    def to_channels(self, decoded: np.ndarray, channels: int) -> np.ndarray:
        # Grayscale was coded as RGB: back to one channel the way Pillow converts.
        return _luma(decoded) if channels == 1 else decoded

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, method={self.method}"


def _pillow_library(feature: str, name: str) -> str:
    import PIL
    from PIL import features

    return f"{name} {features.version(feature)} (Pillow {PIL.__version__})"


def _luma(rgb: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).convert("L"))


WEBP = register(
    CodecEntry(
        name="webp",
        builder=WebPCodec,
        level_range=(0.0, 100.0),
        discrete=False,
        level_name="quality",
        rate_increases_with_level=True,
        channels=(1, 3),
        devices=("cpu",),
        grad_modes=("ste", "none"),
        reference="libwebp (Pillow)",
        extra=None,
        requires=("PIL",),
        min_size=1,
        family="traditional",
        suffixes=(".webp",),
        accepted=(*LIBRARY_OPTIONS, "method"),
        rate_curve=(_LEVELS, _TABLE),
        description="lossy WebP (VP8 intra, 4:2:0) by libwebp through Pillow; quality 0-100, fractional",
    )
)
