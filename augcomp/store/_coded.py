"""Coding images into store entries, and the sweep's lookup: decode what the store holds, encode and add the rest."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from augcomp._errors import ArgumentError, ArgumentTypeError
from augcomp.store._format import Entry, checksum, codec_id, entry_key, image_hash

__all__ = ["CodecWork", "TARGET_KINDS", "coded_images", "encode_entries", "key_for"]

TARGET_KINDS = ("bpp", "level")


@dataclass
class CodecWork:
    """Counts of coding work: entries encoded and reused, and the seconds spent encoding and decoding."""

    encoded: int = 0
    reused: int = 0
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0


def _codec(name: str, options: dict[str, Any] | None) -> Any:
    from augcomp import codecs

    return codecs.get(name, **(options or {}))


def key_for(image_id: str, codec: Any, target_kind: str, target: float) -> str:
    """The store key of an image (its :func:`~augcomp.store.image_hash`) coded by a built ``codec`` at a target."""
    return entry_key(image_id, codec_id(codec.identity()), target_kind, target)


def encode_entries(images: Sequence[Tensor], codec: str, target_kind: str, targets: Sequence[float], *,
                   options: dict[str, Any] | None = None, sources: Sequence[str] | None = None,
                   image_ids: Sequence[str] | None = None) -> tuple[list[Entry], list[Tensor]]:
    """Codes each image at its target and returns the store entries and the decoded images.

    Images of one size and codecs whose ``batch_invariant`` holds are coded as one batch; others one at a time, so an
    entry never depends on which images were coded beside it.

    Args:
        images: uint8 images in [0, 255], any device.
        codec: registered codec name; ``options`` its builder options.
        target_kind: ``"bpp"`` or ``"level"``.
        targets: one per image.
        sources: where each image came from (kept for people, not part of the key).
        image_ids: the images' :func:`~augcomp.store.image_hash`, if known.

    Returns:
        ``(entries, decoded)``: entries in the order of ``images``, and each decoded image, uint8 ``(C, H, W)`` on
        the images' device.

    Shape:
        - images: each ``(C, H, W)``.
    """
    from augcomp import compress

    if target_kind not in TARGET_KINDS:
        raise ArgumentError(f"target_kind must be one of {TARGET_KINDS}, got {target_kind!r}")
    if len(targets) != len(images):
        raise ArgumentError(f"targets has {len(targets)} values for {len(images)} images")
    module = _codec(codec, options)
    identity = module.identity()
    cid, ident_text = codec_id(identity), json.dumps(identity, sort_keys=True)
    ids = list(image_ids) if image_ids is not None else [image_hash(im) for im in images]
    sources = list(sources) if sources is not None else [""] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        if im.dtype != torch.uint8:
            raise ArgumentTypeError(f"store entries are made from uint8 images, got {im.dtype}")
        key = tuple(im.shape) if module.entry.batch_invariant else (i,)
        groups.setdefault(key, []).append(i)
    entries: list[Entry | None] = [None] * len(images)
    decoded: list[Tensor | None] = [None] * len(images)
    for idx in groups.values():
        batch = torch.stack([images[i] for i in idx])
        spec = torch.tensor([float(targets[i]) for i in idx], device=batch.device)
        kw = {"bpp": spec} if target_kind == "bpp" else {"quality": spec}
        with torch.no_grad():
            out = compress(batch, codec, grad="none", files=True, **(options or {}), **kw)
        levels, bits = out.level.tolist(), out.bits.tolist()
        c, h, w = batch.shape[1:]
        for j, i in enumerate(idx):
            key = entry_key(ids[i], cid, target_kind, targets[i])
            data = out.files[j]
            entries[i] = Entry(key=key, image=ids[i], codec=codec, codec_id=cid, identity=ident_text,
                               target_kind=target_kind, target=float(targets[i]), level=float(levels[j]),
                               bits=float(bits[j]), bpp=float(bits[j]) / (h * w), channels=int(c), height=int(h),
                               width=int(w), file_kind=module.entry.file_kind, source=sources[i], data=data,
                               checksum=checksum(key, float(levels[j]), float(bits[j]), int(c), int(h), int(w),
                                                 module.entry.file_kind, data))
            decoded[i] = out.image[j]
    return entries, decoded  # type: ignore[return-value]


def coded_images(store: Any, images: Sequence[Tensor], codec: str, bpp: float, *,
                 options: dict[str, Any] | None = None, work: CodecWork | None = None
                 ) -> tuple[list[Tensor], Tensor]:
    """The sweep's step: each image coded by ``codec`` at ``bpp``, decoded from the store where it holds the entry,
    else encoded and added (as one new part file).

    Args:
        store: a :class:`~augcomp.store.Store`.
        images: uint8 in [0, 255].
        codec: the codec.
        options: its builder options.
        bpp: the target, the same for every image.
        work: counts to add this call's work to.

    Returns:
        ``(images, achieved_bpp)``: the decoded images (uint8, on the inputs' device) and ``(B,)`` float32 bpp.

    Shape:
        - images: each ``(C, H, W)``; output alike.
    """
    work = work if work is not None else CodecWork()
    if not images:
        return [], torch.zeros(0)
    device = images[0].device
    module = _codec(codec, options)
    cid = codec_id(module.identity())
    host = [im.detach().cpu() for im in images]
    ids = [image_hash(im) for im in host]
    keys = [entry_key(i, cid, "bpp", bpp) for i in ids]
    t0 = time.perf_counter()
    found = store.read(keys)
    out: list[Tensor | None] = [None] * len(images)
    bpps = [0.0] * len(images)
    for i, key in enumerate(keys):
        entry = found.get(key)
        if entry is None:
            continue
        pixels = module.decode_file(entry.data, entry.channels)
        if tuple(pixels.shape) != tuple(host[i].shape):
            continue  # cannot be this image: encode it again
        out[i], bpps[i] = pixels.to(device), entry.bpp
        work.reused += 1
    work.decode_seconds += time.perf_counter() - t0
    missing = [i for i in range(len(images)) if out[i] is None]
    if missing:
        t0 = time.perf_counter()
        entries, decoded = encode_entries([host[i] for i in missing], codec, "bpp", [bpp] * len(missing),
                                          options=options, image_ids=[ids[i] for i in missing])
        store.write(entries)
        for i, entry, image in zip(missing, entries, decoded, strict=True):
            out[i], bpps[i] = image.to(device), entry.bpp
        work.encoded += len(missing)
        work.encode_seconds += time.perf_counter() - t0
    return out, torch.tensor(bpps, dtype=torch.float32, device=device)  # type: ignore[return-value]
