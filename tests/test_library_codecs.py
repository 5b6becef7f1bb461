"""The traditional codecs (WebP, AVIF, JPEG 2000, JPEG XL, HEIC) against their own libraries and their own files.

Oracle: the library's own decoder on the library's own encoding, made here by calling Pillow or imagecodecs
directly with the settings each codec documents; the payload rule checked against an independent reading of the
same file.
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys

import imagecodecs
import numpy as np
import pillow_heif
import pytest
import torch
from PIL import Image

import augcomp
from augcomp import codecs
from augcomp.codecs import _containers
from augcomp.codecs.registry import MissingExtraError
from tests._oracle import natural, to_tensor

# The library codecs augcomp ships: a registry query. A library codec registered by another test module (the test
# codec of tests/_toy_codec.py) has no outside library to be compared with here.
CODECS = codecs.list(kind="library", where=lambda e: e.builder.__module__.startswith("augcomp.codecs."))


def _levels(codec: str) -> tuple[float, float]:
    """Two levels for the oracle and determinism tests, from the entry's range and direction: 37.5% and 80% of the
    way from its lowest-rate end to its highest-rate end (geometrically where the range spans more than a decade,
    as a compression ratio or a distance does), whole numbers for a discrete codec, quarters for a continuous one."""
    e = codecs.entry(codec)
    lo, hi = e.level_range
    start, end = (lo, hi) if e.rate_increases_with_level else (hi, lo)
    levels = []
    for f in (0.375, 0.8):
        v = start * (end / start) ** f if lo > 0 and hi / lo > 10 else start + f * (end - start)
        levels.append(float(round(v)) if e.discrete else round(4 * v) / 4)  # quarters: exact as float32 levels
    return levels[0], levels[1]


LEVELS = {codec: _levels(codec) for codec in CODECS}


def _no_oracle(codec: str) -> LookupError:
    return LookupError(f"no oracle for library codec {codec!r}: call its library directly in this file")


# ------------------------------------------------------------------ the libraries, called directly


def _pil_save(image: np.ndarray, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, fmt, **options)
    return out.getvalue()


def _pil_open(data: bytes, mode: str | None = None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im if mode is None else im.convert(mode))


def library_encode(codec: str, image: np.ndarray, level: float) -> bytes:
    """``image``: (H, W, 3) or (H, W) uint8; the settings each codec's docstring states."""
    if codec == "webp":
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        return _pil_save(rgb, "WEBP", quality=level, method=4)
    if codec == "avif":
        return _pil_save(image, "AVIF", quality=int(level), speed=6, codec="aom", max_threads=1,
                         subsampling="4:0:0" if image.ndim == 2 else "4:2:0", advanced={"tune": "ssim"})
    if codec == "jpeg2000":
        return _pil_save(image, "JPEG2000", quality_mode="rates", quality_layers=[level], irreversible=True,
                         mct=int(image.ndim == 3))
    if codec == "heic":
        heif = pillow_heif.from_bytes(mode="L" if image.ndim == 2 else "RGB", size=image.shape[1::-1],
                                      data=image.tobytes())
        out = io.BytesIO()
        heif.save(out, quality=int(level), chroma="420", enc_params={
            "preset": "ultrafast", "x265:pools": "1", "x265:frame-threads": "1", "x265:log-level": "none"})
        return out.getvalue()
    if codec == "jpegxl":
        return imagecodecs.jpegxl_encode(image, distance=level, effort=5, numthreads=1)
    raise _no_oracle(codec)


def library_decode(codec: str, data: bytes, gray: bool) -> np.ndarray:
    if codec == "jpegxl":
        return imagecodecs.jpegxl_decode(data)
    if codec == "heic":
        return np.asarray(pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True))
    if codec == "webp" and gray:
        return _pil_open(data, "L")  # WebP has no grayscale: coded as RGB, back to luma the way Pillow converts
    if codec in ("webp", "avif", "jpeg2000"):
        return _pil_open(data)
    raise _no_oracle(codec)


