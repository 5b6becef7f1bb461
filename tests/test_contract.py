"""Kernel contract for every registered codec, in the spirit of torchvision's ``check_kernel``."""

from __future__ import annotations

import pytest
import torch

from augcomp import codecs, functional

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _options(name: str) -> dict:
    # Zoo models have no weights offline; their contract is checked on random initialisation.
    return {"pretrained": False} if codecs.entry(name).weights == "compressai" else {}


def _level(name: str, batch: int) -> torch.Tensor:
    lo, hi = codecs.entry(name).level_range
    return torch.full((batch,), float(round((lo + hi) / 2)))


def _image(batch: int, dtype: torch.dtype, device: str, h: int = 19, w: int = 23) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, h, w, generator=g)
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    return x.to(device)


@pytest.fixture(params=codecs.list())
def codec_name(request):
    return request.param


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_device_shape_kept(codec_name, dtype, device):
    codec = codecs.get(codec_name, **_options(codec_name)).to(device)
    x = _image(2, dtype, device)
    before = x.clone()
    image, bits = codec(x, _level(codec_name, 2).to(device))
    assert image.shape == x.shape and image.dtype == x.dtype and image.device == x.device
    assert bits.shape == (2,) and bits.dtype == torch.float32 and bool((bits > 0).all())
    assert torch.equal(x, before), "input modified in place"
    if dtype != torch.uint8:
        assert float(image.float().min()) >= 0 and float(image.float().max()) <= 1


def test_unbatched_equals_batched(codec_name):
    codec = codecs.get(codec_name, **_options(codec_name))
    x = _image(1, torch.float32, "cpu")
    level = _level(codec_name, 1)
    image, bits = codec(x, level)
    image1, bits1 = codec(x[0], level)
    assert image1.shape == x.shape[1:] and bits1.shape == ()
    torch.testing.assert_close(image1, image[0])
    torch.testing.assert_close(bits1, bits[0])


def test_empty_batch(codec_name):
    codec = codecs.get(codec_name, **_options(codec_name))
    x = _image(0, torch.float32, "cpu")
    image, bits = codec(x, torch.zeros(0))
    assert image.shape == x.shape and bits.shape == (0,)
    out = functional.compress(x, codec_name, quality=codecs.entry(codec_name).level_range[0], **_options(codec_name))
    assert out.image.shape == x.shape and out.bpp.shape == (0,)


def test_gradients_reach_input(codec_name):
    codec = codecs.get(codec_name, **_options(codec_name))
    x = _image(2, torch.float32, "cpu").requires_grad_()
    image, _ = codec(x, _level(codec_name, 2))
    (image * torch.randn_like(image)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_deterministic(codec_name):
    codec = codecs.get(codec_name, **_options(codec_name))
    x = _image(2, torch.float32, "cpu")
    a, bits_a = codec(x, _level(codec_name, 2))
    b, bits_b = codec(x, _level(codec_name, 2))
    assert torch.equal(a, b) and torch.equal(bits_a, bits_b)


def test_bpp_is_bits_over_original_pixels(codec_name):
    x = _image(3, torch.float32, "cpu", 21, 34)
    out = functional.compress(x, codec_name, quality=_level(codec_name, 3), **_options(codec_name))
    torch.testing.assert_close(out.bpp, out.bits / (21 * 34))
