"""``Compress``: a torchvision-v2 transform that compresses each sample at a drawn quality or target bpp."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2._utils import is_pure_tensor

from augcomp import codecs
from augcomp._checks import per_sample
from augcomp.functional import compress

__all__ = ["Compress"]

Spec = float | tuple[float, float] | Sequence[float]


class Compress(v2.Transform):
    """Compresses images with a registered codec, per sample, at a drawn quality or target bitrate.

    Args:
        codec: a codec name, or a list of names to draw from per sample (see :func:`augcomp.codecs.list`).
        bpp: target bits per pixel, > 0: a number, a ``(lo, hi)`` tuple (log-uniform per sample), or a list of
            values to choose from. Give exactly one of ``bpp`` and ``quality``.
        quality: codec level (JPEG quality in [1, 100]): a number, a ``(lo, hi)`` tuple (uniform), or a list.
        p: probability that a sample is compressed; skipped samples cost nothing.
        same_on_batch: draw one set of parameters for the whole batch.
        grad: ``"ste"``, ``"cubic"`` (JPEG) or ``"none"``.
        generator: random generator for the draws (its device decides where they are drawn).
        **codec_options: passed to every codec (``subsampling="444"``, ``backend="torch"``, ...).

    After each call ``last_params`` holds what was applied, for logging or replay (``transform(x, params)``):
    ``applied`` (B,) bool, ``codec`` (B,) index into ``codec_names``, ``target`` (B,) drawn bpp or quality,
    ``bpp`` and ``level`` (B,) achieved (NaN where skipped).

    Shape:
        - Input: ``(B, C, H, W)`` or ``(C, H, W)`` tensors or ``tv_tensors.Image``/``Video`` (leading dimensions are
          samples), float in [0, 1] or uint8 in [0, 255]. Boxes, masks, labels and other inputs pass through.
        - Output: the same shapes, dtypes and devices.
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Video, is_pure_tensor)

    def __init__(self, codec: str | Sequence[str] = "jpeg", bpp: Spec | None = None, quality: Spec | None = None,
                 p: float = 1.0, same_on_batch: bool = False, grad: str = "ste",
                 generator: torch.Generator | None = None, **codec_options: Any) -> None:
        super().__init__()
        if (bpp is None) == (quality is None):
            raise ValueError("give exactly one of bpp= and quality= (a number, a (lo, hi) tuple or a list)")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        self.codec_names = [codec] if isinstance(codec, str) else list(codec)
        entries = [codecs.entry(name) for name in self.codec_names]  # unknown names raise, listing known ones
        self.mode, spec = ("bpp", bpp) if bpp is not None else ("quality", quality)
        lo, hi = (0.0, float("inf")) if self.mode == "bpp" else entries[0].level_range
        for e in entries[1:]:
            if self.mode == "quality" and e.level_range != entries[0].level_range:
                raise ValueError("quality= needs codecs with one level range; use bpp= to mix these codecs")
        self.choices = torch.tensor([float(v) for v in spec]) if isinstance(spec, list) else None
        # Validates the spec once, so a bad value fails at construction rather than in the training loop.
        for value in spec if isinstance(spec, list) else [spec]:
            per_sample(value, 1, torch.device("cpu"), self.mode, lo, hi, low_inclusive=self.mode != "bpp")
        self.spec, self.range = spec, (lo, hi)
        self.p, self.same_on_batch, self.grad = p, same_on_batch, grad
        self.generator, self.codec_options = generator, codec_options
        self.last_params: dict[str, Tensor] | None = None

    def _choices_on(self, device: torch.device) -> Tensor:
        # Cached per device: copying from the host in every call would sync an accelerator.
        cache = self.__dict__.setdefault("_choices_cache", {})
        if device not in cache:
            cache[device] = self.choices.to(device)
        return cache[device]

    def _uniform(self, n: int, device: torch.device) -> Tensor:
        gen_device = self.generator.device if self.generator is not None else device
        return torch.rand(n, generator=self.generator, device=gen_device).to(device)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Tensor]:
        image = next(x for x in flat_inputs if isinstance(x, Tensor))
        batch, device = (image.shape[:-3].numel() if image.ndim > 3 else 1), image.device
        n = 1 if self.same_on_batch else batch
        if self.choices is not None:
            pick = (self._uniform(n, device) * len(self.choices)).long().clamp_(max=len(self.choices) - 1)
            target = self._choices_on(device)[pick]
        else:
            target = per_sample(self.spec, n, device, self.mode, *self.range, log=self.mode == "bpp",
                                generator=self.generator, low_inclusive=self.mode != "bpp")
        codec = (self._uniform(n, device) * len(self.codec_names)).long().clamp_(max=len(self.codec_names) - 1)
        applied = self._uniform(n, device) < self.p
        params = {"applied": applied, "codec": codec, "target": target}
        return {k: v.expand(batch) for k, v in params.items()} if self.same_on_batch else params

    def transform(self, inpt: Tensor, params: dict[str, Tensor]) -> Tensor:
        x = inpt.reshape(-1, *inpt.shape[-3:])
        out = x.clone()
        achieved = torch.full((x.shape[0],), float("nan"), device=x.device)
        level = achieved.clone()
        everything = self.p >= 1.0 and len(self.codec_names) == 1
        for k, name in enumerate(self.codec_names):
            # With p = 1 and one codec there is nothing to select, so the batch stays whole (no host sync).
            index = None if everything else torch.nonzero(params["applied"] & (params["codec"] == k))[:, 0]
            if index is not None and index.numel() == 0:
                continue
            sub = x if index is None else x[index]
            target = params["target"] if index is None else params["target"][index]
            result = compress(sub, name, grad=self.grad, **{self.mode: target}, **self.codec_options)
            if index is None:
                out, achieved, level = result.image, result.bpp, result.level
            else:
                out = out.index_copy(0, index, result.image)
                achieved = achieved.index_copy(0, index, result.bpp)
                level = level.index_copy(0, index, result.level)
        self.last_params = {**params, "bpp": achieved, "level": level}
        return tv_tensors.wrap(out.reshape(inpt.shape), like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else \
            out.reshape(inpt.shape)

    def extra_repr(self) -> str:
        return f"codec={self.codec_names}, {self.mode}={self.spec}, p={self.p}, same_on_batch={self.same_on_batch}"
