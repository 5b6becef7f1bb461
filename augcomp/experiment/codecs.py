"""Which codecs a run can use: resolving ``--codecs`` with :func:`augcomp.availability.codec_available`."""

from __future__ import annotations

from augcomp._errors import AugcompError
from augcomp.availability import codec_available

__all__ = ["CodecUnavailableError", "codec_usable", "resolve_codecs"]


class CodecUnavailableError(AugcompError, RuntimeError):
    """A codec named on the command line cannot be built here (its package or weights are missing)."""


def codec_usable(name: str, *, allow_download: bool = True) -> tuple[bool, str]:
    """Whether codec ``name`` works here, by building it and compressing a tiny image at every model it holds.

    A codec without weights is usable when its packages are installed and it builds. A neural codec is usable when
    its weights load: shipped with the package, found on disk or (with ``allow_download``) downloaded. Building
    each model once also warms the codec cache for the run.

    Args:
        name: a registered codec name.
        allow_download: whether a missing CompressAI checkpoint may be downloaded.

    Returns:
        ``(usable, reason)``; ``reason`` explains a failure and is empty otherwise.
    """
    ok, detail = codec_available(name, probe=True, allow_download=allow_download)
    return ok, "" if ok else detail


def resolve_codecs(spec: str | list[str], option: str = "--codecs") -> tuple[list[str], dict[str, str]]:
    """Turns a ``--codecs`` (or ``--train-codecs``) value into the codecs to use.

    ``spec`` is a comma-separated list of codec names, or ``"available"``: every registered codec usable here,
    without downloading anything (the library codecs whose packages are installed, such as JPEG, WebP, AVIF and
    JPEG 2000 on a core install, and the neural codecs whose weights are present, the shipped one included).

    Args:
        spec: the option's value, or a list of names.
        option: the option's name, for messages.

    Returns:
        ``(names, skipped)``: the codecs to use, and for ``"available"`` the ones left out with the reason.

    Raises:
        CodecUnavailableError: a codec named explicitly is unknown, or its package or weights cannot be found or
            downloaded (the message names the extra to install or the weights to fetch).
    """
    from augcomp import codecs

    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names:
        raise CodecUnavailableError(f"{option} is empty; give codec names such as 'jpeg' or 'available'")
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
    known = codecs.list()
    for name in names:
        if name not in known:
            raise CodecUnavailableError(
                f"{option}: unknown codec {name!r}; known codecs: {', '.join(known)}; '{option} available' uses "
                "every codec usable here."
            )
        ok, reason = codec_usable(name)
        if not ok:
            raise CodecUnavailableError(
                f"codec {name!r} cannot be used: {' '.join(reason.split())}. '{option} available' uses every codec "
                "usable here."
            )
        if name not in out:
            out.append(name)
    return out, {}
