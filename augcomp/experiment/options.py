"""What a recipe's command line says besides the settings: the options that only control a run, and the pair that
parsing gives the rest of the package.

:func:`augcomp.experiment.args.parse_args` turns argv into a :class:`Run` once; below it, nothing reads an
``argparse.Namespace``. The task, the data and the model read the task's frozen
:class:`~augcomp.tasks.settings.Settings`; the runner reads :class:`RunOptions` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from augcomp.tasks.settings import Settings

__all__ = ["Run", "RunOptions", "resume_keys", "resume_values"]

# The metadata of a field that must keep its value across --resume (see Settings and setting(..., resume=True)).
_RESUME = {"resume": True}


@dataclass(frozen=True)
class RunOptions:
    """The options of a run that are not settings: where it reads and writes, how it runs, whether it continues.

    Those marked ``resume`` in their metadata (the task, the data, the clean checkpoint) must keep their value across
    ``--resume``, like the settings marked so (:func:`resume_keys`).

    Attributes:
        task: the task's short name (``"cls"``, ``"det"``, ``"seg"``).
        data_root: the dataset's root, or ``None`` for the synthetic scenes.
        checkpoint: a state dict of the clean model (skips clean training), or ``None``.
        pretrained: start clean training from pretrained backbone weights.
        output_dir: the run's folder.
        store: a store of coded files (folder or fsspec URL) for the sweeps, or ``None``.
        train_store: a store holding K coded variants per training image (``augcomp precompute --variants K``) that
            finetuning decodes instead of coding, or ``None``.
        resume: continue the run in ``output_dir``.
        overwrite: move an earlier run in ``output_dir`` aside.
        skip_bad_files: leave out unusable files instead of stopping.
        stop_after: a phase (``"clean"``) or a phase's epoch (``"finetune:1"``) to stop after, or ``None``.
        mixed_precision: ``"no"``, ``"fp16"``, ``"bf16"``, or ``None`` (accelerate's configuration).
        cpu: run on the CPU even if an accelerator is present.
        log_with: trackers for ``Accelerator(log_with=...)``, comma-separated, or ``None``.
        tiny: the ``--tiny`` preset was asked for.
        dry_run: print the plan and exit.
        extra: the task's own options (:meth:`~augcomp.tasks.base.Task.add_arguments`), by name.
    """

    task: str = field(default="", metadata=_RESUME)
    data_root: str | None = field(default=None, metadata=_RESUME)
    checkpoint: str | None = field(default=None, metadata=_RESUME)
    pretrained: bool = False
    output_dir: str = ""
    store: str | None = None
    train_store: str | None = None
    resume: bool = False
    overwrite: bool = False
    skip_bad_files: bool = False
    stop_after: str | None = None
    mixed_precision: str | None = None
    cpu: bool = False
    log_with: str | None = None
    tiny: bool = False
    dry_run: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


class Run(NamedTuple):
    """A parsed command line: the task's settings and the run's options (``settings, options = run``)."""

    settings: Settings
    options: RunOptions


def _resumed(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("resume", False)]


def resume_keys(settings_type: type[Settings]) -> tuple[str, ...]:
    """The names that must keep their value across ``--resume`` in a run of ``settings_type``: the options, then the
    settings, marked ``resume`` in their fields' metadata (the finetuning mix is compared on its own)."""
    return (*_resumed(RunOptions), *_resumed(settings_type))


def resume_values(run: Run) -> dict[str, Any]:
    """The values of :func:`resume_keys` in ``run``, by name, as ``state.json`` records them."""
    settings, options = run
    return {**{name: getattr(options, name) for name in _resumed(RunOptions)},
            **{name: getattr(settings, name) for name in _resumed(type(settings))}}
