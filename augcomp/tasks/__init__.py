"""The three recognition tasks of the robustness protocol, built on timm, torchvision and torchmetrics."""

from __future__ import annotations

from augcomp.tasks.base import DataBundle, Normalize, PretrainedUnavailableError, Task, load_checkpoint, to_float
from augcomp.tasks.classification import ClassificationTask, Classifier
from augcomp.tasks.detection import DetectionTask, TimmFPNBackbone, build_fcos
from augcomp.tasks.segmentation import FPNSegmenter, SegmentationTask

__all__ = [
    "Classifier",
    "ClassificationTask",
    "DataBundle",
    "DetectionTask",
    "FPNSegmenter",
    "Normalize",
    "PretrainedUnavailableError",
    "SegmentationTask",
    "TASKS",
    "Task",
    "TimmFPNBackbone",
    "build_fcos",
    "get_task",
    "load_checkpoint",
    "to_float",
]

TASKS: dict[str, type[Task]] = {"cls": ClassificationTask, "det": DetectionTask, "seg": SegmentationTask}


def get_task(name: str) -> Task:
    """A task by its short name: ``"cls"``, ``"det"`` or ``"seg"``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]()
