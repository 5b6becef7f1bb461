"""The root of augcomp's own errors.

Every failure that the user can fix (a bad argument, a missing extra or weights file, a codec that is not usable
here, a bad data file, a used output folder) is an :class:`AugcompError`, and its message says what to do. The
``augcomp`` command and the recipes print these as one line and exit non-zero; any other exception is a bug and keeps
its traceback. ``except augcomp.AugcompError`` catches exactly the former.

Each subclass elsewhere in the package also keeps the builtin base its callers already catch
(``MissingExtraError`` is an ``ImportError``, ``BadFileError`` a ``ValueError``, ...).

This module imports nothing from augcomp: every layer may raise these.
"""

from __future__ import annotations

import errno

__all__ = ["AugcompError", "ArgumentError", "ArgumentTypeError", "DISK_ERRNOS"]

# The errnos of an OSError that the disk or its permissions caused, not a bug: the command and the recipes report
# these as one line too.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


class AugcompError(Exception):
    """An error the user can fix; its message says what is wrong and what to do.

    Example:
        >>> import augcomp, torch
        >>> try:
        ...     augcomp.compress(torch.rand(1, 3, 8, 8), quality=500)
        ... except augcomp.AugcompError as err:
        ...     print(type(err).__name__)
        ArgumentError
    """


class ArgumentError(AugcompError, ValueError):
    """An argument has a value outside the accepted ones; the message names the argument and what it accepts.

    A ``ValueError``, so ``except ValueError`` keeps catching it.
    """


class ArgumentTypeError(AugcompError, TypeError):
    """An argument has a type that is not accepted; the message names the argument and the accepted types.

    A ``TypeError``, so ``except TypeError`` keeps catching it.
    """
