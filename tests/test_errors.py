"""Bad input fails fast with a message naming the argument and the accepted values; every error the user can fix is
an ``augcomp.AugcompError``, printed as one line by the command and the recipes, while a bug keeps its traceback."""

from __future__ import annotations

import errno
import importlib
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import augcomp
from augcomp import codecs, functional
from augcomp.availability import codec_available
from augcomp.transforms import Compress

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("x", "error", "words"),
    [
        (torch.rand(3, 5, 8), None, None),  # (C, H, W) is fine
        (torch.rand(1, 2, 3, 8, 8), None, None),  # leading dimensions are samples
        (torch.rand(8, 8), ValueError, ["x", "(..., C, H, W)", "channel dimension"]),
        (torch.rand(2, 4, 8, 8), ValueError, ["x", "channels"]),
        (torch.rand(2, 2, 8, 8), ValueError, ["x", "1 or 3"]),
        (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.int32), TypeError, ["x", "uint8", "float"]),
        (torch.zeros(1, 3, 8, 8, dtype=torch.bool), TypeError, ["x", "dtype"]),
        (torch.full((1, 3, 8, 8), float("nan")), ValueError, ["x", "NaN"]),
        (torch.full((1, 3, 8, 8), float("inf")), ValueError, ["x", "infinite"]),
        (torch.full((1, 3, 8, 8), -float("inf")), ValueError, ["x", "infinite"]),
        (torch.rand(1, 3, 8, 8) * 255, ValueError, ["x", "[0, 1]", "uint8"]),
        (torch.rand(1, 3, 8, 8) - 0.5, ValueError, ["x", "[0, 1]"]),
        (torch.zeros(1, 3, 0, 8), ValueError, ["x", "H >= 1"]),
    ],
)
def test_image_checks(x, error, words):
    if error is None:
        functional.compress(x, quality=50)
        return
    with pytest.raises(error) as info:
        functional.compress(x, quality=50)
    for word in words:
        assert word in str(info.value)


def test_not_a_tensor():
    with pytest.raises(TypeError, match="torch.Tensor"):
        functional.compress([[1, 2]], quality=50)


@pytest.mark.parametrize("quality", [0, 0.5, 101, -3, float("nan"), (50, 200), torch.tensor([0.0, 50.0])])
def test_quality_out_of_range(quality):
    with pytest.raises(ValueError, match=r"quality.*\[1, 100\]"):
        functional.compress(torch.rand(2, 3, 8, 8), quality=quality)


@pytest.mark.parametrize("bpp", [0, -1, (0.0, 1.0), torch.tensor([0.5, -0.1]), float("inf"), (0.5, float("inf")),
                                 torch.tensor([0.5, float("inf")])])
def test_bpp_must_be_positive(bpp):
    with pytest.raises(ValueError, match=r"bpp.*\(0"):
        functional.compress(torch.rand(2, 3, 8, 8), bpp=bpp)


def test_inverted_range():
    with pytest.raises(ValueError, match="lo <= hi"):
        functional.compress(torch.rand(2, 3, 8, 8), bpp=(2.0, 0.5))
    with pytest.raises(ValueError, match="lo <= hi"):
        Compress(bpp=(2.0, 0.5))


def test_both_or_neither():
    for kwargs in ({}, {"quality": 50, "bpp": 1.0}):
        with pytest.raises(ValueError, match="exactly one of"):
            functional.compress(torch.rand(1, 3, 8, 8), **kwargs)
        with pytest.raises(ValueError, match="exactly one of"):
            Compress(**kwargs)


def test_unknown_codec_lists_known_ones():
    with pytest.raises(ValueError) as info:
        functional.compress(torch.rand(1, 3, 8, 8), "jpg", quality=50)
    assert "jpg" in str(info.value) and all(name in str(info.value) for name in codecs.list())
    with pytest.raises(ValueError, match="known codecs: jpeg"):
        Compress(codec=["jpeg", "webpp"], bpp=1.0)


def test_bad_options():
    with pytest.raises(ValueError, match="subsampling"):
        functional.compress(torch.rand(1, 3, 8, 8), quality=50, subsampling="422")
    with pytest.raises(ValueError, match="grad"):
        functional.compress(torch.rand(1, 3, 8, 8), quality=50, grad="soft")
    with pytest.raises(ValueError, match="backend"):
        functional.compress(torch.rand(1, 3, 8, 8), quality=50, backend="gpu")
    with pytest.raises(ValueError, match="p must be"):
        Compress(bpp=1.0, p=1.5)


