"""The codec registry: one dataclass entry per codec, nothing else.

Every fact about a codec (how to build it, its level range, whether levels are discrete, the padding it needs,
where its weights come from) lives in its single :class:`CodecEntry`. There are no parallel dictionaries to drift.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from augcomp.codecs.base import Codec

__all__ = ["CodecEntry", "register", "list", "entry", "get", "clear_cache"]


@dataclass(frozen=True)
class CodecEntry:
    """Everything the library knows about one codec.

    Attributes:
        name: registry key, e.g. ``"jpeg"`` or ``"mbt2018-mean"``.
        builder: called as ``builder(entry, **options)`` and returns a :class:`~augcomp.codecs.base.Codec`.
        level_range: ``(lo, hi)`` of the codec's level (JPEG quality, neural quality index or VBR scale).
        discrete: whether only integer levels exist.
        pad_multiple: inputs are padded (edge replication) to a multiple of this, then cropped back.
        weights: where weights come from: ``"none"``, ``"compressai"`` (zoo download or local file) or ``"package"``.
        family: a short family name (``"jpeg"``, ``"compressai"``, ``"augcomp"``).
        options: fixed builder options of this entry (for example ``{"metric": "mse"}``).
        rate_increases_with_level: whether a higher level means more bits.
        description: one line for listings.
    """

    name: str
    builder: Callable[..., Codec]
    level_range: tuple[float, float]
    discrete: bool
    pad_multiple: int = 1
    weights: str = "none"
    family: str = ""
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    rate_increases_with_level: bool = True
    description: str = ""

    def build(self, **options: Any) -> Codec:
        return self.builder(self, **{**self.options, **options})


_REGISTRY: dict[str, CodecEntry] = {}
_CACHE: dict[tuple, Codec] = {}


def register(codec_entry: CodecEntry, *, replace: bool = False) -> CodecEntry:
    """Adds an entry. Raises ``ValueError`` if the name exists and ``replace`` is False."""
    if codec_entry.name in _REGISTRY and not replace:
        raise ValueError(f"codec {codec_entry.name!r} is already registered")
    _REGISTRY[codec_entry.name] = codec_entry
    return codec_entry


def list() -> builtins.list[str]:  # noqa: A001 - the public name the contract gives
    """Names of every registered codec, in registration order."""
    _ensure_builtin()
    return builtins.list(_REGISTRY)


def entry(name: str) -> CodecEntry:
    """The registry entry for ``name``; ``ValueError`` naming the known codecs otherwise."""
    _ensure_builtin()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown codec {name!r}; known codecs: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def get(name: str, **options: Any) -> Codec:
    """A codec module for ``name``, built once per (name, options) and shared.

    Codec modules hold no trainable state; device placement happens per call (inputs decide the device).
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


def _ensure_builtin() -> None:
    # Importing the codec modules registers their entries; done lazily to keep `import augcomp` light.
    # Neither module imports compressai at import time.
    from augcomp.codecs import jpeg, neural  # noqa: F401
