"""``JPEGXLCodec``: lossy JPEG XL (libjxl's VarDCT coder, through imagecodecs) as a library codec."""

from __future__ import annotations

import numpy as np

from augcomp._errors import ArgumentError
from augcomp.codecs._containers import jxl_codestream
from augcomp.codecs.library import LIBRARY_OPTIONS, LibraryCodec
from augcomp.codecs.registry import CodecEntry, MissingExtraError, register
from augcomp.rate import DEFAULT_TOL

__all__ = ["JPEGXLCodec"]

_SIGNATURE = 2  # bytes of the codestream signature FF 0A

# Rate prior: log(bpp) ~ a + b * fine + c * coarse at each distance of the grid (effort 5), fitted by least squares
# on augcomp.samples.natural_crops(48, 224) (fine and coarse: augcomp.codecs._containers.texture);
# `python benchmarks/fit_priors.py --codecs jpegxl` refits it.
_LEVELS = (0.1, 0.134, 0.179, 0.239, 0.32, 0.428, 0.572, 0.765, 1.022, 1.367, 1.828, 2.445, 3.27, 4.372, 5.847, 7.818,
           10.455, 13.981, 18.695, 25.0)
_TABLE = (
    (1.548, 1.365, 1.125, 0.865, 0.585, 0.337, 0.025, -0.265, -0.506, -0.811, -1.083, -1.342, -1.618, -1.841, -2.064,
     -2.309, -2.491, -2.800, -2.870, -3.261),
    (0.254, 0.288, 0.323, 0.353, 0.387, 0.438, 0.538, 0.588, 0.598, 0.583, 0.560, 0.521, 0.514, 0.481, 0.404, 0.343,
     0.261, 0.181, 0.113, 0.337),
    (-0.011, -0.019, -0.007, 0.014, 0.035, 0.027, -0.003, -0.003, 0.014, 0.067, 0.108, 0.153, 0.177, 0.202, 0.264,
     0.314, 0.360, 0.428, 0.438, 0.381),
)


class JPEGXLCodec(LibraryCodec):
    """Lossy JPEG XL as libjxl writes it through imagecodecs: VarDCT in the XYB colour space, a bare codestream.

    The level is libjxl's Butteraugli distance, continuous in [0.1, 25]: 1 is visually lossless, higher means fewer
    bits. libjxl tunes its coding for that perceptual distance, not for PSNR. Grayscale is coded as a one-channel
    image and decodes to one channel. Encoding runs on one thread per image (images of a batch already run in
    parallel).

    Bits: the codestream without its 2-byte signature (``FF 0A``): the image header (size and metadata, a few bytes
    that libjxl packs bit-wise with the first frame's header, so they are not separable by byte) and the frame.
    libjxl writes no container by default; were there one, its boxes would be left out too.
    ``include_header=True`` counts the whole file.

    Args:
        entry: the registry entry.
        grad: ``"ste"`` (identity through the codec) or ``"none"``.
        effort: libjxl's effort, 1 (fastest) to 9. Default 5 (imagecodecs' default): about 18 ms of CPU for a
            224 x 224 crop. At the same PSNR (BD-rate on 224 x 224 crops) libjxl's default 7 saves 0.5% of the bits
            and takes 2.4x as long; 3 and 4 cost 1 to 3% more bits at half the time but cannot go as low (median
            lowest rate 0.23 against 0.18 bpp).
        include_header: count the whole file instead of the coded payload.
        threads: images coded at once (default: the cores this process may use; 1 in a DataLoader worker).
        tol: relative rate error at which bpp targeting stops for a sample.

    Shape:
        - x: ``(B, C, H, W)`` with C = 1 or 3; float in [0, 1] or uint8 in [0, 255]; any device (copied to the host).
        - level (distance): ``(B,)`` in [0.1, 25].
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    def __init__(self, entry: CodecEntry, grad: str = "ste", effort: int = 5, include_header: bool = False,
                 threads: int | None = None, tol: float = DEFAULT_TOL) -> None:
        super().__init__(entry, grad, include_header, threads, tol)
        if isinstance(effort, bool) or effort not in range(1, 10):
            raise ArgumentError(f"effort must be an int in 1..9 (libjxl's effort; 5 is the default), got {effort!r}")
        import imagecodecs

        if not imagecodecs.JPEGXL.available:
            raise MissingExtraError("codec 'jpegxl' needs imagecodecs built with libjxl (every imagecodecs wheel has "
                                    "it): pip install -U 'augcomp[codecs]'")
        self.effort = int(effort)

    def encode(self, image: np.ndarray, level: float) -> bytes:
        import imagecodecs

        pixels = image[..., 0] if image.shape[2] == 1 else image
        return imagecodecs.jpegxl_encode(pixels, distance=float(level), effort=self.effort, numthreads=1)

    def decode(self, data: bytes) -> np.ndarray:
        import imagecodecs

        return imagecodecs.jpegxl_decode(data, numthreads=1)

    def payload_bits(self, data: bytes) -> int:
        return 8 * (len(jxl_codestream(data)) - _SIGNATURE)

    def library_version(self) -> str:
        import imagecodecs

        return f"{imagecodecs.jpegxl_version()} (imagecodecs {imagecodecs.__version__})"

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, effort={self.effort}"


JPEGXL = register(
    CodecEntry(
        name="jpegxl",
        builder=JPEGXLCodec,
        level_range=(0.1, 25.0),
        discrete=False,
        level_name="distance",
        rate_increases_with_level=False,
        channels=(1, 3),
        devices=("cpu",),
        grad_modes=("ste", "none"),
        reference="libjxl (imagecodecs)",
        extra="codecs",
        requires=("imagecodecs",),
        min_size=1,
        family="traditional",
        suffixes=(".jxl",),
        accepted=(*LIBRARY_OPTIONS, "effort"),
        rate_curve=(_LEVELS, _TABLE),
        description="lossy JPEG XL (VarDCT, XYB) by libjxl through imagecodecs; Butteraugli distance 0.1-25",
    )
)
