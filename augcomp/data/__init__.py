"""Data for the robustness protocol: synthetic scenes and adapters for real dataset layouts.

Every dataset returns dictionaries whose ``"image"`` is a ``(3, H, W)`` uint8 tensor in [0, 255]; compression and
normalization happen later, on the device. The other keys depend on the task:

- classification: ``"label"`` (int);
- detection: ``"boxes"`` ((N, 4) float32 xyxy pixels), ``"labels"`` ((N,) int64), optional ``"iscrowd"``,
  ``"image_id"``;
- segmentation: ``"mask"`` ((H, W) int64; 255 is ignored).

Training samples wrapped in :class:`TrainingSamples` also carry their finetuning draws (``"draw"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from augcomp.data._checks import BadFileError, DatasetNotFoundError, scan
from augcomp.data.ade20k import ADE20K, IGNORE_INDEX
from augcomp.data.coco import CocoDetection
from augcomp.data.imagefolder import ImageFolderClassification
from augcomp.data.synthetic import CATEGORIES, PRESETS, Scene, SceneConfig, SyntheticScenes, make_scene
from augcomp.data.training import CodecMix, Encode, SampleKey, TrainingSamples, VariantSource

__all__ = [
    "ADE20K",
    "BadFileError",
    "CATEGORIES",
    "CocoDetection",
    "CodecMix",
    "DatasetNotFoundError",
    "Encode",
    "IGNORE_INDEX",
    "ImageFolderClassification",
    "PRESETS",
    "Scene",
    "SampleKey",
    "SceneConfig",
    "SyntheticScenes",
    "TrainingSamples",
    "VariantSource",
    "check_files",
    "collate",
    "make_scene",
    "subset",
]


def _stack_or_list(items: Sequence[Tensor]) -> Tensor | list[Tensor]:
    if all(t.shape == items[0].shape for t in items):
        return torch.stack(list(items))
    return list(items)


def collate(samples: Sequence[dict]) -> dict:
    """Batches task samples.

    Images (and masks) of one size are stacked; mixed sizes stay lists, which compression handles by grouping
    equal sizes. Detection targets become a list of ``{"boxes", "labels"[, "iscrowd"]}`` dictionaries.

    Shape:
        - image: ``(B, 3, H, W)`` uint8, or a list of ``(3, H_i, W_i)``.
        - label: ``(B,)`` int64; mask: ``(B, H, W)`` int64 or a list.
        - draw (finetuning samples): ``{"codec": (B,) int64, "target": (B,) float32, "bpp": (B,) float32,
          "coded": (B,) bool, "stored": (B,) bool}``.
    """
    if not samples:
        raise ValueError("cannot collate an empty batch")
    first = samples[0]
    batch: dict = {"image": _stack_or_list([s["image"] for s in samples])}
    if "label" in first:
        batch["label"] = torch.tensor([int(s["label"]) for s in samples], dtype=torch.int64)
    if "mask" in first:
        batch["mask"] = _stack_or_list([s["mask"].long() for s in samples])
    if "boxes" in first:
        keys = [k for k in ("boxes", "labels", "iscrowd") if k in first]
        batch["target"] = [{k: s[k] for k in keys} for s in samples]
        batch["image_id"] = torch.tensor([int(s.get("image_id", -1)) for s in samples], dtype=torch.int64)
    if "draw" in first:
        types = {"codec": torch.int64, "target": torch.float32, "bpp": torch.float32, "coded": torch.bool,
                 "stored": torch.bool}
        batch["draw"] = {k: torch.tensor([s["draw"].get(k, False) for s in samples], dtype=t)
                         for k, t in types.items()}
    return batch


def subset(dataset: Dataset, size: int | None, seed: int = 0) -> Dataset:
    """A fixed random subset of ``size`` samples (all of them if ``size`` is None or not smaller)."""
    n = len(dataset)  # type: ignore[arg-type]
    if size is None or size >= n:
        return dataset
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=g)[:size].sort().values.tolist()
    return Subset(dataset, idx)


def check_files(dataset: Dataset, skip: bool = False) -> tuple[Dataset, list[dict[str, str]]]:
    """The header scan of every file ``dataset`` reads (see :mod:`augcomp.data._checks`), before any is used.

    Datasets without a ``check_sample(index)`` method (the synthetic scenes) pass unchanged. A :class:`Subset` is
    scanned over its own samples only.

    Args:
        dataset: an adapter of :mod:`augcomp.data`, or a ``Subset`` of one.
        skip: leave the samples with a bad file out instead of failing.

    Returns:
        ``(dataset, bad)``: the dataset (without the bad samples when ``skip``) and ``{"path", "fault"}`` of each
        bad file.

    Raises:
        BadFileError: a file is bad and ``skip`` is false (the message names the first one and counts the others),
            or every sample is bad.
    """
    base, indices = dataset, list(range(len(dataset)))  # type: ignore[arg-type]
    if isinstance(dataset, Subset):
        base, indices = dataset.dataset, list(dataset.indices)
    check = getattr(base, "check_sample", None)
    if check is None:
        return dataset, []
    found = scan(check, indices)
    if not found:
        return dataset, []
    bad = [{"path": path, "fault": fault} for _, path, fault in found]
    if not skip or len(found) == len(indices):
        more = f" ({len(found) - 1} more bad file(s) in this split)" if len(found) > 1 else ""
        if skip:
            more = " (every file of this split is bad)"
        raise BadFileError(path=found[0][1], fault=found[0][2] + more)
    dropped = {i for i, _, _ in found}
    return Subset(base, [i for i in indices if i not in dropped]), bad
