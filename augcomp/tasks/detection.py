"""Object detection: torchvision detectors (FCOS with a timm backbone and FPN by default), COCO mAP from torchmetrics
with the ``faster_coco_eval`` backend."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import FeaturePyramidNetwork

from augcomp.tasks.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataBundle,
    PretrainedUnavailableError,
    Task,
    synthetic_bundle,
)
from augcomp.tasks.classification import NARROW_RESNET, model_kwargs
from augcomp.tasks.pretrained import create_timm, require_torchvision_weights
from augcomp.tasks.settings import Settings, setting

__all__ = ["DetectionSettings", "DetectionTask", "TimmFPNBackbone", "build_fcos", "torchvision_detectors"]


@dataclass(frozen=True)
class DetectionSettings(Settings):
    """Settings of the detection protocol (COCO layout, or synthetic scenes), with the detector's own fields."""

    train_split: str = setting("train2017", "training split name", "data")
    val_split: str = setting("val2017", "validation split name", "data")
    headline: str = setting("map", "metric the sweep reports: mAP@[.5:.95] ('map') or mAP50 ('map_50')", "sweep",
                            choices=("map", "map_50"))
    fpn_channels: int = setting(256, "FPN and head width of the timm-backbone FCOS", "model")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fpn_channels <= 0:
            raise ValueError(f"--fpn-channels must be positive, got {self.fpn_channels}")


SYNTHETIC = DetectionSettings(
    model="resnet10t", model_kwargs=json.dumps(NARROW_RESNET), image_size=64, train_size=2000, val_size=300,
    clean_epochs=8, epochs=7, batch_size=32, eval_batch_size=100, lr=1e-3, clean_lr=3e-3, weight_decay=0.01,
    headline="map_50", fpn_channels=64, clip_grad_norm=5.0,
)
COCO = DetectionSettings(
    model="fasterrcnn_resnet50_fpn_v2", model_kwargs=None, image_size=640, train_size=None, val_size=None,
    clean_epochs=0, epochs=2, batch_size=4, eval_batch_size=8, lr=1e-4, clean_lr=2e-4, weight_decay=1e-4,
    headline="map", fpn_channels=256, clip_grad_norm=10.0,
)


def torchvision_detectors() -> list[str]:
    """Names of torchvision's box detectors (``fasterrcnn_resnet50_fpn_v2``, ``fcos_resnet50_fpn``, ...)."""
    import torchvision
    from torchvision.models import detection

    names = torchvision.models.list_models(module=detection)
    return [n for n in names if n.startswith(("fasterrcnn", "retinanet", "fcos", "ssd"))]


class TimmFPNBackbone(nn.Module):
    """A timm feature extractor followed by torchvision's FPN, in the form torchvision detectors expect.

    Args:
        body: a timm model built with ``features_only=True``.
        out_channels: FPN width.
        reductions: the feature strides fed to the FPN.

    Shape:
        - x: ``(B, 3, H, W)`` normalized images.
        - output: an ordered dict of ``(B, out_channels, H / r, W / r)`` maps, one per reduction ``r``.
    """

    def __init__(self, body: nn.Module, out_channels: int = 64, reductions: tuple[int, ...] = (8, 16, 32)) -> None:
        super().__init__()
        self.body = body
        info = body.feature_info
        self.indices = [info.reduction().index(r) for r in reductions]
        self.fpn = FeaturePyramidNetwork([info.channels()[i] for i in self.indices], out_channels)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.body(x)
        return self.fpn(OrderedDict((str(k), feats[i]) for k, i in enumerate(self.indices)))


