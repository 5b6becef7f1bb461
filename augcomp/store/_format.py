"""What one entry of a store holds, how it is keyed and checksummed, and the Parquet schema it is written with.

An entry is one image coded by one codec at one target: the key is a hash of (the image's content after the sweep's
own preprocessing, the codec's identity, the target). The checksum hashes the key, the coded bytes and every field
that describes them, so a flipped byte anywhere in a row is found by re-hashing it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from augcomp._errors import ArgumentTypeError

__all__ = ["Entry", "SCHEMA_FIELDS", "codec_id", "entry_key", "image_hash", "checksum", "schema"]

FORMAT = "augcomp-store"
FORMAT_VERSION = 1
# The columns an index read needs (everything but the coded bytes).
INDEX_COLUMNS = ("key", "checksum", "image", "codec", "codec_id", "target_kind", "target", "level", "bits", "bpp",
                 "channels", "height", "width", "file_kind", "source")
SCHEMA_FIELDS = (*INDEX_COLUMNS, "identity", "data")


def image_hash(image: Tensor | np.ndarray) -> str:
    """sha256 of one uint8 image's shape and bytes.

    Shape:
        - image: ``(C, H, W)`` uint8 in [0, 255].
    """
    if isinstance(image, Tensor):
        if image.dtype != torch.uint8:
            raise ArgumentTypeError(f"stores key uint8 images, got {image.dtype}")
        image = image.detach().cpu().contiguous().numpy()
    h = hashlib.sha256(repr(tuple(image.shape)).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def codec_id(identity: dict[str, Any]) -> str:
    """A short hash of a codec's identity (:meth:`augcomp.codecs.Codec.identity`)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def entry_key(image: str, codec: str, target_kind: str, target: float) -> str:
    """The key of (image hash, codec id, target): what a lookup asks for."""
    return hashlib.sha256(f"{image}|{codec}|{target_kind}={float(target)!r}".encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One coded image.

    Attributes:
        key: :func:`entry_key` of (image, codec_id, target_kind, target).
        image: :func:`image_hash` of the image that was coded.
        codec: the codec's name.
        codec_id: :func:`codec_id` of its identity; ``identity`` is that identity as JSON.
        target_kind: ``"bpp"`` (a target bitrate) or ``"level"`` (a fixed level).
        target: the target bpp or level.
        level: the level the codec used.
        bits: the coded payload's bits (for ``file_kind == "pixels"``: the model's likelihood bits).
        bpp: ``bits / (height * width)``.
        channels, height, width: the coded image's size.
        file_kind: the codec entry's ``file_kind``.
        source: where the image came from (a dataset item), for people; not part of the key.
        data: the coded file.
        checksum: sha256 over the key, the fields above and ``data``.
    """

    key: str
    image: str
    codec: str
    codec_id: str
    identity: str
    target_kind: str
    target: float
    level: float
    bits: float
    bpp: float
    channels: int
    height: int
    width: int
    file_kind: str
    source: str
    data: bytes
    checksum: str = ""

    def expected_checksum(self) -> str:
        return checksum(self.key, self.level, self.bits, self.channels, self.height, self.width, self.file_kind,
                        self.data)

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SCHEMA_FIELDS}


def checksum(key: str, level: float, bits: float, channels: int, height: int, width: int, file_kind: str,
             data: bytes) -> str:
    """sha256 of an entry's key, its describing fields and its bytes."""
    h = hashlib.sha256(f"{key}|{float(level)!r}|{float(bits)!r}|{channels}|{height}|{width}|{file_kind}|".encode())
    h.update(data)
    return h.hexdigest()


def schema():
    """The Parquet schema of a part file (pyarrow)."""
    import pyarrow as pa

    strings = ("key", "checksum", "image", "codec", "codec_id", "target_kind", "file_kind", "source", "identity")
    floats = ("target", "level", "bits", "bpp")
    ints = ("channels", "height", "width")
    fields = []
    for name in SCHEMA_FIELDS:
        if name in strings:
            fields.append(pa.field(name, pa.string()))
        elif name in floats:
            fields.append(pa.field(name, pa.float64()))
        elif name in ints:
            fields.append(pa.field(name, pa.int32()))
        else:
            fields.append(pa.field(name, pa.binary()))
    return pa.schema(fields, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
