"""What the traditional codecs share: pure-Python payload parsers, and the curve-based rate prior.

Payload parsers
---------------

Each parser walks the container's own length fields (never scans for marker bytes inside coded data, where any
byte pattern may occur) and returns byte counts; the codecs turn them into bits. They read only what the
libraries write (one still image, no animation) and raise ``ValueError`` on anything else.

- RIFF (WebP): ``"RIFF" size "WEBP"`` then chunks ``fourcc, u32le size, data, pad to even``.
- ISOBMFF (AVIF, HEIF): boxes ``u32be size, type[, u64be largesize]``; size 0 runs to the end of the file.
- AV1 OBUs (inside AVIF's ``mdat``): one header byte (type in bits 6..3, extension and has-size flags), an
  optional extension byte, a LEB128 size.
- HEVC in HEIF (HEIC): ``mdat`` holds NAL units, each after a 4-byte big-endian length; the NAL unit type is in
  bits 6..1 of its first header byte, types 0 to 31 are coded slices.
- JP2 (JPEG 2000): boxes as in ISOBMFF; the ``jp2c`` box holds the codestream, whose tile-parts are
  ``SOT (Psot = tile-part length) ... SOD data``.
- JPEG XL: a bare codestream (``FF 0A``) or an ISOBMFF container whose ``jxlc`` box, or ``jxlp`` boxes (each with
  a 4-byte index first), hold it.

Rate prior
----------
:func:`curve_prior` warm-starts bpp targeting: a codec's typical ``log(bpp)`` at a grid of levels, shifted by two
cheap texture measures of the image (:func:`texture`), fitted once per codec on scikit-image crops and stored as
constants in the codec's module. Off by 15 to 30% in rate on unseen crops, it leaves one or two refining encodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

__all__ = [
    "av1_obus",
    "avif_frame_bytes",
    "boxes",
    "curve_prior",
    "heic_slice_bytes",
    "j2k_tile_data_bytes",
    "jp2_codestream",
    "jxl_codestream",
    "riff_chunks",
    "texture",
    "webp_vp8_payload_bytes",
]

OBU_SEQUENCE_HEADER = 1
OBU_TEMPORAL_DELIMITER = 2
OBU_FRAME_HEADER = 3
OBU_TILE_GROUP = 4
OBU_FRAME = 6
_FRAME_OBUS = (OBU_FRAME_HEADER, OBU_TILE_GROUP, OBU_FRAME)

_VP8_FRAME_HEADER = 10  # key frame: 3-byte frame tag, start code 9d 01 2a, 2+2 bytes of scaled width and height


def _u32be(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "big")


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int, int]]:
    """ISOBMFF boxes in ``data[start:end]``, in order; together they tile the range exactly.

    Yields:
        ``(type, box_start, content_start, box_end)`` per box.
    """
    end = len(data) if end is None else end
    at = start
    while at < end:
        if end - at < 8:
            raise ValueError(f"truncated box header at byte {at}")
        size, kind, content = _u32be(data, at), bytes(data[at + 4:at + 8]), at + 8
        if size == 1:  # 64-bit size follows the type
            size, content = int.from_bytes(data[at + 8:at + 16], "big"), at + 16
        elif size == 0:  # the box runs to the end of its parent
            size = end - at
        if size < content - at or at + size > end:
            raise ValueError(f"box {kind!r} at byte {at} has an invalid size {size}")
        yield kind, at, content, at + size
        at += size


def riff_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Chunks of a RIFF/WEBP file as ``(fourcc, data start, data size)``."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a RIFF WEBP file")
    end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    at = 12
    while at < end:
        if end - at < 8:
            raise ValueError(f"truncated RIFF chunk header at byte {at}")
        size = int.from_bytes(data[at + 4:at + 8], "little")
        if at + 8 + size > end:
            raise ValueError(f"RIFF chunk {bytes(data[at:at + 4])!r} at byte {at} runs past the file")
        yield bytes(data[at:at + 4]), at + 8, size
        at += 8 + size + (size & 1)  # chunks are padded to an even length


def webp_vp8_payload_bytes(data: bytes) -> int:
    """Bytes of a lossy WebP's VP8 data after its fixed 10-byte key-frame header (the bool-coded partitions)."""
    for fourcc, _start, size in riff_chunks(data):
        if fourcc == b"VP8 ":
            if size < _VP8_FRAME_HEADER:
                raise ValueError("VP8 chunk shorter than its frame header")
            return size - _VP8_FRAME_HEADER
    raise ValueError("no lossy 'VP8 ' chunk in the WebP file")


