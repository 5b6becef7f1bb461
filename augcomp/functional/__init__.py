"""Functional kernels: pure tensor functions with no state (colour, block DCT, IJG tables, rounding surrogates,
scan bit counting, the JPEG pipeline). Nothing here imports the codec layer or anything above it.

Pixel-range convention: floats in [0, 1], uint8 in [0, 255].
"""

from augcomp.functional.metrics import psnr

__all__ = ["psnr"]


def __getattr__(name: str):
    # `augcomp.functional.compress` is kept for compatibility; the call lives above the codec layer (augcomp._api).
    if name in ("compress", "CompressResult"):
        import importlib

        return getattr(importlib.import_module("augcomp._api"), name)
    raise AttributeError(f"module 'augcomp.functional' has no attribute {name!r}")
