"""``recipes/train_codec.py``: where it writes, that a failure mid-write leaves the previous weights whole, and that
what it writes is what the codec registry reads (the packaged-weights format lives in ``augcomp.codecs.weights``)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

import augcomp
from augcomp import codecs
from augcomp.codecs.weights import load_package_states, save_package_states

ROOT = Path(__file__).resolve().parents[1]
NAME = "augcomp-tiny"


@pytest.fixture
def train_codec():
    spec = importlib.util.spec_from_file_location("train_codec", ROOT / "recipes" / "train_codec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # main() builds an Accelerator in this process


def test_default_output_is_outside_the_package(train_codec, tmp_path, monkeypatch):
    out = train_codec.parse_args([]).output_dir
    assert out == Path("results") / NAME
    package = Path(augcomp.__file__).resolve().parent
    assert package not in (ROOT / out).resolve().parents
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        train_codec.parse_args(["--output-dir", ""])


def test_weights_are_replaced_atomically(train_codec, tmp_path, monkeypatch):
    # Training itself is not under test: the untrained models are exported as they are.
    monkeypatch.setattr(train_codec, "train_stage", lambda model, *args, **kwargs: model)
    out = tmp_path / "codec"
    out.mkdir()
    (out / f"{NAME}.json").write_text("previous")
    (out / f"{NAME}.safetensors").write_text("previous")
    argv = ["--cpu", "--output-dir", str(out)]  # four levels, as the registered codec expects

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the run were killed after the weights were written

    monkeypatch.setattr(train_codec, "evaluate", killed)
    with pytest.raises(KeyboardInterrupt):
        train_codec.main(argv)
    assert (out / f"{NAME}.json").read_text() == "previous"
    assert (out / f"{NAME}.safetensors").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codec"]  # no temporary folder left

    monkeypatch.setattr(train_codec, "evaluate", lambda models, lambdas: {"images": {}, "n": len(models)})
    monkeypatch.setattr(train_codec, "print_report", lambda rd: None)
    old = os.umask(0o022)
    try:
        train_codec.main(argv)
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codec"]
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {f"{NAME}.json": 0o644,
                                                                         f"{NAME}.safetensors": 0o644}
    meta, states = load_package_states(NAME, out)
    assert meta["levels"] == 4 and meta["rd_heldout"] == {"images": {}, "n": 4} and len(states) == 4
    codec = codecs.get(NAME, weights=str(out))
    x = torch.full((1, 3, 64, 64), 0.5)
    image, bits = codec(x, torch.tensor([2.0]))
    assert image.shape == x.shape and float(bits[0]) > 0

    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="holds other files"):
        train_codec.main(argv)  # the folder is replaced as a whole, so it must hold only the codec


def test_package_states_round_trip(tmp_path):
    from compressai.models import ScaleHyperprior

    from augcomp.codecs.weights import load_into

    models = [ScaleHyperprior(8, 12).eval() for _ in range(2)]
    for m in models:
        m.update(force=True)
    weights_file, json_file = save_package_states(tmp_path, "toy", [m.state_dict() for m in models], {"N": 8})
    assert weights_file.name == "toy.safetensors" and json_file.name == "toy.json"
    meta, states = load_package_states("toy", tmp_path)
    assert meta["name"] == "toy" and meta["levels"] == 2 and meta["N"] == 8
    assert not any(k.startswith("gaussian_conditional._") for k in states[0])  # rebuilt from the scale table
    for model, state in zip(models, states, strict=True):
        fresh = ScaleHyperprior(8, 12)
        load_into(fresh, state, "toy")
        assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(),
                                                     strict=True))
