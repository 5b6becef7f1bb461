"""ADE20K scene parsing (ADEChallengeData2016): ``images/<split>/*.jpg`` and ``annotations/<split>/*.png``.

Annotation value 0 means "other" and is ignored; values 1..150 are the classes, mapped to 0..149.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from augcomp.data._checks import DatasetNotFoundError, load_image, load_mask, pair_fault

__all__ = ["ADE20K", "IGNORE_INDEX", "segmentation_transform"]

IGNORE_INDEX = 255


def segmentation_transform(train: bool, size: int) -> v2.Transform:
    """Random scale (0.5x-2x), crop and flip for training; shorter side to ``size`` and centre crop otherwise.

    Both give ``size x size`` samples; padding is 0 in the image and ``IGNORE_INDEX`` in the mask. Images stay uint8.
    """
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}
    if train:
        return v2.Compose([
            v2.RandomResize(size // 2, size * 2, antialias=True),
            v2.RandomCrop(size, pad_if_needed=True, fill=fill),
            v2.RandomHorizontalFlip(),
        ])
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])


def _root(root: Path) -> Path:
    # Accept both the folder holding ADEChallengeData2016 and that folder itself.
    return root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root


class ADE20K(Dataset):
    """ADE20K SceneParsing (150 classes).

    Samples are ``{"image": (3, S, S) uint8, "mask": (S, S) int64}`` with classes in ``[0, 150)`` and
    ``IGNORE_INDEX`` (255) for unlabelled pixels.

    Args:
        root: ``ADEChallengeData2016`` or the folder holding it.
        split: ``"training"`` or ``"validation"``.
        image_size: side of the square samples.
        train: training geometry; by default, whether ``split == "training"``.
    """

    num_classes = 150

    def __init__(self, root: str | os.PathLike, split: str, image_size: int = 512, train: bool | None = None) -> None:
        base = _root(Path(root))
        self.images_dir = base / "images" / split
        self.masks_dir = base / "annotations" / split
        if not self.images_dir.is_dir() or not self.masks_dir.is_dir():
            raise DatasetNotFoundError(
                f"ADE20K expects {base}/images/{split}/*.jpg and {base}/annotations/{split}/*.png; "
                f"{self.images_dir if not self.images_dir.is_dir() else self.masks_dir} is missing"
            )
        self.items = []
        for img in sorted(self.images_dir.glob("*.jpg")):
            mask = self.masks_dir / (img.stem + ".png")
            if not mask.is_file():
                raise DatasetNotFoundError(f"no annotation {mask} for image {img}")
            self.items.append((img, mask))
        if not self.items:
            raise DatasetNotFoundError(f"no images in {self.images_dir}")
        self.transform = segmentation_transform(split == "training" if train is None else train, image_size)

    def __len__(self) -> int:
        return len(self.items)

    def check_sample(self, index: int) -> tuple[str, str] | None:
        """The header check of sample ``index`` (image and mask readable and whole, sizes equal): ``(path,
        fault)`` or None."""
        return pair_fault(*self.items[index])

    def load(self, index: int) -> dict:
        """Sample ``index`` before its geometry: the decoded image and mask at their own size, the same on every call.

        ``augment(load(i))`` is ``self[i]``; training from a store of coded files codes ``load(i)["image"]`` and
        augments the decoded variant instead (see :mod:`augcomp.data.train_store`).

        Shape:
            - image: ``(3, H, W)`` uint8; mask: ``(H, W)`` uint8 (``IGNORE_INDEX`` where unlabelled).
        """
        img_path, mask_path = self.items[index]
        img = load_image(img_path)
        image = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
        # A mask of another size would be resized and cropped apart from its image: a wrong evaluation, not an error.
        raw = load_mask(mask_path, img.size, img_path)
        # 0 ("other") becomes the ignore index; classes 1..150 become 0..149.
        mask = np.where(raw == 0, IGNORE_INDEX, raw - 1).astype(np.uint8)
        return {"image": image, "mask": torch.from_numpy(mask)}

    def augment(self, sample: dict) -> dict:
        """The split's geometry (random for training, drawn from torch's global generator) on a :meth:`load`-ed
        sample whose image may have been replaced by a decoded variant of the same size."""
        image, mask = self.transform(tv_tensors.Image(sample["image"]), tv_tensors.Mask(sample["mask"]))
        return {"image": image.as_subclass(torch.Tensor), "mask": mask.as_subclass(torch.Tensor).long()}

    def __getitem__(self, index: int) -> dict:
        return self.augment(self.load(index))
