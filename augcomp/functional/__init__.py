"""Functional kernels: pure tensor functions with no state.

Pixel-range convention: floats in [0, 1], uint8 in [0, 255].
"""

from augcomp.functional.compress import CompressResult, compress

__all__ = ["CompressResult", "compress"]