def _leb128(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at + i + 1
    raise ValueError(f"LEB128 longer than 8 bytes at byte {at}")


def av1_obus(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """AV1 OBUs in ``data[start:end]`` (low-overhead format, as AVIF stores them) as ``(type, start, end)``."""
    at = start
    while at < end:
        header = data[at]
        if header & 0x80:
            raise ValueError(f"AV1 OBU at byte {at} has its forbidden bit set")
        kind, has_extension, has_size = (header >> 3) & 0x0F, bool(header & 0x04), bool(header & 0x02)
        payload = at + 1 + has_extension
        if has_size:
            size, payload = _leb128(data, payload)
        else:  # the last OBU may omit its size and run to the end
            size = end - payload
        if payload + size > end:
            raise ValueError(f"AV1 OBU at byte {at} runs past its mdat box")
        yield kind, at, payload + size
        at = payload + size


def avif_frame_bytes(data: bytes) -> int:
    """Bytes of the AV1 frame OBUs (frame header and tile data, OBU headers included) in an AVIF's ``mdat``.

    Everything else is left out: the ISOBMFF boxes (``ftyp``, ``meta`` with its item properties, the ``mdat`` box
    header) and the sequence header OBU (profile, size, colour configuration: fixed for a given image format).
    """
    total, seen_mdat = 0, False
    for kind, _box, content, box_end in boxes(data):
        if kind == b"mdat":
            seen_mdat = True
            total += sum(e - s for obu, s, e in av1_obus(data, content, box_end) if obu in _FRAME_OBUS)
    if not seen_mdat:
        raise ValueError("no mdat box in the AVIF file")
    return total


def heic_slice_bytes(data: bytes) -> int:
    """Bytes of the HEVC slice NAL units (2-byte NAL headers included) in a HEIC's ``mdat``.

    Left out: the ISOBMFF boxes (the parameter sets live in ``meta``'s ``hvcC``), the 4-byte length before each NAL
    unit, and NAL units other than coded slices (SEI, parameter sets, if any).
    """
    total, seen_mdat = 0, False
    for kind, _box, content, box_end in boxes(data):
        if kind != b"mdat":
            continue
        seen_mdat, at = True, content
        while at < box_end:
            size = _u32be(data, at)
            if size < 2 or at + 4 + size > box_end:
                raise ValueError(f"HEVC NAL unit at byte {at} has an invalid length {size}")
            if (data[at + 4] >> 1) & 0x3F < 32:
                total += size
            at += 4 + size
    if not seen_mdat:
        raise ValueError("no mdat box in the HEIC file")
    return total


def jp2_codestream(data: bytes) -> tuple[int, int]:
    """``(start, end)`` of the JPEG 2000 codestream: the ``jp2c`` box of a JP2 file, or all of a raw J2K."""
    if data[:4] == b"\xff\x4f\xff\x51":  # SOC then SIZ: a raw codestream
        return 0, len(data)
    for kind, _box, content, box_end in boxes(data):
        if kind == b"jp2c":
            return content, box_end
    raise ValueError("no jp2c box in the JP2 file")


def j2k_tile_data_bytes(data: bytes) -> int:
    """Bytes of tile-part data (packet headers and code-block bits, after each SOD marker) in a JPEG 2000 file.

    Walks the main header marker segments to the first SOT, then hops from tile-part to tile-part with ``Psot``.
    Left out: the JP2 boxes, SOC, the main header (SIZ, COD, QCD, COM, ...), each tile-part header (SOT to SOD
    included) and EOC.
    """
    start, end = jp2_codestream(data)
    if data[start:start + 2] != b"\xff\x4f":
        raise ValueError("JPEG 2000 codestream does not start with SOC")
    at = start + 2
    while data[at:at + 2] != b"\xff\x90":  # main header marker segments: marker, 2-byte length (itself included)
        if at + 4 > end or data[at] != 0xFF:
            raise ValueError(f"bad JPEG 2000 main header marker at byte {at}")
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    total = 0
    while data[at:at + 2] == b"\xff\x90":  # SOT: Lsot(2) Isot(2) Psot(4) TPsot(1) TNsot(1)
        psot = _u32be(data, at + 6)
        part_end = end - 2 if psot == 0 else at + psot  # Psot 0: the last tile-part, up to EOC
        marker = at + 12
        while data[marker:marker + 2] != b"\xff\x93":  # tile-part header segments up to SOD
            if marker + 4 > part_end or data[marker] != 0xFF:
                raise ValueError(f"bad JPEG 2000 tile-part header marker at byte {marker}")
            marker += 2 + int.from_bytes(data[marker + 2:marker + 4], "big")
        if part_end > end or marker + 2 > part_end:
            raise ValueError(f"JPEG 2000 tile-part at byte {at} has an invalid Psot {psot}")
        total += part_end - (marker + 2)
        at = part_end
    if data[at:at + 2] != b"\xff\xd9":
        raise ValueError(f"JPEG 2000 codestream does not end with EOC after its tile-parts (byte {at})")
    return total


def jxl_codestream(data: bytes) -> bytes:
    """The JPEG XL codestream: the file itself if bare, else the ``jxlc`` box or the ``jxlp`` parts joined."""
    if data[:2] == b"\xff\x0a":
        return bytes(data)
    if data[4:8] != b"JXL ":
        raise ValueError("not a JPEG XL codestream or container")
    parts = []
    for kind, _box, content, box_end in boxes(data):
        if kind == b"jxlc":
            return bytes(data[content:box_end])
        if kind == b"jxlp":
            parts.append(bytes(data[content + 4:box_end]))  # skip the part index
    if not parts:
        raise ValueError("no jxlc or jxlp box in the JPEG XL container")
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------------- rate prior

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def texture(image: np.ndarray) -> tuple[float, float]:
    """Log mean absolute luma gradient of an ``(H, W, C)`` uint8 image, at full and at quarter resolution.

    The first tracks fine detail (what high levels pay for), the second coarse structure (what still costs bits at
    the lowest levels); together they predict a crop's rate at a level to within 15 to 30%.
    """
    luma = image[..., 0].astype(np.float32) if image.shape[-1] == 1 else image.astype(np.float32) @ _LUMA
    fine = _mean_gradient(luma)
    h, w = luma.shape[0] // 4 * 4, luma.shape[1] // 4 * 4
    coarse = _mean_gradient(luma[:h, :w].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))) if min(h, w) >= 8 else fine
    return math.log(fine + 1e-3), math.log(coarse + 1e-3)


