"""Per-argument caching of constant tensors that stays traceable by ``torch.compile``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["constant_cache"]

F = TypeVar("F", bound=Callable)


def constant_cache(fn: F) -> F:
    """Caches ``fn(*args)`` (lookup tables built on a device, or per image size) in eager mode, 256 entries at most.

    Under ``torch.compile`` the builder is called directly: dynamo would otherwise warn that it ignores the cache,
    and the tables it builds become constants of the graph anyway.
    """
    cached = functools.lru_cache(maxsize=256)(fn)

    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args) if torch.compiler.is_compiling() else cached(*args)

    return wrapper
