"""Which codecs a run can use: resolving ``--codecs`` and probing that weights are present."""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

__all__ = ["CodecUnavailableError", "codec_usable", "resolve_codecs"]


class CodecUnavailableError(RuntimeError):
    """A codec named on the command line cannot be built here (its weights are missing)."""


@contextmanager
def _offline():
    # The weights module reads this variable on every lookup; it stops any download attempt.
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


def codec_usable(name: str, *, allow_download: bool = True) -> tuple[bool, str]:
    """Whether codec ``name`` works here, by building it and compressing a tiny image at every model it holds.

    JPEG needs no weights. A neural codec is usable when its weights load: shipped with the package, found on disk
    or (with ``allow_download``) downloaded. Building each model once also warms the codec cache for the run.

    Args:
        name: a registered codec name.
        allow_download: whether a missing CompressAI checkpoint may be downloaded.

    Returns:
        ``(usable, reason)``; ``reason`` explains a failure and is empty otherwise.
    """
    from augcomp import codecs

    try:
        entry = codecs.entry(name)
    except ValueError as e:
        return False, str(e)
    if entry.weights == "none":
        return True, ""
    lo, hi = entry.level_range
    levels = [float(v) for v in range(int(lo), int(hi) + 1)] if entry.discrete else [float(lo), float(hi)]
    side = max(16, entry.pad_multiple)
    x = torch.full((1, 3, side, side), 0.5)
    try:
        if allow_download:
            codec = codecs.get(name)
            for level in levels:
                codec(x, torch.tensor([level]))
        else:
            with _offline():
                codec = codecs.get(name)
                for level in levels:
                    codec(x, torch.tensor([level]))
    except (FileNotFoundError, ImportError, ModuleNotFoundError) as e:
        return False, f"{type(e).__name__}: {e}"
    return True, ""


def resolve_codecs(spec: str | list[str]) -> tuple[list[str], dict[str, str]]:
    """Turns a ``--codecs`` value into the codecs to sweep.

    ``spec`` is a comma-separated list of codec names, or ``"available"``: JPEG plus every registered neural codec
    whose weights are already here (the codec shipped with the package included), without downloading anything.

    Args:
        spec: the option's value, or a list of names.

    Returns:
        ``(names, skipped)``: the codecs to use, and for ``"available"`` the ones left out with the reason.

    Raises:
        CodecUnavailableError: a codec named explicitly is unknown or its weights cannot be found or downloaded.
    """
    from augcomp import codecs

    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names:
        raise CodecUnavailableError("--codecs is empty; give codec names such as 'jpeg' or 'available'")
    if names == ["available"]:
        usable, skipped = [], {}
        for name in codecs.list():
            ok, reason = codec_usable(name, allow_download=False)
            if ok:
                usable.append(name)
            else:
                skipped[name] = reason
        return usable, skipped
    out: list[str] = []
    for name in names:
        ok, reason = codec_usable(name)
        if not ok:
            raise CodecUnavailableError(
                f"codec {name!r} cannot be used: {reason}. Known codecs: {', '.join(codecs.list())}; "
                "'--codecs available' uses every codec whose weights are present."
            )
        if name not in out:
            out.append(name)
    return out, {}
