"""The codec registry: one dataclass entry per codec, nothing else.

Every fact about a codec (how to build it, its level and what the level means, the channels and devices it takes,
its gradient modes, the reference it is exact to, the optional package it needs, where its weights come from) lives
in its single :class:`CodecEntry`, the way libjpeg-turbo picks each coder's functions once at init. Nothing outside
this module asks for a codec's name or family to decide what to do.

A new codec is one module that defines its :class:`~augcomp.codecs.base.Codec` subclass and calls :func:`register`
once; built-in modules are listed in :data:`BUILTIN_MODULES`.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from augcomp._errors import ArgumentError, ArgumentTypeError, AugcompError

if TYPE_CHECKING:
    from augcomp.codecs.base import Codec

__all__ = [
    "ANY_DEVICE",
    "BUILTIN_MODULES",
    "CodecEntry",
    "FILE_KINDS",
    "MissingExtraError",
    "clear_cache",
    "entry",
    "get",
    "list",
    "register",
    "unregister",
]

# The codec modules that ship with augcomp, imported (and so registered) on first use of the registry.
BUILTIN_MODULES = (
    "augcomp.codecs.jpeg",
    "augcomp.codecs.webp",
    "augcomp.codecs.avif",
    "augcomp.codecs.jpeg2000",
    "augcomp.codecs.jpegxl",
    "augcomp.codecs.heic",
    "augcomp.codecs.neural",
)

ANY_DEVICE = ("any",)
FILE_KINDS = ("file", "strings", "pixels")


class MissingExtraError(AugcompError, ImportError):
    """A codec needs an optional package that is not installed; the message names the extra to install."""


@dataclass(frozen=True)
class CodecEntry:
    """Everything the library knows about one codec.

    Attributes:
        name: registry key, e.g. ``"jpeg"`` or ``"mbt2018-mean"``.
        builder: called as ``builder(entry, **options)``; returns a :class:`~augcomp.codecs.base.Codec`.
        level_range: ``(lo, hi)`` of the codec's level.
        discrete: whether only integer levels exist.
        level_name: what the level is, for messages and listings (``"quality"``, ``"gain"``, ``"distance"``).
        rate_increases_with_level: whether a higher level means more bits.
        channels: the channel counts the codec accepts (3 = RGB, 1 = grayscale).
        devices: device types the codec computes on natively; :data:`ANY_DEVICE` for tensor codecs. Other devices
            copy to the host and back.
        grad_modes: the accepted ``grad=`` values (``"ste"``, ``"cubic"``, ``"none"``).
        reference: the library whose decoded pixels and bitstream the codec reproduces exactly (empty: none).
        extra: the ``augcomp[...]`` extra that installs what the codec needs (``None``: the core install).
        requires: importable module names the codec needs; checked before building.
        pad_multiple: inputs are padded (edge replication) to a multiple of this, then cropped back.
        min_size: smallest height and width the codec encodes.
        weights: where weights come from: ``"none"``, ``"compressai"`` (zoo download or local file) or ``"package"``.
        family: a display label for listings (never used to decide behaviour).
        options: fixed builder options of this entry (for example ``{"metric": "mse"}``).
        description: one line for listings.
        suffixes: file name extensions of the codec's own file format, the usual one first (``(".jpg", ".jpeg")``);
            empty where the codec has none (its coded files are then augcomp containers, see ``file_kind``).
        file_kind: what :meth:`~augcomp.codecs.base.Codec.compress_files` returns per sample: ``"file"`` (the
            library's own file, as a user would save it), ``"strings"`` (CompressAI's ``compress()`` strings in a
            small augcomp container; bits are their exact length) or ``"pixels"`` (the decoded pixels as a lossless
            PNG with the model's likelihood bits, for models whose ``compress()`` is serial and slow).
        batch_invariant: whether a sample's output does not depend on the other samples of its batch (False for
            floating-point models, whose kernels may sum in another order for another batch size); coded files meant
            to be reproduced exactly are then made one sample at a time.
    """

    name: str
    builder: Callable[..., Codec]
    level_range: tuple[float, float]
    discrete: bool
    level_name: str = "level"
    rate_increases_with_level: bool = True
    channels: tuple[int, ...] = (3,)
    devices: tuple[str, ...] = ANY_DEVICE
    grad_modes: tuple[str, ...] = ("ste", "none")
    reference: str = ""
    extra: str | None = None
    requires: tuple[str, ...] = ()
    pad_multiple: int = 1
    min_size: int = 1
    weights: str = "none"
    family: str = ""
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    suffixes: tuple[str, ...] = ()
    file_kind: str = "file"
    batch_invariant: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.level_range
        if not lo < hi:
            raise ArgumentError(f"{self.name}: level_range must be (lo, hi) with lo < hi, got {self.level_range}")
        if self.file_kind not in FILE_KINDS:
            raise ArgumentError(f"{self.name}: file_kind must be one of {FILE_KINDS}, got {self.file_kind!r}")

    def missing(self) -> str | None:
        """Why the codec cannot be built here (a package of its extra is missing), or ``None``."""
        absent = [m for m in self.requires if importlib.util.find_spec(m.split(".")[0]) is None]
        if not absent:
            return None
        how = f"pip install 'augcomp[{self.extra}]'" if self.extra else f"pip install {' '.join(absent)}"
        return f"codec {self.name!r} needs {', '.join(absent)}, which is not installed: {how}"

    def natively_on(self, device_type: str) -> bool:
        """Whether the codec computes on ``device_type`` without a copy to the host."""
        return self.devices == ANY_DEVICE or device_type in self.devices

    @property
    def tensor_path(self) -> bool:
        """Whether the codec computes on a batch tensor wherever the batch is (a tensor codec: the torch JPEG, the
        neural models). False for a codec that only a library computes, one image at a time on the host: such work
        belongs where per-sample CPU work goes (DataLoader workers), not on a device batch."""
        return self.devices == ANY_DEVICE

    def build(self, **options: Any) -> Codec:
        """A new codec module; raises :class:`MissingExtraError` naming the extra if a package is missing."""
        reason = self.missing()
        if reason is not None:
            raise MissingExtraError(reason)
        accepted = self.accepted_options()
        unknown = sorted(set(options) - set(accepted)) if accepted is not None else []
        if unknown:
            raise ArgumentError(f"codec {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                                f"its options are: {', '.join(accepted)}")
        merged = {**self.options, **options}
        codec = self.builder(self, **merged)
        codec.build_options = merged  # what the codec was built with: part of its identity in a store
        return codec

    def accepted_options(self) -> builtins.list[str] | None:
        """The keyword options the codec's builder takes (``None`` if it takes any)."""
        target = getattr(self.builder, "codec_class", self.builder)
        params = inspect.signature(target).parameters.values()
        if any(p.kind == p.VAR_KEYWORD for p in params):
            return None
        return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "entry"]


