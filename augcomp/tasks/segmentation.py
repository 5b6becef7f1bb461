"""Semantic segmentation: a timm backbone (``features_only=True``) with a light FPN head; mIoU from torchmetrics."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from augcomp.data.ade20k import IGNORE_INDEX
from augcomp.tasks.base import IMAGENET_MEAN, IMAGENET_STD, DataBundle, Normalize, Task, synthetic_bundle
from augcomp.tasks.classification import NARROW_RESNET, model_kwargs
from augcomp.tasks.pretrained import create_timm
from augcomp.tasks.settings import Settings, setting

__all__ = ["FPNSegmenter", "SegmentationSettings", "SegmentationTask"]


@dataclass(frozen=True)
class SegmentationSettings(Settings):
    """Settings of the segmentation protocol (ADE20K layout, or synthetic scenes), with the FPN head's width."""

    train_split: str = setting("training", "training split name", "data")
    val_split: str = setting("validation", "validation split name", "data")
    head_channels: int = setting(256, "width of the FPN head", "model")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.head_channels <= 0:
            raise ValueError(f"--head-channels must be positive, got {self.head_channels}")


SYNTHETIC = SegmentationSettings(
    model="resnet10t", model_kwargs=json.dumps(NARROW_RESNET), image_size=64, train_size=2000, val_size=300,
    clean_epochs=8, epochs=8, batch_size=32, eval_batch_size=100, lr=1e-3, clean_lr=3e-3, weight_decay=0.01,
    head_channels=64,
)
ADE20K_SETTINGS = SegmentationSettings(
    model="convnext_tiny.fb_in22k", model_kwargs=None, image_size=512, train_size=None, val_size=None,
    clean_epochs=0, epochs=4, batch_size=16, eval_batch_size=16, lr=6e-5, clean_lr=2e-4, weight_decay=0.01,
    head_channels=256,
)


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class FPNSegmenter(nn.Module):
    """A timm feature backbone with a semantic-FPN head (lateral 1x1, top-down sum, fuse at stride 4).

    Args:
        backbone: a timm model built with ``features_only=True``.
        num_classes: output classes.
        channels: width of the head.
        mean: input normalization of the backbone, the mean subtracted per channel.
        std: input normalization of the backbone, the standard deviation divided by per channel.

    Shape:
        - x: ``(B, 3, H, W)`` float in [0, 1].
        - output: ``(B, num_classes, H, W)`` logits.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, channels: int = 128,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.backbone = backbone
        info = backbone.feature_info
        # Stride-2 stem features are too large to be worth a lateral; the head starts at stride 4.
        self.levels = [i for i, r in enumerate(info.reduction()) if r >= 4]
        in_channels = [info.channels()[i] for i in self.levels]
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(_conv_bn_relu(channels, channels) for _ in in_channels)
        self.fuse = _conv_bn_relu(channels, channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        feats = self.backbone(self.normalize(x))
        feats = [feats[i] for i in self.levels]
        lat = [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[-2:], mode="nearest")
        base = lat[0].shape[-2:]
        out = sum(
            F.interpolate(s(f), size=base, mode="bilinear", align_corners=False) if j else s(f)
            for j, (s, f) in enumerate(zip(self.smooth, lat, strict=True))
        )
        logits = self.classifier(self.fuse(out))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class SegmentationTask(Task):
    """ADE20K or synthetic scenes; timm backbone + FPN head; mIoU (headline) and pixel accuracy, 255 ignored."""

    name = "seg"
    title = "semantic segmentation"
    presets = {"synthetic": SYNTHETIC, "real": ADE20K_SETTINGS}

    def build_data(self, settings: SegmentationSettings, data_root: str | None) -> DataBundle:
        from augcomp.data import ADE20K, subset

        if data_root is None:
            return synthetic_bundle("seg", settings, "{classes} classes (background included)")
        train_full = ADE20K(data_root, settings.train_split, settings.image_size, train=True)
        val_full = ADE20K(data_root, settings.val_split, settings.image_size, train=False)
        train = subset(train_full, settings.train_size, settings.seed)
        val = subset(val_full, settings.val_size, settings.seed)
        return DataBundle(train, val,
                          ADE20K.num_classes, description=f"ADE20K {data_root} (150 classes)")

    def build_model(self, settings: SegmentationSettings, data: DataBundle, pretrained: bool) -> nn.Module:
        backbone = create_timm(settings.model, pretrained, features_only=True, **model_kwargs(settings.model_kwargs))
        cfg = getattr(backbone, "pretrained_cfg", None) or {}
        return FPNSegmenter(backbone, data.num_classes, settings.head_channels,
                            tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))

    def loss(self, model: nn.Module, images: Tensor, batch: dict) -> Tensor:
        return F.cross_entropy(model(images), batch["mask"], ignore_index=IGNORE_INDEX)

    def predict(self, model: nn.Module, images: Tensor, batch: dict) -> dict[str, Tensor]:
        if isinstance(images, list):
            raise ValueError("segmentation evaluation needs equally sized images; use a fixed-size eval transform")
        logits = model(images)
        # Narrow integers keep the gather across processes cheap (NCCL has uint8 and int32, but no int16).
        dtype = torch.uint8 if logits.shape[1] <= IGNORE_INDEX else torch.int32
        return {"pred": logits.argmax(1).to(dtype), "target": batch["mask"].to(dtype)}

    def metric(self, settings: SegmentationSettings, data: DataBundle) -> MetricCollection:
        k = data.num_classes
        opts = {"ignore_index": IGNORE_INDEX, "sync_on_compute": False}
        return MetricCollection({
            "miou": MulticlassJaccardIndex(k, average="macro", **opts),
            "pixel_acc": MulticlassAccuracy(k, average="micro", multidim_average="global", **opts),
        })

    def update(self, metric: MetricCollection, gathered: dict[str, Tensor]) -> None:
        target = gathered["target"].long().cpu()
        metric.update(gathered["pred"].long().cpu(), target)

    def compute(self, metric: MetricCollection) -> dict[str, float]:
        return {k: 100.0 * float(v) for k, v in metric.compute().items()}

    def headline(self, settings: SegmentationSettings) -> str:
        return "miou"
