"""Reference helpers shared by the tests: natural images that scikit-image ships, and libjpeg via Pillow.

The libjpeg oracle is the benchmarks' own (``benchmarks/oracles.py``), so the tests and the benchmarks compare
against the same reference.
"""

from __future__ import annotations

import numpy as np
import torch

from augcomp.functional import psnr as _psnr
from benchmarks.oracles import libjpeg_reference as libjpeg

__all__ = ["NATURAL", "libjpeg", "natural", "psnr", "to_tensor"]

NATURAL = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def natural(name: str) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, name)())


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC or HW uint8 numpy to CHW uint8 tensor."""
    t = torch.from_numpy(np.ascontiguousarray(image))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all of two arrays on the [0, 255] scale (any dtype, any layout): ``augcomp.functional.psnr``."""
    flat = [torch.as_tensor(np.asarray(v, dtype=np.float64)).reshape(1, 1, -1) / 255.0 for v in (a, b)]
    return float(_psnr(*flat))
