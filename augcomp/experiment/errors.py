"""Failures a recipe reports as one line (``error: ...``) instead of a traceback.

These are mistakes in the command and failures of the environment (a full or read-only disk, a missing dataset,
offline without cached weights, Ctrl-C): the message says what to do, and a traceback would only hide it.
"""

from __future__ import annotations

import errno

__all__ = ["OutputDirError", "RecipeError", "bad_file_message", "one_line"]

# Writing failed because of the disk or its permissions, not because of a bug.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
# How those failures read when they come through torch's C++ writer or safetensors' Rust one.
_DISK_WORDS = ("No space left", "Read-only file system", "Permission denied", "Disk quota", "StorageFull",
               "ReadOnlyFilesystem", "PermissionDenied", "File too large")
_WRITER_WORDS = ("inline_container.cc", "PytorchStreamWriter", "SafetensorError", "Error while serializing")
RESUME_HINT = "then continue with --resume"


class RecipeError(Exception):
    """A mistake in a recipe's command or its environment; the message says what to do."""


class OutputDirError(RecipeError):
    """The output folder cannot be used: taken by another run, holding an earlier run, or reaching outside itself."""


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def bad_file_message(exc: BaseException) -> str:
    """The ``"<path>: <fault>"`` of a :class:`~augcomp.data.BadFileError`, also when a DataLoader worker raised it
    (the main process then gets the worker's traceback as the message; its last line is the original one)."""
    return _original_message(exc)


def _original_message(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else type(exc).__name__
    head = f"{type(exc).__name__}: "
    return last.split(head, 1)[1] if head in last else last


def one_line(exc: BaseException) -> str | None:
    """The one-line message for an expected failure, or None for anything else (a bug: keep its traceback).

    Args:
        exc: the exception that ended the run.
    """
    from augcomp.data import BadFileError
    from augcomp.data.train_store import MissingVariantError
    from augcomp.experiment.codecs import CodecUnavailableError
    from augcomp.tasks.base import CheckpointError, PretrainedUnavailableError

    if isinstance(exc, (RecipeError, CodecUnavailableError, PretrainedUnavailableError, CheckpointError)):
        return str(exc)
    if isinstance(exc, MissingVariantError):
        # Raised where the sample was loaded, often a DataLoader worker: the original line, not the traceback.
        return _original_message(exc)
    if isinstance(exc, BadFileError):
        # The header scan passed this file; only decoding it showed the fault, so --skip-bad-files cannot help.
        return f"{bad_file_message(exc)}; remove or replace the file and run again"
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        where = f" {exc.filename}" if exc.filename else ""
        return (f"cannot write{where}: {exc.strerror or exc}. Free some space or make the folder writable (or choose "
                f"another --output-dir), {RESUME_HINT}")
    text = f"{type(exc).__name__}: {exc}"
    if any(w in text for w in _WRITER_WORDS) or (isinstance(exc, OSError) and any(w in text for w in _DISK_WORDS)):
        return (f"saving failed ({_first_line(str(exc))[:200]}); the disk is probably full or not writable. Free some "
                f"space or choose another --output-dir, {RESUME_HINT}")
    if isinstance(exc, RuntimeError) and any(w in text for w in _DISK_WORDS):
        return f"saving failed ({_first_line(str(exc))[:200]}). Free some space, {RESUME_HINT}"
    return None
