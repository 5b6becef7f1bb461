"""Random generators: ones that behave in DataLoader workers as torch's global generator does, and keyed ones whose
draws depend only on a key (a run's seed, an epoch, a sample index), never on which process or worker draws them."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["keyed_generator", "keyed_seed", "worker_generator"]


def keyed_seed(*key: object) -> int:
    """A 63-bit seed that is a function of ``key`` alone (ints and strings), the same in every process and run.

    A hash rather than arithmetic on the parts, so that nearby keys (index 7 and 8, epoch 0 and 1) give unrelated
    streams, as a counter-based generator would.
    """
    if not key or not all(isinstance(k, (int, str)) and not isinstance(k, bool) for k in key):
        raise ValueError(f"a key is one or more ints and strings, got {key!r}")
    digest = hashlib.blake2b(repr(tuple(key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def keyed_generator(*key: object) -> torch.Generator:
    """A new CPU generator seeded with :func:`keyed_seed` of ``key``."""
    return torch.Generator().manual_seed(keyed_seed(*key))

_SEEDED: dict[int, int] = {}  # id(generator) -> the worker seed it was last seeded for, in this process


def worker_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """``generator``, re-seeded once per DataLoader worker from its own seed and the worker's seed.

    Each worker holds a copy of the generator; without this every copy would draw the same sequence. The worker's
    seed (``base_seed + worker_id``, drawn by the DataLoader from the main process's torch seed) keeps runs
    reproducible. Outside workers the generator is returned untouched.
    """
    info = torch.utils.data.get_worker_info()
    if generator is None or info is None:
        return generator
    if _SEEDED.get(id(generator)) != info.seed:
        mixed = (generator.initial_seed() * 0x9E3779B97F4A7C15 + info.seed) % (1 << 63)
        generator.manual_seed(mixed)
        _SEEDED[id(generator)] = info.seed
    return generator