def independent_payload_bytes(codec: str, data: bytes) -> int:
    """The payload rule read with fixed offsets and marker searches, not with the codecs' own parsers."""
    if codec == "webp":
        assert data[12:16] == b"VP8 " and data[23:26] == b"\x9d\x01\x2a"  # one lossy chunk; key-frame start code
        return int.from_bytes(data[16:20], "little") - 10
    if codec in ("avif", "heic"):
        sizes, at = {}, 0
        while at < len(data):
            size = int.from_bytes(data[at:at + 4], "big")
            sizes[data[at + 4:at + 8]] = (at, size)
            at += size
        assert at == len(data) and set(sizes) == {b"ftyp", b"meta", b"mdat"}
        start, size = sizes[b"mdat"]
        mdat = data[start + 8:start + size]
        if codec == "heic":  # one coded-slice NAL unit after its 4-byte length
            assert int.from_bytes(mdat[:4], "big") == len(mdat) - 4 and (mdat[4] >> 1) & 0x3F < 32
            return len(mdat) - 4
        assert mdat[:2] == b"\x12\x00"  # temporal delimiter OBU, empty
        assert mdat[2] == 0x0A and mdat[3] < 0x80  # sequence header OBU with a one-byte size
        return len(mdat) - 2 - (2 + mdat[3])
    if codec == "jpeg2000":
        assert data[4:8] == b"jP  " and data.endswith(b"\xff\xd9")
        soc = data.index(b"\xff\x4f\xff\x51")
        sod = data.index(b"\xff\x93", soc)  # one tile-part: its data runs from after SOD up to EOC
        return len(data) - (sod + 2) - 2
    if codec == "jpegxl":
        assert data[:2] == b"\xff\x0a"  # a bare codestream: all of it but the signature
        return len(data) - 2
    raise _no_oracle(codec)


