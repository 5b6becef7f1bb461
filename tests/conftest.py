"""Shared fixtures: tiny datasets written in the real layouts (ImageFolder, COCO, ADE20K)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augcomp import codecs


def _image(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


@pytest.fixture
def imagefolder_root(tmp_path: Path) -> Path:
    """``root/{train,val}/{cat,dog}/*.jpg``: 3 training and 2 validation images per class, of mixed sizes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imagenet"
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                _image(rng, 40 + 8 * i, 56).save(d / f"{cls}_{i}.jpg")
    return root


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    """``root/annotations/instances_{train,val}2017.json`` and ``root/{train,val}2017/*.jpg``.

    Category ids are 1 and 3 (not contiguous, as in COCO). Image 2 of each split holds a crowd box; image 3 has no
    annotations; image 1 is grayscale.
    """
    rng = np.random.default_rng(1)
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split in ("train2017", "val2017"):
        (root / split).mkdir()
        images, anns = [], []
        for i, (h, w) in enumerate([(48, 64), (64, 48), (56, 56)], start=1):
            img = _image(rng, h, w)
            if i == 1:
                img = img.convert("L")
            img.save(root / split / f"{i:012d}.jpg")
            images.append({"id": i, "file_name": f"{i:012d}.jpg", "height": h, "width": w})
        anns += [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 6, 20, 18], "area": 360, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [30, 10, 25, 30], "area": 750, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [5, 5, 30, 40], "area": 1200, "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 1},
        ]
        data = {"images": images, "annotations": anns,
                "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def ade20k_root(tmp_path: Path) -> Path:
    """``root/ADEChallengeData2016/{images,annotations}/{training,validation}``: 3 and 2 images of 48x64.

    Masks hold 0 (unlabelled) in the top rows, class 1 on the left, class 150 on the right.
    """
    rng = np.random.default_rng(2)
    base = tmp_path / "ade" / "ADEChallengeData2016"
    for split, n in (("training", 3), ("validation", 2)):
        (base / "images" / split).mkdir(parents=True)
        (base / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            name = f"ADE_{split[:5]}_{i:08d}"
            _image(rng, 48, 64).save(base / "images" / split / f"{name}.jpg")
            mask = np.zeros((48, 64), dtype=np.uint8)
            mask[8:, :32] = 1
            mask[8:, 32:] = 150
            Image.fromarray(mask).save(base / "annotations" / split / f"{name}.png")
    return base.parent


@pytest.fixture
def registered():
    """Registers entries for one test and removes them after it."""
    names = []

    def add(entry: codecs.CodecEntry) -> codecs.CodecEntry:
        codecs.register(entry)
        names.append(entry.name)
        return entry

    yield add
    for name in names:
        codecs.unregister(name)
