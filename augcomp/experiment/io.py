"""Atomic writes and the resume state of a run.

Every file the protocol writes is first written next to its destination and then moved into place with
:func:`os.replace`, so a run killed at any moment leaves either the old file or the new one, never half of one. The
files get the permissions the umask gives (a temporary file starts private). Given ``root``, a write refuses a
destination that a symbolic link would take outside ``root``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from augcomp.experiment.errors import RESUME_HINT, OutputDirError, SaveError
from augcomp.experiment.phases import PHASES

__all__ = [
    "ensure_within",
    "file_mode",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "atomic_savefig",
    "saving",
    "replace_dir",
    "resolve_dir",
    "RunState",
    "PHASES",
]


_UMASK_LOCK = threading.Lock()
# Below this much free space, a failed save is the disk's fault: the writer's own partial file may have taken the rest.
LOW_SPACE_BYTES = 16 * 2**20


def file_mode() -> int:
    """The mode a new file gets from the current umask (``0o644`` under the usual ``022``)."""
    # The umask can only be read by setting it, which races with other threads; Linux also shows it in /proc.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def ensure_within(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path``, after checking that writing it stays inside ``root``.

    ``root`` itself may be a link (the user named it); below it, no existing part of ``path`` may be a symbolic
    link, since writing through one would put files elsewhere (or replace a file the link points to).

    Raises:
        OutputDirError: ``path`` is not below ``root``, or a part of it is a symbolic link.
    """
    root, path = Path(root), Path(path)
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = ("..",)
    if ".." in parts:
        raise OutputDirError(f"{path} is outside the output folder {root}")
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise OutputDirError(
                f"{current} is a symbolic link; a run writes only inside its --output-dir ({root}) and does not "
                "follow links there. Remove the link, or choose another --output-dir"
            )
    return path


def _tmp_path(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); the finished file should have the umask's mode like any other.
        os.fchmod(fd, file_mode())
    finally:
        os.close(fd)
    return Path(name)


def _prepare(path: str | os.PathLike, root: str | os.PathLike | None) -> Path:
    path = Path(path)
    if root is not None:
        ensure_within(root, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, root: str | os.PathLike | None = None) -> None:
    """Writes ``text`` to ``path`` atomically (temporary file in the same folder, then :func:`os.replace`).

    Args:
        path: the destination.
        text: its contents (UTF-8).
        root: when given, the folder that the write must stay inside (see :func:`ensure_within`).
    """
    path = _prepare(path, root)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: str | os.PathLike, obj: Any, root: str | os.PathLike | None = None) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically (``root``: see :func:`atomic_write_text`)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n", root)


def _disk_trouble(path: Path) -> str | None:
    """Why writing under ``path`` fails because of its disk (full, or the folder not writable), or None."""
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    return f"{free / 2**20:.1f} MiB free on its disk" if free < LOW_SPACE_BYTES else None


def _writer_errors() -> tuple[type[BaseException], ...]:
    try:
        from safetensors import SafetensorError
    except ImportError:  # accelerate then saves with torch alone
        return (RuntimeError,)
    return (RuntimeError, SafetensorError)


@contextlib.contextmanager
def saving(path: str | os.PathLike) -> Iterator[None]:
    """Raises :class:`SaveError` for a save under ``path`` that failed because of the disk.

    torch's C++ writer and safetensors' Rust writer report a full or read-only disk as a plain ``RuntimeError`` or
    ``SafetensorError``, without an errno: such a failure becomes a :class:`SaveError` when the folder has (almost)
    no free space or is not writable, and keeps its traceback otherwise, since it is then a bug. Any other exception
    passes through (an ``OSError``'s errno already says what happened).

    Args:
        path: the file or folder being written.
    """
    try:
        yield
    except _writer_errors() as e:
        trouble = _disk_trouble(Path(path))
        if trouble is None:
            raise
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise SaveError(f"saving {path} failed ({first}); {trouble}. Free some space or make the folder writable "
                        f"(or choose another --output-dir), {RESUME_HINT}") from e


