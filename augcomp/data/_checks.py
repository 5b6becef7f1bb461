"""Checks of the files a dataset adapter reads: a file that cannot be used stops the run naming it and its fault,
before any metric is computed, instead of a library traceback (or, for a mask of another size, a silently
misaligned evaluation).

Two checks, so that no dataset is decoded up front:

- the header scan (:func:`scan`, run when a run builds its data): each file's header (``Image.open`` reads only that,
  and ``.size`` is free) and, for JPEG and PNG, its last bytes: a file without the end marker is decoded to tell a
  truncated file from one with data appended. It finds unreadable, empty and non-image files, truncated JPEG and PNG
  files, and masks whose size differs from their image;
- the load check (:func:`load_image`, :func:`load_mask`, in ``__getitem__``): a decode failure or a size mismatch
  becomes a :class:`BadFileError` naming the file, for what only decoding shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from augcomp._errors import AugcompError

__all__ = ["BadFileError", "DatasetNotFoundError", "header_fault", "load_image", "load_mask", "pair_fault", "scan"]

# The last bytes of a complete file, by Pillow format: a truncated file lacks them. (Some JPEG writers add bytes
# after the EOI marker; the marker is then looked for in the last few bytes.)
_END_MARKERS = {"JPEG": (b"\xff\xd9", 64), "PNG": (b"IEND\xaeB`\x82", 12)}
# What Pillow raises for a file it cannot decode (truncated data raises OSError, broken headers SyntaxError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class BadFileError(AugcompError, ValueError):
    """A file of a dataset cannot be used: unreadable, truncated, not an image, or a mask that does not fit its
    image. The message is ``"<path>: <fault>"``.

    Args:
        message: the message (``path`` and ``fault`` given, it is made from them).
        path: the file.
        fault: what is wrong with it.
    """

    def __init__(self, message: str = "", path: str | os.PathLike | None = None, fault: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.fault = fault
        super().__init__(f"{path}: {fault}" if path is not None and fault is not None else message)


class DatasetNotFoundError(AugcompError, FileNotFoundError):
    """A dataset is not where ``--data-root`` (or ``root``) points: a folder or annotation file of its layout is
    missing, or it holds no images. The message shows the layout expected."""


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def header_fault(path: str | os.PathLike) -> tuple[tuple[int, int] | None, str | None]:
    """Reads ``path``'s header (and for JPEG and PNG its end marker), without decoding it.

    Returns:
        ``((width, height), None)`` for a file that looks whole, or ``(None, fault)``.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return None, "empty file (0 bytes)"
        with Image.open(path) as img:
            dims, fmt = img.size, img.format
    except UnidentifiedImageError:
        return None, "not an image Pillow can read (unknown format or a broken header)"
    except _DECODE_ERRORS as e:
        return None, f"unreadable ({_reason(e)})"
    marker = _END_MARKERS.get(fmt or "")
    if marker is not None:
        end, window = marker
        with open(path, "rb") as f:
            f.seek(max(0, size - window))
            tail = f.read()
        if end not in tail:
            # Most likely cut short; but some writers append data after the end, so only decoding this one file
            # tells (a whole image decodes).
            try:
                with Image.open(path) as img:
                    img.load()
            except _DECODE_ERRORS as e:
                return None, f"truncated {fmt} file: no end marker and it cannot be decoded ({_reason(e)})"
    return dims, None


def pair_fault(image: str | os.PathLike, mask: str | os.PathLike) -> tuple[str, str] | None:
    """The header check of an image and its mask: ``(path, fault)`` of the first problem, or None."""
    image_size, fault = header_fault(image)
    if fault is not None:
        return str(image), fault
    mask_size, fault = header_fault(mask)
    if fault is not None:
        return str(mask), fault
    if mask_size != image_size:
        return str(mask), _size_fault(mask_size, image_size, image)
    return None


def _size_fault(mask: tuple[int, int] | None, image: tuple[int, int] | None, image_path: str | os.PathLike) -> str:
    return f"mask is {_wh(mask)} but its image {Path(image_path).name} is {_wh(image)} (width x height)"


def _wh(size: tuple[int, int] | None) -> str:
    return "?" if size is None else f"{size[0]}x{size[1]}"


def load_image(path: str | os.PathLike) -> Image.Image:
    """Decodes ``path`` as RGB.

    Raises:
        BadFileError: the file cannot be decoded (truncated, corrupt, not an image).
    """
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except _DECODE_ERRORS as e:
        raise BadFileError(path=path, fault=f"cannot be decoded ({_reason(e)})") from None


def load_mask(path: str | os.PathLike, image_size: tuple[int, int], image_path: str | os.PathLike) -> np.ndarray:
    """Decodes the mask at ``path`` and checks that it has its image's size.

    Args:
        path: the mask file.
        image_size: ``(width, height)`` of its image.
        image_path: the image, for the message.

    Returns:
        The mask as an ``(H, W)`` int64 array of its stored values.

    Raises:
        BadFileError: the mask cannot be decoded or its size differs from the image's.
    """
    try:
        with Image.open(path) as m:
            if m.size != tuple(image_size):
                raise BadFileError(path=path, fault=_size_fault(m.size, tuple(image_size), image_path))
            return np.asarray(m, dtype=np.int64)
    except _DECODE_ERRORS as e:
        if isinstance(e, BadFileError):
            raise
        raise BadFileError(path=path, fault=f"cannot be decoded ({_reason(e)})") from None


def scan(check: Callable[[int], tuple[str, str] | None], indices: Sequence[int],
         workers: int = 8) -> list[tuple[int, str, str]]:
    """Runs the header check ``check(index)`` over ``indices`` (threads: the work is file reads).

    Returns:
        ``(index, path, fault)`` for each sample that fails, in index order.
    """
    if not indices:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(indices)))) as pool:
        faults = list(pool.map(check, indices, chunksize=64))
    return [(i, *f) for i, f in zip(indices, faults, strict=True) if f is not None]
