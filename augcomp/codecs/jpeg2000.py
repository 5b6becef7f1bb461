"""``JPEG2000Codec``: JPEG 2000 (OpenJPEG, through Pillow) as a library codec, with OpenJPEG's own rate control."""

from __future__ import annotations

import io

import numpy as np

from augcomp._errors import ArgumentError
from augcomp.codecs._containers import j2k_tile_data_bytes, jp2_codestream
from augcomp.codecs.library import LIBRARY_OPTIONS, LibraryCodec
from augcomp.codecs.registry import CodecEntry, MissingExtraError, register
from augcomp.rate import DEFAULT_TOL

__all__ = ["JPEG2000Codec"]

# OpenJPEG's smallest tile data (every code-block empty): 20 to 30 bytes whatever the ratio beyond it.
_FLOOR = 32


class JPEG2000Codec(LibraryCodec):
    """JPEG 2000 as OpenJPEG writes it through Pillow: one tile, one quality layer, a JP2 file.

    The level is OpenJPEG's compression ratio: raw size (8 bits per sample, all components) over the size of the
    file, which OpenJPEG's rate allocation meets to within about 1% (it truncates the code-block passes to fit). A
    higher ratio means fewer bits; ratios beyond what an image needs at the lowest end give OpenJPEG's smallest
    stream (about 30 bytes of tile data). Because the encoder targets a size itself, bpp targeting usually takes a
    single encode. Pillow keeps the GIL while OpenJPEG codes, so the images of a batch do not overlap in threads
    (DataLoader workers, being processes, do run in parallel).

    Defaults follow the usual lossy JPEG 2000 setup (as in ``opj_compress -I``): the irreversible 9/7 wavelet and
    the irreversible colour transform (YCbCr) on RGB. Pillow's own defaults (reversible 5/3 wavelet, no colour
    transform) need 89% more bits for the same PSNR, and no colour transform alone 72% more (BD-rate on 224 x 224
    crops). Other settings are OpenJPEG's: 6 resolution levels (fewer on small images), 64 x 64 code-blocks, LRCP
    progression.

    Bits: the tile-part data after each SOD marker (packet headers and code-block bits). Left out: the JP2 boxes
    (signature, ``ftyp``, ``jp2h`` with ``ihdr`` and ``colr``, the ``jp2c`` header), SOC, the main header (SIZ, COD,
    QCD, COM), the tile-part headers (SOT to SOD) and EOC: 242 bytes for a 224 x 224 RGB image.
    ``include_header=True`` counts the whole file.

    Args:
        entry: the registry entry.
        grad: ``"ste"`` (identity through the codec) or ``"none"``.
        irreversible: the 9/7 wavelet (True) or the reversible 5/3 (False).
        mct: apply the multi-component colour transform to RGB images (grayscale has one component).
        include_header: count the whole file instead of the coded payload.
        threads: images coded at once (default: the cores this process may use; 1 in a DataLoader worker).
        tol: relative rate error at which bpp targeting stops for a sample.

    Shape:
        - x: ``(B, C, H, W)`` with C = 1 or 3; float in [0, 1] or uint8 in [0, 255]; any device (copied to the host).
        - level (ratio): ``(B,)`` in [1, 1000].
        - output: image like ``x``; bits ``(B,)`` float32.
    """

    def __init__(self, entry: CodecEntry, grad: str = "ste", irreversible: bool = True, mct: bool = True,
                 include_header: bool = False, threads: int | None = None, tol: float = DEFAULT_TOL) -> None:
        super().__init__(entry, grad, include_header, threads, tol)
        for name, value in (("irreversible", irreversible), ("mct", mct)):
            if not isinstance(value, bool):
                raise ArgumentError(f"{name} must be True or False, got {value!r}")
        from PIL import features

        if not features.check("jpg_2000"):
            raise MissingExtraError("codec 'jpeg2000' needs Pillow built with OpenJPEG (every Pillow wheel has it): "
                                    "pip install -U pillow")
        self.irreversible = irreversible
        self.mct = mct
        # Bytes outside the tile data per image shape, learnt from each encode: they make the rate prior exact.
        # (Single dict reads and writes are atomic under the GIL, so the coding threads share it without a lock.)
        self._overhead: dict[tuple[int, ...], int] = {}

    def encode(self, image: np.ndarray, level: float) -> bytes:
        from PIL import Image

        gray = image.shape[2] == 1
        out = io.BytesIO()
        Image.fromarray(image[..., 0] if gray else image).save(
            out, "JPEG2000", quality_mode="rates", quality_layers=[float(level)], irreversible=self.irreversible,
            mct=int(self.mct and not gray))
        data = out.getvalue()
        self._overhead.setdefault(image.shape, len(data) - j2k_tile_data_bytes(data))
        return data

    def decode(self, data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im)

    def payload_bits(self, data: bytes) -> int:
        return 8 * j2k_tile_data_bytes(data)

    def _overhead_of(self, shape: tuple[int, ...]) -> int:
        # The bytes around the tile data depend on the shape and the settings, not on the content: learnt once per
        # shape from a flat image, so the search starts from the same point whatever was coded before (stored
        # entries must not depend on the history of the process that made them).
        if shape not in self._overhead:
            self.encode(np.zeros(shape, dtype=np.uint8), self.entry.level_range[1])
        return self._overhead[shape]

    def file_for(self, data: bytes, suffix: str) -> bytes:
        # .j2k is the bare codestream; .jp2 (and anything else) the JP2 file libopenjp2 writes.
        if suffix.lower() in (".j2k", ".j2c"):
            start, end = jp2_codestream(data)
            return data[start:end]
        return data

    def library_version(self) -> str:
        from augcomp.codecs.webp import _pillow_library

        return _pillow_library("jpg_2000", "OpenJPEG")

    def rate_prior(self, image: np.ndarray, target_bpp: float) -> tuple[float, float]:
        # OpenJPEG sizes the file as raw / ratio: ask for the target plus what surrounds the tile data.
        overhead = 0 if self.include_header else self._overhead_of(image.shape)
        coded = target_bpp * image.shape[0] * image.shape[1] / 8
        lo, hi = self.entry.level_range
        if coded < _FLOOR:  # at or below the floor every high ratio gives the same stream: start at the end
            return hi, 1.0 / hi
        ratio = min(max(image.size / (coded + overhead), lo), hi)
        # bits = 8 * (raw / ratio - overhead), so |d log(bits) / d ratio| = raw / (ratio * (raw - overhead * ratio))
        coded_at_ratio = max(image.size / ratio - overhead, 1.0)
        return ratio, image.size / (ratio * ratio * coded_at_ratio)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, irreversible={self.irreversible}, mct={self.mct}"


JPEG2000 = register(
    CodecEntry(
        name="jpeg2000",
        builder=JPEG2000Codec,
        level_range=(1.0, 1000.0),
        discrete=False,
        level_name="ratio",
        rate_increases_with_level=False,
        channels=(1, 3),
        devices=("cpu",),
        grad_modes=("ste", "none"),
        reference="OpenJPEG (Pillow)",
        extra=None,
        requires=("PIL",),
        min_size=1,
        family="traditional",
        suffixes=(".jp2", ".j2k"),
        accepted=(*LIBRARY_OPTIONS, "irreversible", "mct"),
        description="JPEG 2000 (9/7 wavelet, colour transform, one layer) by OpenJPEG through Pillow; "
                    "compression ratio 1-1000",
    )
)
