"""``JPEGXLCodec``: lossy JPEG XL (libjxl's VarDCT coder, through imagecodecs) as a library codec."""

from __future__ import annotations

import numpy as np

from augcomp.codecs._containers import jxl_codestream
from augcomp.codecs.library import LibraryCodec
from augcomp.codecs.registry import CodecEntry, MissingExtraError, register
from augcomp.rate import DEFAULT_TOL

__all__ = ["JPEGXLCodec"]

_SIGNATURE = 2  # bytes of the codestream signature FF 0A

# Rate prior: log(bpp) ~ a + b * fine + c * coarse at each distance of the grid (effort 5), fitted on 48 resized
# scikit-image crops of 224 x 224 (fine and coarse: augcomp.codecs._containers.texture).
_LEVELS = (0.1, 0.134, 0.179, 0.239, 0.32, 0.428, 0.572, 0.765, 1.022, 1.367, 1.828, 2.445, 3.27, 4.372, 5.847, 7.818,
           10.455, 13.981, 18.695, 25.0)
_TABLE = (
    (1.534, 1.343, 1.119, 0.891, 0.645, 0.399, 0.079, -0.217, -0.458, -0.749, -1.051, -1.329, -1.643, -1.927, -2.224,
     -2.490, -2.688, -2.906, -2.988, -3.597),
    (0.773, 0.836, 0.881, 0.912, 0.925, 0.934, 1.030, 1.010, 0.966, 0.903, 0.820, 0.749, 0.656, 0.571, 0.478, 0.377,
     0.299, 0.174, 0.116, 0.155),
    (-0.426, -0.453, -0.452, -0.444, -0.416, -0.388, -0.409, -0.349, -0.285, -0.199, -0.098, -0.022, 0.083, 0.171,
     0.274, 0.367, 0.413, 0.477, 0.477, 0.637),
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

    rate_curve = (_LEVELS, _TABLE)

    def __init__(self, entry: CodecEntry, grad: str = "ste", effort: int = 5, include_header: bool = False,
                 threads: int | None = None, tol: float = DEFAULT_TOL) -> None:
        super().__init__(entry, grad, include_header, threads, tol)
        if isinstance(effort, bool) or effort not in range(1, 10):
            raise ValueError(f"effort must be an int in 1..9 (libjxl's effort; 5 is the default), got {effort!r}")
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
        description="lossy JPEG XL (VarDCT, XYB) by libjxl through imagecodecs; Butteraugli distance 0.1-25",
    )
)
