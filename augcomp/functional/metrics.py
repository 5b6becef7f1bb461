"""Image quality measures shared by the CLI, the benchmarks and the recipes."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["psnr"]


def psnr(reference: Tensor, image: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per sample, on the [0, 1] scale (uint8 inputs are scaled by 1/255).

    Equal to ``torchmetrics.functional.peak_signal_noise_ratio(image, reference, data_range=1.0)`` for each sample
    (checked in the tests); ``inf`` for identical images.

    Shape:
        - reference, image: ``(..., C, H, W)``.
        - output: ``reference.shape[:-3]`` float32.
    """
    ref = reference.to(torch.float64) / (255.0 if reference.dtype == torch.uint8 else 1.0)
    img = image.to(torch.float64) / (255.0 if image.dtype == torch.uint8 else 1.0)
    mse = (ref - img).square().mean(dim=(-3, -2, -1))
    return (10.0 * torch.log10(1.0 / mse)).to(torch.float32)
