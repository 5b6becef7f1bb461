"""Reference helpers shared by the tests: natural images that scikit-image ships, and libjpeg via Pillow."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from augcomp.codecs.jpeg import scan_length
from augcomp.functional.quant import quant_tables

NATURAL = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def natural(name: str) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, name)())


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC or HW uint8 numpy to CHW uint8 tensor."""
    t = torch.from_numpy(np.ascontiguousarray(image))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def libjpeg(image: np.ndarray, quality: float, subsampling: str = "420") -> tuple[np.ndarray, int, int]:
    """Encodes with Pillow's libjpeg-turbo (``optimize=False``) and decodes it again.

    Fractional qualities are written with explicit tables built from the interpolated scale.

    Returns:
        ``(decoded, scan_bits, file_bits)``.
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
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    return decoded, 8 * scan_length(data), 8 * len(data)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
