"""Codec modules and the single codec registry."""

from augcomp.codecs.base import GRAD_MODES, Codec
from augcomp.codecs.library import LibraryCodec
from augcomp.codecs.registry import (
    ANY_DEVICE,
    KINDS,
    CodecEntry,
    MissingExtraError,
    clear_cache,
    entry,
    get,
    list,
    on_clear,
    register,
    unregister,
)

__all__ = [
    "ANY_DEVICE",
    "Codec",
    "CodecEntry",
    "GRAD_MODES",
    "KINDS",
    "LibraryCodec",
    "MissingExtraError",
    "clear_cache",
    "entry",
    "get",
    "list",
    "on_clear",
    "register",
    "unregister",
]
