"""The ``augcomp`` command: listings, compress, grid, and one-line errors with a non-zero status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augcomp import cli, codecs, functional
from augcomp.bench import codec_weights_status

SHIPPED = [n for n in codecs.list() if codecs.entry(n).weights == "package" and codec_weights_status(n)[0]]


@pytest.fixture(scope="module")
def image_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A natural photograph (a crop of scikit-image's chelsea) saved as PNG, with odd sides."""
    from skimage import data

    path = tmp_path_factory.mktemp("cli") / "chelsea.png"
    Image.fromarray(np.ascontiguousarray(data.chelsea()[60:157, 120:249])).save(path)
    return path


def load(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].contiguous()


def run(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def parse(out: str) -> dict[str, float]:
    m = re.search(r": ([0-9.]+) bpp.*level ([0-9.]+), PSNR ([0-9.]+|inf) dB", out)
    assert m, out
    return {"bpp": float(m.group(1)), "level": float(m.group(2)), "psnr": float(m.group(3))}


def test_codecs_lists_every_codec(capsys):
    status, out, _ = run(capsys, "codecs")
    assert status == 0
    lines = out.splitlines()
    for name in codecs.list():
        assert any(line.split()[0] == name for line in lines[1:]), name
    jpeg = next(line for line in lines if line.startswith("jpeg "))
    assert "1..100" in jpeg and "continuous" in jpeg and " yes " in jpeg


def test_codecs_json(capsys):
    status, out, _ = run(capsys, "codecs", "--json")
    assert status == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert list(rows) == codecs.list()
    assert rows["jpeg"]["available"] is True and rows["jpeg"]["level_range"] == [1.0, 100.0]
    for r in rows.values():
        assert set(r) >= {"family", "levels", "weights", "available", "detail"}
        assert r["levels"] in ("discrete", "continuous")


def test_weights_status_sees_files_without_network(tmp_path, monkeypatch):
    from augcomp.codecs import weights as w

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv(w.ENV_VAR, str(tmp_path / "mine"))
    (tmp_path / "mine").mkdir()
    name = "bmshj2018-hyperprior-vbr"
    assert codec_weights_status(name)[0] is False
    url = w.zoo_url(codecs.entry(name).builder.arch.zoo, "mse", None)
    (tmp_path / "mine" / url.rsplit("/", 1)[-1]).write_bytes(b"")
    assert codec_weights_status(name) == (True, "on disk")
    assert codec_weights_status("jpeg")[0] is True


def test_compress_bpp_matches_functional(capsys, image_path, tmp_path):
    out_path = tmp_path / "out" / "decoded.png"
    status, out, err = run(capsys, "compress", image_path, "--codec", "jpeg", "--bpp", "0.5", "-o", out_path)
    assert status == 0, err
    printed = parse(out)
    x = load(image_path)
    direct = functional.compress(x, codec="jpeg", bpp=0.5, grad="none")
    assert printed["bpp"] == pytest.approx(direct.bpp.item(), abs=1e-4)
    assert printed["level"] == pytest.approx(direct.level.item(), rel=1e-3)
    assert abs(printed["bpp"] / 0.5 - 1) < 0.05
    written = load(out_path)
    assert torch.equal(written, direct.image)  # PNG is lossless: the file holds the decoded pixels
    mse = (written.double() - x.double()).pow(2).mean()
    assert printed["psnr"] == pytest.approx((10 * torch.log10(255.0**2 / mse)).item(), abs=0.01)


def test_compress_quality(capsys, image_path):
    status, out, _ = run(capsys, "compress", image_path, "--quality", "50")
    assert status == 0
    printed = parse(out)
    direct = functional.compress(load(image_path), quality=50, grad="none")
    assert printed["level"] == 50
    assert printed["bpp"] == pytest.approx(direct.bpp.item(), abs=1e-4)


def test_compress_grayscale_jpeg(capsys, image_path, tmp_path):
    gray = tmp_path / "gray.png"
    Image.open(image_path).convert("L").save(gray)
    status, out, _ = run(capsys, "compress", gray, "--quality", "30", "-o", tmp_path / "g.png")
    assert status == 0
    assert Image.open(tmp_path / "g.png").mode == "L"


@pytest.mark.parametrize("original", [False, True])
def test_grid_size(capsys, image_path, tmp_path, original):
    out_path = tmp_path / "grid.png"
    argv = ["grid", image_path, "--codecs", "jpeg", "--bpp", "0.2,0.5,1.0", "-o", out_path]
    status, out, err = run(capsys, *argv, *(["--original"] if original else []))
    assert status == 0, err
    h, w = load(image_path).shape[-2:]
    grid = Image.open(out_path)
    assert grid.size == cli.grid_size(1, 3 + original, h, w)
    # The last tile holds the 1.0 bpp decode, below its caption strip.
    left, top = cli.PAD + (2 + original) * (w + cli.PAD), cli.PAD + cli.LABEL_HEIGHT
    tile = np.array(grid)[top : top + h, left : left + w]
    direct = functional.compress(load(image_path), bpp=1.0, grad="none").image[0].permute(1, 2, 0).numpy()
    assert np.array_equal(tile, direct)


def test_grid_crop_and_zoom(capsys, image_path, tmp_path):
    out_path = tmp_path / "grid.png"
    status, _, err = run(capsys, "grid", image_path, "--bpp", "0.3", "--crop", "40", "--zoom", "2", "-o", out_path)
    assert status == 0, err
    assert Image.open(out_path).size == cli.grid_size(1, 1, 40, 40, zoom=2)


@pytest.mark.skipif(not SHIPPED, reason="no shipped neural codec with weights in this installation")
def test_grid_with_shipped_codec(capsys, image_path, tmp_path):
    out_path = tmp_path / "grid.png"
    status, _, err = run(capsys, "grid", image_path, "--codecs", f"jpeg,{SHIPPED[0]}", "--bpp", "0.3,1", "-o",
                         out_path)
    assert status == 0, err
    h, w = load(image_path).shape[-2:]
    assert Image.open(out_path).size == cli.grid_size(2, 2, h, w)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["compress", "{missing}", "--bpp", "0.2"], "no such file"),
        (["compress", "{text}", "--bpp", "0.2"], "cannot read"),
        (["compress", "{image}", "--codec", "nope", "--bpp", "0.2"], "known codecs: jpeg"),
        (["compress", "{image}", "--bpp", "0"], "--bpp must be > 0"),
        (["compress", "{image}", "--bpp", "-1"], "--bpp must be > 0"),
        (["compress", "{image}", "--bpp", "abc"], "not a number"),
        (["compress", "{image}", "--quality", "0"], "[1, 100]"),
        (["compress", "{image}", "--quality", "101"], "[1, 100]"),
        (["compress", "{image}", "--quality", "nan"], "finite"),
        (["compress", "{image}"], "--bpp --quality is required"),
        (["compress", "{image}", "--bpp", "1", "--quality", "50"], "not allowed with"),
        (["grid", "{image}", "--bpp", "0.1,x", "-o", "{out}"], "'x' is not a number"),
        (["grid", "{image}", "--bpp", "0.1,,1", "-o", "{out}"], "comma-separated"),
        (["grid", "{image}", "--bpp", "0.1,0", "-o", "{out}"], "must be > 0"),
        (["grid", "{image}", "--codecs", "jpeg,nope", "-o", "{out}"], "unknown codec 'nope'"),
        (["grid", "{missing}", "-o", "{out}"], "no such file"),
        (["grid", "{image}", "--crop", "0", "-o", "{out}"], "--crop must be a positive integer"),
        (["compress", "{image}", "--bpp", "1", "-o", "{bad_out}"], "unknown image extension"),
        (["bench", "--rows", "no-such-row"], "matches no row"),
        (["bench", "--batch", "0"], "positive integer"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_errors_are_one_line(capsys, image_path, tmp_path, argv, needle):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    subs = {"{missing}": str(tmp_path / "missing.png"), "{text}": str(text), "{image}": str(image_path),
            "{out}": str(tmp_path / "grid.png"), "{bad_out}": str(tmp_path / "decoded.nope")}
    status, out, err = run(capsys, *(subs.get(a, a) for a in argv))
    assert status != 0
    assert err.count("\n") == 1 and err.startswith("augcomp: error: "), err
    assert needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "grid.png").exists()


def test_help_and_version(capsys):
    assert cli.main(["--help"]) == 0
    assert "compress" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    assert "augcomp" in capsys.readouterr().out
    assert cli.main(["bench", "--help"]) == 0
    assert "--batch" in capsys.readouterr().out
