"""Failures a recipe reports as one line (``error: ...``) instead of a traceback.

These are mistakes in the command and failures of the environment (a full or read-only disk, a missing dataset,
offline without cached weights, Ctrl-C): the message says what to do, and a traceback would only hide it.
"""

from __future__ import annotations

from augcomp._errors import DISK_ERRNOS, AugcompError

__all__ = ["DISK_ERRNOS", "OutputDirError", "RecipeError", "SaveError", "bad_file_message", "one_line"]

RESUME_HINT = "then continue with --resume"


class RecipeError(AugcompError):
    """A mistake in a recipe's command or its environment; the message says what to do."""


class OutputDirError(RecipeError):
    """The output folder cannot be used: taken by another run, holding an earlier run, or reaching outside itself."""


class SaveError(RecipeError):
    """Saving a checkpoint failed on a full or unwritable disk.

    torch's C++ writer and safetensors' Rust writer report such a failure without an errno (a ``RuntimeError``, a
    ``SafetensorError``); :func:`augcomp.experiment.io.saving` tells it from a bug by the folder's free space and
    permissions and raises this instead.
    """


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

    Expected failures are chosen by type: an :class:`~augcomp.AugcompError`, or an ``OSError`` whose errno says the
    disk is full or not writable.

    Args:
        exc: the exception that ended the run.
    """
    from augcomp.data import BadFileError
    from augcomp.data.train_store import MissingVariantError

    if isinstance(exc, MissingVariantError):
        # Raised where the sample was loaded, often a DataLoader worker: the original line, not the traceback.
        return _original_message(exc)
    if isinstance(exc, BadFileError):
        # The header scan passed this file; only decoding it showed the fault, so --skip-bad-files cannot help.
        return f"{bad_file_message(exc)}; remove or replace the file and run again"
    if isinstance(exc, AugcompError):
        return " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        where = f" {exc.filename}" if exc.filename else ""
        return (f"cannot write{where}: {exc.strerror or exc}. Free some space or make the folder writable (or choose "
                f"another --output-dir), {RESUME_HINT}")
    return None
