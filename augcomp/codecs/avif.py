"""``AVIFCodec``: AVIF (libavif with libaom's AV1 intra coder, through Pillow) as a library codec."""

from __future__ import annotations

import io

import numpy as np

from augcomp._errors import ArgumentError
from augcomp.codecs._containers import avif_frame_bytes
from augcomp.codecs.library import LIBRARY_OPTIONS, LibraryCodec
from augcomp.codecs.registry import CodecEntry, MissingExtraError, register
from augcomp.rate import DEFAULT_TOL

__all__ = ["AVIFCodec", "SUBSAMPLINGS", "TUNES"]

SUBSAMPLINGS = {"420": "4:2:0", "422": "4:2:2", "444": "4:4:4"}
# libaom options per tune: "ssim" is libaom's SSIM tuning (it also turns off the perceptual delta-q that libaom uses
# for still images), "default" keeps libavif's and libaom's defaults.
TUNES = {"ssim": (("tune", "ssim"),), "default": None}

# Rate prior: log(bpp) ~ a + b * fine + c * coarse at each quality of the grid (speed 6, tune ssim, 4:2:0),
# fitted by least squares on augcomp.samples.natural_crops(48, 224) (fine and coarse: _containers.texture);
# `python benchmarks/fit_priors.py --codecs avif` refits it.
_LEVELS = tuple(float(q) for q in range(0, 101, 4))
_TABLE = (
    (-4.729, -4.619, -4.562, -4.433, -4.353, -4.148, -4.014, -3.765, -3.617, -3.352, -3.177, -2.928, -2.759, -2.516,
     -2.395, -2.174, -2.041, -1.871, -1.768, -1.595, -1.481, -1.268, -1.076, -0.697, -0.315, 0.820),
    (-0.034, 0.195, 0.359, 0.454, 0.520, 0.643, 0.762, 0.862, 0.959, 1.068, 1.105, 1.148, 1.160, 1.165, 1.175,
     1.166, 1.143, 1.125, 1.105, 1.064, 1.034, 0.974, 0.903, 0.761, 0.649, 0.411),
    (0.698, 0.679, 0.610, 0.587, 0.562, 0.473, 0.382, 0.292, 0.212, 0.106, 0.060, 0.008, -0.019, -0.044, -0.062,
     -0.078, -0.072, -0.083, -0.076, -0.062, -0.046, -0.017, 0.019, 0.080, 0.105, 0.050),
)


