"""Smoke test of the core install (no extras): JPEG `Compress` works, and a codec whose extra is missing says which."""

import sys

import torch

import augcomp
from augcomp.transforms import Compress

x = (torch.rand(4, 3, 64, 80, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
y = Compress(bpp=0.8)(x)
assert y.shape == x.shape and y.dtype == torch.uint8 and not torch.equal(x, y)
out = augcomp.compress(x, "jpeg", bpp=0.8)
assert ((out.bpp - 0.8).abs() / 0.8 < 0.3).all(), out.bpp
heavy = sorted(m for m in ("compressai", "timm", "accelerate", "torchmetrics", "kornia", "matplotlib")
               if m in sys.modules)
assert not heavy, f"the core path imported {heavy}"
try:
    augcomp.compress(x.float() / 255, "augcomp-tiny", quality=1)
except ImportError as e:
    assert "augcomp[neural]" in str(e), e
    print(f"ok: {e}")
else:
    raise AssertionError("augcomp-tiny ran without compressai installed")
print("core install: 1 passed, 0 failed")
