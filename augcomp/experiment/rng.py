"""Every random state of a training phase, saved with its checkpoint so that a resumed run draws exactly what an
uninterrupted one would.

``accelerate``'s ``save_state`` keeps the global generators (Python, NumPy, torch, CUDA) but not the generators that
objects own, such as the one a distributed sampler shuffles with. Those are captured here by name, together with the
global ones, into one file per process. (Per-sample training draws need none of this: they are keyed by seed, epoch
and sample index, see :mod:`augcomp.data.training`.)
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

__all__ = ["capture", "load", "loader_generators", "restore", "save", "state_file"]


def state_file(folder: str | os.PathLike, process_index: int) -> str:
    """Where process ``process_index`` keeps its random states in a checkpoint folder."""
    return os.path.join(os.fspath(folder), f"augcomp_rng_{process_index}.pt")


def loader_generators(loader: Any) -> dict[str, torch.Generator]:
    """The generators a (prepared) DataLoader shuffles and seeds its workers with, by name.

    Without its own generator a sampler draws from torch's global one, which :func:`capture` keeps anyway.
    """
    out: dict[str, torch.Generator] = {}
    get_sampler = getattr(loader, "get_sampler", None)
    sampler = get_sampler() if callable(get_sampler) else getattr(loader, "sampler", None)
    gen = getattr(sampler, "generator", None)
    if isinstance(gen, torch.Generator):
        out["sampler"] = gen
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator) and all(gen is not g for g in out.values()):
        out["loader"] = gen
    return out


def capture(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """The global random states and those of ``generators``, as tensors and numbers (loadable with
    ``weights_only``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    # An uninitialized CUDA has drawn nothing yet; initializing it here would cost seconds for nothing.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict[str, Any], generators: dict[str, torch.Generator]) -> list[str]:
    """Sets the global random states and those of ``generators`` from :func:`capture`'s result.

    Returns:
        Names in ``generators`` that the state does not hold (left as they are).
    """
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    missing = []
    for name, gen in generators.items():
        if name in state["generators"]:
            gen.set_state(state["generators"][name])
        else:
            missing.append(name)
    return missing


def save(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Writes :func:`capture`'s result to ``path``."""
    torch.save(state, path)


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a file written by :func:`save` (tensors and numbers only, so no code runs)."""
    return torch.load(path, map_location="cpu", weights_only=True)