def test_rounding_slack_is_accepted():
    x = torch.rand(1, 3, 8, 8) * (1 + 5e-4) - 2e-4
    assert augcomp.compress(x, quality=50).image.shape == x.shape


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"grad": "STE"}, "grad"), ({"subsampling": "422"}, "subsampling"), ({"foo": 1}, "foo"), ({"bpp": []}, "bpp"),
    ({"codec": []}, "codec"), ({"codec": "jpg"}, "codec"), ({"p": "0.5"}, "p must"), ({"p": True}, "p must"),
    ({"bpp": float("inf")}, "bpp"), ({"same_on_batch": "yes"}, "same_on_batch"), ({"generator": 3}, "generator"),
    ({"threads": 0}, "threads"), ({"tol": 2}, "tol"),
])
def test_compress_refuses_bad_options_at_construction(kwargs, name):
    with pytest.raises(ValueError) as info:
        Compress(**{"bpp": 1.0, **kwargs})
    assert name in str(info.value)


def test_level_tensor_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        functional.compress(torch.rand(2, 3, 8, 8), quality=torch.tensor([50.0, 60.0, 70.0]))


def test_argument_errors_are_augcomp_errors_and_keep_their_builtin_base():
    with pytest.raises(augcomp.ArgumentError, match=r"quality.*\[1, 100\]") as info:
        functional.compress(torch.rand(1, 3, 8, 8), quality=500)
    assert isinstance(info.value, ValueError) and isinstance(info.value, augcomp.AugcompError)
    with pytest.raises(augcomp.ArgumentTypeError, match="torch.Tensor") as info:
        functional.compress([[1, 2]], quality=50)
    assert isinstance(info.value, TypeError)
    for call in (lambda: codecs.entry("jpg"), lambda: Compress(bpp=(2.0, 0.5)), lambda: codecs.get("jpeg", foo=1)):
        with pytest.raises(augcomp.ArgumentError):
            call()


# ---------------------------------------------------------------------------------------- one exception root


def _augcomp_modules() -> list:
    # Every module, so that every error class is defined (and registered as a subclass) before it is looked for.
    return [importlib.import_module(m.name) for m in pkgutil.walk_packages(augcomp.__path__, "augcomp.")]


def _subclasses(cls: type) -> set[type]:
    return {c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))}


def _error_classes() -> set[type]:
    """Every class named ``*Error`` that augcomp defines, found in its modules rather than listed by hand."""
    found = set()
    for module in _augcomp_modules():
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, BaseException) and value.__name__.endswith("Error")
                    and value.__module__.startswith("augcomp")):
                found.add(value)
    return found


def test_every_error_class_of_augcomp_derives_from_augcomp_error():
    from augcomp.data import BadFileError
    from augcomp.experiment.errors import OutputDirError, RecipeError

    found = _error_classes()
    assert not {c for c in found if not issubclass(c, augcomp.AugcompError)}
    # The walk of the hierarchy and the search of the modules find the same classes.
    assert found == _subclasses(augcomp.AugcompError) | {augcomp.AugcompError}
    # The user-facing errors of the issue, with the builtin base their callers catch.
    assert issubclass(codecs.MissingExtraError, ImportError)
    assert issubclass(BadFileError, ValueError) and issubclass(OutputDirError, RecipeError)
    names = {c.__name__ for c in found}
    assert {"CLIError", "PretrainedUnavailableError", "CheckpointError", "RecipeError", "OutputDirError",
            "CodecUnavailableError", "UsageError", "MissingExtraError", "WeightsNotFoundError", "BadFileError",
            "StoreError", "ArgumentError", "DatasetNotFoundError", "SaveError"} <= names
    assert {"AugcompError", "ArgumentError", "ArgumentTypeError"} <= set(augcomp.__all__)


def _instance(cls: type[BaseException]) -> BaseException:
    message = "what went wrong, and what to do"
    return cls(f"error: {message}" if issubclass(cls, SystemExit) else message)


