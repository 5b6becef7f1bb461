"""The three recognition tasks of the robustness protocol, built on timm, torchvision and torchmetrics."""

from __future__ import annotations

from augcomp.tasks.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointError,
    DataBundle,
    Normalize,
    PretrainedUnavailableError,
    Task,
    load_checkpoint,
    to_float,
)
from augcomp.tasks.classification import ClassificationSettings, ClassificationTask, Classifier
from augcomp.tasks.detection import DetectionSettings, DetectionTask, TimmFPNBackbone, build_fcos
from augcomp.tasks.segmentation import FPNSegmenter, SegmentationSettings, SegmentationTask
from augcomp.tasks.settings import TINY, Settings

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CheckpointError",
    "Classifier",
    "ClassificationSettings",
    "ClassificationTask",
    "DataBundle",
    "DetectionSettings",
    "DetectionTask",
    "FPNSegmenter",
    "Normalize",
    "PretrainedUnavailableError",
    "SegmentationSettings",
    "SegmentationTask",
    "Settings",
    "TASKS",
    "TINY",
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
