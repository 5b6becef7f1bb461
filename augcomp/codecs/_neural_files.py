"""Coded files of neural codecs: CompressAI's real ``compress()`` strings in a small container, or lossless pixels.

A ``"strings"`` file is the magic ``b"ACNS"``, a 4-byte big-endian header length, a JSON header (codec, level,
image size, the latent shape CompressAI's ``decompress()`` needs, and the length of every string) and the strings
themselves, back to back. Its payload (what the codec reports as bits) is the strings alone: exactly what CompressAI's
entropy coder wrote.

A ``"pixels"`` file (for models whose ``compress()`` runs the autoregressive context model one latent at a time) is
the decoded image as a PNG; its bits are the model's likelihood bits, which the caller keeps beside it.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MAGIC", "pack_strings", "unpack_strings", "png_bytes", "png_pixels", "run_compress", "run_decompress"]

MAGIC = b"ACNS"


def pack_strings(header: dict[str, Any], strings: list[bytes]) -> bytes:
    """One container: ``header`` (JSON-serialisable) plus ``strings``, their lengths recorded in the header."""
    head = json.dumps({**header, "lengths": [len(s) for s in strings]}, sort_keys=True).encode()
    return MAGIC + struct.pack(">I", len(head)) + head + b"".join(strings)


def unpack_strings(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """The header and strings of :func:`pack_strings`; ``ValueError`` if ``data`` is not such a container."""
    if data[:4] != MAGIC or len(data) < 8:
        raise ValueError("not an augcomp neural-codec file (no ACNS magic)")
    (n,) = struct.unpack(">I", data[4:8])
    header = json.loads(data[8:8 + n].decode())
    strings, at = [], 8 + n
    for length in header["lengths"]:
        strings.append(data[at:at + length])
        at += length
    if at != len(data):
        raise ValueError(f"neural-codec file has {len(data) - at} bytes more or fewer than its header says")
    return header, strings


def png_bytes(image_u8: Tensor) -> bytes:
    """``(3, H, W)`` uint8 as a PNG (lossless)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image_u8.permute(1, 2, 0).contiguous().cpu().numpy()).save(out, "PNG")
    return out.getvalue()


def png_pixels(data: bytes) -> Tensor:
    """The ``(3, H, W)`` uint8 image of :func:`png_bytes`."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).contiguous()


def _scale_kwargs(gain: float | None) -> dict[str, Any]:
    # CompressAI's variable-rate models take the gain as ``inputscale`` (a tensor, which they reshape).
    return {} if gain is None else {"inputscale": torch.tensor([float(gain)])}


def run_compress(model: torch.nn.Module, x: Tensor, pad_multiple: int, gain: float | None) -> tuple[list[bytes], list]:
    """CompressAI's ``compress()`` of one image: its strings (one per entropy model) and the latent shape.

    Shape:
        - x: ``(1, 3, H, W)`` float32 in [0, 1].
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % pad_multiple, (-w) % pad_multiple
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    with torch.no_grad():
        out = model.compress(xp, **_scale_kwargs(gain))
    strings = [s[0] for s in out["strings"]]
    return strings, [int(v) for v in out["shape"]]


def run_decompress(model: torch.nn.Module, strings: list[bytes], shape: list, height: int, width: int,
                   gain: float | None, device: torch.device) -> Tensor:
    """CompressAI's ``decompress()``, cropped to the image and clamped: ``(1, 3, height, width)`` float32."""
    with torch.no_grad():
        out = model.decompress([[s] for s in strings], torch.Size(shape), **_scale_kwargs(gain))
    return out["x_hat"][..., :height, :width].clamp(0.0, 1.0).to(device)
