"""The output folder of a run: one run at a time, nothing written outside it, and no earlier run silently lost.

Before a run writes anything, the main process takes an exclusive lock on ``<output_dir>/.augcomp.lock``
(``fcntl.flock``, released by the kernel when the process ends, however it ends). A new run (no ``--resume``) into a
folder that holds an earlier run's files is refused; ``--overwrite`` first moves those files into
``previous-<time>/`` inside the folder, so nothing is deleted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from augcomp.experiment.errors import OutputDirError
from augcomp.experiment.io import ensure_within
from augcomp.experiment.phases import PHASE_TABLE
from augcomp.experiment.runfiles import CKPT_DIR, STATE_FILE, run_file_names

__all__ = ["LOCK_NAME", "RUN_FILES", "RunLock", "claim_output_dir", "earlier_run", "run_paths"]

LOCK_NAME = ".augcomp.lock"
# Everything a run writes into its folder (checkpoints of the training phases live under ckpt/), from the one table
# in augcomp.experiment.runfiles.
RUN_FILES = run_file_names()


def run_paths(out: Path) -> list[Path]:
    """The paths a run writes, down to the training checkpoints' folders (checked for symbolic links)."""
    paths = [out / name for name in (*RUN_FILES, LOCK_NAME)]
    for phase in PHASE_TABLE:
        if phase.trains:
            for suffix in ("", ".tmp", ".old"):
                paths.append(out / CKPT_DIR / f"{phase.name}{suffix}")
    return paths


def earlier_run(out: Path) -> list[str]:
    """Names of an earlier run's files in ``out`` (links included, even dangling ones)."""
    return [name for name in RUN_FILES if os.path.lexists(out / name)]


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<out>/.augcomp.lock``, holding the pid of its owner.

    Args:
        out: the output folder (created if needed).
    """

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        """Takes the lock.

        Raises:
            OutputDirError: another process holds it.
        """
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: the lock file is written too, so a link there must not lead elsewhere.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise OutputDirError(
                f"another run is using {self.path.parent} (lock {self.path} held by pid {owner or 'unknown'}); wait "
                "for it to finish, or choose another --output-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        """Lets the lock go (the file stays: removing it would race with a run taking it)."""
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _move_aside(out: Path, names: list[str]) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = out / f"previous-{stamp}"
    n = 1
    while os.path.lexists(dest):
        n += 1
        dest = out / f"previous-{stamp}-{n}"
    dest.mkdir()
    for name in names:
        # A rename moves links themselves, never what they point to.
        os.rename(out / name, dest / name)
    return dest


def claim_output_dir(output_dir: str | os.PathLike, resume: bool, overwrite: bool) -> tuple[RunLock, str | None]:
    """Makes ``output_dir`` this run's: checks it, locks it, and deals with an earlier run in it.

    Run on the main process before anything is written.

    Args:
        output_dir: the run's folder.
        resume: whether the run continues one in the folder (``--resume``).
        overwrite: whether an earlier run's files may be moved aside (``--overwrite``).

    Returns:
        ``(lock, note)``: the held lock (release it when the run ends) and a line to print, or None.

    Raises:
        OutputDirError: the folder is not a folder, reaches outside itself through a link, is locked by another run,
            or (without ``resume`` or ``overwrite``) holds an earlier run.
    """
    out = Path(output_dir)
    if os.path.lexists(out) and not out.is_dir():
        raise OutputDirError(f"--output-dir {out} exists and is not a folder")
    for path in run_paths(out):
        ensure_within(out, path)
    lock = RunLock(out).acquire()
    try:
        note = None
        names = earlier_run(out)
        fresh = not resume or not (out / STATE_FILE).is_file()
        if fresh and names:
            if not overwrite:
                how = "continue it with --resume, or " if (out / STATE_FILE).is_file() else ""
                raise OutputDirError(
                    f"--output-dir {out} holds an earlier run ({', '.join(names)}); {how}start over with --overwrite "
                    "(which moves it into a previous-<time> folder there), or choose another --output-dir"
                )
            note = f"moved the earlier run in {out} to {_move_aside(out, names)}"
    except BaseException:
        lock.release()
        raise
    return lock, note