def atomic_torch_save(obj: Any, path: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """:func:`torch.save` to ``path`` atomically (``root``: see :func:`atomic_write_text`).

    Raises:
        SaveError: the disk is full or the folder not writable (see :func:`saving`).
    """
    path = _prepare(path, root)
    tmp = _tmp_path(path)
    try:
        with saving(tmp):
            torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_savefig(fig: Any, path: str | os.PathLike, root: str | os.PathLike | None = None, **kwargs: Any) -> None:
    """Saves a matplotlib figure to ``path`` atomically; the format follows the suffix of ``path``."""
    path = _prepare(path, root)
    tmp = _tmp_path(path)
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """Moves the finished folder ``src`` to ``dst``, replacing an older ``dst``.

    A folder cannot be renamed over a non-empty one, so the old one is first moved aside to ``dst + ".old"``;
    :func:`resolve_dir` finds that copy if the process dies between the two renames.

    Args:
        src: the finished folder.
        dst: where it goes.
        root: when given, the folder that ``dst`` and its ``.old`` copy must stay inside (see :func:`ensure_within`).
    """
    src, dst = Path(src), Path(dst)
    old = dst.with_name(dst.name + ".old")
    if root is not None:
        ensure_within(root, dst)
        ensure_within(root, old)
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    if old.exists():
        shutil.rmtree(old)


def resolve_dir(path: str | os.PathLike) -> Path | None:
    """The complete folder saved by :func:`replace_dir` at ``path``, or ``None`` if there is none."""
    path = Path(path)
    if path.is_dir():
        return path
    old = path.with_name(path.name + ".old")
    return old if old.is_dir() else None


class RunState:
    """Progress of a run, kept in ``<output_dir>/state.json`` so that ``--resume`` can skip finished work.

    The file records each phase's status (``"pending"``, ``"running"``, ``"done"``), completed epochs of the training
    phases, every evaluated sweep point, and one entry per invocation listing what that invocation actually ran.
    Only the main process writes it.

    Args:
        path: location of the JSON file.
        data: the loaded contents; use :meth:`load` or :meth:`fresh`.
        write: whether this process writes the file (the main process).
        root: the output folder that writes must stay inside (see :func:`ensure_within`), if any.
    """

    def __init__(self, path: str | os.PathLike, data: dict[str, Any], write: bool = True,
                 root: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.data = data
        self.write = write
        self.root = root

    @classmethod
    def fresh(cls, path: str | os.PathLike, config: dict[str, Any], write: bool = True,
              root: str | os.PathLike | None = None) -> RunState:
        data = {
            "version": 1,
            "config": config,
            "phases": {p: {"status": "pending"} for p in PHASES},
            "invocations": [],
        }
        return cls(path, data, write, root)

    @classmethod
    def load(cls, path: str | os.PathLike, write: bool = True, root: str | os.PathLike | None = None) -> RunState:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("version") != 1 or "phases" not in data:
            raise ValueError(f"{path} is not a state file written by augcomp.experiment")
        return cls(path, data, write, root)

    def begin_invocation(self, resumed: bool) -> None:
        self.data["invocations"].append(
            {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "resumed": resumed, "ran": []}
        )
        self.save()

    def note(self, what: str) -> None:
        """Records that this invocation ran ``what`` (a phase, an epoch or a sweep point)."""
        self.data["invocations"][-1]["ran"].append(what)
        self.save()

    def phase(self, name: str) -> dict[str, Any]:
        return self.data["phases"][name]

    def done(self, name: str) -> bool:
        return self.phase(name).get("status") == "done"

    def set(self, name: str, **values: Any) -> None:
        self.phase(name).update(values)
        self.save()

    def save(self) -> None:
        if self.write:
            atomic_write_json(self.path, self.data, self.root)
