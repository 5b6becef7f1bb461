"""COCO detection data: ``root/annotations/instances_<split>.json`` and ``root/<split>/<file_name>``.

The instances JSON is parsed directly (no pycocotools). Labels are COCO category ids, as torchvision's COCO
detectors use them, so ``num_classes`` is the largest id plus one.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from augcomp.data._checks import BadFileError, DatasetNotFoundError, header_fault, load_image

__all__ = ["CocoDetection", "detection_transform"]


def detection_transform(train: bool, max_size: int | None) -> v2.Transform:
    """Flip for training; images larger than ``max_size`` on their longer side are scaled down.

    The output image stays uint8 in [0, 255].
    """
    return v2.Compose([_sizing(max_size), _geometry(train)])


def _sizing(max_size: int | None) -> v2.Transform:
    # The deterministic part, done when a sample is loaded.
    return v2.Compose([v2.ToImage(), *([_ShrinkTo(max_size)] if max_size else [])])


def _geometry(train: bool) -> v2.Transform:
    # The random part, drawn each time a sample is augmented.
    if train:
        return v2.Compose([v2.RandomHorizontalFlip(), v2.SanitizeBoundingBoxes(labels_getter=_labels_getter)])
    return v2.Identity()


def _labels_getter(inputs: tuple) -> tuple:
    target = inputs[1]
    return tuple(target[k] for k in ("labels", "iscrowd") if k in target)


class _ShrinkTo(v2.Transform):
    """Scales an image down (never up) so that its longer side is at most ``max_size``."""

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size

    def forward(self, *inputs):
        flat = inputs if len(inputs) > 1 else inputs[0]
        image = flat[0] if isinstance(flat, (tuple, list)) else flat
        h, w = image.shape[-2:]
        if max(h, w) <= self.max_size:
            return flat
        scale = self.max_size / max(h, w)
        size = [max(1, round(h * scale)), max(1, round(w * scale))]
        return v2.Resize(size, antialias=True)(flat)


def _size_fault(info: dict, size: tuple[int, int] | None) -> str | None:
    # Boxes are in the pixels of the size the annotations give; an image of another size would misplace them.
    given = (info.get("width"), info.get("height"))
    if size is None or None in given or tuple(int(v) for v in given) == tuple(size):
        return None
    return f"image is {size[0]}x{size[1]} but its annotations give {given[0]}x{given[1]} (width x height)"


class CocoDetection(Dataset):
    """COCO-format instances for detection.

    Samples are ``{"image": (3, H, W) uint8, "boxes": (N, 4) float32 xyxy, "labels": (N,) int64,
    "iscrowd": (N,) int64, "image_id": int}``. Crowd regions are kept so that evaluation can ignore them as COCO
    does; training drops them. Images without annotations are kept for evaluation and skipped for training.

    Args:
        root: the dataset root.
        split: the split name, e.g. ``"train2017"`` or ``"val2017"``; the annotations are
            ``root/annotations/instances_<split>.json`` and the images ``root/<split>/``.
        train: training mode (flip; crowd and empty images dropped); by default, whether ``split`` starts with
            ``"train"``.
        max_size: longer image side after loading; larger images are scaled down (``None`` keeps sizes).
        annotation_file: an explicit instances JSON instead of the standard location.
    """

    def __init__(self, root: str | os.PathLike, split: str, train: bool | None = None, max_size: int | None = 800,
                 annotation_file: str | os.PathLike | None = None) -> None:
        self.root = Path(root)
        self.images_dir = self.root / split
        ann = Path(annotation_file) if annotation_file else self.root / "annotations" / f"instances_{split}.json"
        if not ann.is_file():
            raise DatasetNotFoundError(
                f"no annotation file {ann}: a COCO dataset has {self.root}/annotations/instances_{split}.json and the "
                f"images in {self.images_dir}/"
            )
        with open(ann, encoding="utf-8") as f:
            data = json.load(f)
        self.train = split.startswith("train") if train is None else train
        self.categories = {int(c["id"]): c["name"] for c in data.get("categories", [])}
        if not self.categories:
            raise BadFileError(path=ann, fault="lists no categories")
        per_image: dict[int, list[dict]] = defaultdict(list)
        for a in data.get("annotations", []):
            per_image[int(a["image_id"])].append(a)
        self.images = []
        for img in sorted(data["images"], key=lambda i: int(i["id"])):
            anns = per_image.get(int(img["id"]), [])
            if self.train and not any(not a.get("iscrowd", 0) for a in anns):
                continue
            self.images.append((img, anns))
        if not self.images:
            raise BadFileError(path=ann, fault="holds no usable images")
        self.sizing, self.transform = _sizing(max_size), _geometry(self.train)

    @property
    def num_classes(self) -> int:
        return max(self.categories) + 1

    def __len__(self) -> int:
        return len(self.images)

    def check_sample(self, index: int) -> tuple[str, str] | None:
        """The header check of sample ``index`` (readable, whole, and of the size its annotations give):
        ``(path, fault)`` or None."""
        info = self.images[index][0]
        path = self.images_dir / info["file_name"]
        size, fault = header_fault(path)
        fault = fault or _size_fault(info, size)
        return None if fault is None else (str(path), fault)

    def load(self, index: int) -> dict:
        """Sample ``index`` before its geometry: decoded, scaled down to ``max_size`` with its boxes, the same on every
        call. ``augment(load(i))`` is ``self[i]`` (see :meth:`augcomp.data.ADE20K.load`).

        Shape:
            - image: ``(3, H, W)`` uint8; boxes: ``(N, 4)`` float32 xyxy in its pixels.
        """
        info, anns = self.images[index]
        path = self.images_dir / info["file_name"]
        image = load_image(path)
        fault = _size_fault(info, image.size)
        if fault is not None:
            raise BadFileError(path=path, fault=fault)
        w, h = image.size
        boxes, labels, crowd = [], [], []
        for a in anns:
            if self.train and a.get("iscrowd", 0):
                continue
            x, y, bw, bh = (float(v) for v in a["bbox"])
            x1, y1, x2, y2 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
            if x2 <= x1 or y2 <= y1:
                continue
            boxes.append([x1, y1, x2, y2])
            labels.append(int(a["category_id"]))
            crowd.append(int(a.get("iscrowd", 0)))
        target = {
            "boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                              format="XYXY", canvas_size=(h, w)),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "iscrowd": torch.tensor(crowd, dtype=torch.int64),
        }
        image_t, target = self.sizing(image, target)
        return {
            "image": image_t.as_subclass(torch.Tensor),
            "boxes": target["boxes"].as_subclass(torch.Tensor),
            "labels": target["labels"],
            "iscrowd": target["iscrowd"],
            "image_id": int(info["id"]),
        }

    def augment(self, sample: dict) -> dict:
        """The split's geometry (a random flip for training) on a :meth:`load`-ed sample."""
        h, w = sample["image"].shape[-2:]
        target = {"boxes": tv_tensors.BoundingBoxes(sample["boxes"], format="XYXY", canvas_size=(h, w)),
                  "labels": sample["labels"], "iscrowd": sample["iscrowd"]}
        image_t, target = self.transform(tv_tensors.Image(sample["image"]), target)
        return {
            "image": image_t.as_subclass(torch.Tensor),
            "boxes": target["boxes"].as_subclass(torch.Tensor),
            "labels": target["labels"],
            "iscrowd": target["iscrowd"],
            "image_id": sample["image_id"],
        }

    def __getitem__(self, index: int) -> dict:
        return self.augment(self.load(index))
