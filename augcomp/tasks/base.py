"""What the protocol needs from a task: data, a model, a loss, predictions and a metric.

Models built here take float images in [0, 1] (normalization lives inside the model, so that compression, which
works on pixel values, runs before it).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from augcomp._errors import AugcompError
from augcomp.tasks.settings import Settings

__all__ = [
    "CheckpointError",
    "DataBundle",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalize",
    "PretrainedUnavailableError",
    "Task",
    "load_checkpoint",
    "to_float",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PretrainedUnavailableError(AugcompError, RuntimeError):
    """Pretrained weights were asked for but cannot be obtained (typically: offline and not cached)."""


class CheckpointError(AugcompError, RuntimeError):
    """A checkpoint file holds no state dict, or one that does not fit the model."""


@dataclass
class DataBundle:
    """The datasets of a run and what the model needs to know about them.

    Attributes:
        train: training set (samples as described in :mod:`augcomp.data`).
        val: validation set.
        num_classes: classes the model predicts (for detection and synthetic segmentation, background included).
        class_names: optional names, for reports.
        synthetic: whether the data is the built-in synthetic scenes.
        description: one line for the plan and the report.
        bad_files: files left out by ``--skip-bad-files``: ``{"split", "path", "fault"}`` each.
    """

    train: Dataset
    val: Dataset
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    synthetic: bool = False
    description: str = ""
    bad_files: list[dict[str, str]] = field(default_factory=list)


def synthetic_bundle(kind: str, settings: Settings, classes_text: str) -> DataBundle:
    """The embedded default: synthetic scenes for ``kind`` ("cls", "det" or "seg"), train and val from the seed.

    ``classes_text`` describes the classes; ``{classes}`` (dataset classes) and ``{categories}`` (object categories)
    are filled in, e.g. ``"{classes} texture classes"``.
    """
    from augcomp.data import SceneConfig, SyntheticScenes
    from augcomp.data.synthetic import PRESETS

    cfg = PRESETS[kind]
    if settings.image_size != cfg.size:
        cfg = SceneConfig(**{**cfg.__dict__, "size": settings.image_size})
    train = SyntheticScenes(kind, settings.train_size, seed=2 * settings.seed + 1, config=cfg)
    val = SyntheticScenes(kind, settings.val_size, seed=2 * settings.seed + 2, config=cfg)
    classes = classes_text.format(classes=train.num_classes, categories=cfg.num_categories)
    desc = f"synthetic scenes {cfg.size}x{cfg.size}, {classes}"
    return DataBundle(train, val, train.num_classes, train.class_names, synthetic=True, description=desc)


def to_float(images: Tensor | list[Tensor]) -> Tensor | list[Tensor]:
    """uint8 [0, 255] (or float [0, 1]) images to float32 [0, 1]; lists are converted element-wise.

    Shape:
        - images: ``(B, C, H, W)`` or a list of ``(C, H, W)``; output alike.
    """
    if isinstance(images, (list, tuple)):
        return [to_float(im) for im in images]  # type: ignore[misc]
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, for float images in [0, 1].

    Shape:
        - x: ``(B, 3, H, W)``; output alike.
    """

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> None:
    """Loads a state dict into ``model``.

    Accepts what this package saves (``clean_model.pt``, ``finetuned_model.pt``), a bare state dict of the
    model, a dictionary holding one under ``"model"`` or ``"state_dict"``, a safetensors file (all read by
    :func:`augcomp.codecs.weights.read_state_dict`), and state dicts of the inner network of a wrapper (keys without
    the wrapper's ``net.`` prefix) or with DDP's ``module.`` prefix.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file holds no state dict, or its keys or shapes do not fit the model.
    """
    from augcomp.codecs.weights import read_state_dict

    try:
        state = read_state_dict(path)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    own = model.state_dict()
    if not set(state) & set(own) and hasattr(model, "net"):
        state = {f"net.{k}": v for k, v in state.items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = str(e).split("\n\t")[1:3]
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__}: {'; '.join(first)}. "
            "Check --model (and --model-kwargs) match the checkpoint."
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__}: missing keys {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}. Check --model (and --model-kwargs) match the checkpoint."
        )


class Task:
    """Base of the three tasks. Subclasses fill in the class attributes and the methods that raise here.

    Attributes:
        name: ``"cls"``, ``"det"`` or ``"seg"``.
        title: a human name for reports.
        gather_objects: whether predictions are per-sample Python objects (gathered with ``gather_object``)
            instead of batch tensors.
    """

    name: str = ""
    title: str = ""
    gather_objects: bool = False
    # The task's settings: a preset for the synthetic scenes and one for its real dataset, of one Settings subclass.
    presets: ClassVar[dict[str, Settings]] = {"synthetic": Settings(), "real": Settings()}

    # ------------------------------------------------------------------ settings and command line

    def settings(self, synthetic: bool, tiny: bool = False) -> Settings:
        """The preset for the synthetic scenes or the real dataset; with ``tiny``, its ``--tiny`` variant."""
        preset = self.presets["synthetic" if synthetic else "real"]
        return preset.tiny() if tiny else preset

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Adds options that are not settings (the settings' own options come from :attr:`presets`); parsing puts
        their values in the run options' ``extra``, by name."""

    # ------------------------------------------------------------------ data and model

    def build_data(self, settings: Settings, data_root: str | None) -> DataBundle:
        """The datasets: the task's dataset under ``data_root`` in its standard layout, or the synthetic scenes
        (``data_root`` None)."""
        raise NotImplementedError

    def build_model(self, settings: Settings, data: DataBundle, pretrained: bool) -> nn.Module:
        """The model, taking float images in [0, 1]; with ``pretrained``, weights fetched by model name.

        Raises:
            PretrainedUnavailableError: ``pretrained`` and the weights cannot be obtained.
        """
        raise NotImplementedError

    def has_pretrained(self, settings: Settings, data: DataBundle) -> bool:
        """Whether ``--model`` names weights that give a complete clean model for this data without training."""
        return False

    # ------------------------------------------------------------------ training and evaluation

    def loss(self, model: nn.Module, images: Tensor | list[Tensor], batch: dict) -> Tensor:
        """Training loss of a batch. ``images`` are float in [0, 1], already compressed when finetuning."""
        raise NotImplementedError

    def predict(self, model: nn.Module, images: Tensor | list[Tensor], batch: dict) -> Any:
        """Predictions and targets of a batch, ready for ``gather_for_metrics``.

        Batch tensors with the batch first (``gather_objects = False``) or a list with one object per sample.
        """
        raise NotImplementedError

    def metric(self, settings: Settings, data: DataBundle) -> Any:
        """A fresh metric accumulator (a torchmetrics ``Metric`` or collection), kept on the CPU."""
        raise NotImplementedError

    def update(self, metric: Any, gathered: Any) -> None:
        """Adds gathered predictions (of all processes, duplicates removed) to ``metric``."""
        raise NotImplementedError

    def compute(self, metric: Any) -> dict[str, float]:
        """Every metric value as a plain float (percentages for accuracies, IoU and AP)."""
        raise NotImplementedError

    def headline(self, settings: Settings) -> str:
        """The key of :meth:`compute`'s result that the sweep reports and recovery is computed from."""
        raise NotImplementedError
