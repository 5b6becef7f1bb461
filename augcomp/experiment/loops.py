"""The training and evaluation loops, with compression applied on the device after the batch arrives there."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from augcomp.tasks.base import DataBundle, Task, to_float

__all__ = ["compress_images", "apply_compress", "train_epoch", "evaluate", "warmup_cosine"]

Images = Tensor | list[Tensor]


def _groups(images: list[Tensor]) -> dict[tuple[int, ...], list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    return groups


def _per_group(images: Images, fn: Callable[[Tensor], tuple[Tensor, Tensor]]) -> tuple[Images, Tensor]:
    # Compression is batched over equally sized images; a list of mixed sizes is compressed one size at a time.
    if isinstance(images, Tensor):
        return fn(images)
    out: list[Tensor] = [images[0]] * len(images)
    bpp = torch.zeros(len(images), device=images[0].device)
    for shape, idx in _groups(images).items():
        del shape
        coded, b = fn(torch.stack([images[i] for i in idx]))
        for j, i in enumerate(idx):
            out[i] = coded[j]
        bpp[idx] = b.to(bpp.device, torch.float32)
    return out, bpp


def compress_images(images: Images, codec: str, bpp: float) -> tuple[Images, Tensor]:
    """Compresses evaluation images at a fixed target bitrate (deterministic per image).

    Args:
        images: uint8 in [0, 255] (or float in [0, 1]) on the device.
        codec: registered codec name.
        bpp: target bits per pixel, the same for every image.

    Returns:
        ``(images, achieved_bpp)``: decoded images like the input, and the ``(B,)`` achieved bitrates.

    Shape:
        - images: ``(B, 3, H, W)`` or a list of ``(3, H_i, W_i)``; output alike.
    """
    from augcomp.functional import compress

    def fn(x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            out = compress(x, codec=codec, bpp=float(bpp), grad="none")
        return out.image, out.bpp

    return _per_group(images, fn)


def apply_compress(aug: Callable[[Tensor], Tensor], images: Images) -> tuple[Images, Tensor | None]:
    """Applies a :class:`augcomp.transforms.Compress` to a training batch on the device.

    Returns the compressed images and the per-sample achieved bpp taken from ``aug.last_params`` (``None`` when
    the transform does not report it).
    """

    def fn(x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            y = aug(x)
        params = getattr(aug, "last_params", None) or {}
        bpp = params.get("bpp")
        if not isinstance(bpp, Tensor) or bpp.shape != (x.shape[0],):
            bpp = torch.full((x.shape[0],), float("nan"), device=x.device)
        return y, bpp

    images, bpp = _per_group(images, fn)
    return images, bpp


def _no_bar(accelerator: Any) -> bool | None:
    # Bars on the local main process only; None lets tqdm drop them when output is not a terminal (log files).
    return True if not accelerator.is_local_main_process else None


def warmup_cosine(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup`` of the steps, then cosine decay to zero."""
    total = max(1, int(total_steps))
    warm = max(1, int(round(warmup * total))) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def train_epoch(
    accelerator: Any,
    task: Task,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loader: Any,
    *,
    aug: Callable[[Tensor], Tensor] | None = None,
    clip_grad_norm: float | None = None,
    desc: str = "train",
) -> dict[str, float]:
    """One epoch over ``loader``: compress on the device (if ``aug``), forward, backward, step.

    Gradient accumulation follows the accelerator's ``gradient_accumulation_steps``.

    Returns:
        ``{"loss": mean loss, "bpp": mean achieved training bpp (NaN without compression)}`` over all processes.
    """
    model.train()
    loss_sum = torch.zeros((), device=accelerator.device)
    bpp_sum = torch.zeros((), device=accelerator.device)
    count = torch.zeros((), device=accelerator.device)
    bpp_count = torch.zeros((), device=accelerator.device)
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=_no_bar(accelerator))
    for batch in bar:
        images = batch["image"]
        if aug is not None:
            images, bpp = apply_compress(aug, images)
            if bpp is not None:
                finite = torch.isfinite(bpp)
                bpp_sum += bpp[finite].sum()
                bpp_count += finite.sum()
        with accelerator.accumulate(model):
            loss = task.loss(model, to_float(images), batch)
            accelerator.backward(loss)
            if clip_grad_norm and accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach().float()
        count += 1
    totals = accelerator.reduce(torch.stack([loss_sum, count, bpp_sum, bpp_count]), reduction="sum")
    loss_mean = float(totals[0] / totals[1].clamp_min(1))
    bpp_mean = float(totals[2] / totals[3]) if totals[3] > 0 else float("nan")
    return {"loss": loss_mean, "bpp": bpp_mean}


def evaluate(
    accelerator: Any,
    task: Task,
    model: nn.Module,
    loader: Any,
    args: Any,
    data: DataBundle,
    *,
    codec: str | None = None,
    bpp: float | None = None,
    cache: dict | None = None,
    desc: str = "eval",
) -> tuple[dict[str, float], float | None]:
    """Evaluates ``model`` on ``loader``, compressed at ``bpp`` with ``codec`` (clean if ``codec`` is None).

    Predictions are gathered with ``gather_for_metrics`` (exact under DDP: the padding duplicates of the last batch
    are dropped), the metric is computed on the main process and broadcast.

    Args:
        cache: where compressed batches are kept (by batch index) for a later evaluation at the same point; a
            ``dict`` to use, or ``None``.

    Returns:
        ``(metrics, achieved_bpp)``: every metric of the task, and the mean achieved bpp (None when clean).
    """
    from accelerate.utils import broadcast_object_list

    model.eval()
    metric = task.metric(args, data) if accelerator.is_main_process else None
    bpp_total, n_images = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=_no_bar(accelerator))
    for i, batch in enumerate(bar):
        images = batch["image"]
        achieved = None
        if codec is not None:
            if cache is not None and i in cache:
                images, achieved = cache[i]
            else:
                images, achieved = compress_images(images, codec, bpp)
                if cache is not None:
                    cache[i] = (images, achieved)
        with torch.no_grad():
            out = task.predict(model, to_float(images), batch)
        out = accelerator.gather_for_metrics(out, use_gather_object=task.gather_objects)
        if achieved is not None:
            achieved = accelerator.gather_for_metrics(achieved.float())
        if accelerator.is_main_process:
            task.update(metric, out)
            if achieved is not None:
                bpp_total += float(achieved.sum())
                n_images += int(achieved.numel())
    result = [task.compute(metric) if accelerator.is_main_process else None]
    if accelerator.num_processes > 1:
        result = broadcast_object_list(result)
    mean_bpp = None
    if codec is not None:
        summary = [bpp_total / max(1, n_images) if accelerator.is_main_process else None]
        mean_bpp = broadcast_object_list(summary)[0] if accelerator.num_processes > 1 else summary[0]
    return result[0], mean_bpp
