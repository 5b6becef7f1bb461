"""Random generators that behave in DataLoader workers as torch's global generator does."""

from __future__ import annotations

import torch

__all__ = ["worker_generator"]

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