def build_fcos(body: nn.Module, num_classes: int, image_size: int, channels: int = 64,
               mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> nn.Module:
    """torchvision's FCOS on a timm backbone, with a light head (2 convs instead of 4) and 3 FPN levels.

    Images are not resized by the model (``min_size = max_size = image_size``): compression and evaluation see the
    pixels the dataset gives.
    """
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead

    backbone = TimmFPNBackbone(body, channels)
    # FCOS assigns objects to levels by size ranges of 4x-8x these sizes: strides 8, 16, 32 get up to 32, 64, inf.
    anchors = AnchorGenerator(sizes=((4,), (8,), (16,)), aspect_ratios=((1.0,),) * 3)
    head = FCOSHead(channels, 1, num_classes, num_convs=2)
    return FCOS(backbone, num_classes, min_size=image_size, max_size=image_size, image_mean=list(mean),
                image_std=list(std), anchor_generator=anchors, head=head, score_thresh=0.05, detections_per_img=100)


class DetectionTask(Task):
    """COCO or synthetic scenes; a torchvision detector; COCO mAP@[.5:.95] and mAP50 (``--headline`` picks one)."""

    name = "det"
    title = "object detection"
    gather_objects = True
    presets = {"synthetic": SYNTHETIC, "real": COCO}

    def build_data(self, settings: DetectionSettings, data_root: str | None) -> DataBundle:
        from augcomp.data import CocoDetection, subset

        if data_root is None:
            return synthetic_bundle("det", settings, "{categories} texture classes")
        train_full = CocoDetection(data_root, settings.train_split, train=True, max_size=settings.image_size)
        val_full = CocoDetection(data_root, settings.val_split, train=False, max_size=settings.image_size)
        names = [train_full.categories.get(i, "") for i in range(train_full.num_classes)]
        train = subset(train_full, settings.train_size, settings.seed)
        val = subset(val_full, settings.val_size, settings.seed)
        return DataBundle(train, val,
                          train_full.num_classes, names,
                          description=f"COCO {data_root} ({len(train_full.categories)} categories)")

    def has_pretrained(self, settings: DetectionSettings, data: DataBundle) -> bool:
        # torchvision's COCO weights predict COCO category ids (91 slots).
        return settings.model in torchvision_detectors() and data.num_classes == 91

    def build_model(self, settings: DetectionSettings, data: DataBundle, pretrained: bool) -> nn.Module:
        if settings.model in torchvision_detectors():
            import torchvision

            kwargs = model_kwargs(settings.model_kwargs)
            if pretrained:
                require_torchvision_weights(settings.model, full=data.num_classes == 91)
            try:
                if pretrained and data.num_classes == 91:
                    return torchvision.models.get_model(settings.model, weights="DEFAULT", **kwargs)
                backbone = "DEFAULT" if pretrained else None
                return torchvision.models.get_model(settings.model, weights=None, weights_backbone=backbone,
                                                    num_classes=data.num_classes, **kwargs)
            except (OSError, RuntimeError, ConnectionError) as e:
                if not pretrained:
                    raise
                raise PretrainedUnavailableError(
                    f"pretrained weights for the torchvision detector {settings.model!r} could not be obtained "
                    f"({type(e).__name__}: {e}). When offline, put them in the torch hub cache "
                    f"({torch.hub.get_dir()}/checkpoints) beforehand, pass --checkpoint PATH (a state dict of this "
                    "model), or train the clean model here with --clean-epochs N."
                ) from e
        body = create_timm(settings.model, pretrained, features_only=True, **model_kwargs(settings.model_kwargs))
        cfg = getattr(body, "pretrained_cfg", None) or {}
        return build_fcos(body, data.num_classes, settings.image_size, settings.fpn_channels,
                          tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))

    @staticmethod
    def _targets(batch: dict, device: torch.device) -> list[dict[str, Tensor]]:
        out = []
        for t in batch["target"]:
            keep = t["iscrowd"] == 0 if "iscrowd" in t else slice(None)
            out.append({"boxes": t["boxes"][keep].float().to(device), "labels": t["labels"][keep].to(device)})
        return out

    def loss(self, model: nn.Module, images: Tensor | list[Tensor], batch: dict) -> Tensor:
        images = list(images)
        losses = model(images, self._targets(batch, images[0].device))
        return sum(losses.values())

    def predict(self, model: nn.Module, images: Tensor | list[Tensor], batch: dict) -> list[dict[str, Any]]:
        outputs = model(list(images))
        samples = []
        for out, t in zip(outputs, batch["target"], strict=True):
            target = {"boxes": t["boxes"].float().cpu(), "labels": t["labels"].cpu()}
            if "iscrowd" in t:
                target["iscrowd"] = t["iscrowd"].cpu()
            pred = {"boxes": out["boxes"].float().cpu(), "scores": out["scores"].float().cpu(),
                    "labels": out["labels"].cpu()}
            samples.append({"pred": pred, "target": target})
        return samples

    def metric(self, settings: DetectionSettings, data: DataBundle) -> MeanAveragePrecision:
        return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval",
                                    sync_on_compute=False)

    def update(self, metric: MeanAveragePrecision, gathered: list[dict[str, Any]]) -> None:
        metric.update([s["pred"] for s in gathered], [s["target"] for s in gathered])

    def compute(self, metric: MeanAveragePrecision) -> dict[str, float]:
        values = metric.compute()
        keys = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")
        # COCO reports -1 where a size range holds no objects; such ranges are left out.
        return {k: 100.0 * float(values[k]) for k in keys
                if k in values and values[k].numel() == 1 and (float(values[k]) >= 0 or k in ("map", "map_50"))}

    def headline(self, settings: DetectionSettings) -> str:
        return settings.headline
