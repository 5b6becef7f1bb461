"""The one table of a run's phases, in the order they run.

The run's state (:class:`~augcomp.experiment.io.RunState`: one entry per phase), ``--stop-after`` (which phases and
epochs it may name, and its help), the line announcing each phase, the training checkpoints' folders (and so the
output folder's guard) and the report's timings all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from augcomp.experiment.runfiles import CLEAN_MODEL, FINETUNED_MODEL

__all__ = ["PHASES", "PHASE_TABLE", "Phase", "get_phase", "stop_after_help", "stop_points"]


@dataclass(frozen=True)
class Phase:
    """One phase of a run.

    Attributes:
        name: its name in ``state.json``, ``--stop-after`` and the checkpoint folder ``ckpt/<name>``.
        kind: ``"train"`` (trains a model, saves a checkpoint after every epoch, so ``--stop-after <name>:N`` can
            stop after epoch N), ``"sweep"`` (evaluates every sweep point) or ``"report"``.
        announce: the line printed as the phase starts, formatted with ``epochs`` (finetuning epochs),
            ``train_images``, ``val_images`` and ``points`` (sweep points); empty for a phase not announced.
        model_file: the run file holding the weights a training phase leaves, else ``None``.
    """

    name: str
    kind: Literal["train", "sweep", "report"]
    announce: str = ""
    model_file: str | None = None

    @property
    def trains(self) -> bool:
        """Whether the phase trains, and so checkpoints every epoch and may be stopped after one."""
        return self.kind == "train"


PHASE_TABLE: tuple[Phase, ...] = (
    Phase("clean", "train", "clean model", model_file=CLEAN_MODEL),
    Phase("sweep_before", "sweep", "sweep before finetuning: {points} points x {val_images} images"),
    Phase("finetune", "train", "finetuning: {epochs} epochs x {train_images} images", model_file=FINETUNED_MODEL),
    Phase("sweep_after", "sweep", "sweep after finetuning: {points} points x {val_images} images"),
    Phase("report", "report"),
)

PHASES: tuple[str, ...] = tuple(p.name for p in PHASE_TABLE)


def get_phase(name: str) -> Phase:
    """The phase called ``name``."""
    for phase in PHASE_TABLE:
        if phase.name == name:
            return phase
    raise KeyError(f"no phase {name!r}; the phases are {', '.join(PHASES)}")


def stop_points() -> str:
    """What ``--stop-after`` takes, for its help and its error: every phase, and ``<phase>:N`` for training ones."""
    epochs = " / ".join(f"'{p.name}:N'" for p in PHASE_TABLE if p.trains)
    return f"a phase ({', '.join(PHASES)}) or {epochs} (after epoch N)"


def stop_after_help() -> str:
    """The help of ``--stop-after``."""
    return f"stop after {stop_points()}; continue later with --resume"
