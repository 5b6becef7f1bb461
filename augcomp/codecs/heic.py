"""``HEICCodec``: HEIC (HEVC intra by x265, in a HEIF file, through pillow-heif) as a library codec."""

from __future__ import annotations

import io

import numpy as np

from augcomp._errors import ArgumentError
from augcomp.codecs._containers import heic_slice_bytes
from augcomp.codecs.library import LIBRARY_OPTIONS, LibraryCodec
from augcomp.codecs.registry import CodecEntry, register
from augcomp.rate import DEFAULT_TOL

__all__ = ["HEICCodec", "PRESETS", "SUBSAMPLINGS"]

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
SUBSAMPLINGS = ("420", "422", "444")

# Rate prior: log(bpp) ~ a + b * fine + c * coarse at each quality of the grid (preset ultrafast, 4:2:0), fitted on
# 48 resized scikit-image crops of 224 x 224 (fine and coarse: augcomp.codecs._containers.texture). The refit on
# natural_crops(48, 224) by `python benchmarks/fit_priors.py --codecs heic` predicts held-out crops a little better
# (median log error 0.069 against 0.076) but took more encodes per sample in `benchmarks/codecs.py` (2.37 against
# 2.17), so this table stays.
_LEVELS = tuple(float(q) for q in range(0, 101, 4))
_TABLE = (
    (-5.228, -4.978, -4.712, -4.424, -4.111, -3.728, -3.387, -3.034, -2.666, -2.341, -2.007, -1.669, -1.373, -1.075,
     -0.798, -0.541, -0.292, -0.045, 0.208, 0.423, 0.661, 0.906, 1.075, 1.232, 1.284, 1.284),
    (-0.189, -0.035, 0.101, 0.272, 0.438, 0.622, 0.778, 0.913, 1.030, 1.132, 1.207, 1.268, 1.305, 1.316, 1.316, 1.297,
     1.272, 1.218, 1.124, 1.038, 0.907, 0.727, 0.642, 0.577, 0.567, 0.567),
    (1.220, 1.126, 1.037, 0.892, 0.742, 0.553, 0.390, 0.239, 0.099, -0.029, -0.134, -0.235, -0.309, -0.365, -0.408,
     -0.435, -0.457, -0.456, -0.430, -0.400, -0.344, -0.254, -0.216, -0.191, -0.187, -0.187),
)


class HEICCodec(LibraryCodec):
    """HEIC as libheif writes it with x265 through pillow-heif: one HEVC intra picture in a HEIF file.

    The level is libheif's quality, an integer in [0, 100] that libheif maps to x265's rate factor; about 50
    distinct pictures result, 4 to 12% apart in rate. Grayscale is coded as HEVC monochrome and decodes to one
    channel. x265 runs with one thread per image (images of a batch already run in parallel), which also keeps
    its output the same from call to call.

    Bits: the slice NAL units in ``mdat`` (2-byte NAL unit headers included). Left out: every ISOBMFF box
    (``ftyp``, ``meta`` with the ``hvcC`` property that holds the VPS, SPS and PPS parameter sets, the ``mdat``
    header), each NAL unit's 4-byte length prefix and any non-slice NAL unit. ``include_header=True`` counts the
    whole file.

    Args:
        entry: the registry entry.
        grad: ``"ste"`` (identity through the codec) or ``"none"``.
        preset: x265's speed preset. Default ``"ultrafast"``: about 20 ms of CPU for a 224 x 224 crop.
            ``"superfast"`` saves 15% of the bits at the same PSNR (BD-rate) and takes about 45 ms; ``"veryfast"``
            and ``"medium"`` are no better in PSNR than ``"superfast"`` and slower; libheif's own choice (no preset)
            takes about 100 ms.
        subsampling: chroma layout of colour images: ``"420"`` (x265's default), ``"422"`` or ``"444"``.
        include_header: count the whole file instead of the coded payload.
        threads: images coded at once (default: the cores this process may use; 1 in a DataLoader worker).
        tol: relative rate error at which bpp targeting stops for a sample.

    Shape:
        - x: ``(B, C, H, W)`` with C = 1 or 3; float in [0, 1] or uint8 in [0, 255]; any device (copied to the host).
        - level (quality): ``(B,)`` integers in [0, 100].
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    def __init__(self, entry: CodecEntry, grad: str = "ste", preset: str = "ultrafast", subsampling: str = "420",
                 include_header: bool = False, threads: int | None = None, tol: float = DEFAULT_TOL) -> None:
        super().__init__(entry, grad, include_header, threads, tol)
        if preset not in PRESETS:
            raise ArgumentError(f"preset must be one of {PRESETS} (x265's speed presets), got {preset!r}")
        if subsampling not in SUBSAMPLINGS:
            raise ArgumentError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}")
        self.preset = preset
        self.subsampling = subsampling
        # One x265 thread per picture, and no log lines on stderr for every image.
        self._x265 = {"preset": preset, "x265:pools": "1", "x265:frame-threads": "1", "x265:log-level": "none"}

    def encode(self, image: np.ndarray, level: float) -> bytes:
        import pillow_heif

        gray = image.shape[2] == 1
        heif = pillow_heif.from_bytes(mode="L" if gray else "RGB", size=(image.shape[1], image.shape[0]),
                                      data=image.tobytes())
        out = io.BytesIO()
        heif.save(out, quality=int(round(level)), enc_params=self._x265, chroma=self.subsampling)
        return out.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_heif

        return np.asarray(pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True))

    def payload_bits(self, data: bytes) -> int:
        return 8 * heic_slice_bytes(data)

    def library_version(self) -> str:
        import pillow_heif

        return f"libheif {pillow_heif.libheif_version()} (pillow-heif {pillow_heif.__version__})"

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, preset={self.preset!r}, subsampling={self.subsampling!r}"


HEIC = register(
    CodecEntry(
        name="heic",
        builder=HEICCodec,
        level_range=(0.0, 100.0),
        discrete=True,
        level_name="quality",
        rate_increases_with_level=True,
        channels=(1, 3),
        devices=("cpu",),
        grad_modes=("ste", "none"),
        reference="libheif + x265 (pillow-heif)",
        extra="codecs",
        requires=("pillow_heif",),
        min_size=1,
        family="traditional",
        suffixes=(".heic", ".heif"),
        accepted=(*LIBRARY_OPTIONS, "preset", "subsampling"),
        rate_curve=(_LEVELS, _TABLE),
        description="HEIC (HEVC intra, 4:2:0) by libheif + x265 through pillow-heif; quality 0-100",
    )
)