def _crop(name: str, size: int = 96) -> np.ndarray:
    image = natural(name)
    h, w = image.shape[:2]
    return np.ascontiguousarray(image[(h - size) // 2:(h + size) // 2, (w - size) // 2:(w + size) // 2])


# ------------------------------------------------------------------ oracle and payload


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("gray", [False, True], ids=["rgb", "gray"])
def test_pixels_and_bits_match_the_library(codec, gray):
    image = _crop("coffee", 80)[..., :65, :]  # odd width
    image = np.ascontiguousarray(image[..., 1]) if gray else image
    x = to_tensor(image)
    for level in LEVELS[codec]:
        out = augcomp.compress(x, codec, quality=level)
        data = library_encode(codec, image, level)
        expected = library_decode(codec, data, gray)
        got = out.image.numpy()
        got = got[0] if gray else got.transpose(1, 2, 0)
        assert got.shape == expected.shape and np.array_equal(got, expected), (codec, level)
        assert float(out.bits) == 8 * independent_payload_bytes(codec, data)
        assert float(out.level) == level


@pytest.mark.parametrize("codec", CODECS)
def test_payload_rule_on_the_library_files(codec):
    module = codecs.get(codec)
    for name in ("astronaut", "rocket"):
        image = _crop(name)
        for level in LEVELS[codec]:
            data = library_encode(codec, image, level)
            payload = module.payload_bits(data)
            assert 0 < payload < 8 * len(data)
            assert payload == 8 * independent_payload_bytes(codec, data)
    x = to_tensor(_crop("chelsea"))
    whole = augcomp.compress(x, codec, quality=LEVELS[codec][0], include_header=True)
    assert float(whole.bits) == 8 * len(library_encode(codec, _crop("chelsea"), LEVELS[codec][0]))
    assert float(whole.bits) > float(augcomp.compress(x, codec, quality=LEVELS[codec][0]).bits)


def test_container_parsers_walk_length_fields_and_reject_garbage():
    avif = library_encode("avif", _crop("astronaut", 32), 50)
    assert [b[0] for b in _containers.boxes(avif)] == [b"ftyp", b"meta", b"mdat"]
    assert sum(end - start for _, start, _, end in _containers.boxes(avif)) == len(avif)
    jp2 = library_encode("jpeg2000", _crop("astronaut", 32), 10.0)
    start, end = _containers.jp2_codestream(jp2)
    assert jp2[start:start + 2] == b"\xff\x4f" and end == len(jp2)
    jxl = imagecodecs.jpegxl_encode(_crop("astronaut", 32), distance=2.0, usecontainer=True)
    assert _containers.jxl_codestream(jxl) == imagecodecs.jpegxl_encode(_crop("astronaut", 32), distance=2.0)
    for parse in (_containers.webp_vp8_payload_bytes, _containers.avif_frame_bytes, _containers.heic_slice_bytes,
                  _containers.j2k_tile_data_bytes, _containers.jxl_codestream):
        with pytest.raises(ValueError):
            parse(b"\x00\x00\x00\x10junk" + bytes(20))


# ------------------------------------------------------------------ contract


@pytest.mark.parametrize("codec", CODECS)
def test_deterministic(codec):
    module = codecs.get(codec)
    image = _crop("astronaut", 64)
    assert module.encode(image, LEVELS[codec][0]) == module.encode(image.copy(), LEVELS[codec][0])
    x = to_tensor(image)[None].expand(3, -1, -1, -1)
    a, b = (augcomp.compress(x, codec, quality=LEVELS[codec][1]) for _ in range(2))
    assert torch.equal(a.image, b.image) and torch.equal(a.bits, b.bits)
    assert torch.equal(a.bits, a.bits[:1].expand(3))  # same image, same bytes, whichever thread coded it


@pytest.mark.parametrize("codec", CODECS)
def test_odd_and_tiny_sizes(codec):
    entry = codecs.entry(codec)
    assert entry.min_size == 1 and entry.channels == (1, 3)
    rng = np.random.default_rng(0)
    for h, w in ((1, 1), (2, 3), (17, 9), (33, 40)):
        for c in (1, 3):
            x = torch.from_numpy(rng.integers(0, 256, (2, c, h, w), dtype=np.uint8))
            out = augcomp.compress(x, codec, quality=LEVELS[codec][0])
            assert out.image.shape == x.shape and out.image.dtype == torch.uint8
            assert (out.bits > 0).all()


@pytest.mark.parametrize("codec", CODECS)
def test_float_uint8_and_unbatched(codec):
    x8 = to_tensor(_crop("chelsea", 48))
    level = LEVELS[codec][0]
    u8 = augcomp.compress(x8, codec, quality=level)
    assert u8.image.shape == x8.shape and u8.bpp.shape == () and u8.level.shape == ()
    for dtype in (torch.float32, torch.float64):
        xf = x8.to(dtype) / 255
        out = augcomp.compress(xf, codec, quality=level)
        assert out.image.dtype == dtype and out.image.shape == x8.shape
        assert torch.equal((out.image * 255).round().to(torch.uint8), u8.image)
        assert torch.equal(out.bits, u8.bits)
    batched = augcomp.compress(x8[None, None].expand(2, 2, -1, -1, -1), codec, quality=level)
    assert batched.image.shape == (2, 2, *x8.shape) and batched.bpp.shape == (2, 2)
    assert torch.equal(batched.image[1, 0], u8.image)


@pytest.mark.parametrize("codec", CODECS)
def test_gradients(codec):
    x = (to_tensor(_crop("coffee", 32)).float() / 255).requires_grad_()
    out = augcomp.compress(x, codec, quality=LEVELS[codec][0], grad="ste")
    (out.image * torch.arange(3.0).view(3, 1, 1)).sum().backward()
    assert torch.equal(x.grad, torch.arange(3.0).view(3, 1, 1).expand_as(x))  # straight through: identity
    with pytest.raises(ValueError, match="grad must be one of .*'ste'.*cubic"):
        augcomp.compress(x, codec, quality=LEVELS[codec][0], grad="cubic")
    assert not augcomp.compress(x, codec, quality=LEVELS[codec][0], grad="none").image.requires_grad


@pytest.mark.parametrize("codec", CODECS)
def test_compress_transform_on_a_batch(codec):
    x = to_tensor(_crop("astronaut", 64))[None].expand(4, -1, -1, -1).contiguous()
    aug = augcomp.transforms.Compress(codec=codec, bpp=(0.2, 1.0), generator=torch.Generator().manual_seed(0))
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype and not torch.equal(y, x)
    assert torch.isfinite(aug.last_params["bpp"]).all()


# ------------------------------------------------------------------ rate control

TARGETS = (0.3, 0.45, 0.7, 1.0, 1.4, 2.0)
TARGET_CROPS = ("astronaut", "coffee", "chelsea", "immunohistochemistry")


@pytest.mark.parametrize("codec", CODECS)
def test_bpp_targeting(codec):
    entry = codecs.entry(codec)
    errors, gaps = [], 0
    for name in TARGET_CROPS:
        x = to_tensor(_crop(name, 160))
        batch = x[None].expand(len(TARGETS), -1, -1, -1).contiguous()
        target = torch.tensor(TARGETS)
        out = augcomp.compress(batch, codec, bpp=target)
        ends = augcomp.compress(x[None].expand(2, -1, -1, -1), codec, quality=torch.tensor(entry.level_range)).bpp
        reach = (target >= ends.min()) & (target <= ends.max())
        error = (out.bpp - target).abs() / target
        # The bpp reported is the one the level chosen gives.
        again = augcomp.compress(batch, codec, quality=out.level)
        assert torch.equal(again.bits, out.bits) and torch.equal(again.image, out.image)
        for i in torch.nonzero(reach).flatten().tolist():
            if error[i] > 0.05 and entry.discrete and _in_a_rate_gap(codec, x, out.level[i], TARGETS[i]):
                gaps += 1  # no level of a discrete codec comes within 5%: nothing to find
            else:
                errors.append(float(error[i]))
    errors = np.array(errors)
    assert len(errors) >= 0.75 * len(TARGETS) * len(TARGET_CROPS) and gaps <= 0.15 * len(errors)
    assert (errors <= 0.05).mean() >= 0.95, np.sort(errors)[-4:]


def _in_a_rate_gap(codec: str, x: torch.Tensor, level: torch.Tensor, target: float) -> bool:
    """Whether the levels around ``level`` give rates on both sides of ``target``, each more than 5% away."""
    lo, hi = codecs.entry(codec).level_range
    near = torch.arange(max(lo, float(level) - 4), min(hi, float(level) + 4) + 1)
    bpp = augcomp.compress(x[None].expand(len(near), -1, -1, -1), codec, quality=near).bpp
    return bool((bpp < target).any() and (bpp > target).any() and ((bpp - target).abs() / target > 0.05).all())


@pytest.mark.parametrize("codec", CODECS)
def test_unreachable_targets_end_at_the_range(codec):
    entry = codecs.entry(codec)
    x = to_tensor(_crop("rocket", 48))[None].expand(2, -1, -1, -1)
    out = augcomp.compress(x, codec, bpp=torch.tensor([1e-4, 1e3]))
    ends = torch.tensor(entry.level_range if entry.rate_increases_with_level else entry.level_range[::-1])
    at_ends = augcomp.compress(x, codec, quality=ends)
    # The level of least (most) rate found: the range's end, or a level whose rate is lower (higher) still where
    # the rate is not monotone near the end.
    assert out.bits[0] <= at_ends.bits[0] and out.bits[1] >= at_ends.bits[1]
    assert bool(out.missed.all()) and out.reasons == ["below", "above"]


def test_jpegxl_unreachable_target_takes_the_cheapest_distance_not_the_end():
    # libjxl's rate is not monotone in the distance: on noise, distance 25 costs four times the rate of distance
    # 19.5. A target below every rate must get the cheapest distance, found on a dense scan to within 3%.
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    scan = torch.arange(10.0, 25.01, 0.25)
    rates = augcomp.compress(x[None].expand(len(scan), -1, -1, -1).contiguous(), "jpegxl", quality=scan).bits
    assert float(rates[-1]) > 2 * float(rates.min())  # the fault this guards against is present in the library
    out = augcomp.compress(x, "jpegxl", bpp=0.01)
    assert float(out.bits) <= 1.03 * float(rates.min()) and float(out.level) < 25.0
    assert bool(out.missed) and out.reasons == "below"


# ------------------------------------------------------------------ entries, options, extras


def test_the_shipped_library_codecs_are_found_by_the_query():
    assert {"webp", "avif", "jpeg2000", "jpegxl", "heic"} <= set(CODECS)  # examples, not the list the tests use


@pytest.mark.parametrize("codec", CODECS)
def test_entry(codec):
    entry = codecs.entry(codec)
    assert entry.devices == ("cpu",) and entry.grad_modes == ("ste", "none") and entry.kinds == ("library",)
    assert entry.family == "traditional" and entry.reference and entry.description and entry.level_name
    assert entry.missing() is None
    # The declared direction and discreteness are what the codec does.
    x = to_tensor(_crop("chelsea", 48))[None].expand(2, -1, -1, -1)
    low, high = _levels(codec)
    bits = augcomp.compress(x, codec, quality=torch.tensor([low, high])).bits
    assert float(bits[1]) > float(bits[0]), (codec, low, high)
    lo, hi = entry.level_range
    between = (lo + hi) / 2 + 0.3
    assert float(augcomp.compress(x[:1], codec, quality=between).level) == pytest.approx(
        float(round(between)) if entry.discrete else between, rel=1e-6)


def test_a_missing_library_fails_only_when_built_and_names_the_extra():
    absent = dataclasses.replace(codecs.entry("jpegxl"), requires=("imagecodecs_not_installed",))
    with pytest.raises(MissingExtraError, match=r"pip install 'augcomp\[codecs\]'"):
        absent.build()
    # Importing the codec modules loads no codec library.
    code = ("import sys, augcomp.codecs as c, augcomp.codecs.heic; c.list(); "
            "bad = [m for m in ('imagecodecs', 'pillow_heif', 'PIL.AvifImagePlugin', 'PIL.WebPImagePlugin', "
            "'PIL.Jpeg2KImagePlugin') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("codec, option, bad", [
    ("webp", "method", 7), ("webp", "method", True), ("avif", "speed", 11), ("avif", "subsampling", "4:2:0"),
    ("avif", "tune", "psnr"), ("jpeg2000", "irreversible", 1), ("jpeg2000", "mct", "yes"), ("jpegxl", "effort", 0),
    ("heic", "preset", "fastest"), ("heic", "subsampling", "4:4:4"),
])
def test_bad_options_name_the_argument(codec, option, bad):
    with pytest.raises(ValueError, match=option):
        codecs.get(codec, **{option: bad})


@pytest.mark.parametrize("codec, option, value", [
    ("webp", "method", 0), ("avif", "subsampling", "444"), ("avif", "speed", 8), ("avif", "tune", "default"),
    ("jpeg2000", "irreversible", False), ("jpegxl", "effort", 3), ("heic", "preset", "superfast"),
    ("heic", "subsampling", "444"),
])
def test_options_reach_the_library(codec, option, value):
    x = to_tensor(_crop("astronaut", 48))
    level = LEVELS[codec][0]
    default = augcomp.compress(x, codec, quality=level)
    other = augcomp.compress(x, codec, quality=level, **{option: value})
    assert not torch.equal(default.bits, other.bits)
