"""Whether a registered codec is usable here, without the network: one check for the CLI, the benchmarks and the
experiments, and for ``codecs.list(available=True)``.

A codec is usable when the packages of its extra are installed (:meth:`~augcomp.codecs.CodecEntry.missing`), it
builds, and its weights are on this machine: shipped with the package, in ``AUGCOMP_WEIGHTS`` or in the torch hub
cache. Two depths:

- the default looks at files only and never imports the neural codecs' package (``augcomp codecs`` stays fast);
- ``probe=True`` builds the codec with downloads disabled and compresses a tiny image at each of its levels, which
  also catches unreadable weight files (and warms the codec cache for the run that follows).

::

    from augcomp.codecs.availability import codec_available

    ok, detail = codec_available("mbt2018-mean")   # (False, "weights not in AUGCOMP_WEIGHTS or the torch hub cache")
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from augcomp._errors import AugcompError
from augcomp.codecs import registry
from augcomp.codecs.registry import CodecEntry

__all__ = ["DOWNLOADS", "codec_available", "codec_usability", "offline"]

DOWNLOADS = "on first use (downloads)"  # codec_usability: usable once its CompressAI weights download

# What a usable codec's detail says, by where its weights come from (``CodecEntry.weights``).
_USABLE = {"none": "no weights needed", "package": "weights shipped", "compressai": "weights on disk"}


def codec_available(name: str, *, probe: bool = False, allow_download: bool = False) -> tuple[bool, str]:
    """Whether codec ``name`` can be used here, and a short phrase saying why (or why not).

    Args:
        name: a codec name (an unknown one is reported as not usable).
        probe: also build the codec and compress a tiny image at each level (every level of a discrete codec, both
            ends of a continuous one); weights are loaded, so this takes seconds for large neural codecs.
        allow_download: with ``probe``, let a missing CompressAI checkpoint be downloaded. Otherwise nothing here
            touches the network.

    Returns:
        ``(usable, detail)``. ``detail`` is ``"no weights needed"``, ``"weights shipped"`` or ``"weights on disk"``
        for a usable codec; otherwise what is missing and what to do: the ``pip install 'augcomp[...]'`` line of a
        missing package, the weights that are not on disk, or the error its build raised.
    """
    try:
        entry = registry.entry(name)
    except ValueError as err:
        return False, str(err)
    reason = entry.missing()
    if reason is not None:
        return False, reason
    if probe:
        return _probe(entry, allow_download)
    if entry.weights == "none":
        return _builds(entry)
    if entry.weights == "package":
        return _package_files(entry)
    arch = getattr(entry.builder, "arch", None)
    if arch is None or not getattr(arch, "zoo", None):
        return _probe(entry, allow_download=False)  # weights from elsewhere: only loading them tells
    return _zoo_files(entry, arch)


@contextmanager
def offline() -> Iterator[None]:
    """Within the block, the weights module downloads nothing (it reads ``AUGCOMP_OFFLINE`` on every lookup)."""
    from augcomp.codecs.weights import OFFLINE_ENV_VAR

    old = os.environ.get(OFFLINE_ENV_VAR)
    os.environ[OFFLINE_ENV_VAR] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(OFFLINE_ENV_VAR, None)
        else:
            os.environ[OFFLINE_ENV_VAR] = old


def _builds(entry: CodecEntry) -> tuple[bool, str]:
    # Codecs without weights are cheap to build; one that cannot be built is not usable.
    try:
        registry.get(entry.name)
    except _UNUSABLE as err:
        return False, f"cannot be built here ({_describe(err)})"
    return True, _USABLE[entry.weights]


def _package_files(entry: CodecEntry) -> tuple[bool, str]:
    from augcomp.codecs import weights as w

    meta = w.package_dir() / f"{entry.name}.json"
    if not meta.is_file():
        return False, f"weights not shipped: {meta.name} is not in the package"
    try:
        file = w.package_dir() / json.loads(meta.read_text())["weights_file"]
    except (ValueError, KeyError) as err:
        return False, f"weights unreadable: {meta.name} ({err})"
    if not file.is_file():
        return False, f"weights not shipped: {file.name} is not in the package"
    return True, _USABLE[entry.weights]


_ZOO_MISSING = "weights not in {env} or the torch hub cache (downloaded on first use when online)"


def codec_usability(name: str) -> tuple[str, str]:
    """Like :func:`codec_available` (nothing touches the network), in three states: ``("yes", detail)``,
    ``(DOWNLOADS, detail)`` for a CompressAI zoo model whose package is installed and whose weights are not all on
    disk yet (the first use downloads them), or ``("no", detail)``."""
    usable, detail = codec_available(name)
    if usable:
        return "yes", detail
    try:
        entry = registry.entry(name)
    except ValueError:
        return "no", detail
    arch = getattr(entry.builder, "arch", None)
    zoo = entry.weights == "compressai" and arch is not None and bool(getattr(arch, "zoo", None))
    if zoo and entry.missing() is None and _zoo_downloadable(entry, arch):
        return DOWNLOADS, detail
    return "no", detail


def _zoo_downloadable(entry: CodecEntry, arch: Any) -> bool:
    # What _zoo_files found missing is only files a first use downloads (not an unknown URL table).
    return _zoo_files(entry, arch, want_state=True) == "downloads"


def _zoo_files(entry: CodecEntry, arch: Any, want_state: bool = False) -> Any:
    from augcomp.codecs import weights as w

    folders = [Path(os.environ[w.ENV_VAR]).expanduser()] if os.environ.get(w.ENV_VAR) else []
    folders.append(w.hub_checkpoint_dir())
    missing = _ZOO_MISSING.format(env=w.ENV_VAR)
    # Importing compressai for its URL table takes seconds; with no checkpoint files at all there is no need.
    if not any(f.is_dir() and any(f.glob("*.pth*")) for f in folders):
        return "downloads" if want_state else (False, missing)
    metric = entry.options.get("metric", "mse")
    try:
        if arch.variable_rate:
            urls = [w.zoo_url(arch.zoo, metric, None)]
        else:
            urls = [w.zoo_url(arch.zoo, metric, q) for q in range(1, arch.num_models + 1)]
    except Exception as err:  # noqa: BLE001 - compressai's URL table changed: report, do not fail
        return "unknown" if want_state else (False, f"weights unknown ({_describe(err)})")
    names = [u.rsplit("/", 1)[-1] for u in urls]
    present = [n for n in names if any((f / n).is_file() for f in folders)]
    if want_state:
        return "present" if len(present) == len(names) else "downloads"
    if len(present) == len(names):
        return True, _USABLE[entry.weights]
    if present:
        return False, f"weights for only {len(present)}/{len(names)} levels on disk"
    return False, missing


def _probe(entry: CodecEntry, allow_download: bool) -> tuple[bool, str]:
    lo, hi = entry.level_range
    levels = [float(v) for v in range(int(lo), int(hi) + 1)] if entry.discrete else [float(lo), float(hi)]
    side = max(16, entry.pad_multiple, entry.min_size)
    channels = 3 if 3 in entry.channels else entry.channels[0]
    x = torch.full((1, channels, side, side), 0.5)
    try:
        with (nullcontext() if allow_download else offline()), torch.no_grad():
            codec = registry.get(entry.name)
            for level in levels:
                codec(x, torch.tensor([level]))
    except _UNUSABLE as err:
        return False, f"not loadable{'' if allow_download else ' offline'} ({_describe(err)})"
    return True, _USABLE.get(entry.weights, "loads")


# What makes a codec unusable here: a missing package or library (MissingExtraError, an ImportError, or the OSError of
# a library built without the encoder), weights not found or not loadable (WeightsNotFoundError, ArgumentError, the
# OSError of a failed download), a codec not written yet (NotImplementedError). Any other exception is a bug of the
# codec and keeps its traceback.
_UNUSABLE = (AugcompError, ImportError, OSError, NotImplementedError)


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