class AVIFCodec(LibraryCodec):
    """AVIF as libavif writes it with libaom through Pillow: one AV1 key frame in a HEIF (ISOBMFF) file.

    The level is libavif's quality, an integer in [0, 100]; libavif maps it to one of AV1's 64 quantizer indices
    (so neighbouring qualities can share a quantizer and give the same file). Grayscale is coded as AV1
    monochrome (4:0:0) and decodes to one channel. Encoding runs on one thread per image: libaom's output depends
    on its thread count, and images of a batch already run in parallel.

    Bits: the AV1 frame OBUs in ``mdat`` (frame header and tile data, OBU headers included). Left out: every
    ISOBMFF box (``ftyp``, ``meta`` with ``hdlr``, ``pitm``, ``iloc``, ``iinf``, ``iprp`` and its ``ispe``,
    ``pixi``, ``av1C``, ``colr`` properties, and the ``mdat`` header), the temporal delimiter and the sequence header
    OBU: about 290 bytes (0.046 bpp at 224 x 224) that do not depend on the content. ``include_header=True``
    counts the whole file.

    Args:
        entry: the registry entry.
        grad: ``"ste"`` (identity through the codec) or ``"none"``.
        speed: libaom's speed preset, 0 (slowest, smallest files) to 10. Default 6, libavif's own: about 40-55 ms
            of CPU for a 224 x 224 crop, 19% fewer bits than speed 8 at the same PSNR (BD-rate on 224 x 224 crops)
            for 1.4-2.4x the time; 7 saves 4% over 8 for 1.3x; 9 costs 13% more bits than 8 and is 3x faster.
            Faster presets drop coding tools that matter on small images: on 64 x 64 scenes the lowest
            reachable rate is 0.11 bpp at speeds 7 and 8 against 0.07 at 6.
        subsampling: chroma layout of colour images: ``"420"`` (the usual lossy layout), ``"422"`` or ``"444"``
            (12% fewer bits than 4:2:0 for the same RGB PSNR, at about the same speed).
        tune: ``"ssim"`` (default: libaom's SSIM tuning, which also drops the perceptual delta-q; 3% fewer bits
            than ``"default"`` at the same PSNR, and a lowest rate about half as high: 0.056 against 0.116 bpp on
            224 x 224 crops) or ``"default"`` (libavif's and libaom's own settings).
        include_header: count the whole file instead of the coded payload.
        threads: images coded at once (default: the cores this process may use; 1 in a DataLoader worker).
        tol: relative rate error at which bpp targeting stops for a sample.

    Shape:
        - x: ``(B, C, H, W)`` with C = 1 or 3; float in [0, 1] or uint8 in [0, 255]; any device (copied to the host).
        - level (quality): ``(B,)`` integers in [0, 100].
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    def __init__(self, entry: CodecEntry, grad: str = "ste", speed: int = 6, subsampling: str = "420",
                 tune: str = "ssim", include_header: bool = False, threads: int | None = None,
                 tol: float = DEFAULT_TOL) -> None:
        super().__init__(entry, grad, include_header, threads, tol)
        if isinstance(speed, bool) or speed not in range(11):
            raise ArgumentError(
                f"speed must be an int in 0..10 (libaom's speed preset; 6 is the default), got {speed!r}"
            )
        if subsampling not in SUBSAMPLINGS:
            raise ArgumentError(f"subsampling must be one of {tuple(SUBSAMPLINGS)}, got {subsampling!r}")
        if tune not in TUNES:
            raise ArgumentError(f"tune must be one of {tuple(TUNES)}, got {tune!r}")
        from PIL import features

        if not features.check("avif"):
            raise MissingExtraError("codec 'avif' needs Pillow built with libavif (Pillow >= 11.3 wheels): "
                                    "pip install -U pillow")
        from PIL import _avif

        if not _avif.encoder_codec_available("aom"):
            raise MissingExtraError("codec 'avif' needs libavif with the libaom encoder, which this Pillow lacks: "
                                    "pip install -U pillow")
        self.speed = int(speed)
        self.subsampling = subsampling
        self.tune = tune

    def encode(self, image: np.ndarray, level: float) -> bytes:
        from PIL import Image

        gray = image.shape[2] == 1
        out = io.BytesIO()
        Image.fromarray(image[..., 0] if gray else image).save(
            out, "AVIF", quality=int(round(level)), speed=self.speed, codec="aom", max_threads=1,
            subsampling="4:0:0" if gray else SUBSAMPLINGS[self.subsampling], advanced=TUNES[self.tune])
        return out.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im)

    def payload_bits(self, data: bytes) -> int:
        return 8 * avif_frame_bytes(data)

    def library_version(self) -> str:
        from augcomp.codecs.webp import _pillow_library

        return _pillow_library("avif", "libavif")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, speed={self.speed}, subsampling={self.subsampling!r}, tune={self.tune!r}"


AVIF = register(
    CodecEntry(
        name="avif",
        builder=AVIFCodec,
        level_range=(0.0, 100.0),
        discrete=True,
        level_name="quality",
        rate_increases_with_level=True,
        channels=(1, 3),
        devices=("cpu",),
        grad_modes=("ste", "none"),
        reference="libavif + libaom (Pillow)",
        extra=None,
        requires=("PIL",),
        min_size=1,
        family="traditional",
        suffixes=(".avif",),
        accepted=(*LIBRARY_OPTIONS, "speed", "subsampling", "tune"),
        rate_curve=(_LEVELS, _TABLE),
        description="AVIF (AV1 intra, 4:2:0) by libavif + libaom through Pillow; quality 0-100",
    )
)