_REGISTRY: dict[str, CodecEntry] = {}
_CACHE: dict[tuple, Codec] = {}
_LOADED = False


def register(codec_entry: CodecEntry, *, replace: bool = False) -> CodecEntry:
    """Adds an entry and returns it. Raises ``ValueError`` if the name exists and ``replace`` is False."""
    if not isinstance(codec_entry, CodecEntry):
        raise ArgumentTypeError(f"register takes a CodecEntry, got {type(codec_entry).__name__}")
    if codec_entry.name in _REGISTRY and not replace:
        raise ArgumentError(f"codec {codec_entry.name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[codec_entry.name] = codec_entry
    _forget(codec_entry.name)
    return codec_entry


def unregister(name: str) -> CodecEntry:
    """Removes a codec (and its built modules) and returns its entry; ``ValueError`` if it is not registered."""
    _ensure_builtin()
    if name not in _REGISTRY:
        raise ArgumentError(f"codec {name!r} is not registered; registered codecs: {', '.join(_REGISTRY)}")
    _forget(name)
    return _REGISTRY.pop(name)


def list() -> builtins.list[str]:  # noqa: A001 - the public name the contract gives
    """Names of every registered codec, usable here or not: the built-in ones in the order of
    :data:`BUILTIN_MODULES`, then the others in registration order."""
    _ensure_builtin()
    return builtins.list(_REGISTRY)


def entry(name: str) -> CodecEntry:
    """The registry entry for ``name``; ``ValueError`` naming the known codecs otherwise."""
    _ensure_builtin()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ArgumentError(f"unknown codec {name!r}; known codecs: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def get(name: str, **options: Any) -> Codec:
    """A codec module for ``name``, built once per (name, options) and shared.

    Codec modules hold no trainable state; inputs decide the device.

    Raises:
        ValueError: unknown codec or a bad option.
        MissingExtraError: the codec's optional package is not installed (the message names the extra).
    """
    e = entry(name)
    key = (name, tuple(sorted((k, repr(v)) for k, v in options.items())))
    codec = _CACHE.get(key)
    if codec is None:
        codec = e.build(**options)
        _CACHE[key] = codec
    return codec


def clear_cache() -> None:
    """Forgets every built codec and frees the shared neural models."""
    import sys

    _CACHE.clear()
    neural = sys.modules.get("augcomp.codecs.neural")
    if neural is not None:
        neural.clear_models()


def _forget(name: str) -> None:
    for key in [k for k in _CACHE if k[0] == name]:
        del _CACHE[key]


def _ensure_builtin() -> None:
    # Importing the codec modules registers their entries; done lazily to keep `import augcomp` light. None of
    # them imports its codec library (Pillow plugins, imagecodecs, compressai) at import time.
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    # A module imported directly before this point registered its codecs first; the order of list() should not
    # depend on that: built-in codecs come in the order of BUILTIN_MODULES (stable within a module), then the rest.
    rank = {module: i for i, module in enumerate(BUILTIN_MODULES)}

    def module_of(codec_entry: CodecEntry) -> str:
        builder = codec_entry.builder
        return builder.__module__ if isinstance(builder, type) else type(builder).__module__

    ordered = sorted(_REGISTRY.values(), key=lambda e: rank.get(module_of(e), len(rank)))
    _REGISTRY.clear()
    _REGISTRY.update((e.name, e) for e in ordered)
