"""Image classification: timm models, top-1 and top-5 accuracy from torchmetrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from augcomp.tasks.base import IMAGENET_MEAN, IMAGENET_STD, DataBundle, Normalize, Task, synthetic_bundle
from augcomp.tasks.pretrained import create_timm
from augcomp.tasks.settings import Settings

__all__ = ["ClassificationSettings", "ClassificationTask", "Classifier", "create_timm", "model_kwargs"]

# The synthetic default: timm's resnet10t at a quarter of its width, small enough for a laptop CPU.
NARROW_RESNET = {"channels": [32, 64, 128, 256], "stem_width": 16}


@dataclass(frozen=True)
class ClassificationSettings(Settings):
    """Settings of the classification protocol (ImageFolder layout, e.g. ImageNet; or synthetic texture classes).

    The base fields are all there is; the class exists so that each task has its own type of settings.
    """


SYNTHETIC = ClassificationSettings(
    model="resnet10t", model_kwargs=json.dumps(NARROW_RESNET), image_size=64, train_size=3000, val_size=500,
    clean_epochs=6, epochs=8, batch_size=64, eval_batch_size=200, lr=1e-3, clean_lr=3e-3, weight_decay=0.05,
)
IMAGENET = ClassificationSettings(
    model="resnet50", model_kwargs=None, image_size=224, train_size=None, val_size=None, clean_epochs=0, epochs=2,
    batch_size=64, eval_batch_size=128, lr=1e-4, clean_lr=1e-3, weight_decay=0.05,
)


def model_kwargs(text: str | dict | None) -> dict[str, Any]:
    """Parses ``--model-kwargs`` (a JSON object) into keyword arguments for the model builder."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return dict(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--model-kwargs must be a JSON object, e.g. '{{\"drop_rate\": 0.1}}'; got {text!r}") from e
    if not isinstance(value, dict):
        raise ValueError(f"--model-kwargs must be a JSON object, got {text!r}")
    # JSON has no tuples; timm's width arguments are declared as tuples.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}


class Classifier(nn.Module):
    """A timm classifier that takes float images in [0, 1] and normalizes them itself.

    Shape:
        - x: ``(B, 3, H, W)`` float in [0, 1].
        - output: ``(B, num_classes)`` logits.
    """

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))


class ClassificationTask(Task):
    """ImageFolder (ImageNet) or synthetic scenes; a timm classifier; top-1 (headline) and top-5 accuracy."""

    name = "cls"
    title = "classification"
    presets = {"synthetic": SYNTHETIC, "real": IMAGENET}

    def build_data(self, settings: ClassificationSettings, data_root: str | None) -> DataBundle:
        from augcomp.data import ImageFolderClassification, subset

        if data_root is None:
            return synthetic_bundle("cls", settings, "{classes} texture classes")
        train_full = ImageFolderClassification(data_root, settings.train_split, settings.image_size, train=True)
        val_full = ImageFolderClassification(data_root, settings.val_split, settings.image_size, train=False,
                                             classes=train_full.classes)
        train = subset(train_full, settings.train_size, settings.seed)
        val = subset(val_full, settings.val_size, settings.seed)
        return DataBundle(train, val,
                          train_full.num_classes, train_full.classes,
                          description=f"ImageFolder {data_root} ({train_full.num_classes} classes)")

    def has_pretrained(self, settings: ClassificationSettings, data: DataBundle) -> bool:
        import timm

        try:
            cfg = timm.models.get_pretrained_cfg(settings.model)
        except Exception:
            return False
        return cfg is not None and getattr(cfg, "num_classes", None) == data.num_classes

    def build_model(self, settings: ClassificationSettings, data: DataBundle, pretrained: bool) -> nn.Module:
        kwargs = model_kwargs(settings.model_kwargs)
        net = create_timm(settings.model, pretrained, num_classes=data.num_classes, **kwargs)
        cfg = getattr(net, "pretrained_cfg", None) or {}
        return Classifier(net, tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))

    def loss(self, model: nn.Module, images: Tensor, batch: dict) -> Tensor:
        return F.cross_entropy(model(images), batch["label"], label_smoothing=0.1)

    def predict(self, model: nn.Module, images: Tensor, batch: dict) -> dict[str, Tensor]:
        return {"logits": model(images).float(), "target": batch["label"]}

    def metric(self, settings: ClassificationSettings, data: DataBundle) -> MetricCollection:
        k = data.num_classes
        # Inputs are already gathered from every process, so the metric must not sync again.
        opts = {"sync_on_compute": False}
        return MetricCollection({
            "top1": MulticlassAccuracy(k, top_k=1, average="micro", **opts),
            "top5": MulticlassAccuracy(k, top_k=min(5, k), average="micro", **opts),
        })

    def update(self, metric: MetricCollection, gathered: dict[str, Tensor]) -> None:
        metric.update(gathered["logits"].cpu(), gathered["target"].cpu())

    def compute(self, metric: MetricCollection) -> dict[str, float]:
        return {k: 100.0 * float(v) for k, v in metric.compute().items()}

    def headline(self, settings: ClassificationSettings) -> str:
        return "top1"

