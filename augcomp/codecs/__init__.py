"""Codec modules and the single codec registry."""

from augcomp.codecs.base import GRAD_MODES, Codec
from augcomp.codecs.registry import CodecEntry, clear_cache, entry, get, list, register

__all__ = ["Codec", "CodecEntry", "GRAD_MODES", "clear_cache", "entry", "get", "list", "register"]