def test_the_printers_print_every_augcomp_error_as_one_line(monkeypatch, capsys):
    from augcomp import cli
    from augcomp.experiment import recipe
    from augcomp.experiment.errors import one_line
    from augcomp.tasks import get_task

    for cls in sorted(_subclasses(augcomp.AugcompError), key=lambda c: c.__name__):
        exc = _instance(cls)
        if not isinstance(exc, SystemExit):  # the recipes' usage error is printed by its own clause
            assert one_line(exc) is not None and "what to do" in one_line(exc), cls

        def fail(*a, exc=exc, **k):
            raise exc

        monkeypatch.setattr(cli, "cmd_codecs", fail)
        status = cli.main(["codecs"])
        err = capsys.readouterr().err
        assert status in (1, 2) and err.count("\n") == 1 and err.startswith("augcomp: error: what went wrong"), (
            cls, err)
        monkeypatch.setattr(recipe, "run_recipe", fail)
        with pytest.raises(SystemExit) as info:
            recipe.recipe_entry_point(get_task("cls"), "")
        # Status 1 goes out as SystemExit(line), printed by Python; status 2 (a usage error) prints the line itself.
        line = str(info.value.code) if info.value.code != 2 else capsys.readouterr().err.strip()
        assert line.startswith("error: what went wrong") and "\n" not in line, (cls, line)


def test_a_full_or_read_only_disk_is_one_line_by_its_errno(monkeypatch, capsys):
    from augcomp import cli
    from augcomp.experiment.errors import one_line

    for exc in (OSError(errno.ENOSPC, "No space left on device", "/out/a.png"),
                PermissionError(errno.EACCES, "Permission denied", "/out/a.png")):
        def fail(*a, exc=exc, **k):
            raise exc

        monkeypatch.setattr(cli, "cmd_codecs", fail)
        assert cli.main(["codecs"]) == 1
        assert capsys.readouterr().err == f"augcomp: error: {exc.strerror}: /out/a.png\n"
        assert one_line(exc).startswith(f"cannot write /out/a.png: {exc.strerror}") and "--resume" in one_line(exc)


@pytest.mark.parametrize("bug", [IndexError("a bug"), ValueError("a bug"), KeyError("a bug"),
                                 RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4992"),
                                 FileNotFoundError(errno.ENOENT, "No such file", "/nowhere")])
def test_the_printers_let_any_other_exception_through(monkeypatch, bug):
    from augcomp import cli
    from augcomp.experiment import recipe
    from augcomp.experiment.errors import one_line
    from augcomp.tasks import get_task

    def fail(*a, **k):
        raise bug

    assert one_line(bug) is None
    monkeypatch.setattr(cli, "cmd_codecs", fail)
    with pytest.raises(type(bug)):
        cli.main(["codecs"])
    monkeypatch.setattr(recipe, "run_recipe", fail)
    with pytest.raises(type(bug)):
        recipe.recipe_entry_point(get_task("cls"), "")


def test_a_writer_failure_is_a_save_error_only_on_a_full_disk(tmp_path, monkeypatch):
    from augcomp.experiment import io
    from augcomp.experiment.errors import SaveError, one_line

    # torch's C++ writer reports a full disk as a RuntimeError without errno.
    writer = RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4992 vs 4880")
    with pytest.raises(RuntimeError) as info, io.saving(tmp_path / "model.pt"):
        raise writer
    assert info.value is writer  # disk space to spare: a bug, unchanged

    monkeypatch.setattr(io.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9, free=0))
    with pytest.raises(SaveError) as info, io.saving(tmp_path / "ckpt" / "model.pt"):
        raise writer
    message = one_line(info.value)
    assert info.value.__cause__ is writer and "0.0 MiB free" in message and "--resume" in message, message
    with pytest.raises(IndexError), io.saving(tmp_path / "model.pt"):  # OSError aside, any failure: a bug stays
        raise IndexError("a bug")

    def torch_save(*a, **k):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", torch_save)
    with pytest.raises(SaveError, match="a.pt"):
        io.atomic_torch_save({"w": torch.zeros(3)}, tmp_path / "a.pt")
    assert not list(tmp_path.glob("*a.pt*"))  # nothing half-written left behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_writer_failure_in_a_read_only_folder_is_a_save_error(tmp_path):
    from augcomp.experiment import io
    from augcomp.experiment.errors import SaveError

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(SaveError, match="not writable"), io.saving(folder / "ckpt"):
            raise RuntimeError("SafetensorError: Error while serializing")
    finally:
        folder.chmod(0o755)


