"""Coded files: every codec returns the bytes it coded, its own library decodes them to the same pixels, and the bits
it reports are that file's payload; the CLI writes that file."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from augcomp import codecs, compress, decompress
from augcomp.samples import natural_crops

# Every codec whose file is its library's own, usable here: a query over the registry, not a list.
FILE_CODECS = codecs.list(file_kind="file", available=True, where=lambda e: bool(e.suffixes))


def _library_decode(name: str, data: bytes, channels: int) -> np.ndarray:
    """The file decoded by its library directly (not through augcomp): Pillow, imagecodecs or pillow-heif."""
    suffix = codecs.entry(name).suffixes[0]
    if suffix == ".jxl":
        import imagecodecs

        out = imagecodecs.jpegxl_decode(data)
    elif suffix == ".heic":
        import pillow_heif

        out = np.asarray(pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True))
    else:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            out = np.asarray(im)
    if out.ndim == 2:
        out = out[..., None]
    if channels == 1 and out.shape[2] == 3:  # coded as RGB (WebP): back to luma as the codec documents
        from PIL import Image

        out = np.asarray(Image.fromarray(out).convert("L"))[..., None]
    return out


@pytest.mark.parametrize("name", FILE_CODECS)
@pytest.mark.parametrize("channels", [3, 1])
def test_library_file_decodes_to_the_image_and_its_payload_is_the_bits(name, channels):
    entry = codecs.entry(name)
    if channels not in entry.channels:
        pytest.skip(f"{name} takes {entry.channels} channels")
    x = natural_crops(3, (40, 56), seed=4)
    if channels == 1:
        x = x[:, 1:2]
    module = codecs.get(name)
    for spec in ({"bpp": torch.tensor([0.3, 0.8, 1.5])}, {"quality": sum(entry.level_range) / 2}):
        out = compress(x, name, files=True, **spec)
        assert out.files is not None and len(out.files) == 3
        for i, data in enumerate(out.files):
            pixels = _library_decode(name, data, channels)
            assert np.array_equal(pixels, out.image[i].permute(1, 2, 0).numpy()), (name, spec)
            assert torch.equal(decompress(data, name, channels=channels), out.image[i])
            assert module.payload_bits(data) == out.bits[i].item()
        # The same call without files= gives the same pixels, bits and levels.
        plain = compress(x, name, **spec)
        assert torch.equal(plain.image, out.image) and torch.equal(plain.bits, out.bits)
        assert torch.equal(plain.level, out.level)


def test_files_keep_shapes_dtypes_and_float_inputs():
    x = natural_crops(4, 32, seed=2).reshape(2, 2, 3, 32, 32).float() / 255
    out = compress(x, "webp", quality=60, files=True)
    assert out.image.shape == x.shape and out.image.dtype == x.dtype and len(out.files) == 4
    flat = out.image.reshape(4, 3, 32, 32)
    for i, data in enumerate(out.files):
        assert torch.equal(decompress(data, "webp").float() / 255, flat[i])
    assert compress(x, "webp", quality=60).files is None
    empty = compress(x[:0], "webp", quality=60, files=True)
    assert empty.files == []


def test_jpeg_file_is_libjpeg_turbos_own_on_both_backends():
    from PIL import Image

    x = natural_crops(2, (48, 40), seed=5)
    native = compress(x, "jpeg", bpp=0.7, files=True)
    tensor = compress(x, "jpeg", bpp=0.7, files=True, backend="torch")
    assert native.files == tensor.files
    assert torch.equal(native.image, tensor.image) and torch.equal(native.level, tensor.level)
    for i, data in enumerate(native.files):
        with Image.open(io.BytesIO(data)) as im:
            assert np.array_equal(np.asarray(im), native.image[i].permute(1, 2, 0).numpy())
            assert im.format == "JPEG"


def test_neural_strings_are_compressais_own_bitstream():
    # augcomp-tiny ships its weights: the file holds exactly what CompressAI's compress() writes for the padded
    # image, its payload is their length, and decompress() of them gives the returned pixels.
    pytest.importorskip("compressai")
    from augcomp.codecs import _neural_files as nf

    x = natural_crops(2, (40, 72), seed=1)
    out = compress(x, "augcomp-tiny", quality=torch.tensor([1.0, 3.0]), files=True)
    module = codecs.get("augcomp-tiny")
    for i, data in enumerate(out.files):
        header, strings = nf.unpack_strings(data)
        model = module.model(int(out.level[i]))
        xp = torch.nn.functional.pad(x[i:i + 1].float() / 255, (0, (-72) % 64, 0, (-40) % 64), mode="replicate")
        with torch.no_grad():
            ref = model.compress(xp)
        assert strings == [s[0] for s in ref["strings"]]
        assert out.bits[i].item() == 8 * sum(len(s) for s in strings)
        with torch.no_grad():
            dec = model.decompress(ref["strings"], ref["shape"])["x_hat"][..., :40, :72].clamp(0, 1)
        assert torch.equal((dec[0] * 255).round().to(torch.uint8), out.image[i])
        assert torch.equal(decompress(data, "augcomp-tiny"), out.image[i])


def test_serial_models_keep_lossless_pixels_with_likelihood_bits():
    pytest.importorskip("compressai")
    serial = [n for n in codecs.list() if codecs.entry(n).file_kind == "pixels"]
    assert serial, "the autoregressive models keep pixels"
    name = serial[0]
    x = natural_crops(1, 64, seed=3)
    out = compress(x, name, quality=codecs.entry(name).level_range[0], files=True, pretrained=False)
    plain = compress(x, name, quality=codecs.entry(name).level_range[0], pretrained=False)
    assert torch.equal(decompress(out.files[0], name, pretrained=False), out.image[0])
    assert torch.equal(out.image, plain.image) and torch.equal(out.bits, plain.bits)


@pytest.mark.parametrize("name", FILE_CODECS)
def test_cli_writes_the_codecs_own_file(name, tmp_path, capsys):
    from PIL import Image

    from augcomp.cli import main

    src = tmp_path / "in.png"
    Image.fromarray(natural_crops(1, (64, 80), seed=6)[0].permute(1, 2, 0).numpy()).save(src)
    module = codecs.get(name)
    for suffix in codecs.entry(name).suffixes:
        dest = tmp_path / f"out{suffix}"
        assert main(["compress", str(src), "--codec", name, "--bpp", "0.4", "-o", str(dest)]) == 0
        printed = float(capsys.readouterr().out.split(" bpp")[0].split()[-1])
        data = dest.read_bytes()
        # The file's payload is the printed rate; the rest of the file is its container and headers.
        assert module.payload_bits(data) / (64 * 80) == pytest.approx(printed, abs=5e-5)
        assert (8 * len(data) - module.payload_bits(data)) < 8 * 1200


def test_cli_refuses_another_codecs_format(tmp_path, capsys):
    from PIL import Image

    from augcomp.cli import main

    src = tmp_path / "in.png"
    Image.fromarray(natural_crops(1, 32)[0].permute(1, 2, 0).numpy()).save(src)
    assert main(["compress", str(src), "--codec", "jpeg", "--bpp", "0.5", "-o", str(tmp_path / "x.webp")]) == 2
    err = capsys.readouterr().err
    assert "-o" in err and "'webp'" in err
    assert not (tmp_path / "x.webp").exists()


def test_decompress_rejects_bad_input():
    with pytest.raises(TypeError, match="bytes"):
        decompress("not bytes", "jpeg")
    with pytest.raises(ValueError, match="channels"):
        decompress(b"\xff\xd8", "jpeg", channels=2)
