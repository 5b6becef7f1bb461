"""The ``augcomp`` command: listings, compress, grid, and one-line errors with a non-zero status."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augcomp import cli, codecs, functional
from augcomp.availability import codec_available

SHIPPED = [n for n in codecs.list() if codecs.entry(n).weights == "package" and codec_available(n)[0]]


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
    assert lines[0].split()[:9] == ["codec", "level", "range", "kind", "channels", "devices", "grad", "extra",
                                    "reference"]
    for name in codecs.list():
        assert any(line.split()[0] == name for line in lines[1:]), name
    jpeg = next(line for line in lines if line.startswith("jpeg "))
    assert "1..100" in jpeg and "continuous" in jpeg and " yes " in jpeg
    assert jpeg.split()[1:8] == ["quality", "1..100", "continuous", "1,3", "any", "ste,cubic,none", "core"]
    for name in codecs.list():
        e = codecs.entry(name)
        line = next(line for line in lines[1:] if line.split()[0] == name)
        assert line.split()[1] == e.level_name and line.split()[7] == (e.extra or "core"), line
        assert (" yes " in line) == codec_available(name)[0], line


def test_codecs_json(capsys):
    status, out, _ = run(capsys, "codecs", "--json")
    assert status == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert list(rows) == codecs.list()
    assert rows["jpeg"]["available"] is True and rows["jpeg"]["level_range"] == [1.0, 100.0]
    for name, r in rows.items():
        assert set(r) >= {"family", "levels", "weights", "available", "detail", "level_name", "channels",
                          "devices", "grad_modes", "reference", "extra"}
        assert r["levels"] in ("discrete", "continuous")
        e = codecs.entry(name)
        assert (r["level_name"], r["channels"], r["devices"], r["grad_modes"], r["reference"], r["extra"]) == (
            e.level_name, list(e.channels), list(e.devices), list(e.grad_modes), e.reference, e.extra)
        assert (r["available"], r["detail"]) == codec_available(name)


def test_codecs_says_what_to_install(capsys, registered):
    jpeg = codecs.entry("jpeg")
    registered(codecs.CodecEntry(name="test-missing", builder=jpeg.builder, level_range=(1.0, 100.0), discrete=False,
                                 extra="codecs", requires=("augcomp_no_such_module",), devices=("cpu",)))

    def broken(entry, **options):
        raise NotImplementedError("not written yet")

    registered(codecs.CodecEntry(name="test-broken", builder=broken, level_range=(0.0, 1.0), discrete=False))
    assert codec_available("test-missing") == (False, codecs.entry("test-missing").missing())
    ok, why = codec_available("test-broken")
    assert not ok and "NotImplementedError: not written yet" in why
    status, out, _ = run(capsys, "codecs")
    assert status == 0
    line = next(line for line in out.splitlines() if line.startswith("test-missing "))
    assert line.split()[5:8] == ["cpu", "ste,none", "codecs"] and " no " in line
    assert line.endswith("pip install 'augcomp[codecs]'")
    assert "not written yet" in next(line for line in out.splitlines() if line.startswith("test-broken "))


def test_codecs_listing_imports_no_optional_package(tmp_path):
    # Listing codecs must stay fast: no compressai (seconds to import) and no scikit-image.
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    env.pop("AUGCOMP_WEIGHTS", None)
    code = ("import sys, augcomp.samples, augcomp.bench; from augcomp import cli; assert cli.main(['codecs']) == 0; "
            "print(sorted(m for m in ('compressai', 'skimage') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_weights_status_sees_files_without_network(tmp_path, monkeypatch):
    from augcomp.codecs import weights as w

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv(w.ENV_VAR, str(tmp_path / "mine"))
    (tmp_path / "mine").mkdir()
    name = "bmshj2018-hyperprior-vbr"
    assert codec_available(name)[0] is False
    url = w.zoo_url(codecs.entry(name).builder.arch.zoo, "mse", None)
    (tmp_path / "mine" / url.rsplit("/", 1)[-1]).write_bytes(b"")
    assert codec_available(name) == (True, "weights on disk")
    assert codec_available("jpeg") == (True, "no weights needed")


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
        (["compress", "{image}", "--codec", "augcomp-tiny", "--quality", "9"],
         "(quality of augcomp-tiny) must be in [1, 4]"),
        (["compress", "{image}", "--codec", "augcomp-tiny", "--backend", "torch", "--quality", "1"],
         "--backend is not an option of augcomp-tiny"),
        (["compress", "{image}", "--weights", "w.pt", "--quality", "1"], "--weights is not an option of jpeg"),
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


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path, capsys):
    from PIL import Image

    wide = np.linspace(0, 65535, 48 * 64).reshape(48, 64).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "g16.png")
    assert cli.main(["compress", str(tmp_path / "g16.png"), "--quality", "90", "-o", str(tmp_path / "out.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png")).astype(np.float64)
    expected = np.round(wide / 257.0)
    assert (out == 255).mean() < 0.05 and np.abs(out - expected).mean() < 2.0


def test_codecs_says_compressai_models_download_on_first_use(capsys, monkeypatch, tmp_path):
    from augcomp.availability import DOWNLOADS

    monkeypatch.setenv("AUGCOMP_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    zoo = [n for n in codecs.list() if codecs.entry(n).weights == "compressai" and codecs.entry(n).missing() is None]
    if not zoo:
        pytest.skip("compressai is not installed")
    status, out, _ = run(capsys, "codecs")
    lines = out.splitlines()
    assert status == 0 and lines[0].split()[-2:] == ["usable", "detail"]
    for name in zoo:
        line = next(line for line in lines[1:] if line.split()[0] == name)
        assert f" {DOWNLOADS} " in line and " no " not in line, line
    rows = {r["name"]: r for r in json.loads(run(capsys, "codecs", "--json")[1])}
    assert all(rows[n]["usable"] == DOWNLOADS and not rows[n]["available"] for n in zoo)
    assert rows["jpeg"]["usable"] == "yes"


def test_compress_says_when_the_target_is_missed(capsys, image_path):
    status, out, _ = run(capsys, "compress", image_path, "--bpp", "0.0001")
    assert status == 0 and "missed the target: 0.0001 bpp lies below the rates jpeg reaches" in out, out
    status, out, _ = run(capsys, "compress", image_path, "--bpp", "0.8")
    assert status == 0 and "missed" not in out and abs(parse(out)["bpp"] / 0.8 - 1) < 0.05


def test_compress_checks_the_output_folder_before_compressing(capsys, image_path, tmp_path, monkeypatch):
    # A folder that does not exist yet is created.
    status, _, _ = run(capsys, "compress", image_path, "--bpp", "0.5", "-o", tmp_path / "a" / "b.png")
    assert status == 0 and (tmp_path / "a" / "b.png").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("compressed before checking -o")

    monkeypatch.setattr(functional, "compress", refuse)
    plain = tmp_path / "plain.txt"
    plain.write_text("a file, not a folder")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    cases = [(plain / "out.png", "is not a folder"), (plain / "deeper" / "out.png", "is not a folder")]
    if os.geteuid() != 0:  # root may write anywhere
        cases.append((locked / "new" / "out.png", "cannot write in"))
    for path, needle in cases:
        status, _, err = run(capsys, "compress", image_path, "--bpp", "0.5", "-o", path)
        assert status != 0 and err.startswith(f"augcomp: error: -o {path}") and needle in err, err
