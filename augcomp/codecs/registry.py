"""The codec registry: one dataclass entry per codec, nothing else.

Every fact about a codec (how to build it, its level and what the level means, the channels and devices it takes,
its gradient modes, the reference it is exact to, the optional package it needs, where its weights come from) lives
in its single :class:`CodecEntry`, the way libjpeg-turbo picks each coder's functions once at init. Nothing outside
this module asks for a codec's name or family to decide what to do.

A new codec is one module of the ``augcomp.codecs`` package that defines its :class:`~augcomp.codecs.base.Codec`
subclass and calls :func:`register` once: the registry imports every public module of the package on first use, so
nothing else names the module. Every list of codecs is a query: ``list(kind="library", available=True)``, as timm's
``list_models`` filters its own registry. A module that keeps a cache registers its clearing with :func:`on_clear`.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import pkgutil
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
    "KINDS",
    "MissingExtraError",
    "clear_cache",
    "entry",
    "get",
    "list",
    "on_clear",
    "register",
    "unregister",
]

# The order listings show the shipped codecs in. Every public module of augcomp.codecs is imported (and so registers
# its codecs) on first use of the registry, named here or not; the codecs of a module not named here come after.
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
KINDS = ("library", "tensor", "neural")  # list(kind=...): see CodecEntry.kinds


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
        accepted: the keyword options the builder takes (``grad``, ``threads``, ...): :meth:`build` refuses any
            other with an error naming the codec, the option and these.
        rate_curve: ``(levels, (a, b, c))``, a fitted rate curve that warm-starts bpp targeting of a library codec:
            ``log(bpp) ~ a + b * fine + c * coarse`` at each level (see ``augcomp.codecs._containers.curve_prior``);
            ``None`` where the codec has none. ``benchmarks/fit_priors.py`` refits every codec that has one.
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
    accepted: tuple[str, ...] = ("grad",)
    rate_curve: tuple[tuple[float, ...], tuple[tuple[float, ...], ...]] | None = None

    def __post_init__(self) -> None:
        lo, hi = self.level_range
        if not lo < hi:
            raise ArgumentError(f"{self.name}: level_range must be (lo, hi) with lo < hi, got {self.level_range}")
        if self.file_kind not in FILE_KINDS:
            raise ArgumentError(f"{self.name}: file_kind must be one of {FILE_KINDS}, got {self.file_kind!r}")
        if not isinstance(self.accepted, tuple) or not all(isinstance(o, str) for o in self.accepted):
            raise ArgumentError(f"{self.name}: accepted must be a tuple of option names, got {self.accepted!r}")

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

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of :data:`KINDS` the codec is: ``("library",)`` (computed by a library on the host),
        ``("tensor",)`` (a tensor path on any device, such as the torch JPEG) or ``("tensor", "neural")`` (a tensor
        codec with learned weights)."""
        if not self.tensor_path:
            return ("library",)
        return ("tensor",) if self.weights == "none" else ("tensor", "neural")

    def build(self, **options: Any) -> Codec:
        """A new codec module; raises :class:`MissingExtraError` naming the extra if a package is missing."""
        reason = self.missing()
        if reason is not None:
            raise MissingExtraError(reason)
        unknown = sorted(set(options) - set(self.accepted))
        if unknown:
            raise ArgumentError(f"codec {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                                f"its options are: {', '.join(self.accepted)}")
        merged = {**self.options, **options}
        codec = self.builder(self, **merged)
        codec.build_options = merged  # what the codec was built with: part of its identity in a store
        return codec


_REGISTRY: dict[str, CodecEntry] = {}
_CACHE: dict[tuple, Codec] = {}
_CLEAR_HOOKS: builtins.list[Callable[[], None]] = []
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


def list(  # noqa: A001 - the public name the contract gives
    *,
    kind: str | None = None,
    available: bool | None = None,
    installed: bool | None = None,
    channels: int | None = None,
    grad: str | None = None,
    file_kind: str | None = None,
    weights: str | None = None,
    where: Callable[[CodecEntry], bool] | None = None,
) -> builtins.list[str]:
    """Names of the registered codecs, usable here or not: the built-in ones in the order of
    :data:`BUILTIN_MODULES`, then the others in registration order. Filters narrow the list, as timm's
    ``list_models(filter=..., pretrained=...)`` does; each is a question about the entry, and they combine with
    *and*. ``list()`` with no filter is every codec.

    Args:
        kind: one of :data:`KINDS`: ``"library"`` (one image at a time by a library on the host), ``"tensor"``
            (a tensor path on any device; neural codecs included) or ``"neural"`` (learned weights); see
            :attr:`CodecEntry.kinds`.
        available: ``True`` keeps the codecs usable here and ``False`` the others, as
            :func:`augcomp.codecs.availability.codec_available` decides without the network (packages installed,
            the codec builds, weights on disk). Slower than the other filters: it builds codecs without weights.
        installed: ``True`` keeps the codecs whose packages are installed (:meth:`CodecEntry.missing` is
            ``None``), weights or not; ``False`` the others.
        channels: keeps the codecs that take this channel count (1 or 3).
        grad: keeps the codecs that accept this ``grad=`` mode (``"ste"``, ``"cubic"``, ``"none"``).
        file_kind: keeps the codecs whose coded files are of this kind (one of :data:`FILE_KINDS`).
        weights: keeps the codecs whose weights come from here (``"none"``, ``"compressai"``, ``"package"``).
        where: any predicate on the :class:`CodecEntry`.

    Returns:
        The names, in registry order.

    Raises:
        ValueError: ``kind`` or ``file_kind`` is not one of the accepted values.

    Example::

        codecs.list(kind="library", channels=1)          # library codecs that code grayscale
        codecs.list(where=lambda e: e.rate_curve is not None)
    """
    _ensure_builtin()
    if kind is not None and kind not in KINDS:
        raise ArgumentError(f"kind must be one of {KINDS} or None, got {kind!r}")
    if file_kind is not None and file_kind not in FILE_KINDS:
        raise ArgumentError(f"file_kind must be one of {FILE_KINDS} or None, got {file_kind!r}")
    tests: builtins.list[Callable[[CodecEntry], bool]] = []
    if kind is not None:
        tests.append(lambda e: kind in e.kinds)
    if installed is not None:
        tests.append(lambda e: (e.missing() is None) == installed)
    if channels is not None:
        tests.append(lambda e: channels in e.channels)
    if grad is not None:
        tests.append(lambda e: grad in e.grad_modes)
    if file_kind is not None:
        tests.append(lambda e: e.file_kind == file_kind)
    if weights is not None:
        tests.append(lambda e: e.weights == weights)
    if where is not None:
        tests.append(where)
    if available is not None:  # last: the costly one sees only what the others kept
        from augcomp.codecs.availability import codec_available

        tests.append(lambda e: codec_available(e.name)[0] == available)
    return [name for name, e in builtins.list(_REGISTRY.items()) if all(test(e) for test in tests)]


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


def on_clear(hook: Callable[[], None]) -> Callable[[], None]:
    """Registers ``hook`` to run on every :func:`clear_cache` (a codec module's own cache: shared models, tables)
    and returns it, so it also works as a decorator. Registering the same function twice runs it once."""
    if not callable(hook):
        raise TypeError(f"on_clear takes a function, got {type(hook).__name__}")
    if hook not in _CLEAR_HOOKS:
        _CLEAR_HOOKS.append(hook)
    return hook


def clear_cache() -> None:
    """Forgets every built codec and runs the hooks codec modules registered with :func:`on_clear` (the neural
    module frees its shared models). Imports no codec module: one never imported has nothing to clear."""
    _CACHE.clear()
    for hook in builtins.list(_CLEAR_HOOKS):
        hook()


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
    for module in (*BUILTIN_MODULES, *_package_modules()):
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


def _package_modules() -> builtins.list[str]:
    # The public modules of augcomp.codecs (helpers start with "_" and are imported by the modules that use them).
    # A codec module imports no codec library at import time, so importing them all stays light.
    package = importlib.import_module(__name__.rsplit(".", 1)[0])
    return [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)
            if not m.name.startswith("_") and not m.ispkg]
