"""The tensor JPEG against libjpeg-turbo (through Pillow), the only oracle that counts."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from augcomp import functional as F
from augcomp.functional.dct import block_dct, block_idct, fdct_islow
from augcomp.functional.entropy import HUFFMAN_TABLES
from augcomp.functional.jpeg import jpeg_layout, jpeg_smooth, straight_through
from augcomp.functional.quant import cubic_round, quant_tables
from tests._oracle import NATURAL, libjpeg, natural, psnr, to_tensor

SIZES = [(512, 512), (301, 203), (97, 131), (33, 17), (16, 16), (8, 24), (4, 6), (3, 3), (2, 2), (17, 2), (9, 1),
         (1, 1)]


def _compare(image: np.ndarray, qualities, subsampling="420", backend="torch"):
    """Our codec on a batch of qualities vs libjpeg; returns per-quality (psnr, bits ours, bits libjpeg)."""
    x = to_tensor(image)[None].expand(len(qualities), -1, -1, -1).contiguous()
    q = torch.tensor([float(v) for v in qualities])
    out = F.compress(x, "jpeg", quality=q, backend=backend, subsampling=subsampling)
    rows = []
    for i, qv in enumerate(qualities):
        ref, ref_bits, _ = libjpeg(image, qv, subsampling)
        ours = out.image[i].permute(1, 2, 0).numpy()
        ours = ours[..., 0] if image.ndim == 2 else ours
        rows.append((psnr(ours, ref), float(out.bits[i]), float(ref_bits)))
    return rows


@pytest.mark.parametrize("name", NATURAL[:4])
def test_full_images_match_libjpeg(name):
    rows = _compare(natural(name), [1, 5, 10, 25, 50, 75, 90, 95, 100])
    psnrs = np.array([r[0] for r in rows])
    bit_err = np.array([abs(r[1] - r[2]) / r[2] for r in rows])
    assert np.median(psnrs) >= 50 and psnrs.min() >= 45, psnrs
    assert np.median(bit_err) <= 0.01 and bit_err.max() <= 0.02, bit_err
    # The tensor path is in fact bit-exact.
    assert np.isinf(psnrs).all() and (bit_err == 0).all()


def test_every_quality_1_to_100():
    image = natural("chelsea")[50:117, 100:245]  # odd size 67x145
    rows = _compare(image, list(range(1, 101)))
    assert all(np.isinf(r[0]) for r in rows), [i + 1 for i, r in enumerate(rows) if not np.isinf(r[0])]
    assert all(r[1] == r[2] for r in rows)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_odd_sizes(name, size):
    h, w = size
    image = natural(name)[37 : 37 + h, 91 : 91 + w]
    rows = _compare(image, [1, 30, 75, 97, 100])
    for p, bits, ref in rows:
        assert np.isinf(p) and bits == ref


@pytest.mark.parametrize("size", [(512, 512), (61, 77), (8, 8), (1, 1), (9, 17)])
def test_grayscale(size):
    image = natural("camera")[: size[0], : size[1]]
    for p, bits, ref in _compare(image, [1, 20, 50, 90, 100]):
        assert np.isinf(p) and bits == ref


@pytest.mark.parametrize("size", [(128, 96), (13, 29), (1, 1)])
def test_444(size):
    image = natural("rocket")[: size[0], : size[1]]
    for p, bits, ref in _compare(image, [2, 50, 99], subsampling="444"):
        assert np.isinf(p) and bits == ref


def test_fractional_qualities_are_real_jpegs():
    image = natural("immunohistochemistry")[:123, :157]
    qualities = [1.5, 3.25, 12.7, 49.5, 50.5, 77.77, 99.5]
    for p, bits, ref in _compare(image, qualities):
        assert np.isinf(p) and bits == ref
    # Fractional qualities sit between their integer neighbours in rate.
    bpp = F.compress(to_tensor(image)[None].expand(3, -1, -1, -1), quality=torch.tensor([12.0, 12.5, 13.0])).bpp
    assert bpp[0] <= bpp[1] <= bpp[2]


def test_native_backend_equals_tensor_backend():
    rng = np.random.default_rng(0)
    images = np.stack([natural("coffee")[y : y + 45, x : x + 71] for y, x in rng.integers(0, 300, (6, 2))])
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    q = torch.tensor([1.0, 7.5, 33.0, 64.2, 88.0, 100.0])
    a = F.compress(x, quality=q, backend="torch")
    b = F.compress(x, quality=q, backend="native")
    assert torch.equal(a.image, b.image) and torch.equal(a.bits, b.bits)


def test_include_header_gives_file_size():
    for image in (natural("astronaut")[:100, :60], natural("camera")[:33, :70]):
        _, _, file_bits = libjpeg(image, 50)
        out = F.compress(to_tensor(image), quality=50, include_header=True, backend="torch")
        assert float(out.bits) == file_bits
        assert float(out.bpp) == pytest.approx(file_bits / (image.shape[0] * image.shape[1]))


def test_closer_to_libjpeg_than_kornia():
    from kornia.enhance import jpeg_codec_differentiable

    for name in NATURAL[:4]:
        image = natural(name)[:128, :192]
        x = to_tensor(image)[None].float() / 255
        for q in (10, 50, 90):
            ref, _, _ = libjpeg(image, q)
            ours = F.compress(x, quality=q, backend="torch").image
            theirs = jpeg_codec_differentiable(x, torch.tensor([float(q)]))
            to_np = lambda t: (t[0].permute(1, 2, 0).clamp(0, 1) * 255).round().numpy()  # noqa: E731
            assert psnr(to_np(ours), ref) > psnr(to_np(theirs), ref)


def test_quant_tables_match_libjpeg():
    image = natural("astronaut")[:16, :16]
    for q in range(1, 101):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=q)
        tables = Image.open(io.BytesIO(buf.getvalue())).quantization
        ours = quant_tables(torch.tensor([float(q)]))[0].to(torch.int64)
        assert ours[0].flatten().tolist() == list(tables[0]) and ours[1].flatten().tolist() == list(tables[1]), q


def test_huffman_tables_match_libjpeg():
    buf = io.BytesIO()
    Image.fromarray(natural("astronaut")[:16, :16]).save(buf, format="JPEG", quality=50)
    data, pos, found = buf.getvalue(), 2, []
    while data[pos + 1] != 0xDA:
        length = (data[pos + 2] << 8) | data[pos + 3]
        if data[pos + 1] == 0xC4:
            seg, j = data[pos + 4 : pos + 2 + length], 0
            while j < len(seg):
                bits = tuple(seg[j + 1 : j + 17])
                found.append((seg[j], bits, bytes(seg[j + 17 : j + 17 + sum(bits)])))
                j += 17 + sum(bits)
        pos += 2 + length
    names = {0x00: "dc_luma", 0x10: "ac_luma", 0x01: "dc_chroma", 0x11: "ac_chroma"}
    assert len(found) == 4
    for tc, bits, values in found:
        assert HUFFMAN_TABLES[names[tc]] == (bits, values)


def test_dct_matches_torch_dct():
    import torch_dct

    x = torch.randn(7, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(block_dct(x), torch_dct.dct_2d(x, norm="ortho"))
    torch.testing.assert_close(block_idct(block_dct(x)), x)
    # libjpeg's integer DCT is the orthonormal DCT scaled by 8, up to its fixed-point rounding.
    samples = torch.randint(-128, 128, (500, 8, 8)).double()
    assert (fdct_islow(samples) / 8 - torch_dct.dct_2d(samples, norm="ortho")).abs().max() < 0.5


@pytest.mark.parametrize("grad", ["ste", "cubic"])
def test_gradients_finite_and_nonzero(grad):
    x = (to_tensor(natural("chelsea")[:40, :56]).float() / 255)[None].requires_grad_()
    out = F.compress(x, quality=torch.tensor([30.0]), grad=grad)
    weights = torch.randn_like(out.image)
    (out.image * weights).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # The forward pass is the real JPEG whatever the gradient mode.
    ref = F.compress(x.detach(), quality=30.0, grad="none").image
    torch.testing.assert_close(out.image.detach(), ref)


def test_grad_none_detaches():
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = F.compress(x, quality=50, grad="none")
    assert not out.image.requires_grad


@pytest.mark.parametrize("rounding", [None, cubic_round])
def test_gradcheck_smooth_path(rounding):
    layout = jpeg_layout(3, 11, 13, "420")
    tables = quant_tables(torch.tensor([40.0]))
    x = (torch.rand(1, 3, 11, 13, dtype=torch.float64) * 255).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: jpeg_smooth(v, tables, layout, rounding), (x,), eps=1e-4, atol=1e-3)


@pytest.mark.parametrize("size", [(11, 13), (16, 16), (1, 1), (2, 3), (17, 2), (7, 9), (1, 7)])
@pytest.mark.parametrize(("channels", "subsampling"), [(3, "420"), (3, "444"), (1, "420")])
def test_straight_through_backward_is_the_smooth_jacobian(size, channels, subsampling):
    layout = jpeg_layout(channels, *size, subsampling)
    x = (torch.rand(2, channels, *size, dtype=torch.float64) * 255).requires_grad_()
    g = torch.randn(2, channels, *size, dtype=torch.float64)
    (expected,) = torch.autograd.grad(jpeg_smooth(x, None, layout, None), x, g)
    hard = torch.zeros(2, channels, *size, dtype=torch.float64)
    (actual,) = torch.autograd.grad(straight_through(x, hard, layout), x, g)
    torch.testing.assert_close(actual, expected)


def test_autocast_gives_the_same_jpeg():
    x = torch.rand(2, 3, 24, 40)
    ref = F.compress(x, quality=40.0, backend="torch").image
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = F.compress(x, quality=40.0, backend="torch").image
    assert out.dtype == x.dtype and torch.equal(out, ref)


def test_torch_compile_smoke():
    from augcomp import codecs

    codec = codecs.get("jpeg", backend="torch", grad="none")
    x = torch.rand(2, 3, 16, 24)
    q = torch.tensor([20.0, 80.0])
    compiled = torch.compile(codec, dynamic=False)
    image, bits = compiled(x, q)
    ref_image, ref_bits = codec(x, q)
    assert torch.equal(image, ref_image) and torch.equal(bits, ref_bits)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_libjpeg():
    image = natural("coffee")[:203, :301]
    x = to_tensor(image)[None].expand(4, -1, -1, -1).contiguous().cuda()
    q = torch.tensor([3.0, 40.0, 85.0, 100.0], device="cuda")
    out = F.compress(x, quality=q)
    assert out.image.device.type == "cuda" and out.bits.device.type == "cuda"
    for i, qv in enumerate(q.tolist()):
        ref, ref_bits, _ = libjpeg(image, qv)
        assert np.array_equal(out.image[i].permute(1, 2, 0).cpu().numpy(), ref)
        assert float(out.bits[i]) == ref_bits
    xf = (x.float() / 255).requires_grad_()
    F.compress(xf, quality=q).image.sum().backward()
    assert torch.isfinite(xf.grad).all() and xf.grad.abs().sum() > 0


@pytest.mark.parametrize(("subsampling", "gray"), [("420", False), ("444", False), ("420", True)])
def test_large_images_run_in_bands_with_the_same_pixels_and_bits(monkeypatch, subsampling, gray):
    from augcomp.functional import jpeg as kernels

    image = natural("astronaut")[:203, :157]
    image = np.ascontiguousarray(image[..., 1]) if gray else image
    x = to_tensor(image)[None].expand(2, -1, -1, -1).contiguous()
    quality, target = torch.tensor([12.0, 83.5]), torch.tensor([0.4, 1.7])
    whole = F.compress(x, quality=quality, backend="torch", subsampling=subsampling)
    fitted = F.compress(x, bpp=target, backend="torch", subsampling=subsampling)
    # Bands of 16 to 32 rows, and scans counted a few dozen blocks at a time.
    monkeypatch.setattr(kernels, "CHUNK_PIXELS", 2 * 32 * 157)
    monkeypatch.setattr("augcomp.codecs.jpeg.CHUNK_PIXELS", 2 * 32 * 157)
    assert len(kernels.jpeg_bands(x, subsampling)) >= 7
    banded = F.compress(x, quality=quality, backend="torch", subsampling=subsampling)
    banded_fit = F.compress(x, bpp=target, backend="torch", subsampling=subsampling)
    assert torch.equal(banded.image, whole.image) and torch.equal(banded.bits, whole.bits)
    assert torch.equal(banded_fit.level, fitted.level) and torch.equal(banded_fit.image, fitted.image)
    assert torch.equal(banded_fit.bits, fitted.bits)
    for k, q in enumerate(quality.tolist()):
        ref, ref_bits, _ = libjpeg(image, q, subsampling)
        got = banded.image[k].permute(1, 2, 0).numpy()
        assert np.array_equal(got[..., 0] if gray else got, ref) and float(banded.bits[k]) == ref_bits
