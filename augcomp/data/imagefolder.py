"""ImageFolder classification data (the ImageNet layout): ``root/{train,val}/<class>/<image>``."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.transforms import v2

from augcomp.data._checks import DatasetNotFoundError, header_fault, load_image

__all__ = ["ImageFolderClassification", "classification_transform"]


def classification_transform(train: bool, size: int) -> v2.Transform:
    """The usual ImageNet geometry: random resized crop and flip for training; resize and centre crop otherwise.

    The output stays uint8 in [0, 255]: normalization happens in the model, after compression.
    """
    return v2.Compose([v2.PILToTensor(), _geometry(train, size)])


def _geometry(train: bool, size: int) -> v2.Transform:
    if train:
        return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])
    return v2.Compose([v2.Resize(round(size / 0.875), antialias=True), v2.CenterCrop(size)])


class ImageFolderClassification(Dataset):
    """Images sorted into one folder per class, as ImageNet's ``train`` and ``val`` splits are.

    Samples are ``{"image": (3, H, W) uint8, "label": int}``.

    Args:
        root: the dataset root holding one folder per split.
        split: the split folder name (``"train"`` or ``"val"``).
        image_size: side of the square crop.
        train: training geometry (random crop and flip) instead of evaluation geometry.
        classes: class folder names defining the label order; by default the sorted folders of this split.
    """

    def __init__(self, root: str | os.PathLike, split: str, image_size: int = 224, train: bool | None = None,
                 classes: list[str] | None = None) -> None:
        self.root = Path(root) / split
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"no folder {self.root}: an ImageFolder dataset has {Path(root)}/{split}/<class name>/<image files>"
            )
        if classes is None:
            try:
                classes, class_to_idx = find_classes(str(self.root))
            except FileNotFoundError as e:  # torchvision's: no class folder in the split
                raise DatasetNotFoundError(
                    f"{e}: an ImageFolder dataset has {self.root}/<class name>/<image files>"
                ) from e
        else:
            class_to_idx = {c: i for i, c in enumerate(classes)}
        self.classes = list(classes)
        self.samples = make_dataset(str(self.root), class_to_idx, extensions=IMG_EXTENSIONS)
        if not self.samples:
            raise DatasetNotFoundError(f"no images under {self.root}")
        self.transform = _geometry(split == "train" if train is None else train, image_size)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def check_sample(self, index: int) -> tuple[str, str] | None:
        """The header check of sample ``index`` (readable and whole): ``(path, fault)`` or None."""
        path = self.samples[index][0]
        fault = header_fault(path)[1]
        return None if fault is None else (str(path), fault)

    def load(self, index: int) -> dict:
        """Sample ``index`` before its geometry: the decoded image at its own size, the same on every call.

        ``augment(load(i))`` is ``self[i]`` (see :meth:`augcomp.data.ADE20K.load`).

        Shape:
            - image: ``(3, H, W)`` uint8.
        """
        path, label = self.samples[index]
        return {"image": v2.functional.pil_to_tensor(load_image(path)), "label": int(label)}

    def augment(self, sample: dict) -> dict:
        """The split's geometry (random resized crop and flip for training) on a :meth:`load`-ed sample."""
        out: torch.Tensor = self.transform(sample["image"])
        return {"image": out, "label": sample["label"]}

    def __getitem__(self, index: int) -> dict:
        return self.augment(self.load(index))
