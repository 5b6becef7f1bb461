"""The registry is the only source of codec facts: its queries, declared options and cache hooks.

Every filter of ``codecs.list`` is checked against the entries' own attributes (and, for ``available``, against
``codec_available``); the declared options against what each builder really takes.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from augcomp import codecs
from augcomp.codecs import registry
from augcomp.codecs.availability import codec_available
from augcomp.codecs.neural import NeuralCodec, ZooBuilder

ALL = codecs.list()


def _entries() -> list[codecs.CodecEntry]:
    return [codecs.entry(n) for n in ALL]


def test_list_without_filters_is_every_codec_in_registry_order():
    assert ALL == list(registry._REGISTRY) and len(ALL) == len(set(ALL))
    assert codecs.list(where=lambda e: True) == ALL and codecs.list(where=lambda e: False) == []


@pytest.mark.parametrize("kind", codecs.KINDS)
def test_kind_filter(kind):
    got = codecs.list(kind=kind)
    assert got and got == [e.name for e in _entries() if kind in e.kinds]
    for name in got:
        e = codecs.entry(name)
        if kind == "library":
            assert not e.tensor_path and e.devices != codecs.ANY_DEVICE
        else:
            assert e.tensor_path
        if kind == "neural":
            assert e.weights != "none"
    # Every codec is a library codec or a tensor codec, never both.
    assert sorted(codecs.list(kind="library") + codecs.list(kind="tensor")) == sorted(ALL)


def test_kind_filter_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match=r"kind must be one of \('library', 'tensor', 'neural'\)"):
        codecs.list(kind="traditional")


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_filter(channels):
    got = codecs.list(channels=channels)
    assert got == [e.name for e in _entries() if channels in e.channels]
    x = torch.rand(1, channels, 16, 16)
    for name in codecs.list(channels=channels, installed=True, weights="none"):
        assert codecs.get(name)(x, torch.tensor([sum(codecs.entry(name).level_range) / 2]))[0].shape == x.shape


@pytest.mark.parametrize("grad", codecs.GRAD_MODES)
def test_grad_filter(grad):
    got = codecs.list(grad=grad)
    assert got == [e.name for e in _entries() if grad in e.grad_modes]
    if grad == "cubic":
        assert got == ["jpeg"]  # the one codec with a smooth rounding surrogate


@pytest.mark.parametrize("file_kind", registry.FILE_KINDS)
def test_file_kind_filter(file_kind):
    assert codecs.list(file_kind=file_kind) == [e.name for e in _entries() if e.file_kind == file_kind]
    with pytest.raises(ValueError, match="file_kind must be one of"):
        codecs.list(file_kind="bitstream")


@pytest.mark.parametrize("weights", ["none", "compressai", "package"])
def test_weights_filter(weights):
    got = codecs.list(weights=weights)
    assert got and got == [e.name for e in _entries() if e.weights == weights]


def test_installed_filter():
    yes, no = codecs.list(installed=True), codecs.list(installed=False)
    assert yes == [e.name for e in _entries() if e.missing() is None]
    assert no == [e.name for e in _entries() if e.missing() is not None]


def test_available_filter_is_codec_available():
    yes, no = codecs.list(available=True), codecs.list(available=False)
    assert sorted(yes + no) == sorted(ALL)
    assert all(codec_available(n)[0] for n in yes) and not any(codec_available(n)[0] for n in no)
    assert "jpeg" in yes


def test_filters_combine_with_and():
    got = codecs.list(kind="library", channels=1, grad="ste", where=lambda e: not e.rate_increases_with_level)
    assert got == [e.name for e in _entries() if "library" in e.kinds and 1 in e.channels and "ste" in e.grad_modes
                   and not e.rate_increases_with_level]


def test_where_sees_the_entry():
    assert codecs.list(where=lambda e: e.rate_curve is not None) == [e.name for e in _entries() if e.rate_curve]


# ------------------------------------------------------------------ options declared on the entry


def _builder_options(e: codecs.CodecEntry) -> set[str]:
    # The check itself may introspect: the keyword options the builder's codec class really takes.
    target = NeuralCodec if isinstance(e.builder, ZooBuilder) else e.builder
    supplied = {"entry", "arch"}  # given by the registry (entry) and by ZooBuilder (arch), never by a user
    params = inspect.signature(target).parameters.values()
    assert not any(p.kind == p.VAR_KEYWORD for p in params), f"{e.name}: its builder takes **kwargs"
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in supplied}


@pytest.mark.parametrize("name", ALL)
def test_declared_options_are_what_the_builder_takes(name):
    e = codecs.entry(name)
    assert len(e.accepted) == len(set(e.accepted)) and set(e.accepted) == _builder_options(e)


def test_an_undeclared_option_is_refused_naming_codec_option_and_accepted():
    with pytest.raises(ValueError, match=r"codec 'webp' has no option 'effort'; its options are: grad, .*method"):
        codecs.get("webp", effort=3)
    with pytest.raises(ValueError, match="accepted must be a tuple of option names"):
        codecs.CodecEntry("bad", codecs.entry("jpeg").builder, (1.0, 100.0), False, accepted=["grad"])


def test_no_signature_introspection_or_patched_attribute_is_left():
    source = inspect.getsource(registry)
    assert "inspect" not in source and "codec_class" not in source
    assert not hasattr(ZooBuilder, "codec_class")


# ------------------------------------------------------------------ cache hooks


def test_clear_cache_runs_registered_hooks_once_each():
    calls = []

    def hook():
        calls.append(1)

    try:
        assert codecs.on_clear(hook) is hook and codecs.on_clear(hook) is hook
        before = codecs.get("jpeg")
        codecs.clear_cache()
        assert calls == [1] and codecs.get("jpeg") is not before
    finally:
        registry._CLEAR_HOOKS.remove(hook)
    with pytest.raises(TypeError, match="on_clear takes a function"):
        codecs.on_clear("not a function")


def test_neural_models_are_freed_by_their_own_hook():
    from augcomp.codecs import neural

    assert neural.clear_models in registry._CLEAR_HOOKS
    neural.get_model("augcomp-tiny", codecs.entry("augcomp-tiny").builder.arch, 0, torch.device("cpu"),
                     pretrained=False)
    assert neural._MODELS
    codecs.clear_cache()
    assert not neural._MODELS


def test_clear_cache_imports_no_codec_module():
    code = ("import sys; from augcomp.codecs import registry; registry.clear_cache(); "
            "loaded = [m for m in sys.modules if m.startswith('augcomp.codecs.') and m not in "
            "('augcomp.codecs.registry', 'augcomp.codecs.base', 'augcomp.codecs.library', "
            "'augcomp.codecs._containers')]; assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ adding a codec: its module and one register call

_NEW_MODULE = '''
"""Pillow's JPEG at an integer quality, as a library codec: a codec module written for this test alone."""
import io

