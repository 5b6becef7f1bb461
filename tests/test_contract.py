"""Codec contract for every registered codec, in the spirit of torchvision's ``check_kernel``.

The test codec of ``tests/_toy_codec.py`` (one file, one ``register`` call) runs through the same checks.
"""

from __future__ import annotations

import pytest
import torch

import augcomp
from augcomp import codecs
from augcomp.transforms import Compress
from tests import _toy_codec

_toy_codec.register()

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64]
# Codecs whose optional package is installed here (a registry query); the others are checked for their error in
# test_missing_extra_is_named.
USABLE = codecs.list(installed=True)


def _options(name: str) -> dict:
    # Zoo models have no weights offline; their contract is checked on random initialisation.
    return {"pretrained": False} if codecs.entry(name).weights == "compressai" else {}


def _level(name: str, batch: int) -> torch.Tensor:
    lo, hi = codecs.entry(name).level_range
    return torch.full((batch,), float(round((lo + hi) / 2)))


def _image(batch: int, dtype: torch.dtype, device: str, h: int = 19, w: int = 23, channels: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, channels, h, w, generator=g)
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    return x.to(device)


@pytest.fixture(params=USABLE)
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


def test_unbatched_and_leading_dimensions(codec_name):
    x = _image(6, torch.float32, "cpu")
    level = _level(codec_name, 6)
    out = augcomp.compress(x, codec_name, quality=level, **_options(codec_name))
    one = augcomp.compress(x[0], codec_name, quality=level[0], **_options(codec_name))
    assert one.image.shape == x.shape[1:] and one.bits.shape == ()
    torch.testing.assert_close(one.image, out.image[0])
    torch.testing.assert_close(one.bits, out.bits[0])
    five = augcomp.compress(x.reshape(2, 3, *x.shape[1:]), codec_name, quality=level.reshape(2, 3),
                            **_options(codec_name))
    assert five.image.shape == (2, 3, *x.shape[1:]) and five.bpp.shape == (2, 3)
    torch.testing.assert_close(five.image.reshape(x.shape), out.image)
    torch.testing.assert_close(five.bits.reshape(6), out.bits)


def test_empty_batch(codec_name):
    x = _image(0, torch.float32, "cpu")
    for spec in ({"quality": codecs.entry(codec_name).level_range[0]}, {"bpp": 1.0}):
        out = augcomp.compress(x, codec_name, **spec, **_options(codec_name))
        assert out.image.shape == x.shape and out.bpp.shape == (0,) and out.level.shape == (0,)


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
    out = augcomp.compress(x, codec_name, quality=_level(codec_name, 3), **_options(codec_name))
    torch.testing.assert_close(out.bpp, out.bits / (21 * 34))


def test_bpp_target_picks_the_closest_measured_level(codec_name):
    x = _image(2, torch.uint8, "cpu", 24, 32)
    out = augcomp.compress(x, codec_name, bpp=torch.tensor([0.5, 4.0]), **_options(codec_name))
    again = augcomp.compress(x, codec_name, quality=out.level, **_options(codec_name))
    assert torch.equal(out.image, again.image)
    if codecs.entry(codec_name).reference:  # bits from a real bitstream: exact
        assert torch.equal(out.bits, again.bits)
    else:  # neural rate estimates: float sums whose last bit depends on the batch composition
        torch.testing.assert_close(out.bits, again.bits, rtol=1e-5, atol=1e-3)
    lo, hi = codecs.entry(codec_name).level_range
    assert bool(((out.level >= lo) & (out.level <= hi)).all())


def test_entry_capabilities_are_consistent(codec_name):
    e = codecs.entry(codec_name)
    assert e.level_range[0] < e.level_range[1] and e.channels and e.grad_modes
    assert set(e.grad_modes) <= set(codecs.GRAD_MODES)
    for grad in set(codecs.GRAD_MODES) - set(e.grad_modes):
        with pytest.raises(ValueError, match="grad must be one of"):
            augcomp.compress(_image(1, torch.float32, "cpu"), codec_name, quality=e.level_range[0], grad=grad,
                             **_options(codec_name))


def test_unknown_option_is_refused_at_construction(codec_name):
    with pytest.raises(ValueError, match="has no option 'no_such_option'"):
        Compress(codec_name, bpp=1.0, no_such_option=1, **_options(codec_name))


def test_toy_codec_goes_through_every_entry_point():
    x = _image(4, torch.uint8, "cpu", 32, 40, channels=1)
    out = augcomp.compress(x, _toy_codec.NAME, bpp=torch.tensor([0.5, 1.0, 2.0, 3.0]))
    assert out.level.tolist() == [float(int(v)) for v in out.level.tolist()]
    y = Compress(_toy_codec.NAME, bpp=(0.5, 3.0), generator=torch.Generator().manual_seed(0))(x)
    assert y.shape == x.shape and y.dtype == torch.uint8
    coded = augcomp.compress(x, _toy_codec.NAME, quality=torch.tensor([2.0, 4.0, 6.0, 8.0]), files=True)
    for i, data in enumerate(coded.files):
        assert torch.equal(augcomp.decompress(data, _toy_codec.NAME, channels=1), coded.image[i])
        assert float(coded.bits[i]) == 8 * (len(data) - _toy_codec.HEADER)
    assert torch.equal(coded.image[-1], x[-1])  # 8 bits kept: lossless
    # The one register() call is all it took: the contract tests above ran on it, and the registry's queries find it.
    assert _toy_codec.NAME in USABLE and _toy_codec.NAME in codecs.list(kind="library", channels=1, available=True)
    assert _toy_codec.NAME in codecs.list()
    e = codecs.unregister(_toy_codec.NAME)
    assert _toy_codec.NAME not in codecs.list()
    with pytest.raises(ValueError, match="unknown codec"):
        augcomp.compress(x, _toy_codec.NAME, quality=3)
    codecs.register(e)


def test_missing_extra_is_named(monkeypatch):
    e = codecs.entry("jpeg")
    fake = codecs.CodecEntry(name="needs-extra", builder=e.builder, level_range=(1.0, 100.0), discrete=False,
                             extra="codecs", requires=("no_such_module_here",))
    codecs.register(fake, replace=True)
    try:
        with pytest.raises(ImportError, match=r"pip install 'augcomp\[codecs\]'"):
            augcomp.compress(_image(1, torch.uint8, "cpu"), "needs-extra", quality=50)
        with pytest.raises(codecs.MissingExtraError, match="needs-extra"):
            Compress("needs-extra", bpp=1.0)
    finally:
        codecs.unregister("needs-extra")


def test_codec_order_does_not_depend_on_import_order():
    """Importing a codec module before the registry loads does not move its codecs ahead of the others."""
    import subprocess
    import sys

    code = ("import augcomp.codecs.neural\n"
            "from augcomp import codecs\n"
            "from augcomp.codecs.registry import BUILTIN_MODULES\n"
            "print(','.join(codecs.list()))\n")
    direct = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    plain = subprocess.run([sys.executable, "-c", "from augcomp import codecs; print(','.join(codecs.list()))"],
                           capture_output=True, text=True, timeout=120)
    assert direct.returncode == 0 and plain.returncode == 0, direct.stderr + plain.stderr
    assert direct.stdout == plain.stdout and direct.stdout.startswith("jpeg,webp,avif,jpeg2000"), direct.stdout
