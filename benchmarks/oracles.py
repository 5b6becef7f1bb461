"""The reference encoders the benchmarks (and the tests) compare augcomp with."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from augcomp.codecs.jpeg import scan_length
from augcomp.functional.quant import quant_tables

__all__ = ["libjpeg_reference"]


def libjpeg_reference(image: np.ndarray, quality: float, subsampling: str = "420") -> tuple[np.ndarray, int, int]:
    """Encodes ``image`` with Pillow's libjpeg-turbo (``optimize=False``) and decodes it again.

    Fractional qualities are written with explicit tables built from the interpolated scale, as augcomp's JPEG
    builds them.

    Args:
        image: ``(H, W, 3)`` or ``(H, W)`` uint8.
        quality: JPEG quality in [1, 100].
        subsampling: ``"420"`` or ``"444"``.

    Returns:
        ``(decoded, scan_bits, file_bits)``: the decoded array (shaped like ``image``), the bits of the
        entropy-coded scan (what augcomp counts) and of the whole file.
    """
    pil = Image.fromarray(image)
    buf = io.BytesIO()
    sub = 2 if subsampling == "420" else 0
    if float(quality).is_integer():
        pil.save(buf, format="JPEG", quality=int(quality), subsampling=sub, optimize=False)
    else:
        tables = quant_tables(torch.tensor([float(quality)]))[0].to(torch.int64)
        n = 1 if image.ndim == 2 else 2
        pil.save(buf, format="JPEG", qtables=[t.flatten().tolist() for t in tables[:n]], subsampling=sub,
                 optimize=False)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as im:
        decoded = np.asarray(im)
    return decoded, 8 * scan_length(data), 8 * len(data)