import numpy as np
from PIL import Image

from augcomp.codecs.library import LIBRARY_OPTIONS, LibraryCodec
from augcomp.codecs.registry import CodecEntry, register


class PillowJPEG(LibraryCodec):
    def encode(self, image, level):
        out = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(out, "JPEG", quality=int(level))
        return out.getvalue()

    def decode(self, data):
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im)

    def payload_bits(self, data):
        return 8 * len(data)


register(CodecEntry(name="test-pillow-jpeg", builder=PillowJPEG, level_range=(1.0, 95.0), discrete=True,
                    channels=(1, 3), devices=("cpu",), accepted=LIBRARY_OPTIONS, reference="Pillow"))
'''


def test_a_new_codec_module_needs_no_other_edit(tmp_path):
    # The module sits in a folder added to the codecs package's path before the registry first loads: nothing names
    # it (no BUILTIN_MODULES line), and every entry point and query finds it.
    (tmp_path / "pillow_jpeg_test.py").write_text(_NEW_MODULE)
    code = f"""
import io, torch
from PIL import Image
import augcomp, augcomp.codecs as c
from augcomp.cli import codec_rows
c.__path__.append({str(tmp_path)!r})
name = "test-pillow-jpeg"
assert c.list()[-1] == name and name in c.list(kind="library", channels=1, available=True), c.list()
x = torch.randint(0, 256, (2, 3, 24, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
out = augcomp.compress(x, name, quality=torch.tensor([30.0, 80.0]), files=True)
for i, data in enumerate(out.files):
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
    assert torch.equal(augcomp.decompress(data, name), out.image[i]) and out.bits[i] == 8 * len(data)
y = augcomp.transforms.Compress(name, bpp=(0.5, 3.0), generator=torch.Generator().manual_seed(0))(x)
assert y.shape == x.shape and y.dtype == torch.uint8
assert [r["usable"] for r in codec_rows() if r["name"] == name] == ["yes"]
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_every_extra_an_entry_names_is_a_pyproject_extra():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]  # tomllib needs Python 3.11
    extras = set(re.findall(r"^([a-z][a-z0-9-]*) = ", section, flags=re.M))
    assert {"codecs", "neural"} <= extras
    for e in _entries():
        assert e.extra is None or e.extra in extras, (e.name, e.extra)