def _mean_gradient(luma: np.ndarray) -> float:
    dx = float(np.abs(np.diff(luma, axis=1)).mean()) if luma.shape[1] > 1 else 0.0
    dy = float(np.abs(np.diff(luma, axis=0)).mean()) if luma.shape[0] > 1 else 0.0
    return (dx + dy) / 2


def curve_prior(image: np.ndarray, target_bpp: float, levels: Sequence[float],
                table: Sequence[Sequence[float]]) -> tuple[float, float]:
    """``(start level, |d log(bits) / d level|)`` from a fitted rate curve, for :meth:`LibraryCodec.rate_prior`.

    Args:
        image: ``(H, W, C)`` uint8.
        target_bpp: the target, > 0.
        levels: the grid the curve was fitted on, increasing.
        table: three rows ``(a, b, c)`` over the grid: ``log(bpp) ~ a + b * fine + c * coarse`` with
            ``(fine, coarse) = texture(image)``.
    """
    fine, coarse = texture(image)
    a, b, c = (np.asarray(row, dtype=np.float64) for row in table)
    curve = a + b * fine + c * coarse
    grid = np.asarray(levels, dtype=np.float64)
    if curve[-1] < curve[0]:  # rate falls with the level: walk the grid backwards so that the rate rises
        curve, grid = curve[::-1], grid[::-1]
    curve = np.maximum.accumulate(curve) + 1e-9 * np.arange(len(curve))  # strictly increasing, for interpolation
    goal = math.log(target_bpp)
    at = int(np.clip(np.searchsorted(curve, goal), 1, len(curve) - 1))
    slope = abs((curve[at] - curve[at - 1]) / (grid[at] - grid[at - 1]))
    start = float(np.interp(goal, curve, grid))
    return start, max(float(slope), 1e-3)