# ---------------------------------------------------------------------------------------- the command and a recipe


def _image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(path)
    return path


def _run(argv: list[str | Path], shim: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    path = [str(shim)] if shim is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(ROOT)]), "AUGCOMP_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, *map(str, argv)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize(("args", "needle", "status"), [
    (["--bpp", "-1"], "--bpp must be > 0", 2),
    (["--codec", "nope", "--bpp", "0.5"], "unknown codec 'nope'", 2),
    (["--codec", "augcomp-tiny", "--weights", "{missing}", "--quality", "1"], "weights for augcomp-tiny", 1),
])
def test_a_user_error_through_the_command_is_one_line(tmp_path, args, needle, status):
    missing = tmp_path / "missing"
    proc = _run(["-m", "augcomp.cli", "compress", _image(tmp_path),
                 *(str(missing) if a == "{missing}" else a for a in args)])
    assert proc.returncode == status, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("augcomp: error: "), proc.stderr[-3000:]
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_dataset_through_precompute_is_one_line(tmp_path, capsys):
    from augcomp import cli
    from augcomp.data import DatasetNotFoundError

    assert issubclass(DatasetNotFoundError, FileNotFoundError)  # the recipes' --data-root check still catches it
    status = cli.main(["precompute", "--task", "cls", "--data-root", str(tmp_path / "nowhere"), "--codecs", "jpeg",
                       "--bpp-grid", "1", "--store", str(tmp_path / "store"), "--json"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith(f"augcomp: error: no folder {tmp_path / 'nowhere'}") and "ImageFolder" in err, err


def _bug_shim(tmp_path: Path, error: str, min_side: int) -> Path:
    """A ``sitecustomize`` that makes WebP's encoder raise ``error`` as a bug would, on images with a side of
    ``min_side`` pixels or more (the availability probe codes a 16-pixel image: 32 lets a recipe fail in its sweep,
    0 while checking its codecs)."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(textwrap.dedent(f"""
        from augcomp.codecs.webp import WebPCodec

        _encode = WebPCodec.encode


        def encode(self, image, level):
            if max(image.shape) >= {min_side}:
                raise {error}("injected bug in a codec")
            return _encode(self, image, level)


        WebPCodec.encode = encode
    """))
    return shim


needs_webp = pytest.mark.skipif(not codec_available("webp")[0], reason="Pillow without libwebp")


@needs_webp
@pytest.mark.parametrize("error", ["IndexError", "ValueError"])
def test_a_bug_in_a_codec_keeps_its_traceback_in_the_command(tmp_path, monkeypatch, error):
    from augcomp import cli
    from augcomp.codecs.webp import WebPCodec

    image = _image(tmp_path)
    proc = _run(["-m", "augcomp.cli", "compress", image, "--codec", "webp", "--quality", "50"],
                shim=_bug_shim(tmp_path, error, 32))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" in proc.stderr and f"{error}: injected bug in a codec" in proc.stderr, proc.stderr[-3000:]
    # In process too: the exception itself reaches the caller of main.
    monkeypatch.setattr(WebPCodec, "encode", lambda self, image, level: [][0])
    with pytest.raises(IndexError):
        cli.main(["compress", str(image), "--codec", "webp", "--bpp", "0.5"])


@needs_webp
@pytest.mark.parametrize(("min_side", "where"), [(0, "checking its codecs"), (32, "in its sweep")])
def test_a_bug_in_a_codec_keeps_its_traceback_in_a_recipe(tmp_path, min_side, where):
    proc = _run([ROOT / "recipes" / "cls.py", "--tiny", "--cpu", "--codecs", "webp", "--output-dir", tmp_path / "out"],
                shim=_bug_shim(tmp_path, "IndexError", min_side))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" in proc.stderr and "IndexError: injected bug in a codec" in proc.stderr, proc.stderr[-3000:]
    assert ("plan" in proc.stdout.splitlines()) == (where == "in its sweep"), proc.stdout[-3000:]
