"""The training and evaluation loops, with compression applied on the device after the batch arrives there."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from augcomp.experiment.progress import progress
from augcomp.tasks.base import DataBundle, Task, to_float
from augcomp.tasks.settings import Settings

__all__ = ["compress_images", "stored_images", "apply_compress", "compress_drawn", "train_epoch", "evaluate",
           "warmup_cosine"]

# Where the finetuning images were compressed: what ``train_epoch`` counts into ``codec_work``.
WORK_KEYS = ("train_library_in_main", "train_library_in_workers", "train_tensor_on_device", "train_from_store")

Images = Tensor | list[Tensor]


def _groups(images: list[Tensor]) -> dict[tuple[int, ...], list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    return groups


def _per_group(images: Images, fn: Callable[[Tensor], tuple[Tensor, ...]]) -> tuple[Images, list[Tensor]]:
    # Compression is batched over equally sized images; a list of mixed sizes is compressed one size at a time.
    # ``fn`` returns the coded images and (B,) per-sample values, which are put back in the batch's order.
    if isinstance(images, Tensor):
        coded, *values = fn(images)
        return coded, values
    out: list[Tensor] = [images[0]] * len(images)
    values: list[Tensor] = []
    for idx in _groups(images).values():
        coded, *group = fn(torch.stack([images[i] for i in idx]))
        if not values:
            values = [torch.zeros(len(images), dtype=v.dtype, device=images[0].device) for v in group]
        for j, i in enumerate(idx):
            out[i] = coded[j]
        for value, v in zip(values, group, strict=True):
            value[idx] = v.to(value.device, value.dtype)
    return out, values


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
        return out.image, out.bpp.float()

    images, (achieved,) = _per_group(images, fn)
    return images, achieved


def stored_images(store: Any, images: Images, codec: str, bpp: float, work: Any = None) -> tuple[Images, Tensor]:
    """:func:`compress_images` through a store of coded files: entries found are decoded, the others encoded and
    added (:func:`augcomp.store.coded_images`). Same arguments and return values, plus the work counts."""
    from augcomp.store import coded_images

    batch = list(images.unbind(0)) if isinstance(images, Tensor) else list(images)
    coded, achieved = coded_images(store, batch, codec, bpp, work=work)
    return (torch.stack(coded) if isinstance(images, Tensor) else coded), achieved


def apply_compress(aug: Callable[[Tensor], Tensor], images: Images) -> tuple[Images, Tensor, Tensor | None]:
    """Applies a :class:`augcomp.transforms.Compress` to a training batch on the device.

    A list of mixed sizes (detection) is compressed one size at a time, each group with its own draws; library
    codecs copy each group to the host and back.

    Args:
        aug: the transform; what it applied is read from its ``last_params``.
        images: uint8 in [0, 255] (or float in [0, 1]) on the device.

    Returns:
        ``(images, bpp, codec)``: the batch, the per-sample achieved bpp (NaN where a sample stayed clean or the
        transform does not report it), and per sample the index of the codec applied in ``aug.codec_names``, -1
        where it stayed clean (``None`` when the transform does not report its draws).

    Shape:
        - images: ``(B, 3, H, W)`` or a list of ``(3, H_i, W_i)``; output alike.
        - bpp, codec: ``(B,)``.
    """
    reported = True

    def fn(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        nonlocal reported
        with torch.no_grad():
            y = aug(x)
        params = getattr(aug, "last_params", None) or {}
        n = x.shape[0]
        bpp, applied, codec = params.get("bpp"), params.get("applied"), params.get("codec_index")
        if not isinstance(bpp, Tensor) or bpp.shape != (n,):
            bpp = torch.full((n,), float("nan"), device=x.device)
        if isinstance(applied, Tensor) and isinstance(codec, Tensor) and applied.shape == codec.shape == (n,):
            drawn = torch.where(applied, codec, torch.full_like(codec, -1))
        else:
            reported = False
            drawn = torch.full((n,), -1, dtype=torch.long, device=x.device)
        return y, bpp.float(), drawn.long()

    images, (bpp, codec) = _per_group(images, fn)
    return images, bpp, codec if reported else None


def compress_drawn(images: Images, draw: dict[str, Tensor], mix: Any) -> tuple[Images, Tensor, dict[str, int]]:
    """Compresses, in the training process, the samples of a batch that its loader left to it.

    Samples drawn for a codec and not coded where they were loaded (``draw["coded"]``) are compressed here, per codec
    on the equally sized samples at once, at their drawn targets: the tensor codecs on the device batch, and library
    codecs when the samples were loaded in this process (through the codec's thread pool).

    Args:
        images: uint8 in [0, 255] (or float in [0, 1]) on the device.
        draw: the batch's draws (see :func:`augcomp.data.collate`).
        mix: the :class:`augcomp.data.CodecMix` they were drawn from.

    Returns:
        ``(images, bpp, work)``: the batch, the per-sample achieved bpp (NaN where clean), and the images
        compressed per place (:data:`WORK_KEYS`).

    Shape:
        - images: ``(B, 3, H, W)`` or a list of ``(3, H_i, W_i)``; output alike.
        - draw: ``(B,)`` tensors; bpp: ``(B,)``.
    """
    from augcomp.functional import compress

    # The draws are small host-side decisions; one copy decides which samples go where.
    codec = draw["codec"].tolist()
    coded = draw["coded"].tolist()
    target = draw["target"].cpu()
    bpp = draw["bpp"].float().cpu().clone()
    work = dict.fromkeys(WORK_KEYS, 0)
    stored = draw["stored"].tolist() if "stored" in draw else [False] * len(coded)
    work["train_from_store"] = sum(stored)
    work["train_library_in_workers"] = sum(c and not s for c, s in zip(coded, stored, strict=True))
    out = images if isinstance(images, Tensor) else list(images)
    for k, name in enumerate(mix.names):
        todo = [i for i, (c, done) in enumerate(zip(codec, coded, strict=True)) if c == k and not done]
        if not todo:
            continue
        work["train_library_in_main" if mix.in_loader[k] else "train_tensor_on_device"] += len(todo)
        shapes: dict[tuple[int, ...], list[int]] = {}
        for i in todo:
            shapes.setdefault(tuple(images[i].shape), []).append(i)
        for idx in shapes.values():
            sub = images[idx] if isinstance(images, Tensor) else torch.stack([images[i] for i in idx])
            with torch.no_grad():
                result = compress(sub, codec=name, bpp=target[idx].to(sub.device), grad="none")
            if isinstance(out, Tensor):
                out = out.index_copy(0, torch.tensor(idx, device=sub.device), result.image)
            else:
                for j, i in enumerate(idx):
                    out[i] = result.image[j]
            bpp[idx] = result.bpp.float().cpu()
    return out, bpp, work


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
    mix: Any = None,
    clip_grad_norm: float | None = None,
    desc: str = "train",
) -> dict[str, Any]:
    """One epoch over ``loader``: compress (what the loader left to do, or with ``aug``), forward, backward, step.

    Gradient accumulation follows the accelerator's ``gradient_accumulation_steps``.

    Args:
        aug: a transform applied to every batch on the device (a :class:`augcomp.transforms.Compress`).
        mix: the :class:`augcomp.data.CodecMix` the loader's samples were drawn from (batches carry ``"draw"``);
            what the loader's workers did not compress is compressed here (:func:`compress_drawn`).

    Returns:
        Over all processes: ``{"loss": mean loss, "bpp": mean achieved bpp of the compressed training images (NaN
        without any), "draws": {"clean": n, <codec>: n, ...}, "work": {...}}``: the images left clean and
        compressed with each codec (empty without a ``Compress`` or mix), and with a mix the images compressed per
        place (:data:`WORK_KEYS`) and ``train_data_wait_seconds``, the seconds this process waited for batches
        (the mean over processes).
    """
    model.train()
    device = accelerator.device
    loss_sum = torch.zeros((), device=device)
    bpp_sum = torch.zeros((), device=device)
    count = torch.zeros((), device=device)
    bpp_count = torch.zeros((), device=device)
    names = list(mix.names) if mix is not None else list(getattr(aug, "codec_names", None) or [])
    # Samples left clean, then samples per codec: what the mix actually drew this epoch.
    drawn = torch.zeros(len(names) + 1, device=device)
    work = torch.zeros(len(WORK_KEYS) + 1, dtype=torch.float64)
    batches = iter(progress(loader, desc, accelerator))
    while True:
        t0 = time.perf_counter()
        batch = next(batches, None)
        work[-1] += time.perf_counter() - t0
        if batch is None:
            break
        images = batch["image"]
        if mix is not None:
            images, bpp, where = compress_drawn(images, batch["draw"], mix)
            work[:-1] += torch.tensor([where[k] for k in WORK_KEYS], dtype=torch.float64)
            finite = torch.isfinite(bpp)
            bpp_sum += bpp[finite].sum().to(device)
            bpp_count += finite.sum().to(device)
            codec = batch["draw"]["codec"].to(device)
            drawn += torch.bincount(codec + 1, minlength=len(names) + 1).to(drawn.dtype)
        elif aug is not None:
            images, bpp, codec = apply_compress(aug, images)
            finite = torch.isfinite(bpp)
            bpp_sum += bpp[finite].sum()
            bpp_count += finite.sum()
            if names and codec is not None:
                drawn += torch.bincount(codec.to(device) + 1, minlength=len(names) + 1).to(drawn.dtype)
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
    totals = accelerator.reduce(torch.cat([torch.stack([loss_sum, count, bpp_sum, bpp_count]), drawn,
                                           work.to(device=device, dtype=drawn.dtype)]), reduction="sum")
    loss_mean = float(totals[0] / totals[1].clamp_min(1))
    bpp_mean = float(totals[2] / totals[3]) if totals[3] > 0 else float("nan")
    counts = [int(round(float(c))) for c in totals[4:4 + len(drawn)]]
    draws = dict(zip(["clean", *names], counts, strict=True)) if names else {}
    places = totals[4 + len(drawn):].tolist()
    done = {k: int(round(n)) for k, n in zip(WORK_KEYS, places, strict=False)}
    done["train_data_wait_seconds"] = places[-1] / accelerator.num_processes
    return {"loss": loss_mean, "bpp": bpp_mean, "draws": draws, "work": done if mix is not None else {}}


def evaluate(
    accelerator: Any,
    task: Task,
    model: nn.Module,
    loader: Any,
    settings: Settings,
    data: DataBundle,
    *,
    codec: str | None = None,
    bpp: float | None = None,
    cache: dict | None = None,
    store: Any = None,
    work: Any = None,
    desc: str = "eval",
) -> tuple[dict[str, float], float | None]:
    """Evaluates ``model`` on ``loader``, compressed at ``bpp`` with ``codec`` (clean if ``codec`` is None).

    Predictions are gathered with ``gather_for_metrics`` (exact under DDP: the padding duplicates of the last batch
    are dropped), the metric is computed on the main process and broadcast.

    Args:
        settings: the run's settings (the task's metric may depend on them).
        data: the datasets (the metric reads the number of classes).
        cache: where compressed batches are kept (by batch index) for a later evaluation at the same point; a
            ``dict`` to use, or ``None``.
        store: a :class:`augcomp.store.Store`: each image's entry is decoded from it where present, else encoded
            and added.
        work: an :class:`augcomp.store.CodecWork` that counts images encoded and reused, and the seconds spent.

    Returns:
        ``(metrics, achieved_bpp)``: every metric of the task, and the mean achieved bpp (None when clean).
    """
    from accelerate.utils import broadcast_object_list

    model.eval()
    metric = task.metric(settings, data) if accelerator.is_main_process else None
    bpp_total, n_images = 0.0, 0
    for i, batch in enumerate(progress(loader, desc, accelerator)):
        images = batch["image"]
        achieved = None
        if codec is not None:
            n = images.shape[0] if isinstance(images, Tensor) else len(images)
            if cache is not None and i in cache:
                images, achieved = cache[i]
                if work is not None:
                    work.reused += n
            elif store is not None:
                images, achieved = stored_images(store, images, codec, bpp, work)
            else:
                t0 = time.perf_counter()
                images, achieved = compress_images(images, codec, bpp)
                if work is not None:
                    work.encoded += n
                    work.encode_seconds += time.perf_counter() - t0
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
