"""A codec defined only in the tests: one file and one ``register`` call, to prove the codec seam.

``toy-posterize`` keeps the top ``level`` bits of each pixel and deflates them with zlib. Its bitstream is a
6-byte header (size, channels, dropped bits) and the zlib payload, so payload and file differ as in real formats.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from augcomp import codecs
from augcomp.codecs import CodecEntry, LibraryCodec
from augcomp.codecs.library import LIBRARY_OPTIONS

NAME = "toy-posterize"
HEADER = 6  # height, width, channels, dropped bits


class Posterize(LibraryCodec):
    """Posterize to ``level`` bits per sample, then zlib.

    Shape:
        - x: ``(B, C, H, W)`` with C = 1 or 3; float in [0, 1] or uint8 in [0, 255].
    """

    def encode(self, image: np.ndarray, level: float) -> bytes:
        drop = 8 - int(level)
        kept = (image >> drop).astype(np.uint8)
        header = struct.pack(">HHBB", image.shape[0], image.shape[1], image.shape[2], drop)
        return header + zlib.compress(kept.tobytes(), 9)

    def decode(self, data: bytes) -> np.ndarray:
        h, w, c, drop = struct.unpack(">HHBB", data[:HEADER])
        kept = np.frombuffer(zlib.decompress(data[HEADER:]), dtype=np.uint8).reshape(h, w, c)
        return kept << drop

    def payload_bits(self, data: bytes) -> int:
        return 8 * (len(data) - HEADER)


def register() -> CodecEntry:
    """Registers the toy codec (replacing an earlier registration)."""
    return codecs.register(
        CodecEntry(name=NAME, builder=Posterize, level_range=(1.0, 8.0), discrete=True, level_name="bits",
                   channels=(1, 3), devices=("cpu",), grad_modes=("ste", "none"), reference="numpy + zlib",
                   family="test", accepted=LIBRARY_OPTIONS, description="posterize and deflate (tests only)"),
        replace=True,
    )
